"""Generated rubrics against human-written ones (issue 18): reward agreement and criterion coverage.

For a small, deterministic subset of ``../shared/data``:

* **HealthBench** — prompts with a physician rubric, an ideal completion and model completions.
  ``rubrix generate`` writes a rubric per prompt from the ideal completion (the reference). The
  same answers (the model completions, plus the ideal one) are then scored with the generated and
  with the physician rubric by the same judge, and the script prints the Spearman rank correlation
  of the two rewards (pooled over all answers, and the mean within a prompt), and which physician
  criteria the generated rubric covers: a physician criterion is covered when its cosine to some
  generated criterion, embedded with extraction's sentence embedder, is at least ``--cover``.
* **BiGGen-Bench** — instances with a 1-5 instance rubric and a reference answer; no model answers
  ship with the file, so the answers scored are the reference, an answer the generator writes, and
  the reference cut to half its sentences. The instance rubric is scored as one 1-5 scale criterion.

Rows are chosen shortest first (cost: the judge runs on CPU), so the subset is not a random sample.

    python bench/generate_vs_human.py --judge embedded --generator embedded:0.5b --healthbench 3 --biggen 2 \
        --out /tmp/gvh
    python bench/generate_vs_human.py --judge openai:gpt-4o-mini --base-url https://api.openai.com/v1 \\
        --healthbench 30 --biggen 50 --out /tmp/gvh-api
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from rubrix.extract.embed import get_embedder  # noqa: E402
from rubrix.generate import GenerateConfig, generate  # noqa: E402
from rubrix.generate.degrade import truncated  # noqa: E402
from rubrix.records import Sample  # noqa: E402
from rubrix.rubric import Criterion, Rubric, rubric_from_items  # noqa: E402
from rubrix.scoring import Scorer  # noqa: E402


def spearman(x: list[float], y: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def healthbench_rows(n: int) -> list[dict]:
    rows = [
        json.loads(line) for line in (DATA / "healthbench_30.jsonl").read_text().splitlines() if line.strip()
    ]
    usable = []
    for r in rows:
        icd = r.get("ideal_completions_data") or {}
        refs = icd.get("ideal_completions_ref_completions") or []
        if icd.get("ideal_completion") and len(refs) >= 3:
            size = (
                sum(len(m["content"]) for m in r["prompt"])
                + len(icd["ideal_completion"])
                + sum(map(len, refs))
            )
            usable.append((size, r))
    return [r for _, r in sorted(usable, key=lambda t: (t[0], t[1]["id"]))[:n]]


def biggen_rows(n: int) -> list[dict]:
    rows = [json.loads(line) for line in (DATA / "biggen_bench_rubrics.jsonl").read_text().splitlines()]
    rows = [
        r for r in rows if r["capability"] not in ("multilingual", "tool_usage") and r.get("reference_answer")
    ]
    rows.sort(key=lambda r: (len(r["prompt"]) + len(r["reference_answer"]), r["id"]))
    out, seen = [], set()
    for r in rows:  # one per capability, shortest first
        if r["capability"] not in seen:
            out.append(r)
            seen.add(r["capability"])
        if len(out) == n:
            break
    return out


def coverage(human: list[dict], generated: list[dict], embedder, threshold: float) -> dict:
    """Each human criterion's best cosine to a generated one; covered when >= threshold."""
    import numpy as np

    if not human or not generated:
        return {"human": len(human), "covered": 0, "items": []}
    zh = embedder.embed([h["text"] for h in human])
    zg = embedder.embed([g["text"] for g in generated])
    sims = np.asarray(zh) @ np.asarray(zg).T
    items = []
    for i, h in enumerate(human):
        j = int(sims[i].argmax())
        items.append(
            {
                **h,
                "best": generated[j]["text"],
                "cos": round(float(sims[i, j]), 3),
                "covered": bool(sims[i, j] >= threshold),
            }
        )
    return {"human": len(human), "covered": sum(it["covered"] for it in items), "items": items}


