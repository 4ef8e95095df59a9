"""Structured log lines (``key=value``) for what happens while a run goes on.

A long scoring run or a trainer's reward function otherwise hides retries, parameter fallbacks,
cache hits and failures until the summary. These are logged on the ``rubrix`` logger tree with an
``event`` name and fields, one line each, so they can be read by eye and by ``grep`` / log
shippers alike::

    ts=2026-12-02T18:30:00Z level=info logger=rubrix.judges.openai event=judge_retry model=m \
        error=rate_limit attempt=1 wait_s=0.42

Library code only logs (:func:`event`); nothing is printed unless the application configures
logging — the CLI does with ``-v`` / ``--log-level`` (:func:`configure`), and a trainer may attach
its own handler to ``logging.getLogger("rubrix")``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

ROOT = "rubrix"
LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LEVEL = "warning"
"""What the CLI shows without ``-v``: warnings (journal fallbacks) and errors (a rejected API key)."""


def get_logger(name: str) -> logging.Logger:
    """The logger of a rubrix module (``rubrix.<...>``), under the one root the CLI configures."""
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str,
                                                          separators=(",", ":"))
    if text == "" or any(c in text for c in ' ="\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


def kv(**fields: Any) -> str:
    """``key=value`` pairs, values quoted when they hold spaces, quotes or ``=``; ``None`` left out."""
    return " ".join(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log one structured event; cheap when the level is off (nothing is formatted)."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", kv(event=name, **fields))


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... <message>``: every line is parseable as key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        message = record.getMessage()
        if not message.startswith("event="):  # a plain message from a library call
            message = kv(msg=message)
        line = f"ts={ts} level={record.levelname.lower()} logger={record.name} {message}"
        if record.exc_info:
            line += " " + kv(exc=self.formatException(record.exc_info).splitlines()[-1])
        return line


def level_from(verbose: int = 0, log_level: str | None = None) -> int:
    """``--log-level`` wins; else ``-v`` → info, ``-vv`` → debug; else :data:`DEFAULT_LEVEL`."""
    if log_level:
        name = log_level.strip().lower()
        if name not in LEVELS:
            from .errors import UserError

            raise UserError(f"must be one of {', '.join(LEVELS)}, got {log_level!r}", field="--log-level")
        return getattr(logging, name.upper())
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return logging.INFO
    return getattr(logging, DEFAULT_LEVEL.upper())


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the line: a live progress bar replaces
    it with a proxy that prints lines above the bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(level: int, stream: IO[str] | None = None) -> logging.Handler:
    """Send rubrix's log lines at ``level`` and above to ``stream`` (default: stderr), replacing a
    handler a previous call installed; other loggers are left alone."""
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        if getattr(handler, "_rubrix", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    handler._rubrix = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler


__all__ = ["DEFAULT_LEVEL", "LEVELS", "KeyValueFormatter", "configure", "event", "get_logger", "kv",
           "level_from"]
