"""Could llama.cpp on the embedded GGUF give the default judge's verdicts with less memory?

The embedded 1.5B judge is a Q4_K_M GGUF that transformers dequantizes to fp32 (about 7 GB of
weights). llama.cpp reads the quantized weights as they are. This script answers the same batch
both ways, each in its own process (so peak RSS belongs to one engine), and prints seconds,
verdicts/s, peak RSS and the largest difference in P.

The llama.cpp side reads the next-token logits after each request and reuses its key/value cache
for the prefix shared with the previous request; requests go in sorted token order, which is a
depth-first walk of the batch's prefix tree, so it too computes each tree token once.

    python bench/llamacpp_verdicts.py --model 1.5b --shape grpo8 --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tree_engine import SHAPES, requests_for  # noqa: E402


def reader(checkpoint: str):
    """An HFJudge shell with the tokenizer only: ``encode`` and the label reader, no weights."""
    import threading

    import torch
    from transformers import AutoTokenizer

    from rubrix.judges.hf import HFJudge

    judge = HFJudge.__new__(HFJudge)
    judge.torch = torch
    judge.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    judge._label_ids = {}
    judge._lock = threading.Lock()
    return judge


def run_llamacpp(args) -> dict:
    import numpy as np
    import torch
    from llama_cpp import Llama

    from rubrix.judges.embedded import checkpoint_dir, gguf_path, resolve_name

    model = resolve_name(args.model)
    shell = reader(str(checkpoint_dir(model)))
    requests = requests_for(args.shape, args.quick)
    ids = [shell.encode(r.messages) for r in requests]
    threads = args.threads
    llm = Llama(model_path=str(gguf_path(model.name, log=lambda *_: None)), n_ctx=args.n_ctx, n_batch=512,
                n_threads=threads, n_threads_batch=threads, verbose=False)
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    vocab = llm.n_vocab()
    p = [0.0] * len(ids)
    computed = 0
    previous: list[int] = []
    t0 = time.perf_counter()
    for i in order:
        seq = ids[i]
        lcp = 0
        while lcp < min(len(seq), len(previous)) and seq[lcp] == previous[lcp]:
            lcp += 1
        lcp = min(lcp, len(seq) - 1)  # at least one token evaluated, for its logits
        llm.n_tokens = lcp
        llm.eval(seq[lcp:])
        computed += len(seq) - lcp
        logits = torch.from_numpy(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,)).copy())
        p[i] = shell._read(requests[i], logits[: len(shell.tokenizer)].float()).p
        previous = seq
    dt = time.perf_counter() - t0
    llm.close()
    return {"seconds": dt, "p": p, "computed_tokens": computed}


def run_hf(args) -> dict:
    import torch

    from rubrix.judges import get_judge

    torch.set_num_threads(args.threads)
    judge = get_judge(f"embedded:{args.model}", generator="hf")
    requests = requests_for(args.shape, args.quick)
    judge.judge_sync(requests[:1])  # warm-up
    t0 = time.perf_counter()
    verdicts = judge.judge_sync(requests)
    return {"seconds": time.perf_counter() - t0, "p": [v.p for v in verdicts]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="1.5b")
    ap.add_argument("--shape", default="grpo8", choices=SHAPES)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--engines", default="hf,llamacpp")
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        from rubrix.judges.hf import peak_rss_mb

        out = (run_hf if args.worker == "hf" else run_llamacpp)(args)
        out["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(out), flush=True)
        return
    results = {}
    for engine in args.engines.split(","):
        cmd = [sys.executable, __file__, "--worker", engine, "--model", args.model, "--shape", args.shape,
               "--n-ctx", str(args.n_ctx), "--threads", str(args.threads)]
        cmd += ["--quick"] if args.quick else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{engine} failed:\n{proc.stderr[-3000:]}")
        results[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
    n = len(next(iter(results.values()))["p"])
    print(f"config: model={args.model} shape={args.shape} quick={args.quick} verdicts={n} "
          f"threads={args.threads}")
    for engine, r in results.items():
        extra = f" computed_tokens={r['computed_tokens']}" if "computed_tokens" in r else ""
        print(f"{engine:9s} {r['seconds']:7.1f} s  {n / r['seconds']:6.2f} verdicts/s  "
              f"peak RSS {r['peak_rss_mb']:6.0f} MB{extra}")
    if "hf" in results and "llamacpp" in results:
        diffs = [abs(a - b) for a, b in zip(results["hf"]["p"], results["llamacpp"]["p"], strict=True)]
        agree = sum((a >= 0.5) == (b >= 0.5) for a, b in zip(results["hf"]["p"], results["llamacpp"]["p"],
                                                                 strict=True))
        print(f"max |P_hf - P_llamacpp| = {max(diffs):.3f}, mean {sum(diffs) / n:.3f}, "
              f"same side of 0.5: {agree}/{n}")


if __name__ == "__main__":
    main()
