"""Refusals answered as JSON: one shape for every 4xx/5xx the server chooses to send.

``{"error": {"type", "field", "message"}, "detail": "field: message"}`` — ``type`` is a stable
word a client can branch on (``invalid_request``, ``overloaded``, ``judge_failing`` ...),
``field`` names the place in the request (``samples[2].prompt[0].role``) or is ``null``, and
``detail`` is the one line a person reads (FastAPI clients look there). Messages and field names
can echo the request, so both are cut to a bounded length.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError


class HTTPProblem(Exception):
    """A request the server refuses, answered as ``{"error": {...}, "detail": "..."}``."""

    def __init__(self, status: int, kind: str, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None):
        message = message if len(message) <= 1000 else message[:999] + "…"
        if field is not None and len(field) > 200:  # field names can come from the request
            field = field[:199] + "…"
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        detail = f"{self.field}: {self.message}" if self.field else self.message
        return {"error": {"type": self.kind, "field": self.field, "message": self.message}, "detail": detail,
                **self.extra}


class ClientGone(Exception):
    """The client closed the connection before its answer was ready (logged as status 499)."""


def invalid(field: str | None, message: str) -> HTTPProblem:
    """422 ``invalid_request``: the request is well-formed JSON but says something wrong."""
    return HTTPProblem(422, "invalid_request", message, field=field)


def from_user_error(exc: UserError) -> HTTPProblem:
    """A :class:`UserError` from the core (its ``field`` already names the place in the request)."""
    return invalid(exc.field or None, exc.message)


__all__ = ["ClientGone", "HTTPProblem", "from_user_error", "invalid"]
