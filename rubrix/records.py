"""Reading samples and preference pairs from JSONL / JSON / CSV / Parquet, ``hf:`` data sets
(:mod:`rubrix.hfdata`) and standard input: input rows, validated.

TRL's conversational rows are read as they are: ``prompt`` / ``completion`` as text or messages, a
``messages`` column, preference sides as messages with the prompt implicit in them. Messages are
checked and rendered by :mod:`rubrix.chat` (roles, tool calls and their results).

Input files are written by people and by other tools, so every problem a user can cause ends in an
:class:`~rubrix.errors.InputError` that names the file, the line (1-based physical line for
JSONL/CSV, row index + 1 for Parquet) and the field — never a ``KeyError`` or a traceback. Files
are streamed: JSONL and CSV are read line by line in binary with a per-line byte limit (so one
runaway line cannot exhaust memory), Parquet in record batches. JSON is parsed strictly
(:func:`rubrix._json.loads_strict`): no NaN/Infinity, no numbers that overflow to infinity, no
repeated keys.

Result files (what a run writes) are :mod:`rubrix.results`; they share the line readers below.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import chat
from ._json import StrictJSONError, kind_of, loads_strict, raw_decode_strict
from .errors import InputError, UserError
from .hfdata import is_hf_spec, iter_rows
from .rubric import Rubric, rubric_from_items

__all__ = [
    "MAX_LINE_BYTES", "ROLES", "FORMATS", "Sample", "Pair", "FieldMap", "read_records", "read_samples",
    "read_pairs", "sample_from_dict", "pair_from_dict", "prompt_from_dict", "pair_problem", "detect_format",
    "decode_line",
    "parse_json_line", "expect_object",
]

MAX_LINE_BYTES = 20_000_000
"""Longest JSONL/CSV line accepted. Far above any real prompt + response, low enough that a file
without newlines (a binary file, a JSON dump on one line) fails fast instead of eating memory."""

ROLES = chat.ROLES
FORMATS = ("jsonl", "json", "csv", "parquet")
_PARQUET_BATCH_ROWS = 1024

Prompt = str | list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# data classes


@dataclass
class Sample:
    """One (prompt, response) to be scored.

    ``rubric`` is a per-row rubric (HealthBench / Rubrics-as-Rewards style); ``None`` means the
    run's rubric applies. ``meta`` carries every unmapped column through untouched, so callers can
    group, filter or report on them without rubrix knowing their names.
    """

    id: str
    prompt: Prompt
    response: str
    rubric: Rubric | None = None
    group_id: str | None = None
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


@dataclass
class Pair:
    """A preference pair: ``chosen`` was preferred over ``rejected`` for ``prompt``.

    Empty or identical responses are *not* rejected when reading (a data set may legitimately hold
    them); :func:`pair_problem` names the reason a consumer such as the extractor should skip one.
    """

    id: str
    prompt: Prompt
    chosen: str
    rejected: str
    source: str | None = None
    rationale: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


@dataclass(frozen=True)
class FieldMap:
    """Which column holds which field, so data sets need no conversion script.

    ``rubric=None`` means automatic: the ``rubric`` column when a row has one, else ``rubrics``
    (HealthBench's name).
    """

    id: str = "id"
    prompt: str = "prompt"
    response: str = "response"
    rubric: str | None = None
    group: str = "group_id"
    reference: str = "reference"
    chosen: str = "chosen"
    rejected: str = "rejected"
    rationale: str = "rationale"
    source: str = "source"

    _ALIASES = {"group_id": "group", "rubrics": "rubric"}

    @classmethod
    def parse(cls, specs: Iterable[str]) -> FieldMap:
        """Build a map from CLI options such as ``["prompt=question", "response=answer"]``.

        Unknown keys are refused (a typo would otherwise silently read the default column).
        """
        allowed = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, str] = {}
        for spec in specs:
            key, sep, column = str(spec).partition("=")
            key, column = key.strip(), column.strip()
            if not sep or not key or not column:
                raise UserError(f"expected FIELD=COLUMN, got {spec!r}", field="field map")
            key = cls._ALIASES.get(key, key)
            if key not in allowed:
                raise UserError(f"unknown field {key!r} (allowed: {', '.join(allowed)})", field="field map")
            if key in values:
                raise UserError(f"field {key!r} mapped twice", field="field map")
            values[key] = column
        return cls(**values)

    def rubric_column(self, row: dict[str, Any]) -> str | None:
        """The column holding this row's rubric, or ``None`` when it has none."""
        if self.rubric is not None:
            return self.rubric
        if "rubric" in row:
            return "rubric"
        if "rubrics" in row:
            return "rubrics"
        return None


# ---------------------------------------------------------------------------------------------
# raw records


def detect_format(path: str | Path) -> tuple[str, bool]:
    """(format, gzipped) from a file name; ``.jsonl.gz`` and ``.csv.gz`` are read through gzip."""
    name = Path(path).name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    fmt = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "csv": "csv", "parquet": "parquet",
           "pq": "parquet"}.get(suffix)
    if fmt is None or (gz and fmt == "parquet"):
        raise InputError("cannot tell the format from the file name; use .jsonl, .json, .csv or .parquet "
                         "(optionally .jsonl.gz / .csv.gz), or name the format", file=str(path))
    return fmt, gz


