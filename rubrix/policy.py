"""What a trainer sees when judging fails, and length shaping of rewards.

``none`` keeps ``None`` (TRL drops that reward), ``raise`` stops, ``constant:X`` substitutes X,
``group_mean`` substitutes the mean of the scored members of the sample's group (advantage ≈ 0).
A circuit breaker refuses substitutes once the failure rate passes a threshold, so an outage of
the judge is never silently turned into a training signal of constants. The length penalty is
``p = P·((n − F)/(C − F))^k`` between a free budget F and a cap C words, ``score − p``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field


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
