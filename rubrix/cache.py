"""Verdict cache (sqlite), keyed by the full request and the judge's identity, bounded in size.

Re-scoring the same (judge, rendered prompt, reading rule) gives the same verdict without a
model call: re-runs after a crash, a changed aggregation, or a new rubric that shares criteria
cost nothing for the shared part. Only successful verdicts are stored; a failure is always
retried on the next run rather than replayed.

Three properties make it safe to leave on:

* **Bounded.** An RL run adds tens of millions of rows, so the cache holds at most ``max_rows``
  (``RUBRIX_CACHE_MAX_ROWS``, default :data:`DEFAULT_MAX_ROWS`). Past the cap the oldest-written
  rows go first, a tenth of the cap at a time — sqlite deletes by ``rowid`` order cheaply, while
  true LRU would turn every cache hit into a write. Freed pages are reused, so the file stops
  growing; ``rubrix cache clear`` gives the space back.
* **Works on network file systems.** WAL needs shared memory that NFS / Lustre / CIFS home
  directories do not give, so the journal mode is chosen by ``journal`` / ``RUBRIX_CACHE_JOURNAL``:
  ``auto`` (default) uses WAL except on a network file system (read from ``/proc/mounts``) or when
  sqlite refuses it, and then falls back to ``DELETE`` (one writer at a time, correct everywhere).
* **In memory when asked** (``path=":memory:"``, ``cache="memory"`` in :class:`~rubrix.scoring.Scorer`):
  de-duplication within one process and nothing on disk — the default inside trainer adapters.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ._paths import env_str, verdict_cache_path
from .errors import UserError
from .judges.base import Verdict
from .logs import event, get_logger

DEFAULT_MAX_ROWS = 2_000_000
"""About 1 GB of verdicts on disk: years of re-runs of evaluation sets, a bounded slice of an RL run."""
DEFAULT_MEMORY_MAX_ROWS = 100_000
"""The in-memory cache's cap: enough to catch repeats within a training run, small next to a model."""
MEMORY = ":memory:"
JOURNAL_MODES = ("auto", "wal", "delete", "truncate", "persist")
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smbfs", "smb3", "lustre", "gpfs", "beegfs", "fuse.sshfs",
                       "glusterfs", "fuse.glusterfs", "ceph", "fuse.ceph", "9p", "afs", "panfs", "wekafs")
_EVICT_FRACTION = 0.1
_log = get_logger(__name__)


def _env_max_rows(default: int) -> int | None:
    value = env_str("RUBRIX_CACHE_MAX_ROWS")
    if value is None:
        return default
    if value.lower() in ("0", "off", "none", "unlimited"):
        return None
    try:
        rows = int(value)
    except ValueError:
        raise UserError(f"must be a whole number of rows or 'off', got {value!r}",
                        field="RUBRIX_CACHE_MAX_ROWS") from None
    if rows < 1:
        raise UserError("must be at least 1 (or 'off')", field="RUBRIX_CACHE_MAX_ROWS")
    return rows


