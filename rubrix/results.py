"""Result files on disk: append-only result rows, reading them back, and the manifest beside them.

A run's output is JSONL, one row per sample, written by :class:`ResultWriter`: each batch is
serialized completely before a single write, then flushed and ``fsync``-ed, so an interruption
can only ever leave a partial *last* line, which ``resume=True`` recognises and cuts away. Damage
anywhere else is not what a crash leaves, so it is refused rather than repaired.

The manifest (``OUT.manifest.json``, path from :func:`rubrix._paths.manifest_path`) and every
other side file are replaced whole through :func:`rubrix._json.write_json_atomic`, so a reader
sees the previous version or the new one, never half of either.

Input rows (samples, pairs) are :mod:`rubrix.records`; this module reuses its strict line readers
so a result file and an input file fail with the same messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ._json import dumps_row, is_finite_number, loads_strict, write_json_atomic
from ._paths import manifest_path
from .errors import InputError, UserError
from .records import decode_line, expect_object, parse_json_line, read_records

__all__ = ["ResultWriter", "iter_results", "read_results", "read_manifest", "write_manifest",
           "samples_path_from_manifest"]


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
# reading results back


def iter_results(path: str | Path) -> Iterator[dict[str, Any]]:
    """Result rows of a run (JSONL), read strictly; each must have an ``id`` and a numeric or null
    ``reward``, since exports and summaries trust both."""
    for line, row in read_records(path, fmt="jsonl"):
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


def samples_path_from_manifest(output: str | Path) -> Path | None:
    """The input file a run scored, as its manifest names it, when that file is still there."""
    manifest = read_manifest(output)
    path = ((manifest or {}).get("input") or {}).get("path")
    return Path(path) if path and Path(path).is_file() else None
