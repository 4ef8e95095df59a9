"""The README's main job, timed per local engine: ``rubrix score examples/samples.jsonl -r helpfulness``.

Each engine runs in a fresh process that does what the command does — build the default judge
(loading the prepared checkpoint), score every sample with the verdict cache off, write the rows —
and prints one JSON line: load seconds, scoring seconds, peak RSS, tokens the engine computed, and
the rewards. The parent prints a table and the largest difference in reward between engines (the
engines compute the same verdicts; a difference beyond float noise is a bug, not a speed-up).

    python bench/main_job.py                          # default judge, engines packed (before) and tree
    python bench/main_job.py --judge embedded:0.5b --engines naive,packed,tree

Run it alone on the machine: two model processes on 2 cores slow each other far more than 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(args: argparse.Namespace) -> None:
    import torch

    from rubrix.judges import get_judge
    from rubrix.judges.hf import peak_rss_mb
    from rubrix.results import read_results
    from rubrix.runs import score_file
    from rubrix.scoring import Scorer

    t0 = time.perf_counter()
    judge = get_judge(args.judge, engine=args.engine)
    load_s = time.perf_counter() - t0
    scorer = Scorer(args.rubric, judge, cache=False)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.jsonl"
        t1 = time.perf_counter()
        summary = score_file(args.input, out, scorer=scorer)
        score_s = time.perf_counter() - t1
        rewards = {r["id"]: r["reward"] for r in read_results(out)}
    print(json.dumps({
        "engine": args.engine, "load_s": load_s, "score_s": score_s, "total_s": load_s + score_s,
        "samples": summary.scored, "verdicts": summary.verdicts, "peak_rss_mb": peak_rss_mb(),
        "computed_tokens": judge.stats.get("computed_tokens"), "rewards": rewards,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}, "
                   f"dtype {judge.dtype}, judge {judge.name}",
    }), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judge", default="embedded")
    ap.add_argument("--engines", default="packed,tree")
    ap.add_argument("--input", default=str(ROOT / "examples" / "samples.jsonl"))
    ap.add_argument("--rubric", default="helpfulness")
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine:
        worker(args)
        return
    print(f"$ python bench/main_job.py --judge {args.judge} --engines {args.engines}")
    rows = []
    for engine in args.engines.split(","):
        proc = subprocess.run([sys.executable, __file__, "--judge", args.judge, "--engine", engine,
                               "--input", args.input, "--rubric", args.rubric],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"engine {engine} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(rows[0]["machine"])
    print("| engine | samples | verdicts | load s | score s | total s | tokens computed | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['engine']} | {r['samples']} | {r['verdicts']} | {r['load_s']:.1f} | "
              f"{r['score_s']:.1f} | {r['total_s']:.1f} | {r['computed_tokens'] or '-'} | "
              f"{r['peak_rss_mb']:.0f} |")
    base = rows[0]
    for r in rows[1:]:
        diff = max(abs((a or 0) - (b or 0)) for a, b in zip(base["rewards"].values(), r["rewards"].values(),
                                                           strict=True))
        print(f"{r['engine']} vs {base['engine']}: scoring {base['score_s'] / r['score_s']:.2f}x faster, "
              f"total {base['total_s'] / r['total_s']:.2f}x; largest reward difference {diff:.2e}")


if __name__ == "__main__":
    main()
