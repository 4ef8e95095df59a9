"""verifiers adapter: a rubrix rubric as a ``verifiers.v1`` judge (plugged through verifiers' own
loader) or a classic ``vf.Rubric``, depending on the installed release.

Skipped when verifiers is not installed (it is not in the default environment: verifiers 0.4
pins openai < 3). The FakeJudge stands in for the judge.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from rubrix.errors import MissingExtraError
from rubrix.judges.fake import FakeJudge
from rubrix.records import Sample
from rubrix.scoring import Scorer

RUBRIC = {"name": "tiny", "criteria": [
    {"id": "answers", "text": "The response answers the question.", "weight": 3},
    {"id": "rude", "text": "The response is rude.", "weight": -1}]}


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


class StubTrace:
    """What a judge reads of a ``verifiers.v1`` Trace (building a real one needs a whole rollout, and its
    fields differ between releases): the final reply, the transcript, and a metrics sink."""

    def __init__(self, reply: str):
        self.last_reply = reply
        self.transcript = f"[assistant]\n{reply}"
        self.metrics: dict[str, float] = {}

    def record_metric(self, name: str, value: float) -> None:
        self.metrics[name] = float(value)


def expected(prompt, response, judge=None) -> float:
    scorer = Scorer(RUBRIC, judge or FakeJudge(), cache=False)
    [r] = scorer.score([Sample(id="x", prompt=prompt, response=response)])
    return r.reward


def test_missing_verifiers_is_a_clear_error() -> None:
    if _has("verifiers"):
        pytest.skip("verifiers is installed")
    from rubrix.integrations import verifiers as rv

    with pytest.raises(MissingExtraError, match="rubrix\\[verifiers\\]"):
        rv.as_judge(RUBRIC, FakeJudge())
    with pytest.raises(MissingExtraError):
        rv.as_rubric(RUBRIC, FakeJudge())
    assert rv.criteria_file(RUBRIC)["criteria"][1]["choices"] == ["yes", "no"]  # works without verifiers


@pytest.mark.skipif(not _has("verifiers.v1"), reason="verifiers >= 0.4 not installed")
def test_v1_judge_scores_and_records_metrics() -> None:
    import verifiers.v1 as vf

    from rubrix.integrations.verifiers import as_judge

    judge = as_judge(RUBRIC, FakeJudge(), cache=False, name="rubric_reward")
    assert isinstance(judge, vf.Judge) and judge.reward_name == "rubric_reward"
    task = vf.TaskData(prompt="What is 2+2?")
    trace = StubTrace("4")
    score = asyncio.run(judge.score(task, trace))
    assert score == pytest.approx(expected("What is 2+2?", "4"))
    assert set(trace.metrics) == {"rubric_reward/answers", "rubric_reward/rude"}
    failing = as_judge(RUBRIC, FakeJudge(fail_rate=1.0), cache=False, breaker=None)
    with pytest.raises(Exception, match="failed"):  # v1: a judge failure errors the rollout
        asyncio.run(failing.score(task, StubTrace("4")))


@pytest.mark.skipif(not _has("verifiers.v1"), reason="verifiers >= 0.4 not installed")
def test_v1_judge_plugged_by_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented one-file plugin module, resolved by verifiers' own loader from a config entry."""
    from verifiers.v1.configs.judge import resolve_judges
    from verifiers.v1.utils.loaders import load_judge

    (tmp_path / "rubrix_judge.py").write_text(textwrap.dedent("""
        from rubrix.integrations.verifiers import RubrixJudge, RubrixJudgeConfig
        __all__ = ["RubrixJudge", "RubrixJudgeConfig"]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "home"))
    [config] = resolve_judges([{"id": "rubrix_judge", "rubric": "helpfulness", "rubrix_judge": "fake"}])
    judge = load_judge(config)
    import verifiers.v1 as vf

    trace = StubTrace("Paris.")
    score = asyncio.run(judge.score(vf.TaskData(prompt="Capital of France?"), trace))
    [ref] = Scorer("helpfulness", FakeJudge(), cache=False).score(
        [Sample(id="x", prompt="Capital of France?", response="Paris.")])
    assert score == pytest.approx(ref.reward)
    assert len(trace.metrics) == 12
    sys.modules.pop("rubrix_judge", None)


@pytest.mark.skipif(not _has("verifiers") or _has("verifiers.v1") and not _has("verifiers.rubrics"),
                    reason="classic verifiers (< 0.4) not installed")
def test_classic_rubric() -> None:
    from rubrix.integrations.verifiers import as_rubric

    rubric = as_rubric(RUBRIC, FakeJudge(), cache=False)
    names = [f.__name__ for f in rubric.funcs]
    assert names == ["rubrix_tiny", "rubrix_ok", "rubrix_tiny__answers", "rubrix_tiny__rude"]
    assert rubric.weights == [1.0, 0.0, 0.0, 0.0]
    state = {"prompt": [{"role": "user", "content": "2+2?"}], "answer": "", "info": {}, "task": "default",
             "completion": [{"role": "assistant", "content": "4"}]}
    asyncio.run(rubric.score_rollout(state))       # verifiers' own scoring path
    assert state["reward"] == pytest.approx(expected([{"role": "user", "content": "2+2?"}], "4"))
    assert state["metrics"]["rubrix_ok"] == 1.0
    assert set(state["metrics"]) == set(names)
    assert state["rubrix"].ok                       # one judgment shared by all functions
