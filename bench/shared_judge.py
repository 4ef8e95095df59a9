"""verl's reward workers on one node: each with its own judge, or all through one ``rubrix serve``.

verl scores in ``reward.num_workers`` processes. With a local judge (``embedded``, ``hf:``) each
worker that builds its own :class:`~rubrix.rewards.RubricReward` loads its own copy of the model;
with ``reward_kwargs.server=URL`` they post to one server holding one judge. This script runs
``--workers`` processes that each score ``--samples`` samples through verl's module-level
``compute_score`` (a reward-loop worker gathers its samples), both ways, and prints wall time and
the peak resident memory of every process involved (VmHWM from /proc), as one JSON object.

    python bench/shared_judge.py --judge embedded:0.5b --workers 2 --samples 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
RUBRIC = {"name": "short_answer", "criteria": [
    {"id": "correct", "text": "The response's main answer is factually correct.", "weight": 3},
    {"id": "direct", "text": "The response gives its answer in the first sentence.", "weight": 1}]}

WORKER = r"""
import asyncio, json, sys, time
from rubrix.integrations.verl import compute_score
kwargs, worker, n = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rows = [(f"The answer to question {i} is {i * 7}.", {"question": f"What is {i} times 7?", "index": i})
        for i in range(worker * 1000, worker * 1000 + n)]
async def run():
    return await asyncio.gather(*[compute_score("bench", s, "", info, **kwargs) for s, info in rows])
start = time.perf_counter()
outs = asyncio.run(run())
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": time.perf_counter() - start, "ok": sum(o["rubrix_ok"] for o in outs),
                  "peak_rss_mb": int(hwm) / 1024}))
"""


def peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_workers(kwargs: dict, workers: int, samples: int, env: dict) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(kwargs), str(w), str(samples)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for w in range(workers)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise SystemExit(err[-3000:])
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return time.perf_counter() - start, outs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judge", default="embedded:0.5b")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8, help="samples per worker")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rubrix-shared-"))
    rubric = tmp / "rubric.json"
    rubric.write_text(json.dumps(RUBRIC))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUBRIX_HOME": os.environ.get("RUBRIX_HOME", "")}
    env = {k: v for k, v in env.items() if v}
    base = {"rubric": str(rubric), "cache": "0"}

    own_wall, own = run_workers({**base, "judge": args.judge}, args.workers, args.samples, env)

    log = tmp / "server.log"
    with open(log, "wb") as fh:
        server = subprocess.Popen([sys.executable, "-m", "rubrix.cli", "serve", "-j", args.judge,
                                   "--port", "0", "--no-cache", "--deadline-s", "3000",
                                   "--batch-window-ms", "50"],
                                  stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        while not (m := READY.search(log.read_text(errors="replace"))):
            if server.poll() is not None:
                raise SystemExit(log.read_text())
            time.sleep(0.2)
        shared_wall, shared = run_workers({**base, "server": m.group(1)}, args.workers, args.samples, env)
        server_rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps({
        "command": " ".join(["python", "bench/shared_judge.py", *sys.argv[1:]]),
        "judge": args.judge, "workers": args.workers, "samples_per_worker": args.samples,
        "own_judge_each": {"wall_s": round(own_wall, 1), "ok": sum(o["ok"] for o in own),
                           "peak_rss_mb_per_worker": [round(o["peak_rss_mb"]) for o in own],
                           "peak_rss_mb_total": round(sum(o["peak_rss_mb"] for o in own))},
        "one_server": {"wall_s": round(shared_wall, 1), "ok": sum(o["ok"] for o in shared),
                       "peak_rss_mb_per_worker": [round(o["peak_rss_mb"]) for o in shared],
                       "server_peak_rss_mb": round(server_rss),
                       "peak_rss_mb_total": round(server_rss + sum(o["peak_rss_mb"] for o in shared))},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }, indent=1))


if __name__ == "__main__":
    main()
