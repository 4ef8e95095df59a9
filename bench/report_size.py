"""How big is a ``rubrix report`` page for N samples, how long does it take to build and to open?

Writes N synthetic samples (prompts of ~150 and responses of ~450 characters, like short chat
answers), scores them with the **fake** judge (deterministic, no model: this measures the report,
not a judge), then times ``build_report`` and, when Chromium is installed, opening the page in
headless Chromium until its sample browser is ready.

    python bench/report_size.py --samples 10000 [--rubric helpfulness | --per-row-rubrics K] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

WORDS = (
    "the a model answer python list value function returns error user request data time because "
    "therefore example first second result simple careful check number string file line output"
).split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--rubric", default="helpfulness")
    ap.add_argument("--out", default="/tmp/rubrix-report-bench")
    ap.add_argument(
        "--per-row-rubrics",
        type=int,
        default=0,
        metavar="K",
        help="give every sample its own rubric of K criteria (HealthBench style) instead of --rubric",
    )
    args = ap.parse_args()
    from rubrix.judges.fake import FakeJudge
    from rubrix.report import build_report
    from rubrix.runs import score_file
    from rubrix.scoring import Scorer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    samples = out / "samples.jsonl"
    with open(samples, "w") as f:
        for i in range(args.samples):
            row = {
                "id": f"s{i:05d}",
                "prompt": " ".join(sentence(rng, 8) for _ in range(3)),
                "response": " ".join(sentence(rng, 10) for _ in range(7)),
            }
            if args.per_row_rubrics:
                row["rubrics"] = [
                    {
                        "criterion": sentence(rng, 12),
                        "points": rng.choice([5, 3, 1, -2]),
                        "tags": [rng.choice(["axis:accuracy", "axis:completeness"])],
                    }
                    for _ in range(args.per_row_rubrics)
                ]
            f.write(json.dumps(row) + "\n")
    results = out / "results.jsonl"
    for p in (results, Path(str(results) + ".manifest.json")):
        p.unlink(missing_ok=True)
    t0 = time.perf_counter()
    scorer = Scorer(None if args.per_row_rubrics else args.rubric, FakeJudge(), cache=False)
    score_file(
        samples, results, scorer=scorer, batch_size=256, options={"mode": "criteria", "verdict": "auto"}
    )
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    page = build_report(results, out / "report.html")
    t_build = time.perf_counter() - t0
    size = page.stat().st_size
    what = (
        f"own rubric of {args.per_row_rubrics} criteria each"
        if args.per_row_rubrics
        else f"rubric {args.rubric}"
    )
    print(
        f"samples {args.samples}, {what}: fake scoring {t_score:.1f} s, build {t_build:.1f} s, "
        f"page {size / 1e6:.2f} MB ({size / args.samples:.0f} bytes/sample)"
    )
    from cdp import Browser, find_chromium

    if find_chromium() is None:
        print("chromium not installed: open time not measured")
        return
    with Browser() as b:
        times = [b.open(page.resolve().as_uri()) for _ in range(3)]
        errors = b.console_errors()
    print(
        f"open in headless Chromium until the sample browser is ready: "
        f"{', '.join(f'{t:.2f}' for t in times)} s (3 loads); console errors: {len(errors)}; "
        f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