def _resolve_format(path: str | Path, fmt: str | None) -> tuple[str, bool]:
    """(format, gzipped) from an explicit format name, else from the file name; ``hf:`` inputs are
    ``datasets`` sources and ``-`` is standard input (JSONL unless a format is named)."""
    if is_hf_spec(path):
        return "hf", False
    if str(path) == "-":
        fmt = fmt or "jsonl"
    if fmt is None:
        return detect_format(path)
    fmt = fmt.lower().lstrip(".")
    fmt = {"ndjson": "jsonl", "pq": "parquet"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})", field="format")
    return fmt, str(path).lower().endswith(".gz") and fmt != "parquet"


def read_records(path: str | Path, *, fmt: str | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, row)`` for every record of a JSONL / JSON / CSV / Parquet file, an ``hf:`` data set
    (:mod:`rubrix.hfdata`; ``line`` is the row number) or standard input (``-``).

    Rows are plain dicts as stored (CSV cells are strings). Blank JSONL lines and empty CSV lines
    are skipped. Nothing is mapped or validated beyond "each record is an object"; that is the job
    of :func:`read_samples` / :func:`read_pairs`.
    """
    yield from _iter_records(path, fmt, max_line_bytes, None)


def _iter_records(path: str | Path, fmt: str | None, max_line_bytes: int,
                  check_columns: Callable[[list[str], int | None], None] | None
                  ) -> Iterator[tuple[int, dict[str, Any]]]:
    """The reader behind :func:`read_records`.

    ``check_columns(columns, header_line)`` is called before the first row for formats with a
    schema (CSV, Parquet), so a missing mapped column fails once, naming the column, instead of on
    every row.
    """
    name = str(path)
    fmt, gz = _resolve_format(path, fmt)
    if fmt == "hf":
        yield from iter_rows(name, check_columns)
        return
    if name == "-":
        yield from _stdin_rows(fmt, max_line_bytes, check_columns)
        return
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", file=name)
    if p.is_dir():
        raise InputError("is a directory, not a records file", file=name)
    if fmt == "parquet":
        yield from _parquet_rows(p, name, check_columns)
        return
    try:
        raw = open(p, "rb")  # closed in the finally below
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=name) from None
    try:
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        if fmt == "csv":
            yield from _csv_rows(stream, name, max_line_bytes, check_columns)
        elif fmt == "json" and _starts_with_bracket(stream):
            yield from _json_array_rows(stream, name)
        else:
            yield from _jsonl_rows(stream, name, max_line_bytes)
    except (gzip.BadGzipFile, EOFError, OSError) as exc:
        what = "compressed file" if gz else "file"
        raise InputError(f"cannot read {what}: {exc}", file=name) from None
    finally:
        raw.close()


def _stdin_rows(fmt: str, max_line_bytes: int, check_columns: Callable[[list[str], int | None], None] | None
                ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Records from standard input (``-``), streamed once: JSONL or CSV (Parquet needs a seekable file)."""
    if fmt not in ("jsonl", "csv"):
        raise InputError(f"standard input can be JSONL or CSV, not {fmt}; write it to a file first", file="-")
    stream = sys.stdin.buffer
    if fmt == "csv":
        yield from _csv_rows(stream, "<stdin>", max_line_bytes, check_columns)
    else:
        yield from _jsonl_rows(stream, "<stdin>", max_line_bytes)


