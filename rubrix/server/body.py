"""Reading a request body safely: size, time, memory, then strict JSON.

A reward server faces trainers, but also whatever else can reach its port, so a body is read with
bounds before anything looks at it: its announced size (413 before one byte is read), its real
size while it streams (413 as soon as it passes the limit, chunked or not), the time the client
takes to send it (408, so a slow client cannot hold a request open forever), and the bytes held
for all unanswered requests together (429 past the budget; with the connection limit this bounds
the memory clients can make the server keep).

The JSON is then parsed strictly (:func:`rubrix._json.loads_strict`) *before* the request models
see it: no ``NaN``/``Infinity`` (a number that must never stand in for a failed judgment), no
repeated keys (which one would Pydantic keep?), bounded nesting, and no lone UTF-16 surrogates
(``"\\ud800"`` parses, but is not text and cannot be written back as UTF-8).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from .._json import loads_strict
from .config import MAX_JSON_DEPTH
from .errors import ClientGone, HTTPProblem, invalid


def parse_json_body(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no repeated keys, bounded nesting, valid Unicode strings."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPProblem(400, "bad_json", f"body is not UTF-8 (byte {exc.start + 1})") from None
    try:
        value = loads_strict(text)
    except json.JSONDecodeError as exc:
        raise HTTPProblem(400, "bad_json", f"body is not valid JSON: {exc.msg} (line {exc.lineno}, "
                                           f"column {exc.colno})") from None
    except RecursionError:
        raise HTTPProblem(400, "bad_json", f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # StrictJSONError, and ints longer than Python's digit limit
        raise HTTPProblem(400, "bad_json", f"body is not valid JSON: {exc}") from None
    check_tree(value)
    return value


def check_tree(value: Any) -> None:
    """Refuse deep nesting (400) and lone surrogates (422), naming the field."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise HTTPProblem(400, "bad_json", f"nested deeper than {MAX_JSON_DEPTH} levels", field=path)
        if isinstance(item, str):
            _check_text(item, path or "<body>")
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, path or "<body>")
                stack.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(item, list):
            for i, child in enumerate(item):
                stack.append((child, f"{path}[{i}]", depth + 1))


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(path, "contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text") from None


class BodyReader:
    """Reads bodies within the limits and keeps the count of bytes held for unanswered requests.

    ``reject(reason)`` is told of every refusal (the server counts them by reason in ``/metrics``).
    Every request that called :meth:`read` must be :meth:`release`\\ d when it ends, however.
    """

    def __init__(self, *, max_body_bytes: int, held_budget: int, timeout_s: float,
                 reject: Callable[[str], None]):
        self.max_body_bytes = max_body_bytes
        self.held_budget = held_budget
        self.timeout_s = timeout_s
        self.reject = reject
        self.held_bytes = 0

    async def read(self, request: Any) -> Any:
        """The request's body as strict JSON (see the module docstring for the refusals)."""
        from starlette.requests import ClientDisconnect

        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise HTTPProblem(400, "bad_request", "Content-Length is not a number") from None
            if size > limit:
                self.reject("too_large")
                raise HTTPProblem(413, "too_large",
                                  f"body of {size} bytes is over the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        self.reject("too_large")
                        raise HTTPProblem(413, "too_large", f"body is over the limit of {limit} bytes")
                    self._hold(request, len(chunk))
                    chunks.append(chunk)
        except TimeoutError:
            self.reject("body_timeout")
            raise HTTPProblem(408, "body_timeout",
                              f"the body did not arrive within {self.timeout_s:g} s") from None
        except ClientDisconnect:
            raise ClientGone() from None
        raw = b"".join(chunks)
        chunks.clear()
        return parse_json_body(raw)

    def _hold(self, request: Any, n: int) -> None:
        if self.held_bytes + n > self.held_budget:
            self.reject("memory")
            raise HTTPProblem(429, "overloaded",
                              f"server holds {self.held_bytes} bytes of unanswered requests "
                              f"(limit {self.held_budget}); retry later",
                              headers={"Retry-After": "1"})
        self.held_bytes += n
        request.state.rubrix_held = getattr(request.state, "rubrix_held", 0) + n

    def release(self, request: Any) -> None:
        """Forget a finished request's body bytes (called however the request ended)."""
        held = getattr(request.state, "rubrix_held", 0)
        if held:
            self.held_bytes -= held
            request.state.rubrix_held = 0


__all__ = ["BodyReader", "check_tree", "parse_json_body"]