async def score_all(scorer: Scorer, samples: list[Sample]) -> list[float | None]:
    out = []
    for start in range(0, len(samples), 8):
        out += [r.reward for r in await scorer.ascore(samples[start : start + 8])]
    return out


def drafted_rubrics(log_path: Path) -> dict[str, dict]:
    """Per prompt, the drafted criteria that passed the lint (what the discrimination check judged),
    read from the generate log: the rubric *without* the check, for comparison."""
    from rubrix.rubric import CATEGORY_WEIGHTS

    out = {}
    for line in log_path.read_text().splitlines():
        row = json.loads(line)
        if row.get("event") == "verdicts":
            crit = [
                {
                    "id": c["id"],
                    "text": c["text"],
                    "weight": CATEGORY_WEIGHTS[c["category"]],
                    "category": c["category"],
                }
                for c in row["criteria"]
            ]
            if any(c["weight"] > 0 for c in crit):
                out[row["prompt"]] = {"name": "drafted", "criteria": crit}
    return out


async def compare(
    scorer, embedder, rows, answers_of, human_of, human_items_of, rubrics: dict[str, dict], cover: float
) -> dict:
    """Score each row's answers with ``rubrics[id]`` and the human rubric; Spearman and coverage."""
    pooled_g, pooled_h, within, lengths, per_prompt, cover_items = [], [], [], [], [], []
    for r in rows:
        if r["id"] not in rubrics:
            per_prompt.append({"id": r["id"], "rubric": None})
            continue
        gen = rubric_from_items(rubrics[r["id"]], name="generated")
        answers = answers_of(r)
        prompt = (
            r["prompt"]
            if "score_rubric" not in r
            else [{"role": "system", "content": r["system_prompt"]}, {"role": "user", "content": r["prompt"]}]
        )
        rh = await score_all(
            scorer,
            [
                Sample(id=f"{r['id']}:{k}:h", prompt=prompt, response=a, rubric=human_of(r))
                for k, a in answers
            ],
        )
        rg = await score_all(
            scorer, [Sample(id=f"{r['id']}:{k}:g", prompt=prompt, response=a, rubric=gen) for k, a in answers]
        )
        pairs = [
            (k, a, g, h)
            for (k, a), g, h in zip(answers, rg, rh, strict=True)
            if g is not None and h is not None
        ]
        pooled_g += [g for _, _, g, _ in pairs]
        pooled_h += [h for _, _, _, h in pairs]
        lengths += [float(len(a.split())) for _, a, _, _ in pairs]
        rho = spearman([g for _, _, g, _ in pairs], [h for _, _, _, h in pairs])
        if rho is not None:
            within.append(rho)
        cov = coverage(
            human_items_of(r), [{"text": c["text"]} for c in rubrics[r["id"]]["criteria"]], embedder, cover
        )
        cover_items.append(cov)
        per_prompt.append(
            {
                "id": r["id"],
                "criteria": len(rubrics[r["id"]]["criteria"]),
                "spearman": rho,
                "rewards": {k: {"generated": round(g, 3), "human": round(h, 3)} for k, _, g, h in pairs},
                "covered": f"{cov['covered']}/{cov['human']}",
            }
        )
        print(
            f"  {r['id']}: spearman {rho}, covered {cov['covered']}/{cov['human']}, "
            f"rewards {per_prompt[-1]['rewards']}",
            flush=True,
        )
    items = [it for c in cover_items for it in c["items"]]
    pos = [it for it in items if it["points"] > 0]
    neg = [it for it in items if it["points"] < 0]
    total = sum(it["points"] for it in pos)
    return {
        "prompts_with_rubric": sum(1 for p in per_prompt if p.get("criteria")),
        "answers_scored": len(pooled_g),
        "spearman_pooled": spearman(pooled_g, pooled_h),
        "baseline_spearman_length_vs_human": spearman(lengths, pooled_h),
        "spearman_within_prompt_mean": round(sum(within) / len(within), 3) if within else None,
        "spearman_within_prompt": [round(x, 3) for x in within],
        "coverage": {
            "threshold": cover,
            "human_criteria": len(items),
            "covered": sum(it["covered"] for it in items),
            "positive_covered": f"{sum(it['covered'] for it in pos)}/{len(pos)}",
            "pitfalls_covered": f"{sum(it['covered'] for it in neg)}/{len(neg)}",
            "points_weighted": round(sum(it["points"] for it in pos if it["covered"]) / total, 3)
            if total
            else None,
        },
        "examples_covered": sorted([it for it in items if it["covered"]], key=lambda it: -it["cos"])[:4],
        "examples_missed": sorted(
            [it for it in items if not it["covered"] and it["points"] > 0], key=lambda it: -it["points"]
        )[:4],
        "per_prompt": per_prompt,
    }