def _binary_lines(stream: IO[bytes], name: str, limit: int) -> Iterator[tuple[int, bytes, bool]]:
    """Yield ``(line number, bytes, ends_with_newline)`` reading at most ``limit`` bytes at a time.

    A longer line is refused after reading only ``limit + 1`` bytes of it.
    """
    number = 0
    while True:
        chunk = stream.readline(limit + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > limit:
            raise InputError(f"line is longer than {limit} bytes (is this really a records file?)",
                             file=name, line=number)
        if number == 1 and chunk.startswith(b"\xef\xbb\xbf"):
            chunk = chunk[3:]
        yield number, chunk, chunk.endswith(b"\n")


def decode_line(chunk: bytes, name: str, line: int) -> str:
    """One line's bytes as text; anything but UTF-8 is an :class:`InputError` naming the line."""
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start + 1} of the line); save the file as UTF-8",
                         file=name, line=line) from None


def parse_json_line(text: str, name: str, line: int, *, truncated: bool = False) -> Any:
    """Parse one JSON value strictly (see :func:`rubrix._json.loads_strict`), errors naming the line."""
    try:
        return loads_strict(text)
    except (ValueError, RecursionError) as exc:
        raise _json_error(exc, name, line, truncated=truncated) from None


def _json_error(exc: Exception, name: str, line: int, *, truncated: bool = False,
                absolute_lines: bool = False) -> InputError:
    """An :class:`InputError` for a JSON parse failure; ``line`` is where the value started."""
    if isinstance(exc, StrictJSONError):
        if exc.key is not None:
            return InputError("key appears twice in one object", file=name, line=line, field=exc.key)
        return InputError(f"not valid JSON: {exc}", file=name, line=line)
    if isinstance(exc, json.JSONDecodeError):
        hint = " (the file looks truncated: its last line has no newline)" if truncated else ""
        at = exc.lineno if absolute_lines else line  # a JSONL record is one line
        return InputError(f"not valid JSON: {exc.msg} (column {exc.colno}){hint}", file=name, line=at)
    if isinstance(exc, RecursionError):
        return InputError("not valid JSON: nested too deeply", file=name, line=line)
    return InputError(f"not valid JSON: {exc}", file=name, line=line)


def expect_object(value: Any, name: str, line: int | None) -> dict[str, Any]:
    """A record must be a JSON object; anything else is an :class:`InputError` naming its kind."""
    if not isinstance(value, dict):
        raise InputError(f"each record must be a JSON object, got {kind_of(value)}", file=name, line=line)
    return value


def _jsonl_rows(stream: IO[bytes], name: str, limit: int) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, chunk, has_newline in _binary_lines(stream, name, limit):
        text = decode_line(chunk, name, number)
        if not text.strip():
            continue
        value = parse_json_line(text, name, number, truncated=not has_newline)
        yield number, expect_object(value, name, number)


