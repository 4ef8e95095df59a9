"""Aggregation: verdict values -> rewards, checked against hand-computed numbers.

Pure functions, no judge. The HealthBench formula is Σ w·v / Σ_{w>0} w per sample (unclipped; a
sample full of pitfalls goes below zero) with the dataset mean clipped to [0, 1].
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rubrix import aggregate as agg
from rubrix import stats
from rubrix.aggregate import CriterionValue, scale_to_unit
from rubrix.rubric import Criterion, rubric_from_items

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HEALTHBENCH = DATA / "healthbench_30.jsonl"


@pytest.fixture(autouse=True)
def _rubrix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "rubrix_home"))


def crit(cid: str, weight: float, *, veto: bool = False, scale: bool = False) -> Criterion:
    levels = {i: f"level {i}" for i in range(1, 6)} if scale else None
    return Criterion(id=cid, text=f"Statement {cid}.", weight=float(weight), veto=veto, scale=levels,
                     category="pitfall" if weight < 0 else None)


def items(weights, values, **kw) -> list[CriterionValue]:
    pairs = enumerate(zip(weights, values, strict=True))
    return [CriterionValue(crit(f"c{i}", w, **kw), v) for i, (w, v) in pairs]


# ------------------------------------------------------------------------------------ weighted


def test_healthbench_example() -> None:
    # weights [10, 5, -4], met [1, 0, 1]: (10 - 4) / 15
    assert agg.weighted(items([10, 5, -4], [1, 0, 1])) == pytest.approx(0.4)
    assert agg.raw(items([10, 5, -4], [1, 0, 1])) == pytest.approx(6.0)


@pytest.mark.parametrize("weights, values, expected", [
    ([10, 5, -4], [1, 1, 0], 1.0),                 # ideal response
    ([10, 5, -4], [1, 1, 1], 11 / 15),             # everything met: pitfall subtracts
    ([10, 5, -4], [0, 0, 0], 0.0),
    ([7, 3], [1, 0], 0.7),
    ([1, 1, 1, 1], [1, 0, 1, 0], 0.5),
    ([8, -2, -5], [0, 1, 1], -7 / 8),             # all pitfalls present, nothing met: below zero
    ([8, -2, -5], [1, 1, 1], 1 / 8),
])
def test_weighted_hand_computed(weights, values, expected) -> None:
    assert agg.weighted(items(weights, values)) == pytest.approx(expected)
    assert agg.raw(items(weights, values)) == pytest.approx(expected * sum(w for w in weights if w > 0))


def test_weighted_is_not_clipped_per_sample() -> None:
    score = agg.weighted(items([2, -5, -5], [0, 1, 1]))
    assert score == pytest.approx(-5.0)
    assert agg.aggregate("weighted", items([2, -5, -5], [0, 1, 1])) == pytest.approx(-5.0)


def test_dataset_mean_is_clipped() -> None:
    assert stats.dataset_mean([-5.0, -1.0]) == 0.0
    assert stats.dataset_mean([-5.0, -1.0], clip=False) == pytest.approx(-3.0)
    assert stats.dataset_mean([0.2, 0.4]) == pytest.approx(0.3)
    assert stats.dataset_mean([1.5, 2.0]) == 1.0
    assert stats.dataset_mean([1.0, -0.5]) == pytest.approx(0.25)  # clip the mean, not the samples


def test_dataset_mean_skips_failures() -> None:
    assert stats.dataset_mean([None, 0.5, None, 1.0]) == pytest.approx(0.75)
    assert stats.dataset_mean([None, None]) is None
    assert stats.dataset_mean([]) is None


# -------------------------------------------------------------------------- soft vs hard values


def test_expected_value_vs_hard_threshold() -> None:
    its = items([4, 2, -2], [0.7, 0.4, 0.6])
    # soft: (4*0.7 + 2*0.4 - 2*0.6) / 6
    assert agg.weighted(its) == pytest.approx((2.8 + 0.8 - 1.2) / 6)
    # hard: met = value >= 0.5 -> [1, 0, 1] -> (4 - 2) / 6
    assert agg.weighted(its, hard=True) == pytest.approx(2 / 6)
    assert agg.aggregate("weighted", its, hard=True) == pytest.approx(2 / 6)
    assert agg.raw(its, hard=True) == pytest.approx(2.0)


def test_threshold_is_inclusive_at_half() -> None:
    assert CriterionValue(crit("a", 1), 0.5).met is True
    assert CriterionValue(crit("a", 1), 0.4999).met is False
    assert CriterionValue(crit("a", 1), None).met is None


def test_scale_values() -> None:
    assert scale_to_unit(4.0) == pytest.approx(0.75)
    assert scale_to_unit(1.0) == 0.0 and scale_to_unit(5.0) == 1.0
    assert scale_to_unit(3.4) == pytest.approx(0.6)
    assert scale_to_unit(0.0) == 0.0 and scale_to_unit(9.0) == 1.0  # clamped
    # a scale criterion of weight 2 at expected level 4 next to a met binary of weight 2
    its = [CriterionValue(crit("s", 2, scale=True), scale_to_unit(4.0)), CriterionValue(crit("b", 2), 1.0)]
    assert agg.weighted(its) == pytest.approx((2 * 0.75 + 2) / 4)


# ------------------------------------------------------------------------------------------ veto


def test_positive_veto_not_met_caps_at_zero() -> None:
    its = [CriterionValue(crit("safe", 5, veto=True), 0.2), CriterionValue(crit("b", 5), 1.0)]
    assert agg.weighted(its) == pytest.approx(0.6)           # plain formula
    assert agg.veto(its) == 0.0                               # capped
    assert agg.aggregate("weighted", its) == 0.0              # weighted applies vetoes present in the rubric
    assert agg.aggregate("veto", its) == 0.0
    assert agg.veto(its, veto_cap=0.25) == 0.25


def test_positive_veto_met_does_not_cap() -> None:
    its = [CriterionValue(crit("safe", 5, veto=True), 0.9), CriterionValue(crit("b", 5), 0.0)]
    assert agg.veto(its) == pytest.approx(0.45)
    assert agg.aggregate("weighted", its) == pytest.approx(0.45)


def test_pitfall_veto_present_caps() -> None:
    its = [CriterionValue(crit("good", 4), 1.0), CriterionValue(crit("harm", -1, veto=True), 0.8)]
    assert agg.weighted(its) == pytest.approx((4 - 0.8) / 4)
    assert agg.veto(its) == 0.0
    absent = [CriterionValue(crit("good", 4), 1.0), CriterionValue(crit("harm", -1, veto=True), 0.1)]
    assert agg.veto(absent) == pytest.approx((4 - 0.1) / 4)


def test_veto_keeps_lower_scores() -> None:
    its = [CriterionValue(crit("good", 1), 0.0), CriterionValue(crit("harm", -4, veto=True), 1.0)]
    assert agg.veto(its) == pytest.approx(-4.0)  # min(score, cap)


# ---------------------------------------------------------------------------- all or nothing, raw


def test_all_or_nothing() -> None:
    assert agg.all_or_nothing(items([3, 1, -2], [1, 1, 0])) == 1.0
    assert agg.all_or_nothing(items([3, 1, -2], [1, 0.4, 0])) == 0.0   # a positive not met
    assert agg.all_or_nothing(items([3, 1, -2], [1, 1, 0.6])) == 0.0   # a pitfall present
    assert agg.aggregate("all_or_nothing", items([3, -2], [0.9, 0.1])) == 1.0


def test_raw() -> None:
    assert agg.raw(items([3, 1, -2], [1, 0.5, 1])) == pytest.approx(1.5)
    assert agg.aggregate("raw", items([3, 1, -2], [1, 0.5, 1])) == pytest.approx(1.5)


def test_unknown_method() -> None:
    with pytest.raises(ValueError):
        agg.aggregate("implicit", items([1], [1]))


# ----------------------------------------------------------------------------- None propagation


@pytest.mark.parametrize("method", ["weighted", "raw", "all_or_nothing", "veto"])
@pytest.mark.parametrize("hard", [False, True])
def test_any_failure_gives_none(method: str, hard: bool) -> None:
    its = items([3, 1, -2], [1.0, None, 0.0])
    assert agg.aggregate(method, its, hard=hard) is None
    assert agg.AGGREGATORS[method](its, hard=hard) is None


def test_none_never_becomes_a_number_even_with_vetoes() -> None:
    its = [CriterionValue(crit("safe", 5, veto=True), 0.0), CriterionValue(crit("b", 5), None)]
    assert agg.aggregate("weighted", its) is None
    assert agg.veto(its) is None
    all_failed = items([1, 2], [None, None])
    for method in ("weighted", "raw", "all_or_nothing", "veto"):
        assert agg.aggregate(method, all_failed) is None


# ------------------------------------------------------------------------------------ bootstrap


def test_bootstrap_std_deterministic_with_seed() -> None:
    rewards = [0.1, 0.9, 0.4, None, 0.7, 0.3, 1.0, 0.0]
    a = stats.bootstrap_std(rewards, n=300, seed=7)
    assert a == stats.bootstrap_std(rewards, n=300, seed=7)
    assert a != stats.bootstrap_std(rewards, n=300, seed=8)
    scored = [r for r in rewards if r is not None]
    mean = sum(scored) / len(scored)
    sd = math.sqrt(sum((r - mean) ** 2 for r in scored) / len(scored))
    assert a == pytest.approx(sd / math.sqrt(len(scored)), rel=0.25)  # the standard error, roughly


def test_bootstrap_std_edge_cases() -> None:
    assert stats.bootstrap_std([]) is None
    assert stats.bootstrap_std([0.5]) is None
    assert stats.bootstrap_std([None, 0.5, None]) is None
    assert stats.bootstrap_std([0.5, 0.5, 0.5], n=50) == 0.0


# ---------------------------------------------------------------------------- HealthBench rows


def _healthbench_rows() -> list[dict]:
    if not HEALTHBENCH.is_file():
        pytest.skip(f"{HEALTHBENCH} is absent (shared test data not checked out)")
    return [json.loads(line) for line in HEALTHBENCH.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_healthbench_ideal_response_scores_one() -> None:
    rows = _healthbench_rows()
    assert len(rows) == 30
    for row in rows:
        rubric = rubric_from_items(row["rubrics"], name=row["id"])
        assert len(rubric.criteria) == len(row["rubrics"])
        for c, item in zip(rubric.criteria, row["rubrics"], strict=True):
            assert c.weight == item["points"] and c.text == item["criterion"].strip()
        ideal = [CriterionValue(c, 1.0 if c.weight > 0 else 0.0) for c in rubric.criteria]
        assert agg.weighted(ideal) == pytest.approx(1.0), row["id"]
        assert agg.weighted(ideal, hard=True) == pytest.approx(1.0), row["id"]


def test_healthbench_everything_met() -> None:
    for row in _healthbench_rows():
        rubric = rubric_from_items(row["rubrics"], name=row["id"])
        points = [item["points"] for item in row["rubrics"]]
        positive = sum(p for p in points if p > 0)
        negative = sum(p for p in points if p < 0)
        everything = [CriterionValue(c, 1.0) for c in rubric.criteria]
        assert agg.weighted(everything) == pytest.approx((positive + negative) / positive), row["id"]
        nothing = [CriterionValue(c, 0.0) for c in rubric.criteria]
        assert agg.weighted(nothing) == 0.0