async def run_healthbench(args, scorer, embedder, out_dir: Path) -> dict:
    rows = healthbench_rows(args.healthbench)
    prompts = out_dir / "hb_prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps(
                {
                    "id": r["id"],
                    "prompt": r["prompt"],
                    "reference": r["ideal_completions_data"]["ideal_completion"],
                }
            )
            + "\n"
            for r in rows
        )
    )
    t0 = time.perf_counter()
    run = await generate(
        prompts,
        out_dir / "hb_rows.jsonl",
        generator=args.writer,
        scorer=scorer,
        config=GenerateConfig(max_criteria=args.max_criteria, reasks=args.reasks),
        resume=True,
        progress=lambda m: print("  " + m, flush=True),
    )
    gen_s = time.perf_counter() - t0
    checked = {
        json.loads(x)["id"]: json.loads(x)["rubric"]
        for x in (out_dir / "hb_rows.jsonl").read_text().splitlines()
    }
    drafted = drafted_rubrics(out_dir / "hb_rows.log.jsonl")

    def answers_of(r):
        icd = r["ideal_completions_data"]
        return [("ideal", icd["ideal_completion"])] + [
            (f"ref{i}", a) for i, a in enumerate(icd["ideal_completions_ref_completions"])
        ]

    def human_items_of(r):
        return [{"text": it["criterion"], "points": it["points"]} for it in r["rubrics"]]

    def human_of(r):
        return rubric_from_items(r["rubrics"], name="physician")

    t1 = time.perf_counter()
    out = {"prompts": len(rows), "generate_summary": run.summary, "generate_s": round(gen_s, 1)}
    print("  scoring with the checked rubrics", flush=True)
    out["checked"] = await compare(
        scorer, embedder, rows, answers_of, human_of, human_items_of, checked, args.cover
    )
    print("  scoring with the drafted rubrics (lint passed, no discrimination check)", flush=True)
    out["drafted"] = await compare(
        scorer, embedder, rows, answers_of, human_of, human_items_of, drafted, args.cover
    )
    out["score_s"] = round(time.perf_counter() - t1, 1)
    return out


