"""The scorer's logic with a deterministic fake judge: results, failures, caching, modes, per-row rubrics.

``FakeJudge`` (``rubrix.judges.fake``) answers with pseudo-random probabilities derived from a hash of
each request and can inject typed failures; it never looks at meaning, so these tests check
plumbing and arithmetic only. Model behaviour is tested elsewhere with real judges.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rubrix import __version__
from rubrix import aggregate as agg
from rubrix._paths import verdict_cache_path
from rubrix.aggregate import CriterionValue, scale_to_unit
from rubrix.cache import VerdictCache
from rubrix.judges.base import Verdict
from rubrix.judges.fake import FakeJudge
from rubrix.records import Sample
from rubrix.rubric import rubric_from_data
from rubrix.scoring import SampleResult, Scorer


@pytest.fixture(autouse=True)
def _rubrix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "rubrix_home"
    monkeypatch.setenv("RUBRIX_HOME", str(home))
    return home


RUBRIC = rubric_from_data({
    "name": "scoring test",
    "criteria": [
        {"id": "answers", "text": "The response answers the question.", "weight": 5},
        {"id": "cites", "text": "The response cites a source.", "weight": 2},
        {"id": "concise", "text": "The response is concise.", "category": "optional"},
        {"id": "rude", "text": "The response insults the user.", "weight": -3},
        {"id": "depth", "text": "The response explains its reasoning.", "weight": 3,
         "scale": {1: "None.", 2: "A hint.", 3: "Some.", 4: "Most steps.", 5: "Every step."}},
    ],
})
BINARY = rubric_from_data({
    "name": "binary only",
    "criteria": [c.to_dict() for c in RUBRIC.criteria if not c.is_scale],
})

RESULT_ROW_KEYS = {"id", "reward", "reward_raw", "status", "criteria", "judge", "rubric_hash",
                   "template_hash", "rubrix_version"}


def samples(n: int = 12) -> list[dict]:
    return [{"id": f"s{i}", "prompt": f"Question number {i}?", "response": f"Answer number {i}."}
            for i in range(n)]


def expected_reward(rubric, result: SampleResult) -> float | None:
    """Recompute the reward from the row's criterion values, independently of the scorer."""
    values = []
    for c in rubric.criteria:
        p = result.criteria[c.id].p
        if p is None:
            return None
        values.append(CriterionValue(c, p))
    return agg.aggregate(rubric.aggregation, values)


# ------------------------------------------------------------------------------------ basics


def test_one_result_per_sample_in_order() -> None:
    judge = FakeJudge()
    scorer = Scorer(RUBRIC, judge, cache=False)
    results = scorer.score(samples())
    assert [r.id for r in results] == [f"s{i}" for i in range(12)]
    assert all(isinstance(r, SampleResult) for r in results)
    assert judge.calls == 12 * len(RUBRIC.criteria)


def test_reward_is_weighted_over_criterion_values() -> None:
    results = Scorer(RUBRIC, FakeJudge(), cache=False).score(samples())
    positive = sum(c.weight for c in RUBRIC.criteria if c.weight > 0)
    for r in results:
        assert r.status == "ok"
        assert set(r.criteria) == {c.id for c in RUBRIC.criteria}
        manual = sum(c.weight * r.criteria[c.id].p for c in RUBRIC.criteria) / positive
        assert r.reward == pytest.approx(manual)
        assert r.reward == pytest.approx(expected_reward(RUBRIC, r))
        assert r.reward_raw == pytest.approx(manual * positive)
        for c in RUBRIC.criteria:
            cr = r.criteria[c.id]
            assert 0.0 <= cr.p <= 1.0
            assert cr.met == (cr.p >= 0.5)
            assert cr.error is None
        depth = r.criteria["depth"]
        assert 1.0 <= depth.level <= 5.0 and depth.p == pytest.approx(scale_to_unit(depth.level))
    assert len({r.reward for r in results}) > 1  # the fake judge does vary


def test_hard_thresholding() -> None:
    soft = Scorer(BINARY, FakeJudge(), cache=False).score(samples(6))
    hard = Scorer(BINARY, FakeJudge(), cache=False, hard=True).score(samples(6))
    positive = sum(c.weight for c in BINARY.criteria if c.weight > 0)
    for s, h in zip(soft, hard, strict=True):
        met_sum = sum(c.weight for c in BINARY.criteria if s.criteria[c.id].met)
        assert h.reward == pytest.approx(met_sum / positive)


