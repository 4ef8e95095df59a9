"""Reward-side pure functions: per-tag scores, length penalty, failure policies, circuit breaker.

All hand-computed; no judge.
"""

from __future__ import annotations

import math

import pytest

from rubrix import aggregate as agg
from rubrix import stats
from rubrix.aggregate import CriterionValue, rating_to_unit
from rubrix.policy import (
    CircuitBreaker,
    CircuitOpenError,
    FailurePolicy,
    LengthPenalty,
    RewardFailure,
    apply_failure_policy,
)
from rubrix.rubric import Criterion


def crit(cid: str, weight: float, tags: tuple[str, ...] = ()) -> Criterion:
    return Criterion(id=cid, text=f"Statement {cid}.", weight=float(weight), tags=tags)


# ---------------------------------------------------------------------------------------- per tag


def test_tag_scores_hand_computed() -> None:
    items = [
        CriterionValue(crit("a", 10, ("axis:accuracy", "level:example")), 1.0),
        CriterionValue(crit("b", 5, ("axis:accuracy",)), 0.0),
        CriterionValue(crit("c", -4, ("axis:accuracy", "level:example")), 1.0),
        CriterionValue(crit("d", 6, ("axis:completeness",)), 0.5),
        CriterionValue(crit("e", -3, ("axis:safety",)), 1.0),  # only a pitfall: no positive points
    ]
    scores = agg.tag_scores(items)
    assert scores["axis:accuracy"] == pytest.approx((10 - 4) / 15)
    assert scores["level:example"] == pytest.approx((10 - 4) / 10)
    assert scores["axis:completeness"] == pytest.approx(0.5)
    assert "axis:safety" not in scores  # dropped, as HealthBench does
    overall = agg.weighted(items)
    assert overall == pytest.approx((10 - 4 + 3 - 3) / 21)
    with_example = agg.tag_scores(items, example_tags=["theme:hedging"], overall=overall)
    assert with_example["theme:hedging"] == pytest.approx(overall)


def test_tag_scores_failed_item_gives_none_for_its_tags_only() -> None:
    items = [CriterionValue(crit("a", 2, ("x",)), None), CriterionValue(crit("b", 2, ("y",)), 1.0)]
    assert agg.tag_scores(items) == {"x": None, "y": 1.0}


def test_dataset_tag_scores_clip_and_count() -> None:
    per_sample = [{"x": -0.5, "y": 1.0}, {"x": 0.1}, {"x": None, "y": 0.5}]
    out = stats.dataset_tag_scores(per_sample, n_bootstrap=50)
    assert out["x"]["mean"] == 0.0 and out["x"]["n"] == 2          # mean -0.2 clipped to 0
    assert out["y"]["mean"] == pytest.approx(0.75) and out["y"]["n"] == 2
    assert out["y"]["bootstrap_std"] is not None


def test_rating_to_unit() -> None:
    assert rating_to_unit(1) == 0.0 and rating_to_unit(10) == 1.0
    assert rating_to_unit(7) == pytest.approx(6 / 9)
    assert rating_to_unit(4, 1, 5) == pytest.approx(agg.scale_to_unit(4))
    assert rating_to_unit(12) == 1.0
    with pytest.raises(ValueError):
        rating_to_unit(3, 5, 5)


# ---------------------------------------------------------------------------------- length penalty


@pytest.mark.parametrize("n, expected", [(0, 0.0), (100, 0.0), (150, 0.25 * 0.5 ** 2), (200, 0.25),
                                         (999, 0.25)])
def test_length_penalty_curve(n: int, expected: float) -> None:
    lp = LengthPenalty(free_budget=100, max_cap=200, exponent=2.0, penalty_at_cap=0.25)
    assert lp.penalty(n) == pytest.approx(expected)


def test_length_penalty_apply() -> None:
    lp = LengthPenalty(free_budget=2, max_cap=6, penalty_at_cap=0.8)
    assert lp.apply(0.9, "one two") == 0.9                       # within the free budget
    assert lp.apply(0.9, "a b c d") == pytest.approx(0.9 - 0.4)  # halfway: (4-2)/(6-2) * 0.8
    assert lp.apply(0.3, "a b c d e f g") == 0.0                 # normalized: clipped at 0
    assert lp.apply(None, "a b c d e f g") is None               # a failure stays a failure
    raw = LengthPenalty(free_budget=2, max_cap=6, penalty_at_cap=0.8, clip_at_zero=False)
    assert raw.apply(0.3, "a b c d e f g") == pytest.approx(-0.5)
    assert LengthPenalty.parse("2:6:0.8") == LengthPenalty(free_budget=2, max_cap=6, penalty_at_cap=0.8)
    assert LengthPenalty.parse("10:20:0.5:2").exponent == 2.0
    for bad in ("10", "a:b", "20:10"):
        with pytest.raises(ValueError):
            LengthPenalty.parse(bad)


