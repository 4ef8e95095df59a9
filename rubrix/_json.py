"""Strict JSON in, readable JSON out, and the one atomic writer for every side file.

Strict reading is shared by input files and the HTTP server because both take JSON from people
and from other programs: ``NaN``/``Infinity`` (not JSON, and a number that must never stand in
for a failed judgment), numbers that overflow to infinity and silently repeated keys are refused.
Writing refuses NaN for the same reason. Side files (manifests, summaries, reports) are written
all-or-nothing: a temporary file in the same folder, ``fsync``, then ``os.replace``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class StrictJSONError(ValueError):
    """JSON that parses in Python but is not acceptable: a constant, an overflow, a repeated key.

    ``key`` names the repeated key when that is the problem.
    """

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.key = key


def _no_constants(token: str) -> Any:
    raise StrictJSONError(f"{token} is not a JSON value (write null)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"number {text[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StrictJSONError(f"key {key[:80]!r} appears twice in one object", key=key)
        out[key] = value
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constants,
                            parse_float=_finite_float)


def loads_strict(text: str) -> Any:
    """Parse one JSON value strictly. Raises :class:`json.JSONDecodeError` for syntax errors,
    :class:`StrictJSONError` for the refusals above, and ``RecursionError`` for absurd nesting."""
    return _DECODER.decode(text)


def raw_decode_strict(text: str, pos: int = 0) -> tuple[Any, int]:
    """Parse the JSON value starting at ``pos`` strictly; returns it and the index after it.

    For readers that walk a larger text value by value (a JSON array of records), with the same
    refusals and exceptions as :func:`loads_strict`.
    """
    return _DECODER.raw_decode(text, pos)


def kind_of(value: Any) -> str:
    """How an error message names a JSON value's type ("a string", "an object", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_finite_number(value: Any) -> bool:
    """A real number a reward can be: not a boolean, not NaN, not infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def dumps_row(row: dict[str, Any]) -> str:
    """One row as a JSON line (without newline): UTF-8 text kept readable, NaN refused.

    Lone surrogates (which JSON input can smuggle in as ``\\ud800`` escapes) cannot be written as
    UTF-8, so such a row falls back to ASCII escapes, which read back to the same string.
    """
    text = json.dumps(row, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(row, ensure_ascii=True, allow_nan=False)
    return text


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all-or-nothing: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make a shared report unreadable to others
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """One JSON document (a manifest, a report), indented for people, written atomically."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    write_bytes_atomic(path, text.encode("utf-8", errors="backslashreplace"))


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """A small JSONL side file (a summary, an export), written atomically."""
    write_bytes_atomic(path, "".join(dumps_row(row) + "\n" for row in rows).encode("utf-8"))


__all__ = ["StrictJSONError", "loads_strict", "raw_decode_strict", "kind_of", "is_finite_number", "dumps_row",
           "write_bytes_atomic", "write_json_atomic", "write_jsonl_atomic"]