def test_result_rows_have_the_design_keys() -> None:
    results = Scorer(RUBRIC, FakeJudge(seed=3), cache=False).score(samples(3))
    for r in results:
        row = r.to_row()
        assert RESULT_ROW_KEYS <= set(row)
        assert row["judge"] == "fake:3"  # a fake judge is named as such in every row
        assert row["rubric_hash"] == RUBRIC.content_hash()
        assert row["template_hash"].startswith("sha256:")
        assert row["rubrix_version"] == __version__
        assert row["status"] == "ok"
        for cid, c in row["criteria"].items():
            assert set(c) >= {"p", "met", "error"}, cid
        json.dumps(row, allow_nan=False)


def test_same_input_same_rewards() -> None:
    a = Scorer(RUBRIC, FakeJudge(), cache=False).score(samples())
    b = Scorer(RUBRIC, FakeJudge(), cache=False).score(samples())
    assert [r.reward for r in a] == [r.reward for r in b]


def test_judge_spec_string() -> None:
    scorer = Scorer(RUBRIC, "fake:5", cache=False)
    assert isinstance(scorer.judge, FakeJudge) and scorer.judge.name == "fake:5"
    assert scorer.score(samples(1))[0].judge == "fake:5"


# ----------------------------------------------------------------------------------- failures


def test_injected_failures_are_never_numbers() -> None:
    results = Scorer(RUBRIC, FakeJudge(fail_rate=0.3), cache=False).score(samples(30))
    affected = [r for r in results if r.status != "ok"]
    assert affected, "fail_rate=0.3 over 150 verdicts should fail some"
    assert any(r.status == "ok" for r in results)
    for r in results:
        failing = [cid for cid, c in r.criteria.items() if c.error]
        if not failing:
            assert r.status == "ok" and r.reward is not None
            continue
        assert r.reward is None and r.reward_raw is None
        assert r.status == ("failed" if len(failing) == len(r.criteria) else "partial")
        for cid in failing:
            c = r.criteria[cid]
            assert c.p is None and c.met is None and c.error == "server"
            assert r.errors[cid]
        row = r.to_row()
        assert row["reward"] is None
        assert all(row["criteria"][cid]["p"] is None for cid in failing)
        assert "NaN" not in json.dumps(row)
        for cid, c in r.criteria.items():
            if cid not in failing:
                assert c.p is not None  # the criteria that were judged keep their values


def test_all_failed_is_failed() -> None:
    results = Scorer(RUBRIC, FakeJudge(fail_rate=1.0), cache=False).score(samples(3))
    assert {r.status for r in results} == {"failed"}
    assert all(r.reward is None for r in results)


class ValuelessFakeJudge(FakeJudge):
    """A fake that answers without error but also without a value (a malformed backend answer)."""

    async def judge(self, requests):
        self.calls += len(requests)
        return [Verdict(p=None) for _ in requests]


def test_answer_without_value_is_a_parse_failure() -> None:
    crit = Scorer(BINARY, ValuelessFakeJudge(), cache=False).score(samples(1))[0]
    assert crit.status == "failed" and crit.reward is None
    assert {c.error for c in crit.criteria.values()} == {"parse"}
    principles = rubric_from_data({"name": "p", "principles": ["Be kind."]})
    res = Scorer(principles, ValuelessFakeJudge(), cache=False).score(samples(1))[0]
    assert res.status == "failed" and res.reward is None
    assert res.criteria["principles"].error == "parse"


# -------------------------------------------------------------------------------------- cache


