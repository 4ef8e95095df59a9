"""Trainer adapters (TRL, verl, OpenRLHF) against the exact call and return shapes those trainers use.

Judgments come from the deterministic FakeJudge (named as such): these tests check wiring,
shapes, failure semantics and bookkeeping, not judging quality. Each expected reward is recomputed
with a plain :class:`~rubrix.scoring.Scorer`, so the adapters are checked against the library.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import threading

import pytest

from rubrix.errors import UserError
from rubrix.integrations import openrlhf as orl
from rubrix.integrations import trl as rtrl
from rubrix.integrations import verl as rverl
from rubrix.integrations.messages import completion_text
from rubrix.judges.base import Verdict
from rubrix.judges.fake import FakeJudge
from rubrix.policy import CircuitOpenError, RewardFailure
from rubrix.records import Sample
from rubrix.rewards import RewardItem, RubricReward
from rubrix.scoring import Scorer

RUBRIC = {
    "name": "tiny",
    "criteria": [
        {"id": "answers", "text": "The response answers the question.", "weight": 3},
        {"id": "concise", "text": "The response is at most two sentences.", "weight": 1},
        {"id": "rude", "text": "The response is rude.", "weight": -2},
    ],
}


def expected_rewards(pairs: list[tuple], rubric=RUBRIC, judge=None) -> list[float | None]:
    scorer = Scorer(rubric, judge or FakeJudge(), cache=False)
    results = scorer.score([Sample(id=str(i), prompt=p, response=r) for i, (p, r) in enumerate(pairs)])
    return [x.reward for x in results]


class CrashingJudge(FakeJudge):
    """A judge whose backend raises (a dead server process, a bug): every call fails."""

    async def judge(self, requests):
        raise ConnectionError("judge server is gone")


class SlowCountingJudge(FakeJudge):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def judge(self, requests):
        self.batches.append(len(requests))
        await asyncio.sleep(0.01)
        return await super().judge(requests)


# ---------------------------------------------------------------------------------------- helpers


def test_completion_text_formats() -> None:
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"
    tool_turns = [{"role": "assistant", "content": "", "tool_calls": [{"name": "f"}]},
                  {"role": "tool", "content": "42"}, {"role": "assistant", "content": "It is 42."}]
    assert completion_text(tool_turns) == "It is 42."
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"},
                                                              {"type": "text", "text": "b"}]}]) == "ab"
    assert completion_text("<think>hmm</think>The answer.") == "The answer."
    assert completion_text("<think>never closed") == ""
    assert completion_text("<think>x</think>A", include_reasoning=True) == "<think>x</think>A"
    msg = [{"role": "assistant", "content": "A", "reasoning_content": "because"}]
    assert completion_text(msg) == "A"
    assert completion_text(msg, include_reasoning=True) == "<think>because</think>\nA"


# -------------------------------------------------------------------------------------------- TRL


def test_trl_reward_func_signature_and_values() -> None:
    fn = rtrl.reward_func(RUBRIC, FakeJudge(), cache=False)
    assert inspect.iscoroutinefunction(fn)          # TRL's async detection
    assert fn.__name__ == "rubrix_tiny"             # the rewards/<name>/mean metric key
    params = inspect.signature(fn).parameters
    assert list(params)[:3] == ["prompts", "completions", "completion_ids"]
    assert any(p.kind == p.VAR_KEYWORD for p in params.values())
    prompts = ["What is 2+2?", "What is 2+2?", "Name a color."]
    completions = ["4", "Five.", "Blue."]
    extra: dict[str, list] = {}
    metrics: dict[str, float] = {}
    out = asyncio.run(fn(prompts=prompts, completions=completions, completion_ids=[[1], [2], [3]],
                         trainer_state=object(), log_extra=lambda c, v: extra.__setitem__(c, v),
                         log_metric=lambda n, v: metrics.__setitem__(n, v), task=["a", "b", "c"]))
    assert out == pytest.approx(expected_rewards(list(zip(prompts, completions, strict=True))))
    assert extra == {"rubrix_status": ["ok", "ok", "ok"]}
    assert metrics == {"rubrix/failure_rate": 0.0}
    fn.rubrix.close()


def test_trl_conversational_format_is_graded_on_the_assistant_text() -> None:
    fn = rtrl.reward_func(RUBRIC, FakeJudge(), cache=False, name="my_reward")
    assert fn.__name__ == "my_reward"
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
    completions = [[{"role": "assistant", "content": "<think>2 and 2</think>4"}],
                   [{"role": "assistant", "content": "Four."}]]
    out = asyncio.run(fn(prompts=[prompt, prompt], completions=completions))
    assert out == pytest.approx(expected_rewards([(prompt, "4"), (prompt, "Four.")]))


def test_trl_per_row_rubric_and_reference_columns() -> None:
    fn = rtrl.reward_func(None, FakeJudge(), cache=False)
    rubric_a = json.dumps([{"criterion": "Mentions Canberra.", "points": 5}])
    rubric_b = [{"text": "Is polite.", "weight": 2}]
    out = asyncio.run(fn(prompts=["Capital of Australia?", "Say hi"], completions=["Canberra", "Hi!"],
                         rubric=[rubric_a, rubric_b], reference=["Canberra", ""]))
    scorer = Scorer(None, FakeJudge(), cache=False)
    a = scorer.score([{"id": "x", "prompt": "Capital of Australia?", "response": "Canberra",
                       "rubric": json.loads(rubric_a), "reference": "Canberra"}])[0].reward
    b = scorer.score([{"id": "y", "prompt": "Say hi", "response": "Hi!", "rubric": rubric_b}])[0].reward
    assert out == pytest.approx([a, b])
    with pytest.raises(UserError, match="no rubric"):
        asyncio.run(fn(prompts=["q"], completions=["a"]))


def test_trl_failures_none_group_mean_and_breaker() -> None:
    judge = FakeJudge(fail_rate=0.3)
    prompts = [f"Question {i // 4}?" for i in range(16)]
    completions = [f"Answer {i}." for i in range(16)]
    raw = expected_rewards(list(zip(prompts, completions, strict=True)), judge=FakeJudge(fail_rate=0.3))
    assert any(r is None for r in raw) and any(r is not None for r in raw)
    fn = rtrl.reward_func(RUBRIC, judge, cache=False, breaker=None)
    out = asyncio.run(fn(prompts=prompts, completions=completions))
    assert out == raw                                # failures stay None: TRL leaves them out
    fn_mean = rtrl.reward_func(RUBRIC, FakeJudge(fail_rate=0.3), cache=False, breaker=None,
                               failure="group_mean")
    out_mean = asyncio.run(fn_mean(prompts=prompts, completions=completions))
    for i, value in enumerate(out_mean):
        group = [r for j, r in enumerate(raw) if j // 4 == i // 4 and r is not None]
        if raw[i] is not None:
            assert value == raw[i]
        elif group:
            assert value == pytest.approx(sum(group) / len(group))
        else:
            assert value is None
    fn_tripped = rtrl.reward_func(RUBRIC, FakeJudge(fail_rate=0.9), cache=False, breaker=0.5)
    with pytest.raises(CircuitOpenError):
        asyncio.run(fn_tripped(prompts=prompts, completions=completions))
    fn_raise = rtrl.reward_func(RUBRIC, FakeJudge(fail_rate=0.3), cache=False, breaker=None, failure="raise")
    with pytest.raises(RewardFailure):
        asyncio.run(fn_raise(prompts=prompts, completions=completions))


def test_trl_crashing_judge_becomes_failures_not_a_crash() -> None:
    fn = rtrl.reward_func(RUBRIC, CrashingJudge(), cache=False, breaker=None, failure="constant:0")
    assert asyncio.run(fn(prompts=["q", "q"], completions=["a", "b"])) == [0.0, 0.0]
    tripped = rtrl.reward_func(RUBRIC, CrashingJudge(), cache=False)  # default breaker 0.5
    with pytest.raises(CircuitOpenError, match="100%"):
        asyncio.run(tripped(prompts=["q"] * 8, completions=[str(i) for i in range(8)]))


def test_trl_criterion_funcs_share_one_judgment_and_sum_to_the_reward() -> None:
    judge = FakeJudge()
    funcs, weights = rtrl.criterion_reward_funcs(RUBRIC, judge, cache=False)
    names = ["rubrix_tiny__answers", "rubrix_tiny__concise", "rubrix_tiny__rude"]
    assert [f.__name__ for f in funcs] == names
    assert weights == pytest.approx([3 / 4, 1 / 4, -2 / 4])
    assert all(inspect.iscoroutinefunction(f) for f in funcs)
    prompts, completions = ["What is 2+2?"] * 3, ["4", "Five.", "Four, obviously, you fool."]

    async def trl_like():  # TRL gathers all async reward functions on one loop
        return await asyncio.gather(*[f(prompts=prompts, completions=completions) for f in funcs])

    columns = asyncio.run(trl_like())
    assert judge.calls == 3 * 3                       # one judgment per (sample, criterion), not per function
    combined = [sum(w * col[i] for w, col in zip(weights, columns, strict=True)) for i in range(3)]
    assert combined == pytest.approx(expected_rewards(list(zip(prompts, completions, strict=True))))
    with pytest.raises(UserError):
        rtrl.criterion_reward_funcs(None, judge, cache=False)


def test_micro_batching_coalesces_concurrent_callers() -> None:
    judge = SlowCountingJudge()
    core = RubricReward(RUBRIC, judge, cache=False, max_wait_s=0.05)
    items = [RewardItem(prompt="q", response=f"answer {i}") for i in range(6)]
    results: list = [None] * 6

    def call(i: int) -> None:  # six threads, like OpenRLHF's asyncio.to_thread workers
        results[i] = core.score([items[i]])[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(judge.batches) == 6 * 3
    assert len(judge.batches) < 6                        # fewer judge calls than callers
    expected = expected_rewards([("q", f"answer {i}") for i in range(6)])
    assert [r.reward for r in results] == pytest.approx(expected)
    # identical items in one call are judged once
    judge.batches.clear()
    core.score([RewardItem(prompt="q", response="same")] * 5)
    assert judge.batches == [3]
    core.close()


# ------------------------------------------------------------------------------------------- verl


def test_verl_compute_score_shape_and_values() -> None:
    fn = rverl.make_compute_score(RUBRIC, FakeJudge(), cache=False)
    assert inspect.iscoroutinefunction(fn)           # verl awaits it on its worker loop
    out = asyncio.run(fn(data_source="tiny", solution_str="Canberra.", ground_truth="Canberra",
                         extra_info={"question": "Capital of Australia?", "index": 3}))
    assert list(out) == ["score", "rubrix_ok", "rubrix_imputed", "rubrix_error", "c_answers", "c_concise",
                         "c_rude"]
    assert list(out) == list(fn.keys)
    scorer = Scorer(RUBRIC, FakeJudge(), cache=False)
    [ref] = scorer.score([Sample(id="x", prompt="Capital of Australia?", response="Canberra.",
                                 reference="Canberra")])
    assert out["score"] == pytest.approx(ref.reward)
    assert out["c_answers"] == pytest.approx(ref.criteria["answers"].p)
    assert out["rubrix_ok"] == 1.0 and out["rubrix_imputed"] == 0.0
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())


def test_verl_failures_keep_keys_and_stay_finite() -> None:
    fn = rverl.make_compute_score(RUBRIC, FakeJudge(fail_rate=0.5), cache=False, breaker=None)
    outs = fn.batch(["d"] * 12, [f"answer {i}" for i in range(12)], ["gt"] * 12, [{"question": "q"}] * 12)
    assert {tuple(o) for o in outs} == {tuple(fn.keys)}   # same keys on every sample (verl indexes by them)
    assert any(o["rubrix_ok"] == 0.0 for o in outs) and any(o["rubrix_ok"] == 1.0 for o in outs)
    for o in outs:
        assert all(math.isfinite(v) for v in o.values())
        if o["rubrix_ok"] == 0.0:
            assert o["score"] == 0.0 and o["rubrix_imputed"] == 1.0
    fn_c = rverl.make_compute_score(RUBRIC, CrashingJudge(), cache=False, breaker=None,
                                    failure="constant:0.5")
    out = fn_c.sync("d", "x", "gt", {"question": "q"})
    assert out["score"] == 0.5 and out["rubrix_ok"] == 0.0 and list(out) == list(fn_c.keys)
    assert out["c_answers"] == 0.0


def test_verl_breaker_and_refused_policies() -> None:
    fn = rverl.make_compute_score(RUBRIC, CrashingJudge(), cache=False)

    async def stream():  # verl streams one sample per call
        for i in range(10):
            await fn(data_source="d", solution_str=f"a{i}", ground_truth="", extra_info={"question": "q"})

    # a BaseException, so that no verl manager's ``except Exception`` turns the stop into 0.0
    with pytest.raises(rverl.RewardRunStopped) as info:
        asyncio.run(stream())
    assert isinstance(info.value.__cause__, CircuitOpenError) and not isinstance(info.value, Exception)
    for bad in ("none", "group_mean", "bogus"):
        with pytest.raises(UserError):
            rverl.make_compute_score(RUBRIC, FakeJudge(), failure=bad, cache=False)


def test_verl_row_rubric_from_ground_truth_and_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    fn = rverl.make_compute_score(None, FakeJudge(), cache=False)
    assert list(fn.keys) == ["score", "rubrix_ok", "rubrix_imputed", "rubrix_error", "rubrix_failed_criteria"]
    gt = json.dumps([{"criterion": "Says Canberra.", "points": 4},
                     {"criterion": "Says Sydney.", "points": -4}])
    out = fn.sync("hb", "Canberra.", gt, {"prompt": [{"role": "user", "content": "Capital?"}]})
    scorer = Scorer(None, FakeJudge(), cache=False)
    messages = [{"role": "user", "content": "Capital?"}]
    [ref] = scorer.score([{"id": "x", "prompt": messages, "response": "Canberra.", "rubric": json.loads(gt)}])
    assert out["score"] == pytest.approx(ref.reward) and out["rubrix_failed_criteria"] == 0.0
    # a row without any rubric: the same keys, flagged, said in the log; rows that keep failing stop the run
    lost = fn.sync("hb", "x", "", {})
    assert list(lost) == list(fn.keys) and lost["rubrix_error"] == 1.0 and lost["score"] == 0.0
    with pytest.raises(rverl.RewardRunStopped, match="no rubric"):
        for _ in range(10):
            fn.sync("hb", "x", "", {})
    # the module-level entry point, configured like verl's reward_kwargs / RUBRIX_* variables
    monkeypatch.setenv("RUBRIX_JUDGE", "fake")
    monkeypatch.setenv("RUBRIX_CACHE", "0")
    out_env = asyncio.run(rverl.compute_score(data_source="hb", solution_str="Canberra.", ground_truth=gt,
                                              extra_info={"prompt": messages}))
    assert out_env["score"] == pytest.approx(ref.reward)
    out_kw = rverl.compute_score_sync("d", "Canberra.", "Canberra", {"question": "Capital?"},
                                      rubric="helpfulness", judge="fake", cache="0")
    assert "c_addresses_main_request" in out_kw
    assert rverl.compute_score_batch(["d"], ["Canberra."], ["Canberra"], [{"question": "Capital?"}],
                                     rubric="helpfulness", judge="fake", cache="0") == [out_kw]


# --------------------------------------------------------------------------------------- OpenRLHF

CHATML_PROMPT = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is the capital of "
                 "Australia?<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("query, prompt, eos, expected", [
    (CHATML_PROMPT + "Canberra.<|im_end|>", CHATML_PROMPT, None, "Canberra."),
    (CHATML_PROMPT + "Canberra.<|im_end|>", CHATML_PROMPT, "<|im_end|>", "Canberra."),
    (CHATML_PROMPT + "Canberra.<|im_end|><|endoftext|>", CHATML_PROMPT, None, "Canberra."),
    (CHATML_PROMPT + "Canberra.<|im_end|>\n", CHATML_PROMPT, "<|im_end|>", "Canberra."),
    (CHATML_PROMPT + "Canberra.</s>", CHATML_PROMPT, "</s>", "Canberra."),
    (CHATML_PROMPT[40:] + "Canberra.<|im_end|>", CHATML_PROMPT, None, "Canberra."),  # prompt cut on the left
    ("Q: 2+2?\nA: 4</s>", "Q: 2+2?\nA: ", "</s>", "4"),
    ("unrelated text", "some prompt", None, "unrelated text"),
    (CHATML_PROMPT, CHATML_PROMPT, None, ""),                                         # empty response
])
def test_strip_query(query: str, prompt: str, eos, expected: str) -> None:
    assert orl.strip_query(query, prompt, eos) == expected


def test_prompt_from_template() -> None:
    assert orl.prompt_from_template(CHATML_PROMPT) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of Australia?"}]
    llama = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
             "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert orl.prompt_from_template(llama) == [{"role": "user", "content": "Hi there"}]
    assert orl.prompt_from_template("plain text prompt") == "plain text prompt"


def test_openrlhf_reward_func_shapes() -> None:
    torch = pytest.importorskip("torch")
    fn = orl.make_reward_func(RUBRIC, FakeJudge(), cache=False)
    query = CHATML_PROMPT + "Canberra.<|im_end|>"
    out = fn([query], [CHATML_PROMPT], [""])             # OpenRLHF calls with one-element lists
    assert set(out) == {"rewards", "scores", "extra_logs"}
    assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].shape == (1,)
    assert out["rewards"].dtype == torch.float32
    assert set(out["extra_logs"]) == {"rubrix_ok", "rubrix_imputed", "rubrix/answers", "rubrix/concise",
                                      "rubrix/rude"}
    prompt_msgs = [{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": "What is the capital of Australia?"}]
    [expected] = expected_rewards([(prompt_msgs, "Canberra.")])
    assert out["rewards"].item() == pytest.approx(expected, abs=1e-6)
    assert 0.0 <= out["scores"].item() <= 1.0
    # labels: a reference answer, a per-row rubric, or an object with both
    for label in ("Canberra", json.dumps([{"criterion": "Says Canberra.", "points": 3}]),
                  json.dumps({"rubric": [{"text": "Says Canberra.", "weight": 3}], "reference": "Canberra"})):
        res = fn([query, query], [CHATML_PROMPT, CHATML_PROMPT], [label, label])
        assert res["rewards"].shape == (2,) and torch.isfinite(res["rewards"]).all()


def test_openrlhf_failures_are_finite_and_flagged() -> None:
    torch = pytest.importorskip("torch")
    fn = orl.make_reward_func(RUBRIC, CrashingJudge(), cache=False, breaker=None)
    out = fn(["x" + "<|im_end|>"], ["x"], [""])
    assert out["rewards"].tolist() == [0.0] and out["extra_logs"]["rubrix_ok"].tolist() == [0.0]
    assert torch.isfinite(out["rewards"]).all()
    values = fn.values(fn.rubrix.score([RewardItem(prompt="p", response="r")]))
    assert values["rewards"] == [0.0] and isinstance(values["rewards"][0], float)
    with pytest.raises(UserError):
        orl.make_reward_func(RUBRIC, FakeJudge(), failure="none", cache=False)
    with pytest.raises(UserError):
        fn(["a", "b"], ["a"], [""])


def test_openrlhf_module_reward_func_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.setattr(orl, "_DEFAULT", {})
    monkeypatch.setenv("RUBRIX_RUBRIC", "helpfulness")
    monkeypatch.setenv("RUBRIX_JUDGE", "fake")
    monkeypatch.setenv("RUBRIX_CACHE", "0")
    out = orl.reward_func([CHATML_PROMPT + "Canberra.<|im_end|>"], [CHATML_PROMPT], [""])
    assert out["rewards"].shape == (1,) and "rubrix/addresses_main_request" in out["extra_logs"]


# ------------------------------------------------------------------------------- verdict semantics


def test_partial_failure_is_never_a_number() -> None:
    class OneBadCriterion(FakeJudge):
        async def judge(self, requests):
            out = await super().judge(requests)
            return [Verdict.failed("parse", "garbled") if r.meta.get("criterion") == "concise" else v
                    for r, v in zip(requests, out, strict=True)]

    core = RubricReward(RUBRIC, OneBadCriterion(), cache=False, breaker=None)
    [r] = core.score([RewardItem(prompt="q", response="a")])
    assert r.status == "partial" and r.reward is None and r.score is None
    assert r.criteria["concise"] is None and r.criteria["answers"] is not None
    assert "concise" in (r.error or "")
    core.close()


def test_result_rows_have_the_same_criterion_keys_with_nulls_for_failures() -> None:
    scorer = Scorer(RUBRIC, FakeJudge(fail_rate=0.4), cache=False)
    rows = [r.to_row() for r in scorer.score([Sample(id=str(i), prompt="q", response=f"a{i}", group_id="g")
                                              for i in range(12)])]
    assert {tuple(r["criteria"]) for r in rows} == {("answers", "concise", "rude")}
    failed = [c for r in rows for c in r["criteria"].values() if c["error"]]
    assert failed and all(c["p"] is None and c["met"] is None for c in failed)
    assert all(r["reward"] is None for r in rows if r["status"] != "ok")
    assert all(r["group_id"] == "g" for r in rows)


def test_verl_a_bad_row_gets_the_same_keys_flagged_not_an_exception() -> None:
    fn = rverl.make_compute_score(RUBRIC, FakeJudge(), cache=False)
    good = asyncio.run(fn(data_source="d", solution_str="x", ground_truth="gt", extra_info={"question": "q"}))
    bad = asyncio.run(fn(data_source="d", solution_str="x", ground_truth="gt",
                         extra_info={"question": "q", "rubric": "[{\"text\": 3}]"}))
    assert list(bad) == list(good) == list(fn.keys)
    assert bad["rubrix_error"] == 1.0 and bad["rubrix_ok"] == 0.0 and bad["score"] == 0.0
    assert good["rubrix_error"] == 0.0
    rows = fn.batch(["d", "d"], ["x", "y"], ["gt", "gt"], [{"question": "q"}, {"rubric": "[{\"text\": 3}]"}])
    assert [r["rubrix_error"] for r in rows] == [0.0, 1.0] and {tuple(r) for r in rows} == {tuple(fn.keys)}
    assert fn.reward.deadline_s == rverl.DEFAULT_DEADLINE_S < 300  # below rate_limited's reward.timeout


def test_verl_router_address_is_the_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    """verl's GenRM router: an OpenAI-compatible endpoint at host:port; the model named or discovered."""
    judge, options = rverl.judge_for({"reward_router_address": "10.0.0.5:8123", "judge_model": "Qwen/Q-7B"})
    assert (judge, options) == ("openai:Qwen/Q-7B", {"base_url": "http://10.0.0.5:8123/v1"})
    judge, _ = rverl.judge_for({"reward_router_address": "h:1", "judge": "openai:m1"})
    assert judge == "openai:m1"
    monkeypatch.setattr(rverl, "_served_model", lambda base_url: f"served-at-{base_url}")
    judge, _ = rverl.judge_for({"reward_router_address": "h:1"})
    assert judge == "openai:served-at-http://h:1/v1"
    for cfg, field in (({"reward_router_address": "h:1", "judge": "embedded"}, "judge"),
                       ({"reward_router_address": "h:1", "base_url": "http://other/v1"}, "base_url")):
        with pytest.raises(UserError) as info:
            rverl.judge_for(cfg)
        assert info.value.field == field
    assert rverl.judge_for({"judge": "fake"}) == ("fake", {})
