"""TRL's real GRPOTrainer with a rubrix reward function, on CPU, with a tiny random policy.

The policy is a 2-layer Qwen2 built with ``from_config`` (no download); the tokenizer is the
embedded judge's local one. After training, the per-completion rewards TRL logged for the last
generation batch (``trainer._logs``) are compared with rubrix's own scores of the same
(prompt, completion) pairs from an independent :class:`~rubrix.scoring.Scorer`, and the
``rewards/<name>/mean`` metric with their mean: TRL trained on exactly what rubrix computed.

The unmarked test uses the deterministic FakeJudge (named as such: wiring, not judging). The
``model`` test uses the real embedded 0.5B judge for one step.
"""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("trl")
pytest.importorskip("datasets")

from rubrix.integrations.messages import completion_text  # noqa: E402
from rubrix.integrations.trl import reward_func  # noqa: E402
from rubrix.records import Sample  # noqa: E402
from rubrix.scoring import Scorer  # noqa: E402

RUBRIC = {
    "name": "tiny",
    "criteria": [
        {"id": "answers", "text": "The response answers the user's question.", "weight": 3},
        {"id": "english", "text": "The response is written in English.", "weight": 1},
        {"id": "gibberish", "text": "The response contains gibberish.", "weight": -2},
    ],
}


def _tokenizer():
    from transformers import AutoTokenizer

    from rubrix.judges.embedded import checkpoint_dir, resolve_name

    path = checkpoint_dir(resolve_name("0.5b"))
    if not (path / "tokenizer.json").is_file():
        pytest.skip(f"embedded 0.5B checkpoint not prepared at {path} (rubrix models prepare 0.5b)")
    return AutoTokenizer.from_pretrained(path)


#: a rubric with a check, a gate, an N/A criterion and correctness-gated length shaping
RUBRIC_RL = {
    "name": "tiny_rl",
    "gates": [{"criteria": ["answers"], "on_fail": "accumulate"}],
    "length": {"mode": "group", "unit": "chars", "penalty": 0.2},
    "criteria": [
        {"id": "answers", "text": "The response answers the user's question.", "weight": 3},
        {"id": "not_too_long", "check": {"length": {"max": 30, "unit": "chars"}}, "weight": 1},
        {"id": "names_paris", "text": "The response names Paris.", "weight": 2,
         "applies_if": {"regex": "(?i)capital of france", "in": "prompt"}},
        {"id": "gibberish", "text": "The response contains gibberish.", "weight": -2},
    ],
}


def run_grpo(judge, tmp_path, steps: int, rubric: dict = RUBRIC):
    import torch
    from datasets import Dataset
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    policy = Qwen2ForCausalLM(config)
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": "What is the capital of France?"}]},
                                 {"prompt": [{"role": "user", "content": "Name a primary color."}]}])
    reward = reward_func(rubric, judge=judge, cache=False)
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=8, max_steps=steps, learning_rate=1e-4, logging_steps=1,
                      report_to="none", save_strategy="no", use_cpu=True, bf16=False, seed=0)
    trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=args, train_dataset=dataset,
                          processing_class=tokenizer)
    trainer.train()
    return trainer, reward


def check_logged_rewards_are_rubrix_rewards(trainer, reward, judge, rubric: dict = RUBRIC) -> list[float]:
    name = reward.__name__
    prompts = list(trainer._logs["prompt"])
    completions = list(trainer._logs["completion"])
    logged = list(trainer._logs["rewards"][name])
    assert len(prompts) == len(completions) == len(logged) == 4  # the last generation batch
    scorer = Scorer(rubric, judge, cache=False)
    texts = [completion_text(c) for c in completions]
    ours = scorer.score([Sample(id=str(i), prompt=p, response=t)
                         for i, (p, t) in enumerate(zip(prompts, texts, strict=True))])
    expected = [r.reward for r in ours]
    if scorer.rubric.length is not None:  # shaping among the passing answers of each prompt's group
        groups = [json.dumps(p, sort_keys=True) for p in prompts]
        expected = scorer.rubric.length.apply(expected, texts, [r.passed_gate is not False for r in ours],
                                              groups)
    assert all(r is not None for r in expected)
    # TRL keeps rewards in float32
    assert logged == pytest.approx(expected, rel=1e-5, abs=1e-6)
    last = [e for e in trainer.state.log_history if f"rewards/{name}/mean" in e][-1]
    assert last[f"rewards/{name}/mean"] == pytest.approx(sum(expected) / len(expected), rel=1e-4)
    assert last["rubrix/failure_rate"] == 0.0     # logged through TRL's log_metric
    assert all(math.isfinite(x) for x in logged)
    return expected


def test_grpo_trainer_logs_the_rewards_rubrix_computed(tmp_path) -> None:
    from rubrix.judges.fake import FakeJudge

    judge = FakeJudge(seed=1)
    trainer, reward = run_grpo(judge, tmp_path, steps=2)
    assert trainer.state.global_step == 2
    check_logged_rewards_are_rubrix_rewards(trainer, reward, judge)
    assert reward.rubrix.calls == 2                 # one reward call per generation batch
    reward.rubrix.close()


def test_grpo_trains_on_checks_gates_and_not_applicable(tmp_path) -> None:
    """The same loop on a rubric mixing a check, a gate, an N/A criterion and length shaping."""
    from rubrix.judges.fake import FakeJudge

    judge = FakeJudge(seed=3)
    trainer, reward = run_grpo(judge, tmp_path, steps=2, rubric=RUBRIC_RL)
    expected = check_logged_rewards_are_rubrix_rewards(trainer, reward, judge, rubric=RUBRIC_RL)
    counts = reward.rubrix.scorer.counts
    assert counts["checked"] >= 8                   # the check ran on every completion, no judge call
    prompts = [json.dumps(p) for p in trainer._logs["prompt"]]
    if any("Name a primary color" in p for p in prompts):
        assert counts["not_applicable"] >= 1        # names_paris does not apply to the color prompt
    assert all(x is not None for x in expected)
    reward.rubrix.close()


@pytest.mark.model
def test_grpo_trainer_with_the_real_judge(small_judge, tmp_path) -> None:
    trainer, reward = run_grpo(small_judge, tmp_path, steps=1)
    expected = check_logged_rewards_are_rubrix_rewards(trainer, reward, small_judge)
    print("rewards of the last batch:", [round(x, 4) for x in expected])