def _starts_with_bracket(stream: IO[bytes]) -> bool:
    """Peek whether a ``.json`` file is one JSON array (else it is read as JSON lines)."""
    head = stream.read(4096)
    stream.seek(0)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def _json_array_rows(stream: IO[bytes], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """A ``.json`` file holding one array of objects; each row's line is where its object starts.

    The whole file is read at once: a JSON array has no line structure to stream by. Use JSONL for
    large data.
    """
    data = stream.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError("not UTF-8 text; save the file as UTF-8", file=name, line=line) from None

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def fail(i: int, message: str) -> InputError:
        return InputError(f"not valid JSON: {message}", file=name, line=text.count("\n", 0, i) + 1)

    pos = skip(text.index("[") + 1)
    line, counted = 1, 0
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = raw_decode_strict(text, pos)
        except (ValueError, RecursionError) as exc:
            raise _json_error(exc, name, line, absolute_lines=True) from None
        yield line, expect_object(value, name, line)
        pos = skip(end)
        if pos >= len(text):
            raise fail(pos, "the array is not closed with ']' (truncated file?)")
        if text[pos] == "]":
            if skip(pos + 1) < len(text):
                raise fail(skip(pos + 1), "extra data after the array")
            return
        if text[pos] != ",":
            raise fail(pos, "expected ',' or ']' between array items")
        pos = skip(pos + 1)


def _csv_rows(stream: IO[bytes], name: str, limit: int,
              check_columns: Callable[[list[str], int | None], None] | None
              ) -> Iterator[tuple[int, dict[str, Any]]]:
    """CSV through the ``csv`` module, fed line by line so decode errors know their line.

    ``strict=True`` turns quoting faults (``"abc"def``, an unclosed quote) into errors instead of
    silently merged cells.
    """
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)
    counter = {"line": 0}

    def lines() -> Iterator[str]:
        for number, chunk, _ in _binary_lines(stream, name, limit):
            counter["line"] = number
            yield decode_line(chunk, name, number)

    reader = csv.reader(lines(), strict=True)
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            return
        seen: set[str] = set()
        for column in header:
            if column in seen:
                raise InputError("column name appears twice in the header", file=name, line=1, field=column)
            seen.add(column)
        if check_columns is not None:
            check_columns(header, 1)
        while True:
            start = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                return
            if not cells:
                continue
            if len(cells) != len(header):
                raise InputError(f"row has {len(cells)} cells but the header has {len(header)} "
                                 "(a stray comma or quote?)", file=name, line=start)
            yield start, dict(zip(header, cells, strict=True))
    except csv.Error as exc:
        where = f" (in the record starting on line {start})" if counter["line"] != start else ""
        raise InputError(f"CSV quoting fault: {exc}{where}", file=name, line=counter["line"]) from None


