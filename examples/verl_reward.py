"""A rubric reward for verl, as the ``custom_reward_function`` file it loads.

In training (verl imports this file and awaits ``compute_score`` once per finished rollout)::

    RUBRIX_JUDGE=openai:gpt-4.1-mini RUBRIX_BASE_URL=http://judge:8000/v1 \\
    python -m verl.trainer.main_ppo ... \\
        reward.custom_reward_function.path=examples/verl_reward.py \\
        reward.custom_reward_function.name=compute_score
    # verl <= 0.7.0: custom_reward_function.path=... custom_reward_function.name=compute_score

verl does not pass the prompt to reward functions: store it in ``extra_info["question"]`` when
you build the parquet (verl's own gsm8k preprocessor does), and the reference answer, if any,
in ``reward_model.ground_truth``. Every returned dict has the same keys (``score``,
``rubrix_ok``, ``rubrix_imputed``, ``c_<criterion>``), finite floats only.

Try it here, without verl or a GPU (replays verl's reward-loop call on a few rows)::

    python examples/verl_reward.py                  # real embedded 0.5B judge
    python examples/verl_reward.py --judge fake     # deterministic stand-in judge

When verl is installed the demo loads this file with verl's own ``get_custom_reward_fn`` and
scores through its ``NaiveRewardManager``-style keyword call; otherwise it loads it the same way.
"""

from __future__ import annotations

import os
import threading

from rubrix.integrations.verl import make_compute_score

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
_SCORE = None


def _scorer():
    global _SCORE
    with _LOCK:
        if _SCORE is None:
            _SCORE = make_compute_score(os.environ.get("RUBRIX_RUBRIC") or RUBRIC,
                                        judge=os.environ.get("RUBRIX_JUDGE", "embedded:0.5b"),
                                        base_url=os.environ.get("RUBRIX_BASE_URL") or None,
                                        failure="constant:0", breaker=0.5)
        return _SCORE


async def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """verl's entry point (async: verl awaits it on its reward worker's loop)."""
    return await _scorer()(data_source, solution_str, ground_truth, extra_info, **kwargs)


def _demo() -> None:
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(description="replay verl's compute_score calls on a few rows")
    parser.add_argument("--judge", default="embedded:0.5b")
    args = parser.parse_args()
    os.environ["RUBRIX_JUDGE"] = args.judge

    question = "What is the capital of Australia? Answer in one sentence."
    # rows as verl's parquet holds them (examples/data_preprocess/gsm8k.py layout)
    row = {"data_source": "rubrix_demo", "prompt": [{"role": "user", "content": question}],
           "reward_model": {"style": "rubric", "ground_truth": "Canberra"},
           "extra_info": {"split": "train", "index": 0, "question": question}}
    responses = ["The capital of Australia is Canberra.",
                 "Sydney is the capital of Australia, and it is also the largest city in the country.",
                 "Australia is a country in the Southern Hemisphere with many cities."]
    config = {"reward": {"custom_reward_function": {"path": __file__, "name": "compute_score",
                                                    "reward_kwargs": {}}}}
    try:
        from omegaconf import OmegaConf
        from verl.trainer.ppo.reward import get_custom_reward_fn

        fn = get_custom_reward_fn(OmegaConf.create(config))
        print("loaded by verl.trainer.ppo.reward.get_custom_reward_fn")
    except ImportError:
        import importlib.util

        spec = importlib.util.spec_from_file_location("custom_module", __file__)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        fn = module.compute_score
        print("loaded with importlib (verl is not installed)")

    async def run() -> list[dict]:  # a reward-loop worker gathers run_single over its samples
        return list(await asyncio.gather(*[
            fn(data_source=row["data_source"], solution_str=r,
               ground_truth=row["reward_model"]["ground_truth"],
               extra_info=dict(row["extra_info"], num_turns=None, rollout_reward_scores={}))
            for r in responses]))

    results = asyncio.run(run())
    keys = list(results[0])  # verl reads the extra-info keys from the first sample ...
    table = {k: [r[k] for r in results] for k in keys}  # ... and indexes every other sample with them
    for response, result in zip(responses, results, strict=True):
        print(f"score {result['score']:.3f}  ok {result['rubrix_ok']:.0f}  {response[:45]!r}")
    print("reward_extra_info keys:", keys)
    print("c_correct per sample:", [round(v, 3) for v in table["c_correct"]])


if __name__ == "__main__":
    _demo()
