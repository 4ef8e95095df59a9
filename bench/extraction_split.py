"""Build the pair splits of the extraction experiment (docs/bench_extraction.md) from ../shared/data.

Deterministic (seeded) and cost-aware: the embedded judge runs on a shared 2-core CPU, so only
pairs whose prompt + chosen + rejected fit in ``--max-chars`` characters are drawn. Writes:

* ``--train``: pairs to extract from (LLMBar stratified over its five subsets, plus PandaLM);
* ``--heldout``: disjoint evaluation pairs drawn the same way.

``--exclude FILE`` keeps the pairs of earlier splits out of both.

Each row keeps the data set's ``source``, ``license`` and ``origin`` fields.

    python bench/extraction_split.py --train examples/pairs.jsonl --heldout /tmp/xp/heldout.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def rows(name: str, max_chars: int) -> list[dict]:
    out = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if len(r["prompt"]) + len(r["chosen"]) + len(r["rejected"]) <= max_chars:
            out.append(r)
    return out


def stratified(items: list[dict], per_source: int, rng: random.Random, taken: set[str]) -> list[dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in items:
        if r["id"] not in taken:
            groups[r["source"]].append(r)
    picked = []
    for source in sorted(groups):
        pool = groups[source]
        rng.shuffle(pool)
        picked += pool[:per_source]
    return picked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--heldout", type=Path, required=True)
    ap.add_argument("--max-chars", type=int, default=1800)
    ap.add_argument("--train-llmbar-per-subset", type=int, default=4)
    ap.add_argument("--train-pandalm", type=int, default=10)
    ap.add_argument("--heldout-llmbar-per-subset", type=int, default=8)
    ap.add_argument("--heldout-pandalm", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exclude", type=Path, action="append", default=[],
                    help="a JSONL file of pairs whose ids may not be drawn (repeatable)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    llmbar, pandalm = rows("llmbar.jsonl", args.max_chars), rows("pandalm_test_sample.jsonl", args.max_chars)
    taken: set[str] = {json.loads(line)["id"] for path in args.exclude
                       for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    train = stratified(llmbar, args.train_llmbar_per_subset, rng, taken)
    rng.shuffle(pandalm)
    train += [r for r in pandalm if r["id"] not in taken][:args.train_pandalm]
    taken |= {r["id"] for r in train}
    held = stratified(llmbar, args.heldout_llmbar_per_subset, rng, taken)
    held += [r for r in pandalm if r["id"] not in taken][:args.heldout_pandalm]
    for path, data in ((args.train, train), (args.heldout, held)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data), encoding="utf-8")
        print(f"{path}: {len(data)} pairs")


if __name__ == "__main__":
    main()
