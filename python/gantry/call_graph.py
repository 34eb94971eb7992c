"""``FunctionCall.get_call_graph()``: a call and the calls it spawned from inside its container,
as Modal's ``modal.call_graph`` gives them (``InputInfo`` nodes with an ``InputStatus``)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List


class InputStatus(enum.IntEnum):
    """Where a call in the graph stands (Modal's names)."""

    PENDING = 0
    SUCCESS = 1
    FAILURE = 2
    INIT_FAILURE = 3
    TERMINATED = 4
    TIMEOUT = 5


_STATUS = {"queued": InputStatus.PENDING, "running": InputStatus.PENDING, "succeeded": InputStatus.SUCCESS, "failed": InputStatus.FAILURE, "cancelled": InputStatus.TERMINATED}


@dataclass
class InputInfo:
    """One call of the graph: its ID, function, status and the calls it spawned."""

    function_call_id: str
    app_name: str
    function_name: str
    status: InputStatus
    children: List["InputInfo"] = field(default_factory=list)

    @classmethod
    def from_view(cls, v: Dict[str, Any]) -> "InputInfo":
        return cls(v["call_id"], v["app"], v["function"], _STATUS.get(v["status"], InputStatus.PENDING), [cls.from_view(c) for c in v.get("children", [])])
