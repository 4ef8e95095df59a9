"""The local judge's three engines side by side on the batch shapes rubrix is used for.

For each shape it prints, per engine: tokens computed divided by the tokens of the batch's prefix
tree (the least an exact evaluation can compute), verdicts/s, seconds, peak RSS, the largest
attention-score tensor a pass implies (heads x queries x keys), and the largest difference in P
from the tree engine.

* ``naive``: one forward per request, logits at its last position only.
* ``packed``: the previous engine — requests grouped by one shared prefix, each group one row with
  a dense row x row mask (kept in rubrix as ``HFJudge(engine="packed")``).
* ``tree``: the prefix-tree engine (the default).

Each (shape, engine) runs in its own process so that peak RSS belongs to that engine alone. The
naive engine is timed on an evenly spread subset of the requests (``--naive-max``) because a full
naive pass over a GRPO batch takes many minutes on a CPU; its token ratio is computed for the
whole batch. ``--count-only`` measures tokens with the tokenizer alone (no forward pass).

    python bench/tree_engine.py --judge embedded:0.5b --shapes grpo8 --quick
    python bench/tree_engine.py --judge embedded:0.5b --count-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time

WORDS = ("the team reviews each change before merge and a senior engineer approves it after tests pass "
         "lint checks style build verifies packages coverage report shows lines a reviewer may ask for "
         "changes then the author updates the branch pushes again and the checks rerun deploy happens "
         "nightly rollback plan documented owners listed in a file tickets link to commits").split()

SHAPES = ("distinct", "pairs", "grpo8", "grpo16x2", "per_row", "mixed")


def text(words: int, seed: int, head: str = "") -> str:
    rng = random.Random(seed)
    return head + " ".join(rng.choice(WORDS) for _ in range(words)) + "."


def build_shape(name: str, quick: bool):
    """(sample, criterion) items of one shape; sizes follow the issue, ``quick`` shrinks them."""
    from rubrix.render import SampleView
    from rubrix.rubric import Criterion, load_rubric

    helpful = list(load_rubric("helpfulness").criteria)
    crits = helpful[:6] if quick else helpful
    q = 0.5 if quick else 1.0

    def w(n):
        return max(10, int(n * q))

    if name == "distinct":
        samples = [SampleView(text(w(80), 100 + k, f"Question {k}: "), text(w(150), 200 + k))
                   for k in range(4 if quick else 6)]
        return [(s, c) for s in samples for c in crits]
    if name == "pairs":
        samples = [SampleView(text(w(150), 300 + k, f"Question {k}: "), text(w(150), 400 + 10 * k + j))
                   for k in range(2 if quick else 3) for j in range(2)]
        return [(s, c) for s in samples for c in crits]
    if name == "grpo8":
        prompt = text(w(500), 500, "Explain our code review process. ")
        return [(SampleView(prompt, text(w(100), 600 + j)), c) for j in range(8) for c in crits]
    if name == "grpo16x2":
        prompts = [text(w(300), 700 + k, f"Task {k}: ") for k in range(2)]
        crit = crits[:4] if quick else crits[:8]
        return [(SampleView(p, text(w(80), 800 + 20 * k + j)), c)
                for k, p in enumerate(prompts) for j in range(16) for c in crit]
    if name == "per_row":
        rubrics = [load_rubric(r).criteria for r in ("helpfulness", "honesty", "instruction_following")]
        prompt = text(w(300), 900, "Explain our release process. ")
        items = []
        for j in range(6):
            rubric = list(rubrics[j % 3])[: (3 if quick else 6)]
            items += [(SampleView(prompt, text(w(100), 950 + j)), c) for c in rubric]
        return items
    if name == "mixed":
        scale = Criterion(id="clarity", text="How clear the answer is.", weight=1.0,
                          scale={1: "unclear", 2: "vague", 3: "ok", 4: "clear", 5: "very clear"})
        prompt = text(w(400), 1000, "Summarize the incident report. ")
        group = [SampleView(prompt, text(w(100), 1100 + j)) for j in range(4)]
        lone = [SampleView(text(w(100), 1200 + k, f"Question {k}: "), text(w(120), 1300 + k))
                for k in range(2)]
        return [(s, c) for s in group + lone for c in crits[:4] + [scale]]
    raise SystemExit(f"unknown shape {name} (choose from {', '.join(SHAPES)})")


def requests_for(name: str, quick: bool):
    from rubrix.render import PromptRenderer

    renderer = PromptRenderer()
    return [renderer.criterion_request(s, c) for s, c in build_shape(name, quick)]


def worker(args) -> None:
    """One engine on one shape, in a fresh process; prints one JSON line."""
    import torch

    from rubrix.judges import get_judge
    from rubrix.judges.hf import peak_rss_mb
    from rubrix.judges.packing import PrefixTree

    torch.set_num_threads(args.threads)
    judge = get_judge(args.judge, engine=args.engine, token_budget=args.token_budget)
    requests = requests_for(args.shape, args.quick)
    ids = [judge.encode(r.messages) for r in requests]
    tree = PrefixTree.build(ids)
    timed = requests
    if args.engine == "naive" and len(requests) > args.naive_max:
        step = len(requests) / args.naive_max
        timed = [requests[int(i * step)] for i in range(args.naive_max)]
    judge.judge_sync(requests_for("distinct", True)[:2])  # warm-up: kernels, allocator
    for key in ("computed_tokens", "forward_calls", "max_attention_scores", "max_forward_tokens"):
        judge.stats[key] = 0
    t0 = time.perf_counter()
    verdicts = judge.judge_sync(timed)
    dt = time.perf_counter() - t0
    computed = sum(map(len, ids)) if args.engine == "naive" else judge.stats["computed_tokens"]
    print(json.dumps({
        "shape": args.shape, "engine": args.engine, "verdicts": len(requests), "timed": len(timed),
        "seconds": dt, "tree_tokens": tree.token_count, "request_tokens": tree.request_tokens,
        "computed_tokens": computed, "forward_calls": judge.stats["forward_calls"],
        "max_attention_scores": judge.stats["max_attention_scores"], "peak_rss_mb": peak_rss_mb(),
        "p": [v.p for v in verdicts], "timed_index": [requests.index(r) for r in timed],
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}, "
                   f"threads {args.threads}, dtype {judge.dtype}",
    }), flush=True)


def count_only(args) -> None:
    from rubrix.judges import get_judge
    from rubrix.judges.hf import _group_by_prefix, _Prepared
    from rubrix.judges.packing import PrefixTree, packed_token_count

    judge = get_judge(args.judge)
    print(f"{'shape':10s} {'verdicts':>8s} {'tree':>7s} {'naive/tree':>10s} {'packed/tree':>11s} "
          f"{'longest packed row':>18s}")
    for shape in args.shapes.split(","):
        requests = requests_for(shape, args.quick)
        ids = [judge.encode(r.messages) for r in requests]
        tree = PrefixTree.build(ids)
        prepared = [_Prepared(i, x, r) for i, (x, r) in enumerate(zip(ids, requests, strict=True))]
        groups = _group_by_prefix(prepared)
        members = [[p.index for p in g] for g in groups]
        packed = packed_token_count(ids, members)
        longest = max(packed_token_count(ids, [m]) for m in members)
        naive = tree.request_tokens / tree.token_count
        print(f"{shape:10s} {len(requests):8d} {tree.token_count:7d} {naive:10.2f} "
              f"{packed / tree.token_count:11.2f} {longest:18d}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judge", default="embedded:0.5b")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--engines", default="naive,packed,tree")
    ap.add_argument("--quick", action="store_true", help="smaller texts and fewer criteria")
    ap.add_argument("--token-budget", type=int, default=4096)
    ap.add_argument("--naive-max", type=int, default=8, help="requests timed for the naive engine")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--count-only", action="store_true", help="token counts from the tokenizer, no model run")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--shape", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.count_only:
        return count_only(args)
    print(f"config: judge={args.judge} quick={args.quick} token_budget={args.token_budget} "
          f"naive_max={args.naive_max}", flush=True)
    header = ("| shape | verdicts | tree tokens | engine | computed ÷ tree | verdicts/s | s | peak RSS MB "
              "| largest scores (M) | max ΔP vs tree |")
    rows = []
    machine = None
    for shape in args.shapes.split(","):
        results = {}
        for engine in args.engines.split(","):
            cmd = [sys.executable, __file__, "--worker", "--judge", args.judge, "--shape", shape,
                   "--engine", engine, "--token-budget", str(args.token_budget),
                   "--naive-max", str(args.naive_max), "--threads", str(args.threads)]
            cmd += ["--quick"] if args.quick else []
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"{shape}/{engine} failed:\n{out.stderr[-3000:]}")
            results[engine] = json.loads(out.stdout.strip().splitlines()[-1])
            machine = results[engine]["machine"]
            r = results[engine]
            print(f"  {shape}/{engine}: {r['seconds']:.1f} s for {r['timed']} verdicts", file=sys.stderr,
                  flush=True)
        ref = results.get("tree")
        for engine, r in results.items():
            dp = "-"
            if ref is not None and engine != "tree":
                dp = f"{max(abs(p - ref['p'][i]) for p, i in zip(r['p'], r['timed_index'], strict=True)):.1e}"
            timed = "" if r["timed"] == r["verdicts"] else f" (timed on {r['timed']})"
            ratio = r["computed_tokens"] / r["tree_tokens"]
            rows.append(f"| {shape} | {r['verdicts']} | {r['tree_tokens']} | {engine} | {ratio:.2f} | "
                        f"{r['timed'] / r['seconds']:.2f}{timed} | {r['seconds']:.1f} | "
                        f"{r['peak_rss_mb']:.0f} | {r['max_attention_scores'] / 1e6:.0f} | {dp} |")
        if "tree" in results:
            t = results["tree"]["timed"] / results["tree"]["seconds"]
            speed = ", ".join(f"tree vs {e}: {t / (r['timed'] / r['seconds']):.1f}x"
                              for e, r in results.items() if e != "tree")
            rows.append(f"| {shape} | | | | | {speed} | | | | |")
    print(f"machine: {machine}")
    print(header)
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
