"""OpenRLHF's fan-out against a real ``rubrix serve``: one request per sample, every one rewarded.

Runs ``bench/openrlhf_fanout.py`` — OpenRLHF's own client shape (aiohttp, a new session per
request, 180 s timeout, 5 tries 1 s apart, any non-2xx fails the try) against a real server
process over ``tests/openai_stub.py`` answering in 0.2 s, all on 127.0.0.1 — with fewer samples
than the full step of BENCHMARKS.md, so it takes seconds. A sample counts as rewarded only when
its answer is a 200 with one finite reward, as OpenRLHF reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parent.parent


def fanout(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "openrlhf_fanout.py"), *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_a_step_of_single_sample_requests_all_get_rewards() -> None:
    out = fanout("--samples", "512")
    assert out["rewards_received"] == 512 and out["without_reward"] == 0, out
    assert out["judged_ok"] == 512 and out["retries"] == 0, out            # judged, not substituted
    assert out["statuses"] == {"status_200": 512}, out
    assert out["server"]["unsurvivable"] == 0 and out["server"]["rubrix_deadline_exceeded_total"] == 0


def test_a_queue_smaller_than_the_step_makes_requests_wait_not_fail() -> None:
    """16 samples may wait for the judge; the other 284 wait for room instead of being refused."""
    out = fanout("--samples", "300", "--max-queue", "16")
    assert out["rewards_received"] == 300 and out["judged_ok"] == 300, out
    assert out["statuses"] == {"status_200": 300} and out["retries"] == 0, out
    assert out["server"]["rubrix_queue_waited_samples_total"] > 100  # they did wait for room
    assert out["server"]["rubrix_queue_wait_expired_total"] == 0
