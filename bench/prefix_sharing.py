"""Shared-prefix verdicts vs one full forward per criterion, on the local judge.

Prints seconds per sample for both ways, the speed-up, and the largest difference between the
P(Yes) values the two ways give (they must agree: the shared way is an exact reorganization of
the same computation).

    python bench/prefix_sharing.py --judge embedded:0.5b --criteria 10 --tokens 400 --samples 3
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from rubrix.judges import get_judge
from rubrix.render import PromptRenderer, SampleView
from rubrix.rubric import load_rubric

FILLER = ("The report reviews the quarterly results of a mid-sized logistics company, covering revenue, "
          "fuel costs, staffing, customer complaints and the roll-out of a new routing system. ")


def make_sample(tokenizer, target_tokens: int, seed: int) -> SampleView:
    """A prompt + response of about ``target_tokens`` tokens (prompt ~1/3, response ~2/3)."""
    words = (FILLER * 200).split()
    prompt = f"Summarize this report for an executive in five bullet points (case {seed}).\n\n"
    response = "- "
    while len(tokenizer.encode(prompt)) < target_tokens // 3:
        prompt += " ".join(words[:20]) + " "
        words = words[20:] + words[:20]
    while len(tokenizer.encode(prompt + response)) < target_tokens:
        response += " ".join(words[:12]) + ".\n- "
        words = words[12:] + words[:12]
    return SampleView(prompt=prompt, response=response)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judge", default="embedded:0.5b")
    ap.add_argument("--rubric", default="helpfulness")
    ap.add_argument("--criteria", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=400, help="prompt + response tokens per sample")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    judge = get_judge(args.judge)
    rubric = load_rubric(args.rubric)
    criteria = (list(rubric.criteria) * 3)[: args.criteria]
    renderer = PromptRenderer()
    samples = [make_sample(judge.tokenizer, args.tokens, i) for i in range(args.samples)]
    per_sample = [[renderer.criterion_request(s, c) for c in criteria] for s in samples]
    judge.judge_sync(per_sample[0][:2])  # warm-up

    t0 = time.perf_counter()
    shared = [judge.judge_sync(reqs) for reqs in per_sample]
    t_shared = (time.perf_counter() - t0) / len(samples)

    def one_by_one(keep_all_logits: bool):
        t0 = time.perf_counter()
        rows = []
        with torch.inference_mode():
            for reqs in per_sample:
                row = []
                for r in reqs:
                    ids = torch.tensor([judge.encode(r.messages)], device=judge.device)
                    keep = 0 if keep_all_logits else 1  # 0 = logits at every position (plain forward)
                    logits = judge.model(input_ids=ids, logits_to_keep=keep).logits[0, -1].float()
                    row.append(judge._read(r, logits))
                rows.append(row)
        return rows, (time.perf_counter() - t0) / len(samples)

    naive, t_naive = one_by_one(keep_all_logits=True)
    _, t_full_prompt = one_by_one(keep_all_logits=False)

    pairs = [(a, b) for sa, sb in zip(shared, naive, strict=True) for a, b in zip(sa, sb, strict=True)]
    diff = max(abs(a.p - b.p) for a, b in pairs)
    prefix = len(judge.encode(per_sample[0][0].messages))
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"threads {args.threads}, device {judge.device}, dtype {judge.dtype}")
    print(f"config: judge={args.judge} criteria={args.criteria} sample_tokens~{args.tokens} "
          f"request_tokens={prefix} samples={args.samples}")
    print(f"shared prefix: {t_shared:.2f} s/sample  ({args.criteria / t_shared:.2f} verdicts/s)")
    print(f"full prompt per criterion, last-position logits: {t_full_prompt:.2f} s/sample "
          f"({args.criteria / t_full_prompt:.2f} verdicts/s)")
    print(f"naive (full prompt per criterion, logits everywhere): {t_naive:.2f} s/sample "
          f"({args.criteria / t_naive:.2f} verdicts/s)")
    print(f"speed-up vs full prompt per criterion: {t_full_prompt / t_shared:.1f}x; vs naive: "
          f"{t_naive / t_shared:.1f}x; max |P(Yes) shared - naive| = {diff:.2e}")


if __name__ == "__main__":
    main()
