"""On-disk verdict cache (sqlite), keyed by the full request and the judge's identity.

Re-scoring the same (judge, rendered prompt, reading rule) gives the same verdict without a
model call: re-runs after a crash, a changed aggregation, or a new rubric that shares criteria
cost nothing for the shared part. Only successful verdicts are stored; a failure is always
retried on the next run rather than replayed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from ._paths import verdict_cache_path
from .judges.base import Verdict


class VerdictCache:
    """A small key -> verdict store; safe to share between threads of one process."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else verdict_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, verdict TEXT NOT NULL)")
        self._db.commit()
        self.hits = 0
        self.misses = 0

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

    def close(self) -> None:
        with self._lock:
            self._db.close()
