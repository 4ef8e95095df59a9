"""The example reward files loaded and called by the trainers' own code (verl, OpenRLHF).

These run only where verl / OpenRLHF are importable (they are not in the default environment:
verl pins an older transformers, OpenRLHF needs flash-attn). They use the trainers' real loaders
and call paths — verl's ``get_custom_reward_fn`` + ``NaiveRewardManager.run_single`` on a real
``DataProto``, OpenRLHF's ``SingleTurnAgentExecutor.execute`` with a stub generation engine — with
the FakeJudge (``RUBRIX_JUDGE=fake``) standing in for the judge.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUESTION = "What is the capital of Australia? Answer in one sentence."
RESPONSES = ["The capital of Australia is Canberra.", "Sydney.", "Australia has many cities."]


def _tokenizer():
    from transformers import AutoTokenizer

    from rubrix.judges.embedded import checkpoint_dir, resolve_name

    path = checkpoint_dir(resolve_name("0.5b"))
    if not (path / "tokenizer.json").is_file():
        pytest.skip("embedded 0.5B tokenizer not prepared")
    return AutoTokenizer.from_pretrained(path)


@pytest.fixture(autouse=True)
def _fake_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_JUDGE", "fake")
    monkeypatch.setenv("RUBRIX_RUBRIC", str(EXAMPLES / "rubric.yaml"))


def _expected(prompt, response: str, reference: str | None = None) -> float:
    from rubrix.judges.fake import FakeJudge
    from rubrix.records import Sample
    from rubrix.scoring import Scorer

    scorer = Scorer(str(EXAMPLES / "rubric.yaml"), FakeJudge(), cache=False)
    return scorer.score([Sample(id="x", prompt=prompt, response=response, reference=reference)])[0].reward


def test_verl_loader_and_naive_reward_manager() -> None:
    pytest.importorskip("verl")
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn

    tokenizer = _tokenizer()
    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": str(EXAMPLES / "verl_reward.py"), "name": "compute_score", "reward_kwargs": {"unused": 1}}}})
    fn = get_custom_reward_fn(config)
    manager = NaiveRewardManager(config, tokenizer, fn)
    assert manager.is_async_reward_score                  # verl awaits it instead of using a thread pool

    def item(response: str) -> DataProto:
        prompt_ids = tokenizer(QUESTION, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        pad = [tokenizer.pad_token_id] * 4
        return DataProto.from_dict(
            tensors={"prompts": torch.tensor([prompt_ids]), "responses": torch.tensor([response_ids + pad]),
                     "attention_mask": torch.tensor([[1] * (len(prompt_ids) + len(response_ids)) + [0] * 4])},
            non_tensors={"data_source": np.array(["demo"], dtype=object),
                         "reward_model": np.array([{"ground_truth": "Canberra", "style": "rubric"}],
                                                  dtype=object),
                         "extra_info": np.array([{"question": QUESTION, "index": 0}], dtype=object)})

    async def worker():  # a reward-loop worker gathers run_single over its chunk
        return await asyncio.gather(*[manager.run_single(item(r)) for r in RESPONSES])

    outs = manager.loop.run_until_complete(worker())  # the worker's own loop, captured by the manager
    infos = [o["reward_extra_info"] for o in outs]
    keys = list(infos[0].keys())                          # what verl's reward loop does next
    columns = {k: np.array([info[k] for info in infos]) for k in keys}
    assert keys[:3] == ["score", "rubrix_ok", "rubrix_imputed"] and "c_correct" in keys
    assert all(np.isfinite(v).all() for v in columns.values())
    for response, out in zip(RESPONSES, outs, strict=True):
        # the manager decodes with skip_special_tokens=True, so the EOS is gone
        assert out["reward_score"] == pytest.approx(_expected(QUESTION, response, "Canberra"))


def test_openrlhf_single_turn_executor_with_the_python_file() -> None:
    pytest.importorskip("openrlhf")
    torch = pytest.importorskip("torch")
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    tokenizer = _tokenizer()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], tokenize=False,
                                           add_generation_prompt=True)
    executor = SingleTurnAgentExecutor(remote_rm_url=str(EXAMPLES / "openrlhf_reward.py"))
    assert executor.reward_func is not None

    class StubEngine:  # stands in for vLLM: "generates" a fixed response
        def __init__(self, text: str):
            self.ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

        async def generate(self, prompt_ids, params, multi_modal_data=None):
            return SimpleNamespace(outputs=[SimpleNamespace(token_ids=self.ids, logprobs=None,
                                                            finish_reason="stop")])

    params = SimpleNamespace(max_tokens=64, logprobs=None)
    system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."  # template default
    messages = [{"role": "system", "content": system}, {"role": "user", "content": QUESTION}]
    for response in RESPONSES:
        out = asyncio.run(executor.execute(prompt, "", params, 512, tokenizer, StubEngine(response)))
        assert isinstance(out["reward"], torch.Tensor) and out["reward"].shape == (1,)
        assert math.isfinite(out["reward"].item())
        assert out["reward"].item() == pytest.approx(_expected(messages, response), abs=1e-6)
        assert out["extra_logs"]["rubrix_ok"].tolist() == [1.0]


def test_verl_loads_the_module_itself_with_reward_kwargs() -> None:
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": "pkg://rubrix.integrations.verl", "name": "compute_score",
        "reward_kwargs": {"rubric": "harmlessness", "judge": "fake", "cache": "0"}}}})
    fn = get_custom_reward_fn(config)
    out = asyncio.run(fn(data_source="d", solution_str="Paris.", ground_truth="Paris",
                         extra_info={"question": "Capital of France?"}))
    assert list(out)[:3] == ["score", "rubrix_ok", "rubrix_imputed"]
    assert "c_no_serious_harm_uplift" in out and all(math.isfinite(v) for v in out.values())
