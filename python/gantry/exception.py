"""Placeholder until the client lands (owned by the client work): the errors gantry raises."""
from __future__ import annotations


class Error(Exception):
    """Base of gantry's errors."""


class InvalidError(Error):
    """An app file or an argument that gantry cannot take."""


class NotFoundError(Error):
    pass


class OutputExpiredError(Error):
    pass


class RemoteError(Error):
    pass
