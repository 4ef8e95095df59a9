"""Group-relative rewards: pairwise comparisons inside a group, both orders, normalized to [0, 1].

Judges here are fakes (named as such): ``FakeJudge`` for hash-derived values, and a position-biased
fake that always answers "A", to show that position cannot decide a reward.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rubrix.judges.base import Verdict
from rubrix.judges.fake import FakeJudge
from rubrix.relative import GroupRelative
from rubrix.rewards import RewardItem, RubricReward

RUBRIC = {"name": "r", "principles": ["Answer the question."],
          "criteria": [{"id": "a", "text": "Answers the question.", "weight": 1},
                       {"id": "short", "check": {"length": {"max": 50}}, "weight": 1}]}


@pytest.fixture(autouse=True)
def _rubrix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "home"))


class AlwaysA(FakeJudge):
    """A fake with total position bias: every pairwise answer is "A" with P = 0.9."""

    async def judge(self, requests):
        out = await super().judge([r for r in requests if r.kind != "pairwise"])
        it = iter(out)
        return [Verdict(p=0.9, label="A", from_logprobs=True) if r.kind == "pairwise" else next(it)
                for r in requests]


def items(n: int, group: str = "g") -> list[RewardItem]:
    return [RewardItem(prompt="q", response=f"answer {k}", group_id=group) for k in range(n)]


def test_relative_scores_are_in_unit_range_sum_to_half_n_and_cost_n_n_minus_1() -> None:
    core = RubricReward(RUBRIC, FakeJudge(), cache=False, relative="pairwise")
    got = core.score(items(4) + [RewardItem(prompt="q2", response="alone", group_id="h")])
    rel = [r.reward for r in got[:4]]
    assert all(0.0 <= x <= 1.0 for x in rel)
    assert sum(rel) == pytest.approx(4 / 2)  # every comparison gives its mass to one side or the other
    assert core.counts["relative_verdicts"] == 4 * 3  # 6 pairs, both orders
    assert core.scorer.meter.to_dict()["relative"]["verdicts"] == 12
    assert got[4].reward == got[4].result.reward_raw / 2  # alone in its group: pointwise (weighted) reward


def test_position_cannot_decide() -> None:
    core = RubricReward(RUBRIC, AlwaysA(), cache=False, relative="pairwise")
    assert [r.reward for r in core.score(items(3))] == pytest.approx([0.5, 0.5, 0.5])


def test_blend_and_failures() -> None:
    pointwise = RubricReward(RUBRIC, FakeJudge(), cache=False).score(items(2))
    core = RubricReward(RUBRIC, AlwaysA(), cache=False, relative="pairwise:0.25")
    got = core.score(items(2))
    for p, r in zip(pointwise, got, strict=True):
        assert r.reward == pytest.approx(0.75 * p.reward + 0.25 * 0.5)
    rel = GroupRelative()
    assert rel.combine(3, [(0, 1)], [None], [0.2]) == [None, None, ...]
    with pytest.raises(ValueError):
        GroupRelative.parse("pairwise:2")


def test_combine_both_orders() -> None:
    # i first: P(A) = 0.8 (i better); j first: P(A) = 0.4 (j better with 0.4) -> P(i > j) = (0.8 + 0.6) / 2
    assert GroupRelative().combine(2, [(0, 1)], [0.8], [0.4]) == pytest.approx([0.7, 0.3])
