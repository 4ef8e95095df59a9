"""Pure functions from criterion results to a reward, and what a trainer sees when judging fails.

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
* ``implicit``:       one holistic judge rating over the whole rubric (RaR-Implicit), computed by the
                      scorer as ``(E[level] - 1) / 4`` on a 1..5 scale (see :func:`scale_to_unit`)
* per-tag:            ``weighted`` over the items carrying a tag; a tag without positive weight is
                      dropped (HealthBench ``axis:*`` / ``theme:*`` scores, :func:`tag_scores`)
* dataset:            ``clip(mean(rewards), 0, 1)`` over scored samples, bootstrap std of that mean
* length penalty:     ``p = P·((n − F)/(C − F))^k`` between a free budget F and a cap C words,
                      ``score − p`` (see :class:`LengthPenalty`)

With ``hard=True`` values are thresholded at 0.5 first (met = 1, not met = 0); by default the
expected value is used, which gives smoother rewards when verdicts come from logprobs.

Failure handling for trainers (:func:`apply_failure_policy`, :class:`CircuitBreaker`):
``none`` keeps ``None`` (TRL drops that reward), ``raise`` stops, ``constant:X`` substitutes X,
``group_mean`` substitutes the mean of the scored members of the sample's group (advantage ≈ 0).
A circuit breaker raises once the failure rate passes a threshold, so an outage of the judge is
never silently turned into a training signal of constants.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

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
    """Map an expected level on 1..5 to [0, 1]: ``(E[level] − 1) / 4``, clamped.

    This is also the ``implicit`` (RaR-Implicit) reward. RaR asks for a 1..10 rating; rubrix keeps
    1..5 on purpose: the judge answers with one token and the expected level is read from the
    probabilities of the labels ``1``..``5`` in one forward pass, which needs every label to be a
    single token. ``1``..``9`` are single tokens in Qwen-style tokenizers but ``10`` is two, so a
    1..10 scale cannot be read that way (and a 0..9 scale would no longer be RaR's scale either).
    Five levels read as an expectation are already a continuous reward. A rating on another range
    (for example a 1..10 answer from an API judge) maps with :func:`rating_to_unit`.
    """
    return min(1.0, max(0.0, (expected_level - 1.0) / 4.0))


def rating_to_unit(rating: float, low: float = 1.0, high: float = 10.0) -> float:
    """Map a rating on ``low..high`` to [0, 1]: ``(r − low) / (high − low)``, clamped.

    RaR-Implicit's 1..10 rating gives ``(r − 1) / 9``.
    """
    if high <= low:
        raise ValueError("high must be greater than low")
    return min(1.0, max(0.0, (float(rating) - low) / (high - low)))


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


# ------------------------------------------------------------------------------------------------
# per-tag scores (HealthBench)


def tag_scores(items: Sequence[CriterionValue], *, hard: bool = False, example_tags: Iterable[str] = (),
               overall: float | None = None) -> dict[str, float | None]:
    """Per-tag scores of one sample, as HealthBench reports them.

    For every tag carried by a criterion (``axis:accuracy``, ``level:example`` ...):
    ``score(tag) = Σ_{i∈tag} w_i·v_i / Σ_{i∈tag, w_i>0} w_i``, the ``weighted`` formula over the
    items carrying that tag. A tag whose items have no positive weight is **dropped** (its score
    would be undefined). A tag with a failed judgment among its items is ``None``.

    Example-level tags (``theme:*`` on the record, passed as ``example_tags``) get the sample's
    ``overall`` score, as in HealthBench.
    """
    by_tag: dict[str, list[CriterionValue]] = {}
    for item in items:
        for tag in item.criterion.tags:
            by_tag.setdefault(tag, []).append(item)
    out: dict[str, float | None] = {}
    for tag, members in by_tag.items():
        if positive_weight(members) <= 0:
            continue
        out[tag] = weighted(members, hard=hard)
    for tag in example_tags:
        out[tag] = overall
    return out


def dataset_tag_scores(per_sample: Iterable[Mapping[str, float | None]], *, n_bootstrap: int = 1000,
                       seed: int = 0) -> dict[str, dict[str, float | int | None]]:
    """Aggregate per-sample tag scores over a data set: for each tag the clipped mean over the samples
    that have the tag (``clip(mean, 0, 1)``), the bootstrap std of that mean, and ``n``.

    Samples whose tag score is ``None`` (a failed judgment) are left out of that tag, as they are
    left out of :func:`dataset_mean`.
    """
    columns: dict[str, list[float | None]] = {}
    for scores in per_sample:
        for tag, value in scores.items():
            columns.setdefault(tag, []).append(value)
    out: dict[str, dict[str, float | int | None]] = {}
    for tag in sorted(columns):
        values = columns[tag]
        out[tag] = {"mean": dataset_mean(values),
                    "bootstrap_std": bootstrap_std(values, n=n_bootstrap, seed=seed),
                    "n": sum(v is not None for v in values)}
    return out


# ------------------------------------------------------------------------------------------------
# length penalty (autorubric-style)


def word_count(text: str) -> int:
    """Whitespace-separated words: the default length measure of :class:`LengthPenalty`."""
    return len(text.split())


@dataclass(frozen=True)
class LengthPenalty:
    """A penalty for long responses, subtracted from the reward.

    With ``n`` = length of the response (words by default), free budget ``F``, cap ``C``,
    exponent ``k`` and ``P`` = ``penalty_at_cap``::

        p(n) = 0                          if n ≤ F
        p(n) = P                          if n ≥ C
        p(n) = P · ((n − F)/(C − F))^k    otherwise

    The penalized reward is ``max(0, r − p)`` for a normalized reward (``clip_at_zero=True``,
    the default, so a penalty never pushes a reward below zero it did not have) and ``r − p`` for a
    raw one. A reward that is ``None`` (failed) stays ``None``.
    """

    free_budget: int = 512
    max_cap: int = 2048
    exponent: float = 1.0
    penalty_at_cap: float = 0.5
    clip_at_zero: bool = True
    count: Callable[[str], int] = field(default=word_count, compare=False)

    def __post_init__(self) -> None:
        if self.max_cap <= self.free_budget:
            raise ValueError("max_cap must be greater than free_budget")
        if self.exponent <= 0:
            raise ValueError("exponent must be positive")
        if self.penalty_at_cap < 0:
            raise ValueError("penalty_at_cap must not be negative")

    def penalty(self, n: int) -> float:
        if n <= self.free_budget:
            return 0.0
        if n >= self.max_cap:
            return self.penalty_at_cap
        frac = (n - self.free_budget) / (self.max_cap - self.free_budget)
        return self.penalty_at_cap * frac ** self.exponent

    def apply(self, reward: float | None, text: str) -> float | None:
        if reward is None:
            return None
        out = reward - self.penalty(self.count(text))
        return max(0.0, out) if self.clip_at_zero and reward >= 0 else out

    @classmethod
    def parse(cls, spec: str) -> LengthPenalty:
        """From ``"F:C"`` or ``"F:C:P"`` or ``"F:C:P:k"`` (free budget, cap, penalty at cap, exponent)."""
        parts = [p.strip() for p in str(spec).split(":")]
        if not 2 <= len(parts) <= 4:
            raise ValueError(f"length penalty must be FREE:CAP[:PENALTY[:EXPONENT]], got {spec!r}")
        try:
            free, cap = int(parts[0]), int(parts[1])
            penalty = float(parts[2]) if len(parts) > 2 else 0.5
            exponent = float(parts[3]) if len(parts) > 3 else 1.0
        except ValueError:
            raise ValueError(f"length penalty must be FREE:CAP[:PENALTY[:EXPONENT]], got {spec!r}") from None
        return cls(free_budget=free, max_cap=cap, penalty_at_cap=penalty, exponent=exponent)


# ------------------------------------------------------------------------------------------------
# failure policy and circuit breaker


class RewardFailure(RuntimeError):
    """Raised by the ``raise`` failure policy: a reward could not be computed."""


class CircuitOpenError(RewardFailure):
    """Raised by :class:`CircuitBreaker` when too many judgments fail: the judge looks down."""


FAILURE_POLICIES = ("none", "raise", "constant:X", "group_mean")


@dataclass(frozen=True)
class FailurePolicy:
    """What a trainer sees for a sample whose reward is ``None`` (its judgment failed).

    * ``none``: keep ``None``; TRL leaves that reward out for that sample (and gives a row whose
      rewards are all ``None`` an advantage of 0).
    * ``raise``: raise :class:`RewardFailure` naming how many failed.
    * ``constant:X``: substitute ``X`` (e.g. ``constant:0``). Quietly penalizes the policy for
      judge outages; pair it with a :class:`CircuitBreaker`.
    * ``group_mean``: substitute ``mean{r_j : j in the same group, r_j scored}``, which gives the
      sample an advantage of about 0 under group normalization (GRPO, RLOO). Samples without a
      group id form groups of one. A group with nothing scored gets ``fallback`` (``None`` unless
      the caller needs a number).
    """

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, spec: str | FailurePolicy) -> FailurePolicy:
        if isinstance(spec, FailurePolicy):
            return spec
        text = str(spec).strip().lower()
        if text in ("none", "raise", "group_mean"):
            return cls(text)
        if text.startswith("constant:"):
            try:
                value = float(text.split(":", 1)[1])
            except ValueError:
                value = math.nan
            if math.isfinite(value):
                return cls("constant", value)
        raise ValueError(f"failure policy must be one of none, raise, constant:X (a finite number), "
                         f"group_mean; got {spec!r}")

    def __str__(self) -> str:
        return f"constant:{self.value:g}" if self.kind == "constant" else self.kind


def apply_failure_policy(rewards: Sequence[float | None], policy: str | FailurePolicy,
                         group_ids: Sequence[Hashable | None] | None = None, *,
                         fallback: float | None = None) -> list[float | None]:
    """Replace failed rewards (``None``) according to ``policy``; scored rewards pass unchanged.

    ``group_ids`` (aligned with ``rewards``) is used by ``group_mean``. ``fallback`` replaces what
    the policy leaves ``None`` (``none``, or ``group_mean`` for a group with nothing scored) —
    callers whose trainer cannot take ``None`` (verl, OpenRLHF) pass a number.
    """
    policy = FailurePolicy.parse(policy)
    rewards = list(rewards)
    failed = [i for i, r in enumerate(rewards) if r is None]
    if not failed:
        return rewards
    if policy.kind == "raise":
        raise RewardFailure(f"{len(failed)} of {len(rewards)} rewards failed (failure policy 'raise')")
    out: list[float | None] = list(rewards)
    if policy.kind == "constant":
        for i in failed:
            out[i] = policy.value
    elif policy.kind == "group_mean":
        if group_ids is not None and len(group_ids) != len(rewards):
            raise ValueError("group_ids must be aligned with rewards")
        keys = [(("g", g) if g is not None else ("i", i)) for i, g in
                enumerate(group_ids if group_ids is not None else [None] * len(rewards))]
        sums: dict[tuple, list[float]] = {}
        for key, r in zip(keys, rewards, strict=True):
            if r is not None:
                acc = sums.setdefault(key, [0.0, 0])
                acc[0] += r
                acc[1] += 1
        for i in failed:
            acc = sums.get(keys[i])
            out[i] = acc[0] / acc[1] if acc else None
    if fallback is not None:
        out = [fallback if r is None else r for r in out]
    return out


class CircuitBreaker:
    """Raises :class:`CircuitOpenError` when the failure rate of recent judgments passes a threshold.

    A judge that is down makes every reward fail; with ``constant:0`` a trainer would then learn
    from zeros, and even with ``none`` it would train on nothing without saying so. The breaker
    keeps the outcomes (failed or not) of the last ``window`` samples and, once it has seen at least
    ``min_samples``, trips when ``failed / seen > threshold``. A batch larger than the window is
    judged on its own. ``threshold=None`` (or ≥ 1) disables it.

    Trainers that call one sample at a time (verl, OpenRLHF) are covered by the rolling window;
    trainers that call a batch (TRL) usually trip on the batch itself.
    """

    def __init__(self, threshold: float | None = 0.5, *, window: int = 64, min_samples: int = 8):
        if threshold is not None and not 0 <= threshold:
            raise ValueError("threshold must be >= 0")
        self.threshold = threshold
        self.window = max(1, int(window))
        self.min_samples = max(1, int(min_samples))
        self._recent: deque[bool] = deque(maxlen=self.window)
        self.seen = 0
        self.failed = 0
        self.trips = 0

    @property
    def enabled(self) -> bool:
        return self.threshold is not None and self.threshold < 1

    @property
    def failure_rate(self) -> float:
        """Failure rate over the rolling window (0 when nothing seen yet)."""
        return sum(self._recent) / len(self._recent) if self._recent else 0.0

    def record(self, failed: Sequence[bool], *, detail: str = "") -> None:
        """Record one batch of outcomes (``True`` = failed) and trip if the rate is too high."""
        failed = [bool(f) for f in failed]
        self.seen += len(failed)
        self.failed += sum(failed)
        self._recent.extend(failed)
        if not self.enabled or not failed:
            return
        sample = failed if len(failed) >= self.window else list(self._recent)
        if len(sample) < self.min_samples:
            return
        rate = sum(sample) / len(sample)
        if rate > self.threshold:  # type: ignore[operator]
            self.trips += 1
            raise CircuitOpenError(
                f"judge failure rate {rate:.0%} over the last {len(sample)} samples is above the "
                f"circuit breaker threshold {self.threshold:.0%}"
                + (f" ({detail})" if detail else "")
                + "; refusing to hand constant or missing rewards to the trainer. Check the judge, "
                "or raise the threshold (None disables the breaker).")

    def reset(self) -> None:
        self._recent.clear()