# --------------------------------------------------------------------------------- failure policies


def test_policy_parse() -> None:
    assert str(FailurePolicy.parse("none")) == "none"
    assert FailurePolicy.parse("constant:0.25").value == 0.25
    assert str(FailurePolicy.parse("CONSTANT:-1")) == "constant:-1"
    for bad in ("constant:", "constant:nan", "constant:inf", "mean", "zero"):
        with pytest.raises(ValueError):
            FailurePolicy.parse(bad)


def test_policy_none_keeps_none_and_fallback_fills() -> None:
    assert apply_failure_policy([0.5, None], "none") == [0.5, None]
    assert apply_failure_policy([0.5, None], "none", fallback=0.0) == [0.5, 0.0]
    assert apply_failure_policy([0.5, 0.7], "raise") == [0.5, 0.7]  # nothing failed: nothing to do


def test_policy_raise() -> None:
    with pytest.raises(RewardFailure, match="1 of 3"):
        apply_failure_policy([0.1, None, 0.2], "raise")


def test_policy_constant() -> None:
    assert apply_failure_policy([None, 0.4, None], "constant:0") == [0.0, 0.4, 0.0]
    assert apply_failure_policy([None], "constant:-0.5") == [-0.5]


def test_policy_group_mean() -> None:
    rewards = [0.2, None, 0.6, None, 1.0, None]
    groups = ["a", "a", "a", "b", "b", "c"]
    out = apply_failure_policy(rewards, "group_mean", groups)
    assert out[:5] == [0.2, pytest.approx(0.4), 0.6, 1.0, 1.0]
    assert out[5] is None                                   # group c has nothing scored
    assert apply_failure_policy(rewards, "group_mean", groups, fallback=0.0)[5] == 0.0
    # without group ids every sample is its own group: nothing to borrow from
    assert apply_failure_policy([0.3, None], "group_mean") == [0.3, None]
    with pytest.raises(ValueError):
        apply_failure_policy([0.3, None], "group_mean", ["a"])


def test_group_mean_gives_zero_advantage() -> None:
    """Imputing the group mean leaves the group mean unchanged, so the sample's advantage is 0."""
    rewards = [0.1, 0.9, None, 0.5]
    out = apply_failure_policy(rewards, "group_mean", ["g"] * 4)
    mean = sum(out) / len(out)
    assert out[2] - mean == pytest.approx(0.0)


# ---------------------------------------------------------------------------------- circuit breaker


def test_breaker_trips_on_a_failing_batch() -> None:
    cb = CircuitBreaker(0.5, window=64, min_samples=8)
    cb.record([False] * 8)
    cb.record([True] * 4 + [False] * 4)  # window 16: 4 failed = 25 %
    with pytest.raises(CircuitOpenError, match="above the circuit breaker threshold 50%"):
        cb.record([True] * 16, detail="server 16")  # window 32: 20 failed = 62 %
    assert cb.trips == 1 and cb.failed == 20 and cb.seen == 32


def test_breaker_needs_min_samples_and_uses_a_rolling_window() -> None:
    cb = CircuitBreaker(0.5, window=10, min_samples=4)
    cb.record([True])
    cb.record([True])
    cb.record([True])          # 3 seen: not enough evidence yet
    with pytest.raises(CircuitOpenError):
        cb.record([True])      # 4 seen, 100 %
    cb.reset()
    for _ in range(10):
        cb.record([False])
    cb.record([True] * 5)      # window holds the last 10: 5 failed = 50 %, not above
    with pytest.raises(CircuitOpenError):
        cb.record([True])


def test_breaker_large_batch_judged_on_its_own() -> None:
    cb = CircuitBreaker(0.5, window=8, min_samples=4)
    with pytest.raises(CircuitOpenError):
        cb.record([True] * 60 + [False] * 40)
    cb2 = CircuitBreaker(0.5, window=8, min_samples=4)
    cb2.record([True] * 40 + [False] * 60)


def test_breaker_disabled() -> None:
    for cb in (CircuitBreaker(None), CircuitBreaker(1.0)):
        cb.record([True] * 100)
        assert cb.failure_rate == 1.0
    assert not math.isnan(CircuitBreaker().failure_rate)
