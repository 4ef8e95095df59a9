"""A rubric reward for OpenRLHF, as the python file it loads with ``--reward.remote_url``.

In training (OpenRLHF imports this file and calls ``reward_func`` once per sample, in a thread)::

    RUBRIX_JUDGE=openai:gpt-4.1-mini RUBRIX_BASE_URL=http://judge:8000/v1 \\
    python -m openrlhf.cli.train_ppo_ray ... --reward.remote_url examples/openrlhf_reward.py \\
        --data.label_key reference          # optional: a reference answer (or a rubric) per row

Try it here, without OpenRLHF or a GPU (replays OpenRLHF's call: decoded prompt + response + EOS)::

    python examples/openrlhf_reward.py                  # real embedded 0.5B judge
    python examples/openrlhf_reward.py --judge fake     # deterministic stand-in judge

When OpenRLHF is installed the demo loads this file through OpenRLHF's own
``SingleTurnAgentExecutor``; otherwise it loads it the same way (``importlib`` from the file path,
``asyncio.to_thread`` per sample).
"""

from __future__ import annotations

import os
import threading

from rubrix.integrations.openrlhf import make_reward_func

# The default rubric: three short-answer checks, cheap enough for a CPU judge. Point RUBRIX_RUBRIC at
# a rubric file or a built-in name (helpfulness, ...) to use another; examples/rubric.yaml is one.
RUBRIC = {
    "name": "short_answer",
    "criteria": [
        {"id": "correct", "text": "The response's main answer is factually correct.", "weight": 3},
        {"id": "direct", "text": "The response gives its answer in the first sentence.", "weight": 1},
        {"id": "padding", "text": "The response has sentences that add nothing to the answer.", "weight": -1},
    ],
}
_LOCK = threading.Lock()
_REWARD = None


def reward_func(queries, prompts, labels, **kwargs):
    """OpenRLHF's entry point: ``{"rewards", "scores", "extra_logs"}`` as float tensors."""
    global _REWARD
    with _LOCK:
        if _REWARD is None:
            _REWARD = make_reward_func(os.environ.get("RUBRIX_RUBRIC") or RUBRIC,
                                       judge=os.environ.get("RUBRIX_JUDGE", "embedded:0.5b"),
                                       base_url=os.environ.get("RUBRIX_BASE_URL") or None,
                                       failure="constant:0", breaker=0.5)
    return _REWARD(queries, prompts, labels, **kwargs)


def _demo() -> None:
    import argparse
    import asyncio
    import importlib.util

    from transformers import AutoTokenizer

    from rubrix.judges.embedded import checkpoint_dir, prepare, resolve_name

    parser = argparse.ArgumentParser(description="replay OpenRLHF's reward_func call on a few samples")
    parser.add_argument("--judge", default="embedded:0.5b")
    args = parser.parse_args()
    os.environ["RUBRIX_JUDGE"] = args.judge

    tok_dir = checkpoint_dir(resolve_name("0.5b"))
    if not (tok_dir / "tokenizer.json").is_file():
        tok_dir = prepare("0.5b")
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    question = "What is the capital of Australia? Answer in one sentence."
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                           add_generation_prompt=True)
    responses = ["The capital of Australia is Canberra.",
                 "Sydney is the capital of Australia, and it is also the largest city in the country.",
                 "Australia is a country in the Southern Hemisphere with many cities."]
    # OpenRLHF: query = tokenizer.decode(prompt_ids + response_ids, skip_special_tokens=False)
    queries = [tokenizer.decode(tokenizer(prompt + r, add_special_tokens=False)["input_ids"]
                                + [tokenizer.eos_token_id], skip_special_tokens=False) for r in responses]

    async def run() -> list[dict]:
        try:
            from openrlhf.utils.agent import SingleTurnAgentExecutor
        except ImportError:
            spec = importlib.util.spec_from_file_location("reward_func", __file__)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            calls = [asyncio.to_thread(module.reward_func, [q], [prompt], [""]) for q in queries]
            print("loaded with importlib (OpenRLHF is not installed)")
            return list(await asyncio.gather(*calls))
        executor = SingleTurnAgentExecutor(remote_rm_url=__file__)
        print("loaded by openrlhf.utils.agent.SingleTurnAgentExecutor")
        return [(await executor._fetch_rewards_via_func([q], [prompt], [""]))[0] for q in queries]

    print(f"query[0] = {queries[0]!r}")
    for response, out in zip(responses, asyncio.run(run()), strict=True):
        logs = {k: round(float(v[0]), 3) for k, v in out["extra_logs"].items()}
        reward, score = float(out["rewards"][0]), float(out["scores"][0])
        print(f"reward {reward:.3f}  score {score:.3f}  {response[:45]!r}")
        print(f"    extra_logs {logs}")


if __name__ == "__main__":
    _demo()