def _parquet_rows(path: Path, name: str, check_columns: Callable[[list[str], int | None], None] | None
                  ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Parquet in record batches, so memory stays bounded by one batch, not the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file: {exc}", file=name) from None
    number = 0
    try:
        if check_columns is not None:
            check_columns(list(pf.schema_arrow.names), None)
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except pa.ArrowException as exc:
        raise InputError(f"cannot read Parquet data: {exc}", file=name, line=number + 1) from None
    finally:
        pf.close()


# ---------------------------------------------------------------------------------------------
# samples and pairs


def read_samples(path: str | Path, fields: FieldMap = FieldMap(), *, fmt: str | None = None,  # noqa: B008
                 default_id_prefix: str | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Sample]:
    """Yield validated :class:`Sample` objects from a records file.

    Without an id column, ``default_id_prefix`` makes ids from line numbers (``f"{prefix}{line}"``);
    otherwise a missing id is an error, because resume and caching depend on stable ids.
    """
    name = str(path)
    required: list[tuple[str, tuple[str, ...]]] = [
        ("prompt", (fields.prompt, "messages") if fields.prompt == "prompt" else (fields.prompt,)),
        ("response", (fields.response, "completion", "messages") if fields.response == "response"
         else (fields.response,))]
    if default_id_prefix is None:
        required.insert(0, ("id", (fields.id,)))
    resolved_fmt = _resolve_format(path, fmt)[0]
    seen: dict[str, int] = {}
    for line, row in _iter_records(path, fmt, max_line_bytes, _column_checker(name, required)):
        if resolved_fmt == "csv":
            row = _decode_csv_cells(row, fields, name, line, pairs=False)
        sample = sample_from_dict(row, fields, file=name, line=line, default_id_prefix=default_id_prefix)
        _check_unique(sample.id, line, seen, name, fields.id)
        yield sample


def read_pairs(path: str | Path, fields: FieldMap = FieldMap(), *, fmt: str | None = None,  # noqa: B008
               default_id_prefix: str | None = None,
               max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Pair]:
    """Yield :class:`Pair` objects; empty or identical responses are kept (see :func:`pair_problem`)."""
    name = str(path)
    # a default prompt column may be absent: TRL's implicit-prompt rows keep it inside chosen/rejected
    required = [("chosen", (fields.chosen,)), ("rejected", (fields.rejected,))]
    if fields.prompt != "prompt":
        required.insert(0, ("prompt", (fields.prompt,)))
    if default_id_prefix is None:
        required.insert(0, ("id", (fields.id,)))
    resolved_fmt = _resolve_format(path, fmt)[0]
    seen: dict[str, int] = {}
    for line, row in _iter_records(path, fmt, max_line_bytes, _column_checker(name, required)):
        if resolved_fmt == "csv":
            row = _decode_csv_cells(row, fields, name, line, pairs=True)
        pair = pair_from_dict(row, fields, file=name, line=line, default_id_prefix=default_id_prefix)
        _check_unique(pair.id, line, seen, name, fields.id)
        yield pair


def sample_from_dict(row: Any, fields: FieldMap = FieldMap(), *, file: str = "<input>",  # noqa: B008
                     line: int | None = None, default_id_prefix: str | None = None) -> Sample:
    """Validate one record (from a file, or a request body in the server) into a :class:`Sample`.

    An empty response is valid: judges must see it and score it, not have it vanish. TRL's
    conversational rows need no mapping: ``completion`` stands in for a missing ``response``, and a
    ``messages`` column (no ``prompt``) is split into the prompt and the turns after the last user
    message. A response given as messages is graded on its assistant turns (:mod:`rubrix.chat`).
    """
    row = expect_object(row, file, line)
    sid = _id(row, fields.id, file, line, default_id_prefix)
    prompt_col, response_col = _sample_columns(row, fields)
    if prompt_col == "messages" and response_col is None:
        messages = _messages(row["messages"], "messages", file, line)
        try:
            prompt, completion = chat.split_messages(messages)
        except chat.ChatError as exc:
            raise InputError(exc.message, file=file, line=line, field="messages") from None
        response = chat.response_text(completion)
    else:
        prompt = _prompt(row, prompt_col, file, line)
        response = _response(row, response_col or fields.response, prompt, file, line)
    rubric_col = fields.rubric_column(row)
    rubric = None
    if rubric_col is not None and row.get(rubric_col) is not None:
        rubric = _row_rubric(row[rubric_col], rubric_col, sid, file, line)
    group = _optional_id(row, fields.group, file, line)
    reference = _optional_str(row, fields.reference, file, line)
    used = {fields.id, prompt_col, response_col, fields.group, fields.reference}
    if rubric_col is not None:
        used.add(rubric_col)
    meta = {k: v for k, v in row.items() if k not in used}
    return Sample(id=sid, prompt=prompt, response=response, rubric=rubric, group_id=group,
                  reference=reference, meta=meta, line=line)


def _sample_columns(row: dict[str, Any], fields: FieldMap) -> tuple[str, str | None]:
    """(prompt column, response column or ``None`` when both come from ``messages``).

    The TRL names are used only when the default columns are absent and not mapped elsewhere, so
    an explicit ``-f`` mapping always wins and a missing mapped column still fails by its name.
    """
    prompt_col, response_col = fields.prompt, fields.response
    if response_col == "response" and "response" not in row and "completion" in row:
        response_col = "completion"
    if prompt_col == "prompt" and "prompt" not in row and "messages" in row:
        return "messages", None if response_col not in row else response_col
    return prompt_col, response_col


def pair_from_dict(row: Any, fields: FieldMap = FieldMap(), *, file: str = "<input>",  # noqa: B008
                   line: int | None = None, default_id_prefix: str | None = None) -> Pair:
    """Validate one record into a :class:`Pair` (types only; see :func:`pair_problem` for content).

    ``chosen`` / ``rejected`` may be text or messages (TRL's conversational preference rows, what
    ``rubrix export --to trl-pairs`` writes); without a prompt column, the prompt is the messages
    both sides share (TRL's implicit prompt).
    """
    row = expect_object(row, file, line)
    pid = _id(row, fields.id, file, line, default_id_prefix)
    if fields.prompt not in row and fields.prompt == "prompt" and all(
            isinstance(row.get(k), list | tuple) for k in (fields.chosen, fields.rejected)):
        chosen_msgs = _messages(row[fields.chosen], fields.chosen, file, line)
        rejected_msgs = _messages(row[fields.rejected], fields.rejected, file, line)
        try:
            prompt, chosen_rest, rejected_rest = chat.split_common_prefix(chosen_msgs, rejected_msgs)
        except chat.ChatError as exc:
            raise InputError(exc.message, file=file, line=line, field=fields.chosen) from None
        chosen, rejected = chat.response_text(chosen_rest), chat.response_text(rejected_rest)
        prompt_out: Prompt = prompt
    else:
        prompt_out = _prompt(row, fields.prompt, file, line)
        chosen = _response(row, fields.chosen, prompt_out, file, line)
        rejected = _response(row, fields.rejected, prompt_out, file, line)
    source = _optional_str(row, fields.source, file, line)
    rationale = _optional_str(row, fields.rationale, file, line)
    used = {fields.id, fields.prompt, fields.chosen, fields.rejected, fields.source, fields.rationale}
    meta = {k: v for k, v in row.items() if k not in used}
    return Pair(id=pid, prompt=prompt_out, chosen=chosen, rejected=rejected, source=source,
                rationale=rationale, meta=meta, line=line)


def pair_problem(pair: Pair) -> str | None:
    """Why a pair cannot teach anything, or ``None``: the extractor skips such pairs with this reason."""
    if not pair.chosen.strip():
        return "empty chosen"
    if not pair.rejected.strip():
        return "empty rejected"
    if pair.chosen.strip() == pair.rejected.strip():
        return "identical responses"
    return None


def _column_checker(name: str, required: list[tuple[str, tuple[str, ...]]]
                    ) -> Callable[[list[str], int | None], None]:
    """A check that each required field has one of its columns (the first is the one named)."""
    def check(columns: list[str], header_line: int | None) -> None:
        present = set(columns)
        for key, alternatives in required:
            if not present.intersection(alternatives):
                column = alternatives[0]
                shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
                hint = f"; map another column with {key}=COLUMN" if key == column else ""
                raise InputError(f"no such column (columns: {shown}){hint}", file=name, line=header_line,
                                 field=column)
    return check


def _check_unique(item_id: str, line: int | None, seen: dict[str, int], name: str, field_name: str) -> None:
    first = seen.get(item_id)
    if first is not None:
        raise InputError(f"duplicate id {item_id!r} (first on line {first})", file=name, line=line,
                         field=field_name)
    seen[item_id] = line or 0


def _decode_csv_cells(row: dict[str, Any], fields: FieldMap, name: str, line: int, *,
                      pairs: bool) -> dict[str, Any]:
    """CSV cells are all text: read JSON chat messages and rubrics, and empty optional cells as missing.

    A prompt or response cell is taken as chat messages only when it parses as a JSON list of
    objects; any other text starting with ``[`` ("[INST] ...") stays text.
    """
    row = dict(row)
    columns = [fields.prompt, fields.chosen, fields.rejected] if pairs else \
        [fields.prompt, fields.response, "completion", "messages"]
    for column in columns:
        cell = row.get(column)
        if isinstance(cell, str):
            parsed = _json_messages(cell)
            # a response cell may itself be a JSON answer: it is messages only when every item has a role
            if parsed is not None and (column == fields.prompt or all("role" in m for m in parsed)):
                row[column] = parsed
    optional = [fields.id, fields.source, fields.rationale] if pairs else \
        [fields.id, fields.group, fields.reference, fields.rubric or "rubric", "rubrics"]
    for key in optional:
        if row.get(key) == "":
            row[key] = None
    return row


def _id(row: dict[str, Any], key: str, file: str, line: int | None, prefix: str | None) -> str:
    value = row.get(key)
    if value is None or value == "":
        if prefix is not None and line is not None:
            return f"{prefix}{line}"
        raise InputError("missing id (every record needs a unique id; or let rubrix number rows)",
                         file=file, line=line, field=key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"id must be a string or an integer, got {kind_of(value)}", file=file, line=line,
                         field=key)
    return str(value)


def _optional_id(row: dict[str, Any], key: str, file: str, line: int | None) -> str | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"must be a string or an integer, got {kind_of(value)}", file=file, line=line,
                         field=key)
    return str(value)


