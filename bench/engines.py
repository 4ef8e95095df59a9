"""Three ways to get rubric verdicts from a local model, on the same samples and rubric.

* ``naive``: one full forward per (sample, criterion), logits at every position — what a plain
  transformers loop does.
* ``generate``: the judge writes a short critique and then a verdict, parsed from the text —
  how prometheus-eval and most LLM-judge tools run a local model (batched greedy generation of
  all criteria of a sample, which is kinder to this baseline than one call at a time).
* ``rubrix``: the hf judge — by default the prefix-tree engine (each shared token computed once,
  logits only at the answer positions, passes bounded by a token budget); ``--engine packed``
  selects the previous packed-prefix scheduler.

Prints verdicts/s, tokens/s and the exact configuration. With ``--random-config`` the model is
built with random weights from a Qwen2.5 configuration (speed does not depend on weight values),
which is how GPU numbers for 0.5B/1.5B/7B are taken where weights cannot travel; there it also
reports model FLOPs utilisation against ``--peak-tflops``.

    python bench/engines.py --judge embedded:0.5b --criteria 10 --tokens 400 --samples 4
    python bench/engines.py --random-config qwen2.5-7b --tokenizer DIR --criteria 10 --tokens 600 \\
        --samples 64 --engines rubrix,generate --peak-tflops 989
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prefix_sharing import make_sample  # noqa: E402

from rubrix.judges.hf import HFJudge, new_stats  # noqa: E402
from rubrix.judges.parsing import parse_label  # noqa: E402
from rubrix.render import PromptRenderer  # noqa: E402
from rubrix.rubric import load_rubric  # noqa: E402

QWEN25 = {  # public Qwen2.5 architecture sizes
    "qwen2.5-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2,
                         intermediate_size=8960, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                       intermediate_size=18944, vocab_size=152064, tie_word_embeddings=False),
}

CRITIQUE_SUFFIX = ("\n\nFirst write one or two sentences of feedback about the statement, then end "
                   "with a line "
                   "'Answer: Yes' or 'Answer: No'.")


def flops_per_token(cfg: dict, context: int) -> float:
    """Forward FLOPs per token: 2 x matmul parameters (no embeddings) + attention scores/values."""
    h, layers, inter = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    kv = cfg["num_key_value_heads"] * h // cfg["num_attention_heads"]
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * inter  # q,o + k,v + gate/up/down
    return 2 * layers * per_layer + 4 * layers * context * h


def build_judge(args) -> HFJudge:
    if not args.random_config:
        from rubrix.judges import get_judge

        return get_judge(args.judge, token_budget=args.token_budget, engine=args.engine)
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    judge = HFJudge.__new__(HFJudge)  # same engine, weights from a config instead of a checkpoint
    judge.torch = torch
    judge.device = "cuda" if torch.cuda.is_available() else "cpu"
    judge.dtype = torch.bfloat16 if judge.device == "cuda" else torch.float32
    cfg = Qwen2Config(**QWEN25[args.random_config], max_position_embeddings=32768)
    with torch.device(judge.device):
        judge.model = AutoModelForCausalLM.from_config(cfg, dtype=judge.dtype,
                                                       attn_implementation="sdpa").eval()
    judge.tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    judge.name = f"random:{args.random_config}"
    judge.model_path = args.random_config
    judge.token_budget = args.token_budget
    judge.engine = args.engine
    judge.attention = "flex" if judge.device == "cuda" else "sdpa"
    judge.generator = None
    judge._label_ids = {}
    import threading

    judge._lock = threading.RLock()
    judge.stats = new_stats()
    return judge


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_rubrix(judge, per_sample):
    flat = [r for reqs in per_sample for r in reqs]
    judge.judge_sync(flat)


def run_naive(judge, per_sample):
    with torch.inference_mode():
        for reqs in per_sample:
            for r in reqs:
                ids = torch.tensor([judge.encode(r.messages)], device=judge.device)
                judge._read(r, judge.model(input_ids=ids, logits_to_keep=0).logits[0, -1].float())


def run_generate(judge, per_sample, max_new_tokens: int) -> tuple[int, int]:
    """Critique-then-verdict generation; returns (parsed, total) so failures are visible."""
    parsed = total = 0
    for reqs in per_sample:
        msgs = []
        for r in reqs:
            m = [dict(x) for x in r.messages]
            m[-1]["content"] += CRITIQUE_SUFFIX
            msgs.append(m)
        for gen in judge.generate_sync(msgs, max_tokens=max_new_tokens):
            total += 1
            parsed += gen.ok and parse_label(gen.text, (("Yes", 1.0), ("No", 0.0))) is not None
    return parsed, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judge", default="embedded:0.5b")
    ap.add_argument("--random-config", choices=sorted(QWEN25), default=None)
    ap.add_argument("--tokenizer", default=None, help="tokenizer dir for --random-config")
    ap.add_argument("--rubric", default="helpfulness")
    ap.add_argument("--criteria", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=400)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--engines", default="rubrix,naive,generate")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--token-budget", type=int, default=4096)
    ap.add_argument("--engine", choices=("tree", "packed", "naive"), default="tree",
                    help="the hf judge's scheduler for the rubrix row")
    ap.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak of the GPU, for MFU")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    judge = build_judge(args)
    rubric = load_rubric(args.rubric)
    criteria = (list(rubric.criteria) * 3)[: args.criteria]
    renderer = PromptRenderer()
    samples = [make_sample(judge.tokenizer, args.tokens, i) for i in range(args.samples)]
    per_sample = [[renderer.criterion_request(s, c) for c in criteria] for s in samples]
    request_tokens = sum(len(judge.encode(r.messages)) for reqs in per_sample for r in reqs)
    verdicts = args.samples * args.criteria
    run_rubrix(judge, per_sample[:1])  # warm-up (kernels, allocator)

    dev = judge.device
    gpu = torch.cuda.get_device_name(0) if dev == "cuda" else platform.processor() or platform.machine()
    print(f"machine: {gpu}; {os.cpu_count()} cpus; torch {torch.__version__}; threads {args.threads}; "
          f"device {dev}; dtype {judge.dtype}")
    print(f"config: model={args.random_config or args.judge} criteria={args.criteria} "
          f"sample_tokens~{args.tokens} "
          f"samples={args.samples} verdicts={verdicts} request_tokens={request_tokens} "
          f"token_budget={args.token_budget} max_new_tokens={args.max_new_tokens}")
    results = {}
    for engine in args.engines.split(","):
        sync(dev)
        t0 = time.perf_counter()
        extra = ""
        if engine == "rubrix":
            before = dict(judge.stats)
            run_rubrix(judge, per_sample)
            computed = judge.stats["computed_tokens"] - before["computed_tokens"]
            extra = f" computed_tokens={computed}"
        elif engine == "naive":
            run_naive(judge, per_sample)
            computed = request_tokens
        elif engine == "generate":
            parsed, total = run_generate(judge, per_sample, args.max_new_tokens)
            computed = request_tokens
            extra = f" parsed={parsed}/{total}"
        else:
            raise SystemExit(f"unknown engine {engine}")
        sync(dev)
        dt = time.perf_counter() - t0
        results[engine] = dt
        line = (f"{engine:9s} {dt:8.2f} s  {verdicts / dt:8.2f} verdicts/s  {request_tokens / dt:9.0f} "
                f"request tokens/s{extra}")
        if args.random_config and args.peak_tflops and engine == "rubrix":
            cfg = QWEN25[args.random_config]
            ctx = args.tokens + 150
            achieved = computed * flops_per_token(cfg, ctx) / dt / 1e12
            line += f"  model TFLOP/s {achieved:.1f}  MFU {achieved / args.peak_tflops:.1%}"
        print(line)
    if "rubrix" in results:
        for engine, dt in results.items():
            if engine != "rubrix":
                print(f"rubrix vs {engine}: {dt / results['rubrix']:.1f}x")


if __name__ == "__main__":
    main()
