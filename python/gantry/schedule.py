"""Schedules, as Modal's ``modal.Period`` and ``modal.Cron`` (issue 21): the daemon calls the
function (with no arguments) every period, or at a cron expression's times in a time zone.

    @app.function(schedule=gantry.Period(minutes=5))
    def refresh(): ...

    @app.function(schedule=gantry.Cron("0 9 * * 1-5", timezone="Europe/Paris"))
    def report(): ...
"""
from __future__ import annotations

from typing import Any, Dict

from .exception import InvalidError


class Schedule:
    """What ``schedule=`` takes."""

    def to_option(self) -> Dict[str, Any]:
        raise NotImplementedError


class Period(Schedule):
    """Every ``days + hours + minutes + seconds`` (at least 1 s, at most 366 days)."""

    def __init__(self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        for what, v in (("days", days), ("hours", hours), ("minutes", minutes), ("seconds", seconds)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise InvalidError(f"Period({what}=...) takes a number ≥ 0, got {v!r}")
        total = days * 86400 + hours * 3600 + minutes * 60 + seconds
        if not 1 <= total <= 366 * 86400:
            raise InvalidError(f"a Period runs every 1 s to 366 days; this one is {total:g} s")
        self.seconds = total

    def to_option(self) -> Dict[str, Any]:
        return {"period": self.seconds}

    def __repr__(self) -> str:
        return f"Period(seconds={self.seconds:g})"


class Cron(Schedule):
    """At a cron expression's times (5 fields: minute hour day-of-month month day-of-week), in
    ``timezone`` (an IANA name; default UTC). The daemon checks the expression at deploy."""

    def __init__(self, cron_string: str, timezone: str = "UTC") -> None:
        if not isinstance(cron_string, str) or len(cron_string.split()) != 5:
            raise InvalidError(f"Cron takes 5 fields (minute hour day-of-month month day-of-week), got {cron_string!r}")
        if not isinstance(timezone, str) or not timezone:
            raise InvalidError(f"Cron(timezone=...) takes an IANA time zone name such as 'UTC', got {timezone!r}")
        self.cron_string = cron_string
        self.timezone = timezone

    def to_option(self) -> Dict[str, Any]:
        return {"cron": self.cron_string, "timezone": self.timezone}

    def __repr__(self) -> str:
        return f"Cron({self.cron_string!r}, timezone={self.timezone!r})"