def _required_str(row: dict[str, Any], key: str, file: str, line: int | None) -> str:
    if key not in row:
        raise InputError("missing (required)", file=file, line=line, field=key)
    value = row[key]
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {kind_of(value)}", file=file, line=line, field=key)
    return value


def _optional_str(row: dict[str, Any], key: str, file: str, line: int | None) -> str | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {kind_of(value)}", file=file, line=line, field=key)
    return value


def _messages(value: Any, key: str, file: str, line: int | None, *, check_tools: bool = True
              ) -> list[dict[str, Any]]:
    """A message list checked by :func:`rubrix.chat.normalize_messages`, faults naming the field path."""
    if isinstance(value, str):  # CSV cells and JSON-text columns carry messages as JSON text
        value = _json_messages(value) or value
    try:
        return chat.normalize_messages(value, check_tools=check_tools)
    except chat.ChatError as exc:
        raise InputError(exc.message, file=file, line=line, field=f"{key}{exc.where}") from None


def _json_messages(text: str) -> list[Any] | None:
    """``text`` parsed as a JSON list of objects, else ``None`` (so "[INST] ..." stays text)."""
    if not text.lstrip().startswith("["):
        return None
    try:
        parsed = loads_strict(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(parsed, list) and parsed and all(isinstance(m, dict) for m in parsed):
        return parsed
    return None


def prompt_from_dict(row: Any, key: str = "prompt", *, file: str = "<input>", line: int | None = None
                     ) -> Prompt:
    """The prompt of one record (text or checked chat messages), for readers of prompts alone
    (``rubrix generate``); faults are :class:`InputError` naming the field."""
    return _prompt(expect_object(row, file, line), key, file, line)


def _prompt(row: dict[str, Any], key: str, file: str, line: int | None) -> Prompt:
    """A prompt is text or chat messages; messages are checked here so templates can trust them.

    Messages are normalized (:mod:`rubrix.chat`): other keys (``name`` on user turns, metadata)
    have no place in a judge prompt and would make otherwise equal requests hash differently in
    the cache. A tool call in the prompt may be answered in the response, so that rule is checked
    once the response is read.
    """
    if key not in row:
        raise InputError("missing (required)", file=file, line=line, field=key)
    value = row[key]
    if isinstance(value, str):
        return value
    if not isinstance(value, list | tuple):
        raise InputError(f"must be a string or a list of chat messages, got {kind_of(value)}",
                         file=file, line=line, field=key)
    if not value:
        raise InputError("chat prompt has no messages", file=file, line=line, field=key)
    return _messages(value, key, file, line, check_tools=False)


def _response(row: dict[str, Any], key: str, prompt: Prompt, file: str, line: int | None) -> str:
    """A response (or a preference side): text, or messages graded on their assistant turns.

    Tool calls are checked across prompt and response together: every call needs its result.
    """
    if key not in row:
        raise InputError("missing (required)", file=file, line=line, field=key)
    value = row[key]
    if isinstance(value, str):
        if isinstance(prompt, list):
            _check_prompt_tools(prompt, [], key, file, line)
        return value
    if isinstance(value, dict):  # one message, as some exports write a single assistant turn
        value = [value]
    if not isinstance(value, list | tuple):
        raise InputError(f"must be a string or a list of chat messages, got {kind_of(value)}",
                         file=file, line=line, field=key)
    messages = _messages(value, key, file, line, check_tools=False)
    if not any(m["role"] == "assistant" for m in messages):
        raise InputError("has no assistant message to grade", file=file, line=line, field=key)
    _check_prompt_tools(prompt if isinstance(prompt, list) else [], messages, key, file, line)
    return chat.response_text(messages)


def _check_prompt_tools(prompt: list[dict[str, Any]], response: list[dict[str, Any]], key: str,
                        file: str, line: int | None) -> None:
    try:
        chat.check_tool_results(prompt + response, offset=len(prompt))
    except chat.ChatError as exc:
        field_name = exc.where if exc.where.startswith("prompt[") else f"{key}{exc.where}"
        raise InputError(exc.message, file=file, line=line, field=field_name) from None


def _row_rubric(value: Any, column: str, sid: str, file: str, line: int | None) -> Rubric:
    """A per-row rubric; JSON text (CSV cells, Parquet string columns) is parsed first.

    Keys whose value is null are dropped from each item: Parquet stores a list of structs with the
    union of all keys, so an item without ``category`` comes back as ``category: None``.
    """
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            value = loads_strict(value)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"rubric text is not valid JSON: {exc}", file=file, line=line,
                             field=column) from None
    if isinstance(value, list):
        value = [{k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item
                 for item in value]
    return rubric_from_items(value, name=f"row {sid}", filename=file, line=line)
