"""Result files on disk: append-only result rows, reading them back, and the manifest beside them.

A run's output is JSONL, one row per sample, written by :class:`ResultWriter`: each batch is
serialized completely before a single write, then flushed and ``fsync``-ed, so an interruption
can only ever leave a partial *last* line, which ``resume=True`` recognises and cuts away. Damage
anywhere else is not what a crash leaves, so it is refused rather than repaired.

The manifest (``OUT.manifest.json``, path from :func:`rubrix._paths.manifest_path`) and every
other side file are replaced whole through :func:`rubrix._json.write_json_atomic`, so a reader
sees the previous version or the new one, never half of either.

Results can also go to **Parquet** (``OUT.parquet``, :class:`ParquetResultWriter`) and to standard
output (``-``, :class:`StreamResultWriter`). Parquet has no appendable form that survives a crash
(its footer is written last), so rows go to a JSONL journal beside it (``OUT.parquet.journal.jsonl``,
same crash rules as above) and the journal becomes the Parquet file when the run ends —
interrupted or not. A run killed outright leaves the journal, and ``--resume`` continues from it.
The Parquet file holds the JSONL rows with the nested values (``criteria``, ``errors``) as JSON
text columns, so reading it back (:func:`iter_results`) gives the very same rows.

Input rows (samples, pairs) are :mod:`rubrix.records`; this module reuses its strict line readers
so a result file and an input file fail with the same messages.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ._json import dumps_row, is_finite_number, loads_strict, write_json_atomic
from ._paths import manifest_path, side_path
from .errors import InputError, UserError
from .records import decode_line, expect_object, parse_json_line, read_records

__all__ = ["ResultWriter", "ParquetResultWriter", "StreamResultWriter", "open_results", "results_format",
           "iter_results", "read_results", "read_manifest", "write_manifest", "samples_path_from_manifest",
           "PARQUET_COLUMNS"]


class ResultWriter:
    """Append-only JSONL results, durable per batch, resumable after a crash.

    * ``resume=False`` refuses a file that already has content: results are never overwritten
      silently.
    * ``resume=True`` reads the existing rows into :attr:`done_ids`; a partial last line (no final
      newline, or unreadable JSON on the last line) is what an interrupted write leaves, so it is
      cut away (:attr:`truncated_bytes` says how much). A bad line *before* the last one is not
      crash damage and raises :class:`InputError` naming it.
    * Each :meth:`write` serializes the whole batch first (so a bad value writes nothing), then
      appends it with one write, ``flush`` and ``os.fsync``.
    * An advisory lock (POSIX) stops two runs appending to the same file.
    """

    def __init__(self, path: str | Path, *, resume: bool = False):
        self.path = Path(path)
        self.done_ids: set[str] = set()
        self.rows_read = 0
        self.truncated_bytes = 0
        name = str(self.path)
        if self.path.is_dir():
            raise UserError("is a directory; name an output file", file=name)
        if not resume and self.path.exists() and self.path.stat().st_size > 0:
            raise UserError("output file already has results; pass --resume to continue it, or choose "
                            "another output", file=name)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[bytes] | None = open(self.path, "a+b")  # lives as long as the writer
        except OSError as exc:
            raise UserError(f"cannot open for writing: {exc.strerror}", file=name) from None
        try:
            self._lock()
            if resume:
                self._load_existing()
            elif self.path.stat().st_size > 0:  # written between the check above and the lock
                raise UserError("output file already has results; pass --resume to continue it, or "
                                "choose another output", file=name)
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows has no fcntl; run without the lock
            return
        assert self._fh is not None
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError("another process is writing this results file", file=str(self.path)) from None
        except OSError:  # pragma: no cover - file systems without locks (some network mounts)
            pass

    def _load_existing(self) -> None:
        """Read done ids; cut a crash-damaged last line; refuse damage anywhere else."""
        fh = self._fh
        assert fh is not None
        name = str(self.path)
        fh.seek(0)
        pending: InputError | None = None  # a bad line is only forgivable if nothing follows it
        pending_offset = 0
        offset = 0
        last_start = 0
        last_complete = True
        number = 0
        blank_tail: int | None = None
        while True:
            chunk = fh.readline()
            if not chunk:
                break
            number += 1
            start, offset = offset, offset + len(chunk)
            if not chunk.strip():
                if not chunk.endswith(b"\n"):  # whitespace left at the very end without a newline:
                    blank_tail = start           # the next row would be glued onto it, so cut it too
                continue
            if pending is not None:
                raise pending
            last_start, last_complete = start, chunk.endswith(b"\n")
            try:
                row = parse_json_line(decode_line(chunk, name, number), name, number)
            except InputError as exc:
                exc.message = f"{exc.message} — the results file is damaged before its last line"
                pending, pending_offset = exc, start
                continue
            row = expect_object(row, name, number)
            rid = row.get("id")
            if isinstance(rid, bool) or not isinstance(rid, str | int):
                raise InputError("result row has no string id", file=name, line=number, field="id")
            if last_complete:
                self.done_ids.add(str(rid))
                self.rows_read += 1
        cut: int | None = None
        if pending is not None:
            cut = pending_offset
        elif not last_complete:
            cut = last_start
            # the row was counted only if it ended in a newline; nothing to undo here
        elif blank_tail is not None:
            cut = blank_tail
        if cut is not None:
            self.truncated_bytes = offset - cut
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
        fh.seek(0, os.SEEK_END)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows (each must have an ``id``) durably: one write, flush and fsync per batch."""
        if self._fh is None:
            raise ValueError("ResultWriter is closed")
        if not rows:
            return
        ids = []
        for row in rows:
            rid = row.get("id")
            if isinstance(rid, bool) or not isinstance(rid, str | int):
                raise ValueError(f"result row needs a string id, got {rid!r}")
            ids.append(str(rid))
        blob = "".join(dumps_row(row) + "\n" for row in rows).encode("utf-8")
        self._fh.write(blob)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done_ids.update(ids)

    def close(self) -> None:
        """Close the file (and release the lock); safe to call twice."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Parquet and standard output

PARQUET_COLUMNS = ("id", "group_id", "reward", "reward_raw", "status", "criteria", "judge", "rubric_hash",
                   "template_hash", "rubrix_version", "errors", "extra")
"""The Parquet result schema: the JSONL row's keys as columns; ``criteria``, ``errors`` and any
other key (``extra``, an object) are JSON text so that the schema never depends on a rubric."""
_JSON_COLUMNS = ("criteria", "errors", "extra")
_PARQUET_BATCH = 4096


def results_format(path: str | Path) -> str:
    """``parquet`` for ``.parquet`` / ``.pq`` outputs, ``stdout`` for ``-``, else ``jsonl``."""
    name = str(path)
    if name == "-":
        return "stdout"
    return "parquet" if name.lower().endswith((".parquet", ".pq")) else "jsonl"


def open_results(path: str | Path, *, resume: bool = False) -> ResultWriter | ParquetResultWriter | \
        StreamResultWriter:
    """The writer for an output named ``path`` (see :func:`results_format`)."""
    kind = results_format(path)
    if kind == "stdout":
        if resume:
            raise UserError("--resume needs an output file; standard output cannot be continued", file="-")
        return StreamResultWriter()
    if kind == "parquet":
        return ParquetResultWriter(path, resume=resume)
    return ResultWriter(path, resume=resume)


def _parquet_schema() -> Any:
    import pyarrow as pa

    types = {"reward": pa.float64(), "reward_raw": pa.float64()}
    return pa.schema([(c, types.get(c, pa.string())) for c in PARQUET_COLUMNS])


def _parquet_record(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {c: row.get(c) for c in PARQUET_COLUMNS if c not in _JSON_COLUMNS}
    out["id"] = str(row["id"])
    if out["group_id"] is not None:
        out["group_id"] = str(out["group_id"])
    for c in ("criteria", "errors"):
        out[c] = None if row.get(c) is None else json.dumps(row[c], ensure_ascii=False)
    extra = {k: v for k, v in row.items() if k not in PARQUET_COLUMNS}
    out["extra"] = json.dumps(extra, ensure_ascii=False) if extra else None
    return out


def _row_from_parquet(record: dict[str, Any]) -> dict[str, Any]:
    """The JSONL row a Parquet record was made from (absent keys stay absent)."""
    row: dict[str, Any] = {"id": record["id"]}
    if record.get("group_id") is not None:
        row["group_id"] = record["group_id"]
    for c in ("reward", "reward_raw", "status"):
        row[c] = record.get(c)
    row["criteria"] = json.loads(record["criteria"]) if record.get("criteria") is not None else None
    for c in ("judge", "rubric_hash", "template_hash", "rubrix_version"):
        row[c] = record.get(c)
    if record.get("errors") is not None:
        row["errors"] = json.loads(record["errors"])
    if record.get("extra") is not None:
        row.update(json.loads(record["extra"]))
    return row


def _parquet_result_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    name = str(path)
    if not Path(path).is_file():
        raise InputError("results file does not exist", file=name)
    for number, record in read_records(path, fmt="parquet"):
        if "criteria" not in record or "id" not in record:
            raise InputError("not a rubrix results Parquet file (no id / criteria columns)", file=name)
        try:
            yield number, _row_from_parquet(record)
        except (ValueError, TypeError) as exc:
            raise InputError(f"damaged JSON column: {exc}", file=name, line=number) from None


class ParquetResultWriter:
    """Results to Parquet with the crash rules of :class:`ResultWriter` (see the module docstring).

    Rows are journaled (JSONL, fsync per batch) while the run goes on; :meth:`close` writes the
    Parquet file from the journal in batches (``ParquetWriter``, a row group per batch) to a
    temporary name, moves it over the output and only then removes the journal, so no step can
    lose written rows. Resuming a finished Parquet run copies its rows into a new journal first.
    """

    def __init__(self, path: str | Path, *, resume: bool = False):
        self.path = Path(path)
        self.journal_path = side_path(self.path, "journal.jsonl")
        name = str(self.path)
        if self.path.is_dir():
            raise UserError("is a directory; name an output file", file=name)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the output folder: {exc.strerror}", file=name) from None
        if not os.access(self.path.parent, os.W_OK) or \
                (self.path.exists() and not os.access(self.path, os.W_OK)):
            raise UserError("cannot write here (permission denied)", file=name)
        journal_has_rows = self.journal_path.is_file() and self.journal_path.stat().st_size > 0
        if not resume:
            if self.path.exists() and self.path.stat().st_size > 0:
                raise UserError("output file already has results; pass --resume to continue it, or choose "
                                "another output", file=name)
            if journal_has_rows:
                raise UserError(f"an interrupted run left its rows in {self.journal_path}; pass --resume to "
                                "continue it, or choose another output", file=name)
        seed = resume and not journal_has_rows and self.path.is_file() and self.path.stat().st_size > 0
        self._journal = ResultWriter(self.journal_path, resume=resume)
        if seed:
            batch: list[dict[str, Any]] = []
            for row in iter_results(self.path):
                batch.append(row)
                if len(batch) >= _PARQUET_BATCH:
                    self._journal.write(batch)
                    self._journal.rows_read += len(batch)
                    batch = []
            self._journal.write(batch)
            self._journal.rows_read += len(batch)
        self.done_ids = self._journal.done_ids
        self.rows_read = self._journal.rows_read
        self.truncated_bytes = self._journal.truncated_bytes
        self._closed = False

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Journal rows durably (see :meth:`ResultWriter.write`)."""
        self._journal.write(rows)

    def close(self) -> None:
        """Write the Parquet file from the journal, then drop the journal; safe to call twice.

        A failure here (disk full, permissions changed mid-run) leaves the journal in place and
        says where the rows are.
        """
        if self._closed:
            return
        self._closed = True
        self._journal.close()
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            self._convert(tmp)
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write Parquet ({exc.strerror or exc}); the rows are safe in "
                            f"{self.journal_path} (--resume finishes the file)",
                            file=str(self.path)) from None
        self.journal_path.unlink(missing_ok=True)

    def _convert(self, tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _parquet_schema()
        with pq.ParquetWriter(str(tmp), schema) as writer:
            batch: list[dict[str, Any]] = []
            for _, row in read_records(self.journal_path, fmt="jsonl"):
                batch.append(_parquet_record(row))
                if len(batch) >= _PARQUET_BATCH:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())

    def __enter__(self) -> ParquetResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamResultWriter:
    """Results as JSONL on standard output (``-o -``), a batch per write and flush, for pipes.

    Nothing can be resumed, so :attr:`done_ids` starts empty; progress and summaries go to stderr.
    """

    def __init__(self, stream: IO[bytes] | None = None):
        self._fh = stream if stream is not None else sys.stdout.buffer
        self.path = Path("-")
        self.done_ids: set[str] = set()
        self.rows_read = 0
        self.truncated_bytes = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            self._fh.write("".join(dumps_row(row) + "\n" for row in rows).encode("utf-8"))
            self._fh.flush()
        except BrokenPipeError:  # `rubrix score ... -o - | head`: the reader stopped reading
            if self._fh is sys.stdout.buffer:  # so that Python's own flush at exit cannot fail again
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise UserError("standard output was closed before the run ended (the reader stopped "
                            "reading); later rows were not written", file="-") from None
        self.done_ids.update(str(r["id"]) for r in rows)

    def close(self) -> None:
        try:
            self._fh.flush()
        except (OSError, ValueError):  # a closed pipe: the reader went away, nothing left to save
            pass


