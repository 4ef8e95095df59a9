"""Errors a user can cause, carrying where they happened.

The CLI turns any :class:`UserError` into one line ``file:line: field: message`` and exit status 2;
everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a file, a field, an option. Never a bug."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else str(self.file))
        elif self.line:
            where.append(f"line {self.line}")
        if self.field:
            where.append(self.field)
        head = ": ".join(where)
        return f"{head}: {self.message}" if head else self.message


class RubricError(UserError):
    """A rubric file or inline rubric that does not validate."""


class InputError(UserError):
    """A records file (JSONL/CSV/Parquet) with a malformed line or field."""


class MissingExtraError(UserError):
    """An optional dependency is missing; the message says which ``pip install`` fixes it."""

    def __init__(self, what: str, extra: str, module: str):
        super().__init__(f"{what} needs the '{module}' package: pip install 'rubrix[{extra}]'")
        self.extra = extra
