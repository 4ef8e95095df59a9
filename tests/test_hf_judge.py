"""The local transformers judge on the real embedded 0.5B model (marked ``model``)."""

from __future__ import annotations

import pytest
import torch

from rubrix.judges.base import Generation, JudgeRequest, Verdict
from rubrix.judges.hf import _group_by_prefix, _Prepared
from rubrix.render import PromptRenderer, SampleView
from rubrix.rubric import Criterion, load_rubric

pytestmark = pytest.mark.model

CAPITAL = "What is the capital of France? Answer in one sentence."


def _requests(renderer, samples, criteria):
    return [renderer.criterion_request(s, c) for s in samples for c in criteria]


def test_packed_prefix_gives_the_same_probabilities_as_full_forwards(small_judge):
    """The speed trick must be exact: packed verdicts equal one full forward per request."""
    renderer = PromptRenderer()
    samples = [SampleView(CAPITAL, "The capital of France is Paris."),
               SampleView(CAPITAL, "Berlin is a big city in Germany."),
               SampleView([{"role": "user", "content": "Name a fruit."}], "An apple.")]
    criteria = [Criterion(id=f"c{i}", text=t, weight=1.0) for i, t in enumerate(
        ["The answer names Paris.", "The answer is written in Spanish.", "The answer is one sentence long."])]
    scale = Criterion(id="clarity", text="How clear the answer is.", weight=1.0,
                      scale={1: "unclear", 2: "vague", 3: "ok", 4: "clear", 5: "very clear"})
    requests = _requests(renderer, samples, criteria + [scale])
    verdicts = small_judge.judge_sync(requests)
    assert len(verdicts) == len(requests)
    with torch.inference_mode():
        for req, v in zip(requests, verdicts, strict=True):
            ids = torch.tensor([small_judge.encode(req.messages)])
            full = small_judge._read(req, small_judge.model(input_ids=ids).logits[0, -1].float())
            assert v.p == pytest.approx(full.p, abs=1e-4)
            assert v.from_logprobs and v.error is None
    # fewer forward passes than requests: prefixes were shared
    assert small_judge.stats["prefix_tokens"] > 0


def test_grouping_puts_criteria_of_one_sample_together(small_judge):
    renderer = PromptRenderer()
    rubric = load_rubric("helpfulness")
    samples = [SampleView(CAPITAL, "Paris."), SampleView("Name a fruit.", "An apple.")]
    requests = _requests(renderer, samples, rubric.criteria)
    prepared = [_Prepared(i, small_judge.encode(r.messages), r) for i, r in enumerate(requests)]
    groups = _group_by_prefix(prepared)
    assert len(groups) == 2
    assert sorted(len(g) for g in groups) == [len(rubric.criteria)] * 2


def test_verdicts_are_probabilities_and_discriminate_an_obvious_case(small_judge):
    renderer = PromptRenderer()
    crit = Criterion(id="paris", text="The answer names Paris as the capital.", weight=1.0)
    good, bad = small_judge.judge_sync([
        renderer.criterion_request(SampleView(CAPITAL, "It is Paris."), crit),
        renderer.criterion_request(SampleView(CAPITAL, "It is Berlin."), crit)])
    for v in (good, bad):
        assert 0.0 <= v.p <= 1.0
        assert 0.5 < v.coverage <= 1.0 + 1e-6  # the model answers with Yes/No tokens
        assert v.label in ("Yes", "No")
    assert good.p > bad.p


def test_scale_verdict_is_an_expected_level(small_judge):
    renderer = PromptRenderer()
    crit = Criterion(id="clarity", text="How clear the answer is.", weight=1.0,
                     scale={1: "unclear", 2: "vague", 3: "ok", 4: "clear", 5: "very clear"})
    (v,) = small_judge.judge_sync([renderer.criterion_request(SampleView(CAPITAL, "Paris."), crit)])
    assert 1.0 <= v.p <= 5.0 and v.label in {"1", "2", "3", "4", "5"}


def test_json_and_checklist_requests_are_generated_and_parsed_or_typed_failures(small_judge):
    renderer = PromptRenderer()
    rubric = load_rubric("examples/rubric.yaml")
    sample = SampleView(CAPITAL, "The capital of France is Paris.")
    requests = [renderer.criterion_request(sample, rubric.criteria[0], verdict="json"),
                renderer.checklist_request(sample, rubric)]
    verdicts = small_judge.judge_sync(requests)
    json_v, check_v = verdicts
    assert isinstance(json_v, Verdict) and isinstance(check_v, Verdict)
    if json_v.ok:
        assert json_v.p in (0.0, 1.0) and json_v.raw
    else:  # a failure is typed and carries no number
        assert json_v.error == "parse" and json_v.p is None
    if check_v.ok:
        assert set(check_v.values) == set(requests[1].checklist_ids)
    else:
        assert check_v.error == "parse" and check_v.values is None


@pytest.mark.parametrize("engine", ["hf", "llama.cpp"])
def test_generate_returns_text_and_honours_stop_strings(small_judge, engine, monkeypatch):
    """Both generation engines of the embedded judge: transformers, and llama.cpp on the same GGUF."""
    from rubrix.judges import llamacpp
    from rubrix.judges.embedded import gguf_path

    if engine == "llama.cpp":
        if not llamacpp.available():
            pytest.skip("llama-cpp-python not installed (bash scripts/setup.sh ...,llama)")
        monkeypatch.setattr(small_judge, "generator", llamacpp.LlamaCppGenerator(gguf_path("0.5b")))
    else:
        monkeypatch.setattr(small_judge, "generator", None)
    prompt = [{"role": "user", "content": "Count from 1 to 10, comma separated."}]
    (gen,) = small_judge.generate_sync([prompt], max_tokens=30, stop=["5"])
    text = gen.text
    assert gen.ok and "5" not in text and "1" in text and "4" in text
    # usage is the engine's own count: the templated prompt, and at most max_tokens generated
    assert gen.usage["prompt_tokens"] > small_judge.count_tokens([prompt[0]["content"]])[0]
    assert 1 <= gen.usage["completion_tokens"] <= 30 and gen.latency_s > 0
    ask = [{"role": "user", "content": 'Reply with a JSON object {"fruits": [...]} naming two fruits.'}]
    (answer,) = small_judge.generate_sync([ask], max_tokens=60, json_mode=True)
    from rubrix.judges.parsing import parse_json_object

    obj = parse_json_object(answer.text)
    assert isinstance(obj, dict) and isinstance(obj.get("fruits"), list) and obj["fruits"]


def test_llama_cpp_prompt_too_long_is_a_typed_failure():
    from rubrix.judges import llamacpp
    from rubrix.judges.embedded import gguf_path

    if not llamacpp.available():
        pytest.skip("llama-cpp-python not installed (bash scripts/setup.sh ...,llama)")
    tiny = llamacpp.LlamaCppGenerator(gguf_path("0.5b"), n_ctx=64)
    (out,) = tiny.generate_sync([[{"role": "user", "content": "word " * 300}]], max_tokens=5)
    assert isinstance(out, Generation) and out.error == "input" and not out.ok and out.text == ""


def test_label_that_is_not_one_token_is_a_clear_error(small_judge):
    from rubrix.errors import UserError

    req = JudgeRequest(messages=({"role": "user", "content": "x"},), options=(("Absolutely certain", 1.0),
                                                                              ("No", 0.0)))
    with pytest.raises(UserError):
        small_judge.judge_sync([req])