# ---------------------------------------------------------------------------------------------
# reading results back


def iter_results(path: str | Path) -> Iterator[dict[str, Any]]:
    """Result rows of a run (JSONL or Parquet), read strictly; each must have an ``id`` and a numeric
    or null ``reward``, since exports and summaries trust both."""
    if results_format(path) == "parquet":
        rows: Iterator[tuple[int, dict[str, Any]]] = _parquet_result_rows(path)
    else:
        rows = read_records(path, fmt="jsonl")
    for line, row in rows:
        if "id" not in row:
            raise InputError("result row has no id", file=str(path), line=line, field="id")
        if row.get("reward") is not None and not is_finite_number(row["reward"]):
            raise InputError("reward must be a number or null", file=str(path), line=line, field="reward")
        yield row


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """All result rows of ``path`` (see :func:`iter_results`)."""
    return list(iter_results(path))


# ---------------------------------------------------------------------------------------------
# manifests


def write_manifest(output: str | Path, manifest: dict[str, Any]) -> Path:
    """Replace the manifest beside ``output`` atomically; returns its path."""
    path = manifest_path(output)
    write_json_atomic(path, manifest)
    return path


def read_manifest(output: str | Path) -> dict[str, Any] | None:
    """The manifest beside a results file, or ``None`` when there is none or it is unreadable
    (a manifest only adds defaults, such as the samples file to join with)."""
    path = manifest_path(output)
    if not path.is_file():
        return None
    try:
        manifest = loads_strict(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):
        return None
    return manifest if isinstance(manifest, dict) else None


def samples_path_from_manifest(output: str | Path) -> Path | str | None:
    """The input a run scored, as its manifest names it: a file that is still there, or an ``hf:``
    data set (returned as its spec)."""
    manifest = read_manifest(output)
    path = ((manifest or {}).get("input") or {}).get("path")
    if isinstance(path, str) and path.startswith("hf:"):
        return path
    return Path(path) if path and Path(path).is_file() else None