def test_cache_answers_second_run(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    first_judge = FakeJudge()
    first = Scorer(RUBRIC, first_judge, cache=str(path))
    a = first.score(samples())
    first.close()
    assert first_judge.calls == 12 * len(RUBRIC.criteria)
    assert all(r.cached == 0 for r in a)

    second_judge = FakeJudge()
    second = Scorer(RUBRIC, second_judge, cache=str(path))
    b = second.score(samples())
    assert second_judge.calls == 0
    assert all(r.cached == len(RUBRIC.criteria) for r in b)
    assert [r.reward for r in b] == [r.reward for r in a]
    assert [r.to_row() for r in b] == [r.to_row() for r in a]
    second.close()


def test_cache_is_keyed_by_judge_identity(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    Scorer(BINARY, FakeJudge(seed=1), cache=str(path)).score(samples(2))
    other = FakeJudge(seed=2)
    Scorer(BINARY, other, cache=str(path)).score(samples(2))
    assert other.calls == 2 * len(BINARY.criteria)


def test_failures_are_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    first = Scorer(RUBRIC, FakeJudge(fail_rate=0.3), cache=str(path)).score(samples(20))
    failed = sum(1 for r in first for c in r.criteria.values() if c.error)
    assert failed > 0
    judge = FakeJudge(fail_rate=0.3)
    second = Scorer(RUBRIC, judge, cache=str(path)).score(samples(20))
    assert judge.calls == failed  # only the failures are asked again
    assert sum(r.cached for r in second) == 20 * len(RUBRIC.criteria) - failed
    cache = VerdictCache(path)
    stored = cache._db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    assert stored == 20 * len(RUBRIC.criteria) - failed
    cache.close()


def test_default_cache_lives_under_rubrix_home(_rubrix_home: Path) -> None:
    scorer = Scorer(BINARY, FakeJudge())
    scorer.score(samples(1))
    scorer.close()
    assert verdict_cache_path() == _rubrix_home / "verdicts.sqlite"
    assert (_rubrix_home / "verdicts.sqlite").is_file()


# ---------------------------------------------------------------------------------- checklist


def test_checklist_mode() -> None:
    judge = FakeJudge()
    scorer = Scorer(RUBRIC, judge, mode="checklist", cache=False)
    results = scorer.score(samples(5))
    assert judge.calls == 5 * 2  # one checklist + one scale criterion per sample
    requests = scorer.requests_for(samples(1)[0])
    assert [r.kind for r in requests] == ["checklist", "scale"]
    assert requests[0].checklist_ids == tuple(c.id for c in RUBRIC.criteria if not c.is_scale)
    for r in results:
        assert r.status == "ok"
        for c in RUBRIC.criteria:
            if not c.is_scale:
                assert r.criteria[c.id].p in (0.0, 1.0)
        assert r.reward == pytest.approx(expected_reward(RUBRIC, r))


def test_checklist_failure_fails_its_criteria_only() -> None:
    results = Scorer(RUBRIC, FakeJudge(fail_rate=0.5), mode="checklist", cache=False).score(samples(20))
    assert any(r.status != "ok" for r in results)
    for r in results:
        if r.status != "ok":
            assert r.reward is None
            assert all(c.p is None for c in r.criteria.values() if c.error)


def test_checklist_mode_with_only_scale_criteria() -> None:
    scales = rubric_from_data({"name": "scales",
                               "criteria": [c.to_dict() for c in RUBRIC.criteria if c.is_scale]})
    results = Scorer(scales, FakeJudge(), mode="checklist", cache=False).score(samples(2))
    assert all(r.status == "ok" and r.reward is not None for r in results)


# ---------------------------------------------------------------------------- per-row rubrics


def test_per_row_rubric_overrides_run_rubric() -> None:
    row = {"id": "hb1", "prompt": [{"role": "user", "content": "I have a headache."}],
           "response": "Drink water and rest.",
           "rubrics": [{"criterion": "Suggests hydration.", "points": 6, "tags": ["axis:completeness"]},
                       {"criterion": "Recommends an unsafe dose.", "points": -8}]}
    plain = samples(1)[0]
    judge = FakeJudge()
    results = Scorer(RUBRIC, judge, cache=False).score([row, plain])
    hb, other = results
    assert set(hb.criteria) == {"c1", "c2"}
    assert set(other.criteria) == {c.id for c in RUBRIC.criteria}
    row_rubric = rubric_from_data({"name": "row", "criteria": [
        {"id": "c1", "text": "Suggests hydration.", "weight": 6},
        {"id": "c2", "text": "Recommends an unsafe dose.", "weight": -8}]})
    assert hb.rubric_hash == row_rubric.content_hash() != other.rubric_hash
    p1, p2 = hb.criteria["c1"].p, hb.criteria["c2"].p
    assert hb.reward == pytest.approx((6 * p1 - 8 * p2) / 6)
    assert judge.calls == 2 + len(RUBRIC.criteria)


def test_per_row_rubric_without_run_rubric() -> None:
    row = {"id": "r", "prompt": "Q?", "response": "A.",
           "rubric": [{"text": "The answer is short.", "weight": 1}]}
    (result,) = Scorer(None, FakeJudge(), cache=False).score([row])
    assert result.status == "ok" and list(result.criteria) == ["c1"]


def test_sample_objects_are_accepted() -> None:
    sample = Sample(id="obj", prompt="Q?", response="A.")
    (result,) = Scorer(BINARY, FakeJudge(), cache=False).score([sample])
    assert result.id == "obj"


# --------------------------------------------------------------------------------- principles


def test_principles_only_rubric() -> None:
    rubric = rubric_from_data({"name": "principles", "principles": ["Be accurate.", "Be kind."]})
    judge = FakeJudge()
    scorer = Scorer(rubric, judge, cache=False)
    (request,) = scorer.requests_for(samples(1)[0])
    assert request.kind == "scale"
    text = request.messages[-1]["content"]
    assert "Be accurate." in text and "Be kind." in text
    results = scorer.score(samples(6))
    assert judge.calls == 6
    for r in results:
        assert r.status == "ok"
        assert 0.0 <= r.reward <= 1.0
        assert list(r.criteria) == ["principles"]
        assert r.reward == pytest.approx(scale_to_unit(r.criteria["principles"].level))


def test_implicit_aggregation_uses_one_call() -> None:
    rubric = rubric_from_data({"name": "implicit", "aggregation": "implicit",
                               "criteria": [c.to_dict() for c in BINARY.criteria]})
    judge = FakeJudge()
    results = Scorer(rubric, judge, cache=False).score(samples(3))
    assert judge.calls == 3
    assert all(0.0 <= r.reward <= 1.0 for r in results)


# ------------------------------------------------------------------------------------- async


def test_sync_score_inside_a_running_event_loop() -> None:
    scorer = Scorer(RUBRIC, FakeJudge(), cache=False)
    expected = [r.reward for r in Scorer(RUBRIC, FakeJudge(), cache=False).score(samples(4))]

    async def main() -> list[SampleResult]:
        asyncio.get_running_loop()
        return scorer.score(samples(4))

    results = asyncio.run(main())
    assert [r.reward for r in results] == expected


def test_ascore_and_stream() -> None:
    scorer = Scorer(BINARY, FakeJudge(), cache=False)

    async def main():
        direct = await scorer.ascore(samples(5))
        objects = [Sample(id=s["id"], prompt=s["prompt"], response=s["response"]) for s in samples(5)]
        batches = [batch async for batch in scorer.ascore_stream(objects, batch_size=2)]
        return direct, batches

    direct, batches = asyncio.run(main())
    assert [len(b) for b in batches] == [2, 2, 1]
    assert [r.reward for b in batches for r in b] == [r.reward for r in direct]


def test_bad_mode_and_verdict_are_user_errors() -> None:
    from rubrix.errors import UserError

    with pytest.raises(UserError):
        Scorer(RUBRIC, FakeJudge(), mode="fast", cache=False)
    with pytest.raises(UserError):
        Scorer(RUBRIC, FakeJudge(), verdict="maybe", cache=False)


# ------------------------------------------------------------------------- pairs and the meter


def _pairs(n: int = 3):
    from rubrix.records import Pair

    return [Pair(id=f"p{i}", prompt=f"Question {i}?", chosen=f"Good answer {i}.", rejected=f"Bad {i}.")
            for i in range(n)]


def test_ascore_pairs_scores_both_sides_pointwise_in_one_judge_batch() -> None:
    judge = FakeJudge()
    scorer = Scorer(BINARY, judge, cache=False)
    pairs = _pairs(3)
    scored = asyncio.run(scorer.ascore_pairs(pairs))
    assert [ps.id for ps in scored] == ["p0", "p1", "p2"]
    # the same sides scored on their own give the same numbers: pair scoring is pointwise
    alone = scorer.score([Sample(id="x", prompt=p.prompt, response=p.chosen) for p in pairs]
                         + [Sample(id="y", prompt=p.prompt, response=p.rejected) for p in pairs])
    for i, ps in enumerate(scored):
        assert ps.chosen.reward == alone[i].reward and ps.rejected.reward == alone[3 + i].reward
        assert ps.margin == pytest.approx(ps.chosen.reward - ps.rejected.reward)
        assert ps.values("answers") == (ps.chosen.criteria["answers"].p, ps.rejected.criteria["answers"].p)
    cost = scorer.meter.total()
    assert cost.judge_calls == 2  # one batch for the three pairs, one for the check above
    assert cost.verdicts == 2 * (2 * 3 * len(BINARY.criteria)) and cost.cache_hits == 0


def test_ascore_pairs_takes_one_rubric_per_pair_and_keeps_failures_typed() -> None:
    one = rubric_from_data({"name": "one", "criteria": [{"id": "c1", "text": "The response is short.",
                                                         "weight": 1}]})
    two = rubric_from_data({"name": "two", "criteria": [
        {"id": "c1", "text": "The response is kind.", "weight": 1},
        {"id": "c2", "text": "The response is long.", "weight": 1}]})
    scorer = Scorer(None, FakeJudge(fail_rate=0.5), cache=False)
    scored = asyncio.run(scorer.ascore_pairs(_pairs(2) * 4, [one, two] * 4))
    assert [sorted(ps.chosen.criteria) for ps in scored[:2]] == [["c1"], ["c1", "c2"]]
    assert scorer.meter.total().judge_calls == 1
    failed = [ps for ps in scored if ps.chosen.reward is None or ps.rejected.reward is None]
    assert failed, "with half the verdicts failing, some pair must lack a reward"
    for ps in failed:
        assert ps.margin is None and ps.errors
        bad = next(cid for cid in ("c1", "c2") if ps.error(cid))
        assert ps.error(bad) == "server" and None in ps.values(bad)
    with pytest.raises(ValueError, match="rubrics for"):
        asyncio.run(scorer.ascore_pairs(_pairs(2), [one]))


def test_meter_counts_cache_hits_apart_and_stages_by_context(tmp_path: Path) -> None:
    scorer = Scorer(BINARY, FakeJudge(), cache=VerdictCache(tmp_path / "c.sqlite"))
    with scorer.meter.stage("first"):
        scorer.score(samples(2))
    before = scorer.meter.snapshot()
    with scorer.meter.stage("second"):
        scorer.score(samples(3))
    n = len(BINARY.criteria)
    first, second = scorer.meter.stages["first"], scorer.meter.stages["second"]
    assert (first.verdicts, first.cache_hits, first.judge_calls) == (2 * n, 0, 1)
    assert (second.verdicts, second.cache_hits, second.judge_calls) == (n, 2 * n, 1)
    assert first.prompt_tokens == 2 * n  # the fake judge reports one prompt token per verdict
    assert list(scorer.meter.since(before)) == ["second"] and scorer.meter.total(before).calls == n
    scorer.score(samples(1))  # fully cached, outside any stage: no judge call at all
    assert scorer.meter.stages["default"].judge_calls == 0
    assert scorer.meter.stages["default"].cache_hits == n
    scorer.close()


def test_every_pair_scorer_goes_through_ascore_pairs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Agreement evaluation, the transfer check and extraction's validation have no pair scoring of
    their own: each of them calls Scorer.ascore_pairs, one judge batch per set of pairs."""
    from rubrix._aio import run as run_sync
    from rubrix.evaluate import evaluate_pairs
    from rubrix.extract.propose import ExtractConfig, PairExtractor, Proposed
    from rubrix.extract.transfer import transfer_stats

    calls: list[int] = []
    original = Scorer.ascore_pairs

    async def spy(self, pairs, rubric=None):
        calls.append(len(pairs))
        return await original(self, pairs, rubric)

    monkeypatch.setattr(Scorer, "ascore_pairs", spy)
    pairs = _pairs(3)

    scorer = Scorer(None, FakeJudge(), cache=False)
    [report] = run_sync(evaluate_pairs(pairs, scorer=scorer, rubrics=[BINARY], batch_pairs=8, n_boot=10))
    assert calls == [3] and report.cost.judge_calls == 1
    assert report.calls == 2 * 3 * len(BINARY.criteria)

    calls.clear()
    scorer = Scorer(None, FakeJudge(), cache=False)
    run_sync(transfer_stats(scorer, ["The response is short.", "The response is kind."], pairs, tie=0.0,
                            batch_size=2))
    assert calls == [2, 1] and scorer.meter.stages["transfer"].judge_calls == 2

    calls.clear()
    scorer = Scorer(None, FakeJudge(), cache=False)
    extractor = PairExtractor(None, scorer, ExtractConfig())
    proposals = [[Proposed("The response is short.")], [Proposed("The response is kind."),
                                                        Proposed("The response cites a source.")]]
    verdicts = run_sync(extractor._validate(pairs[:2], proposals))
    assert calls == [2] and scorer.meter.stages["validate"].judge_calls == 1
    assert [len(v["evidence"]) for v in verdicts] == [1, 2]