def filesystem_type(path: str | Path) -> str | None:
    """The file system type holding ``path`` (Linux ``/proc/mounts``), ``None`` where unknown."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


class VerdictCache:
    """A bounded key -> verdict store; safe to share between threads of one process.

    ``path``: the sqlite file (default :func:`rubrix._paths.verdict_cache_path`) or ``":memory:"``.
    ``max_rows``: the cap (``None``: unbounded); ``journal``: see the module docstring.
    """

    def __init__(self, path: str | Path | None = None, *, max_rows: int | None | str = "env",
                 journal: str | None = None):
        self.memory = str(path) == MEMORY
        self.path = Path(MEMORY) if self.memory else (Path(path) if path else verdict_cache_path())
        default_cap = DEFAULT_MEMORY_MAX_ROWS if self.memory else DEFAULT_MAX_ROWS
        self.max_rows = _env_max_rows(default_cap) if max_rows == "env" else max_rows  # type: ignore[assignment]
        self._lock = threading.Lock()
        if not self.memory:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create the cache folder: {exc.strerror}",
                                file=str(self.path)) from None
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        except sqlite3.Error as exc:
            raise UserError(f"cannot open the verdict cache: {exc}", file=str(self.path)) from None
        self.journal_mode = MEMORY if self.memory else self._set_journal(journal)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, verdict TEXT NOT NULL)")
        self._db.commit()
        self._rows = self._count()
        self.hits = 0
        self.misses = 0
        self.evicted = 0

    def _set_journal(self, journal: str | None) -> str:
        """Apply the journal mode; ``auto`` prefers WAL where it can work (see the module docstring)."""
        wanted = (journal or env_str("RUBRIX_CACHE_JOURNAL") or "auto").strip().lower()
        if wanted not in JOURNAL_MODES:
            raise UserError(f"must be one of {', '.join(JOURNAL_MODES)}, got {wanted!r}",
                            field="RUBRIX_CACHE_JOURNAL")
        if wanted == "auto":
            fs = filesystem_type(self.path.parent)
            if fs is not None and fs.lower() in NETWORK_FILESYSTEMS:
                event(_log, logging.INFO, "cache_journal", mode="delete", reason=f"network file system {fs}",
                      path=str(self.path))
                wanted = "delete"
            else:
                wanted = "wal"
        try:
            got = str(self._db.execute(f"PRAGMA journal_mode={wanted.upper()}").fetchone()[0]).lower()
        except sqlite3.Error as exc:
            got, reason = "", str(exc)
        else:
            reason = f"sqlite kept {got}"
        if got != wanted and wanted == "wal":
            event(_log, logging.WARNING, "cache_journal", mode="delete", reason=f"WAL refused: {reason}",
                  path=str(self.path))
            got = str(self._db.execute("PRAGMA journal_mode=DELETE").fetchone()[0]).lower()
        return got

    def _count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM verdicts").fetchone()[0])

    def rows(self) -> int:
        """Rows stored now. (Not ``__len__``: callers test ``if scorer.cache`` for "is there a cache".)"""
        with self._lock:
            return self._count()

    def get_many(self, keys: list[str]) -> dict[str, Verdict]:
        found: dict[str, Verdict] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in self._db.execute(f"SELECT key, verdict FROM verdicts WHERE key IN ({marks})",
                                                  chunk):
                    verdict = Verdict.from_dict(json.loads(blob))
                    verdict.cached = True
                    found[key] = verdict
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: list[tuple[str, Verdict]]) -> None:
        rows = [(k, json.dumps({**v.to_dict(), "cached": False})) for k, v in items if v.ok]
        if not rows:
            return
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO verdicts (key, verdict) VALUES (?, ?)", rows)
            self._db.commit()
            self._rows += len(rows)  # an upper bound: replaced keys do not add rows
            if self.max_rows is not None and self._rows > self.max_rows:
                self._rows = self._count()  # other processes may share the file: count before deleting
                if self._rows > self.max_rows:
                    self._evict()

    def _evict(self) -> None:
        """Delete the oldest-written rows down to ``(1 - 10%)`` of the cap, in one statement."""
        assert self.max_rows is not None
        target = int(self.max_rows * (1 - _EVICT_FRACTION))
        excess = self._rows - target
        self._db.execute("DELETE FROM verdicts WHERE rowid IN (SELECT rowid FROM verdicts ORDER BY rowid "
                         "LIMIT ?)", (excess,))
        self._db.commit()
        self.evicted += excess
        self._rows -= excess
        event(_log, logging.INFO, "cache_evict", rows=excess, kept=self._rows, cap=self.max_rows,
              path=str(self.path))

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ------------------------------------------------------------------------------------------------
# ``rubrix cache info|clear``


def _files(path: Path) -> list[Path]:
    names = (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal"))
    return [p for p in names if p.exists()]


def cache_info(path: str | Path | None = None) -> dict[str, Any]:
    """What is in the on-disk cache: path, size on disk, rows, journal mode and cap. Opens nothing
    for writing when the file does not exist."""
    p = Path(path) if path else verdict_cache_path()
    info: dict[str, Any] = {"path": str(p), "exists": p.is_file(),
                            "bytes": sum(f.stat().st_size for f in _files(p)), "rows": 0,
                            "journal_mode": None, "max_rows": _env_max_rows(DEFAULT_MAX_ROWS),
                            "filesystem": filesystem_type(p.parent if p.parent.exists() else Path.cwd())}
    if not info["exists"]:
        return info
    try:
        db = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=30)
        try:
            info["journal_mode"] = db.execute("PRAGMA journal_mode").fetchone()[0]
            info["rows"] = int(db.execute("SELECT count(*) FROM verdicts").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise UserError(f"not a readable verdict cache: {exc}", file=str(p)) from None
    return info


def clear_cache(path: str | Path | None = None) -> dict[str, Any]:
    """Remove the cache file and its journal files; returns what was removed (rows, bytes)."""
    p = Path(path) if path else verdict_cache_path()
    before = cache_info(p) if p.is_file() else {"rows": 0, "bytes": 0}
    removed = 0
    for f in _files(p):
        try:
            f.unlink()
            removed += 1
        except OSError as exc:
            raise UserError(f"cannot remove: {exc.strerror}", file=str(f)) from None
    return {"path": str(p), "rows": before["rows"], "bytes": before["bytes"], "files": removed}


__all__ = ["DEFAULT_MAX_ROWS", "DEFAULT_MEMORY_MAX_ROWS", "JOURNAL_MODES", "MEMORY", "NETWORK_FILESYSTEMS",
           "VerdictCache", "cache_info", "clear_cache", "filesystem_type"]
