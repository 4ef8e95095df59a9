"""Group-relative rewards: each answer compared with the other answers of its group.

RULER, BRPO and Pairwise-RL reward an answer by how it compares with the other answers sampled for
the same prompt, which is what a GRPO advantage looks at anyway, and what a judge does better than
scoring one answer on an absolute scale. :class:`GroupRelative` asks the pairwise judge about every
pair of a group **in both orders** (so position cannot decide) and gives answer ``i``::

    P(i > j)   = ( P_A(i first) + (1 − P_A(j first)) ) / 2
    relative_i = mean_j P(i > j)                                   in [0, 1]
    reward_i   = (1 − blend)·pointwise_i + blend·relative_i

over the other answers ``j`` of its group that were judged (pointwise status ``ok``). A group of
``n`` such answers costs ``n·(n − 1)`` verdicts, charged to the ``relative`` stage of the scorer's
cost meter and counted in ``RubricReward.counts["relative_verdicts"]``. An answer alone in its
group, or without a group, keeps its pointwise reward; one whose every comparison failed becomes a
failure (``None``), never a number. The judge is shown the rubric's principles and the statements
of its judged criteria (checks are not the judge's business).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

MODES = ("pairwise",)


@dataclass(frozen=True)
class GroupRelative:
    mode: str = "pairwise"
    blend: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"relative mode must be one of {', '.join(MODES)}")
        if not 0.0 <= self.blend <= 1.0:
            raise ValueError("blend must be between 0 and 1")

    @classmethod
    def parse(cls, spec: str | GroupRelative) -> GroupRelative:
        """From ``pairwise`` or ``pairwise:BLEND`` (the share of the relative score, default 1)."""
        if isinstance(spec, GroupRelative):
            return spec
        mode, _, blend = str(spec).strip().partition(":")
        try:
            return cls(mode, float(blend) if blend else 1.0)
        except ValueError as exc:
            raise ValueError(f"relative rewards must be pairwise[:BLEND] with BLEND in [0, 1]; got {spec!r} "
                             f"({exc})") from None

    def pairs(self, groups: Sequence[Hashable | None], eligible: Sequence[bool]) -> list[tuple[int, int]]:
        """Every unordered pair (i, j), i < j, of eligible answers sharing a group."""
        members: dict[Hashable, list[int]] = {}
        for i, (g, ok) in enumerate(zip(groups, eligible, strict=True)):
            if ok and g is not None:
                members.setdefault(g, []).append(i)
        return [(a, b) for idx in members.values() for k, a in enumerate(idx) for b in idx[k + 1:]]

    def combine(self, n: int, pairs: Sequence[tuple[int, int]], firsts: Sequence[float | None],
                seconds: Sequence[float | None]) -> list[float | None | Any]:
        """Relative scores from both orders of every pair: ``firsts[k]`` = P(A) with i as A,
        ``seconds[k]`` = P(A) with j as A. Answers in no pair get ``...`` (keep pointwise)."""
        wins: list[list[float]] = [[] for _ in range(n)]
        seen = [False] * n
        for (i, j), p1, p2 in zip(pairs, firsts, seconds, strict=True):
            seen[i] = seen[j] = True
            if p1 is None or p2 is None:
                continue
            p_i = (float(p1) + 1.0 - float(p2)) / 2.0
            wins[i].append(p_i)
            wins[j].append(1.0 - p_i)
        return [(sum(w) / len(w) if w else None) if s else ... for w, s in zip(wins, seen, strict=True)]

    def blended(self, pointwise: float | None, relative: float | None | Any) -> float | None:
        if relative is ...:
            return pointwise
        if relative is None or pointwise is None:
            return None
        return (1.0 - self.blend) * pointwise + self.blend * relative
