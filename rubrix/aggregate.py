"""Pure functions from criterion results to a reward.

Inputs are ``CriterionValue`` objects: the criterion and its value in [0, 1] (the probability it
is met for a binary criterion, ``(E[level] - 1) / 4`` for a 1..5 scale), or ``None`` when the
judgment failed. A failed judgment never becomes a number here: any function that would need a
missing value returns ``None`` and the caller's failure policy decides what a trainer sees.

Formulas (``w`` weights, ``v`` values, pitfalls have ``w < 0`` and ``v`` = P(fault present)):

* ``raw``:            Σ w·v
* ``weighted``:       Σ w·v / Σ_{w>0} w  (HealthBench; unclipped per sample, may go below 0)
* ``all_or_nothing``: 1 if every positive criterion is met and no pitfall is met, else 0
* ``veto``:           ``weighted``, but capped at ``veto_cap`` (default 0) when a veto criterion
                      fails (a positive one not met, or a pitfall met)
* ``implicit``:       one holistic judge rating, ``(E[level] - 1) / 4`` (computed by the scorer)

With ``hard=True`` values are thresholded at 0.5 first (met = 1, not met = 0); by default the
expected value is used, which gives smoother rewards when verdicts come from logprobs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from .rubric import Criterion

MET_THRESHOLD = 0.5


@dataclass(frozen=True)
class CriterionValue:
    criterion: Criterion
    value: float | None  # in [0, 1]; None = judgment failed

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value >= MET_THRESHOLD


def scale_to_unit(expected_level: float) -> float:
    """Map an expected level on 1..5 to [0, 1]."""
    return min(1.0, max(0.0, (expected_level - 1.0) / 4.0))


def _values(items: Sequence[CriterionValue], hard: bool) -> list[float] | None:
    if any(i.value is None for i in items):
        return None
    return [float(i.met) if hard else float(i.value) for i in items]


def raw(items: Sequence[CriterionValue], *, hard: bool = False) -> float | None:
    """Unnormalized weighted sum Σ w·v (pitfalls subtract when present)."""
    values = _values(items, hard)
    if values is None:
        return None
    return sum(i.criterion.weight * v for i, v in zip(items, values, strict=True))


def positive_weight(items: Sequence[CriterionValue]) -> float:
    return sum(i.criterion.weight for i in items if i.criterion.weight > 0)


def weighted(items: Sequence[CriterionValue], *, hard: bool = False) -> float | None:
    """HealthBench score: Σ w·v / Σ_{w>0} w, unclipped per sample."""
    total = raw(items, hard=hard)
    denom = positive_weight(items)
    if total is None or denom <= 0:
        return None
    return total / denom


def all_or_nothing(items: Sequence[CriterionValue], **_: object) -> float | None:
    """1.0 when every positive criterion is met and no pitfall is present, else 0.0."""
    if any(i.value is None for i in items):
        return None
    ok = all(i.met for i in items if i.criterion.weight > 0) and not any(
        i.met for i in items if i.criterion.weight < 0)
    return 1.0 if ok else 0.0


def veto_failed(items: Sequence[CriterionValue]) -> bool:
    """True when a veto criterion fails: a positive one not met or a pitfall present."""
    for i in items:
        if i.criterion.veto and i.value is not None:
            if (i.criterion.weight > 0 and not i.met) or (i.criterion.weight < 0 and i.met):
                return True
    return False


def veto(items: Sequence[CriterionValue], *, hard: bool = False, veto_cap: float = 0.0) -> float | None:
    """``weighted``, capped at ``veto_cap`` when any veto criterion fails."""
    score = weighted(items, hard=hard)
    if score is None:
        return None
    return min(score, veto_cap) if veto_failed(items) else score


AGGREGATORS = {"weighted": weighted, "raw": raw, "all_or_nothing": all_or_nothing, "veto": veto}


def aggregate(method: str, items: Sequence[CriterionValue], *, hard: bool = False) -> float | None:
    """Reward by the named method; ``weighted`` also applies veto caps when a rubric has vetoes."""
    if method == "weighted" and any(i.criterion.veto for i in items):
        return veto(items, hard=hard)
    if method not in AGGREGATORS:
        raise ValueError(f"aggregation {method!r} has no per-criterion formula")
    return AGGREGATORS[method](items, hard=hard)


def dataset_mean(rewards: Sequence[float | None], *, clip: bool = True) -> float | None:
    """Mean over scored samples, clipped to [0, 1] as HealthBench does; None if nothing scored."""
    scored = [r for r in rewards if r is not None]
    if not scored:
        return None
    mean = sum(scored) / len(scored)
    return min(1.0, max(0.0, mean)) if clip else mean


def bootstrap_std(rewards: Sequence[float | None], *, n: int = 1000, seed: int = 0,
                  clip: bool = True) -> float | None:
    """Standard deviation of the (clipped) mean over bootstrap resamples of the scored samples."""
    scored = [r for r in rewards if r is not None]
    if len(scored) < 2 or n < 2:
        return None
    rng = random.Random(seed)
    means = []
    for _ in range(n):
        sample = [scored[rng.randrange(len(scored))] for _ in scored]
        means.append(dataset_mean(sample, clip=clip))
    mu = sum(means) / n
    return math.sqrt(sum((m - mu) ** 2 for m in means) / (n - 1))