async def run_biggen(args, scorer, embedder, out_dir: Path) -> dict:
    rows = biggen_rows(args.biggen)

    def convo(r):
        return [{"role": "system", "content": r["system_prompt"]}, {"role": "user", "content": r["prompt"]}]

    prompts = out_dir / "bg_prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": r["id"], "prompt": convo(r), "reference": r["reference_answer"]}) + "\n"
            for r in rows
        )
    )
    t0 = time.perf_counter()
    run = await generate(
        prompts,
        out_dir / "bg_rows.jsonl",
        generator=args.writer,
        scorer=scorer,
        config=GenerateConfig(max_criteria=args.max_criteria, reasks=args.reasks),
        resume=True,
        progress=lambda m: print("  " + m, flush=True),
    )
    gen_s = time.perf_counter() - t0
    checked = {
        json.loads(x)["id"]: json.loads(x)["rubric"]
        for x in (out_dir / "bg_rows.jsonl").read_text().splitlines()
    }
    drafted = drafted_rubrics(out_dir / "bg_rows.log.jsonl")
    model_answers = {}
    for r in rows:
        gen = (await args.writer.generate([convo(r)], max_tokens=384))[0]
        model_answers[r["id"]] = gen.text.strip() if gen.ok else ""

    def answers_of(r):
        out = [("reference", r["reference_answer"]), ("truncated", truncated(r["reference_answer"]).text)]
        return out + ([("model", model_answers[r["id"]])] if model_answers[r["id"]] else [])

    def human_of(r):
        sr = r["score_rubric"]
        return Rubric(
            name="instance",
            criteria=(
                Criterion(
                    id="instance",
                    text=sr["criteria"],
                    weight=1.0,
                    scale={i: sr[f"score{i}_description"] for i in range(1, 6)},
                ),
            ),
        )

    def human_items_of(r):
        sr = r["score_rubric"]
        return [{"text": sr["criteria"], "points": 1}, {"text": sr["score5_description"], "points": 1}]

    t1 = time.perf_counter()
    out = {"instances": len(rows), "generate_summary": run.summary, "generate_s": round(gen_s, 1)}
    out["checked"] = await compare(
        scorer, embedder, rows, answers_of, human_of, human_items_of, checked, args.cover
    )
    out["drafted"] = await compare(
        scorer, embedder, rows, answers_of, human_of, human_items_of, drafted, args.cover
    )
    out["score_s"] = round(time.perf_counter() - t1, 1)
    return out


async def main_async(args) -> dict:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    opts = {"base_url": args.base_url} if args.base_url else {}
    scorer = Scorer(None, args.judge, cache=str(out_dir / "verdicts.sqlite"), **opts)
    embedder = get_embedder()
    if args.generator and args.generator != args.judge:
        from rubrix.judges import get_judge

        args.writer = get_judge(args.generator, **opts)
    else:
        args.writer = scorer.judge
    report = {"judge": args.judge, "generator": args.generator or args.judge, "command": " ".join(sys.argv)}
    t0 = time.perf_counter()
    if args.healthbench:
        print(f"HealthBench: {args.healthbench} prompts", flush=True)
        report["healthbench"] = await run_healthbench(args, scorer, embedder, out_dir)
    if args.biggen:
        print(f"BiGGen-Bench: {args.biggen} instances", flush=True)
        report["biggen"] = await run_biggen(args, scorer, embedder, out_dir)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    report["cost"] = scorer.meter.total().to_dict()
    scorer.close()
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judge", default="embedded:0.5b")
    ap.add_argument("--generator", default=None, help="model that writes rubrics (default: the judge)")
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--healthbench", type=int, default=4, help="HealthBench prompts (shortest first)")
    ap.add_argument(
        "--biggen", type=int, default=3, help="BiGGen-Bench instances (shortest, one per capability)"
    )
    ap.add_argument("--max-criteria", type=int, default=8)
    ap.add_argument("--reasks", type=int, default=1, help="re-asks for an unusable generator answer")
    ap.add_argument(
        "--cover", type=float, default=0.6, help="cosine at which a human criterion counts as covered"
    )
    ap.add_argument("--out", default="/tmp/rubrix-generate-bench")
    args = ap.parse_args()
    report = asyncio.run(main_async(args))
    path = Path(args.out) / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    brief = {k: v for k, v in report.items() if k not in ("healthbench", "biggen")}
    for name in ("healthbench", "biggen"):
        if name in report:
            brief[name] = {
                k: v for k, v in report[name].items() if k not in ("generate_summary", "per_prompt")
            }
            brief[name]["generate"] = {
                k: report[name]["generate_summary"][k]
                for k in ("generated", "skipped", "criteria", "lint", "caught")
            }
    print(json.dumps(brief, indent=2, default=str))
    print(f"full report: {path}")


if __name__ == "__main__":
    main()
