"""Re-decide an extraction log at a smaller validation margin, without new judge calls.

Used by docs/bench_extraction.md as an ablation: with the embedded 0.5B judge almost no pair
clears the default margin, so this asks what rubric a looser margin would have produced. It is
exact only for pairs whose revision never produced new criteria (the log says so: ``repeated``
revisions, or no revision at all): for those the round-0 verdict is the only evidence there is,
and a greedy judge would give it again. Pairs whose revision was validated are left out.

    python bench/extraction_relax.py /tmp/xp/core.log.jsonl --margin 0.01 -o /tmp/xp/relaxed.pool.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("--margin", type=float, required=True)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.log.read_text(encoding="utf-8").splitlines() if line.strip()]
    verdicts: dict[str, list[dict]] = {}
    done: dict[str, dict] = {}
    for r in rows:
        if r["event"] == "verdict":
            verdicts.setdefault(r["pair"], []).append(r)
        elif r["event"] == "done":
            done[r["pair"]] = r
    pool, passed, considered = [], [], 0
    for pair, d in done.items():
        vs = verdicts.get(pair, [])
        first = [v for v in vs if v.get("round") == 0]
        if not first or len({v.get("round") for v in vs}) > 1:
            continue  # no round-0 verdict, or a validated revision: not re-decidable from the log alone
        considered += 1
        v = first[-1]
        if v["delta"] is None or v["delta"] < args.margin:
            continue
        passed.append(pair)
        for e in v["evidence"]:
            if e["p_chosen"] is not None and e["p_rejected"] is not None and e["p_chosen"] > e["p_rejected"]:
                pool.append({"id": f"{pair}:{len(pool)}", "text": e["text"], "kind": e["kind"], "pair": pair,
                             "source": d.get("source"), "run": d.get("run"), "p_chosen": e["p_chosen"],
                             "p_rejected": e["p_rejected"], "relaxed_margin": args.margin})
    args.output.write_text("".join(json.dumps(r) + "\n" for r in pool), encoding="utf-8")
    print(f"{considered} pairs re-decidable, {len(passed)} pass at margin {args.margin}: {passed}; "
          f"{len(pool)} criteria -> {args.output}")


if __name__ == "__main__":
    main()
