"""One judge per node: verl's reward workers post to one ``rubrix serve`` instead of each loading a judge.

A real server process on 127.0.0.1 (fake judge: these tests are about the wiring), and verl's
module-level ``compute_score`` configured with ``server=URL`` as verl's ``reward_kwargs`` would.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from rubrix.integrations import verl as rverl  # noqa: E402
from rubrix.judges.fake import FakeJudge  # noqa: E402

READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
RUBRIC = Path(__file__).resolve().parent.parent / "examples" / "rubric.yaml"


def serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    log = tmp_path / f"serve-{time.monotonic_ns()}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "rubrix.cli", "serve", "-j", "fake", "--port", "0",
                                 "--no-cache", *args], stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "RUBRIX_HOME": str(tmp_path / "home")})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        if m := READY.search(log.read_text(errors="replace")):
            return proc, m.group(1)
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(log.read_text())


def test_workers_share_one_server_and_get_the_local_answers(tmp_path: Path) -> None:
    proc, url = serve(tmp_path, "--batch-window-ms", "50")
    try:
        kwargs = {"server": url, "rubric": str(RUBRIC), "cache": "0"}
        rows = [(f"answer {i}", {"question": f"Question {i % 4}?", "index": i}) for i in range(16)]

        async def worker():  # a reward-loop worker gathers its samples
            return await asyncio.gather(*[rverl.compute_score("d", text, "gt", info, **kwargs)
                                          for text, info in rows])

        remote = asyncio.run(worker())
        local = rverl.make_compute_score(str(RUBRIC), FakeJudge(), cache=False)
        for (text, info), got in zip(rows, remote, strict=True):
            want = local.sync("d", text, "gt", info)
            assert list(got) == list(want) and got == pytest.approx(want, abs=1e-6)  # rows carry 6 digits
        assert list(remote[0]) == list(local.keys)
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        batches = float(re.search(r"^rubrix_batches_total (\S+)", metrics, re.M).group(1))
        assert batches < 16                                       # the server merged the workers' samples
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_failing_server_judge_stops_the_run(tmp_path: Path) -> None:
    code = ("import sys\nfrom rubrix.judges.fake import FakeJudge\nfrom rubrix.server import serve\n"
            f"serve({str(RUBRIC)!r}, FakeJudge(fail_rate=1.0), port=0, cache=False, breaker=0.5,\n"
            "      on_ready=lambda line: print(line, file=sys.stderr, flush=True))\n")
    log = tmp_path / "dead.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "RUBRIX_HOME": str(tmp_path / "home")})
    try:
        deadline = time.monotonic() + 60
        while not (m := READY.search(log.read_text(errors="replace"))):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        kwargs = {"server": m.group(1), "rubric": str(RUBRIC), "cache": "0", "breaker": "0.5"}
        outs = []
        with pytest.raises(rverl.RewardRunStopped, match="circuit breaker"):
            for i in range(12):
                outs.append(rverl.compute_score_sync("d", f"a{i}", "gt", {"question": "q"}, **kwargs))
        assert outs and all(o["rubrix_ok"] == 0.0 and o["score"] == 0.0 for o in outs)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
