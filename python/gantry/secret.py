"""Secrets, named in a function's options as Modal spells them: ``secrets=[gantry.Secret.from_name("openai")]``.

The daemon keeps the values (``gantry secret create NAME KEY=VALUE``); a function's containers get
each secret's keys as environment variables (a later secret wins over an earlier one, and secrets
win over ``env``). Values never pass through the app file, the image or the deploy request.
"""
from __future__ import annotations

import re
from typing import Any, Dict

from .exception import InvalidError

#: As ``protocol/function-spec.ts``'s names.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


class Secret:
    """A secret the daemon keeps, by name. Make one with ``Secret.from_name``."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidError(
                f"Secret.from_name({name!r}): a secret name has letters, digits, _ and -, "
                "starts with a letter or _, and has at most 64 characters"
            )
        self.name = name

    @staticmethod
    def from_name(name: str) -> "Secret":
        """The secret called ``name``; deploy refuses a function naming one that does not exist."""
        return Secret(name)

    @staticmethod
    def from_dict(env_dict: Dict[str, Any]) -> "Secret":
        """Not supported: Modal's ``from_dict`` puts values in the app file, and gantry keeps them in the daemon only."""
        raise InvalidError(
            "Secret.from_dict is not supported: gantry keeps secret values out of app files. Create the secret with "
            "`gantry secret create NAME KEY=VALUE` (or --from-dotenv FILE) and use Secret.from_name(NAME)"
        )

    def to_option(self) -> Dict[str, str]:
        """The form the deploy request takes (``protocol/function-spec.ts``: ``secrets``)."""
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"Secret.from_name({self.name!r})"
