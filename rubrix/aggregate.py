"""Pure functions from criterion results to a reward.

Inputs are ``CriterionValue`` objects: the criterion and its value in [0, 1] (the probability it
is met for a binary criterion, ``(E[level] - 1) / 4`` for a 1..5 scale), or ``None`` when the
judgment failed. A failed judgment never becomes a number here: any function that would need a
missing value returns ``None`` and the caller's failure policy (:mod:`rubrix.policy`) decides what
a trainer sees. Dataset-level statistics live in :mod:`rubrix.stats`.

Formulas (``w`` weights, ``v`` values, pitfalls have ``w < 0`` and ``v`` = P(fault present)):

* ``raw``:            Σ w·v
* ``weighted``:       Σ w·v / Σ_{w>0} w  (HealthBench; unclipped per sample, may go below 0)
* ``all_or_nothing``: 1 if every positive criterion is met and no pitfall is met, else 0
* ``veto``:           ``weighted``, but capped at ``veto_cap`` (default 0) when a veto criterion
                      fails (a positive one not met, or a pitfall met)
* ``implicit``:       one holistic judge rating over the whole rubric (RaR-Implicit), computed by the
                      scorer as ``(E[level] - 1) / 4`` on a 1..5 scale (see :func:`scale_to_unit`)
* gates:              levels of criteria that must pass before the others count; the first level
                      that fails decides by its ``on_fail`` (a number, ``cap:X``, ``accumulate``);
                      ``veto`` is the one-level gate ``cap:0`` (see :func:`gated`)
* not applicable:     an item with ``na=True`` leaves every formula, numerator and denominator alike;
                      it passes a gate and is never a failure
* per-tag:            ``weighted`` over the items carrying a tag; a tag without positive weight is
                      dropped (HealthBench ``axis:*`` / ``theme:*`` scores, :func:`tag_scores`)

With ``hard=True`` values are thresholded at :data:`MET_THRESHOLD` first (met = 1, not met = 0);
by default the expected value is used, which gives smoother rewards when verdicts come from
logprobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .rubric import Criterion, Gate

#: a criterion counts as met when its value (P, or the normalized level) reaches this
MET_THRESHOLD = 0.5


def is_met(value: float) -> bool:
    """The one reading of "met" used by results, summaries and extraction."""
    return value >= MET_THRESHOLD


@dataclass(frozen=True)
class CriterionValue:
    criterion: Criterion
    value: float | None  # in [0, 1]; None = judgment failed (or not applicable, with na=True)
    na: bool = False  # not applicable: leaves numerator and denominator alike, never a failure

    @property
    def met(self) -> bool | None:
        return None if self.value is None else is_met(self.value)

    @property
    def passes(self) -> bool:
        """A gate member passes when met (a pitfall: when absent) or not applicable."""
        if self.na:
            return True
        return bool(self.met) if self.criterion.weight > 0 else not self.met


def applicable(items: Sequence[CriterionValue]) -> list[CriterionValue]:
    """The items that apply: not-applicable criteria take no part in any formula."""
    return [i for i in items if not i.na]


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
    items = applicable(items)
    if any(i.value is None for i in items):
        return None
    return [float(i.met) if hard else float(i.value) for i in items]


def raw(items: Sequence[CriterionValue], *, hard: bool = False) -> float | None:
    """Unnormalized weighted sum Σ w·v (pitfalls subtract when present)."""
    values = _values(items, hard)
    if values is None:
        return None
    return sum(i.criterion.weight * v for i, v in zip(applicable(items), values, strict=True))


def positive_weight(items: Sequence[CriterionValue]) -> float:
    return sum(i.criterion.weight for i in applicable(items) if i.criterion.weight > 0)


def weighted(items: Sequence[CriterionValue], *, hard: bool = False) -> float | None:
    """HealthBench score: Σ w·v / Σ_{w>0} w, unclipped per sample."""
    total = raw(items, hard=hard)
    denom = positive_weight(items)
    if total is None or denom <= 0:
        return None
    return total / denom


def all_or_nothing(items: Sequence[CriterionValue], **_: object) -> float | None:
    """1.0 when every positive criterion is met and no pitfall is present, else 0.0."""
    items = applicable(items)
    if any(i.value is None for i in items):
        return None
    ok = all(i.met for i in items if i.criterion.weight > 0) and not any(
        i.met for i in items if i.criterion.weight < 0)
    return 1.0 if ok else 0.0


def veto_failed(items: Sequence[CriterionValue]) -> bool:
    """True when a veto criterion fails: a positive one not met or a pitfall present."""
    for i in applicable(items):
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


def aggregate(method: str, items: Sequence[CriterionValue], *, hard: bool = False,
              gates: Sequence[Gate] | None = None) -> float | None:
    """Reward by the named method.

    Without ``gates``, ``weighted`` applies veto caps when a rubric has vetoes (as it always did).
    With ``gates`` (a rubric's :meth:`~rubrix.rubric.Rubric.gate_levels`, the veto level first),
    the levels apply in order, as :func:`gated` says.
    """
    if method not in AGGREGATORS:
        raise ValueError(f"aggregation {method!r} has no per-criterion formula")
    if gates:
        return gated(method, items, gates, hard=hard)
    if method == "weighted" and any(i.criterion.veto for i in items):
        return veto(items, hard=hard)
    return AGGREGATORS[method](items, hard=hard)


def failed_gate(items: Sequence[CriterionValue], gates: Sequence[Gate]) -> int | None:
    """Index of the first gate level with a member that does not pass, or None when all pass.

    A level with a failed judgment among its members counts as not passing only when a judged
    member fails; the reward is ``None`` in that case anyway (the caller sees the error).
    """
    by_id = {i.criterion.id: i for i in items}
    for k, gate in enumerate(gates):
        members = [by_id[c] for c in gate.criteria if c in by_id]
        if any(m.value is not None and not m.passes for m in members if not m.na):
            return k
    return None


def gated(method: str, items: Sequence[CriterionValue], gates: Sequence[Gate], *,
          hard: bool = False) -> float | None:
    """The base formula with gate levels (Gated Reward Accumulation; ``veto`` is one level).

    Levels are checked in order; the first level with a member that does not pass decides by its
    ``on_fail``: a number is the reward; ``cap:X`` caps the base score at X (``veto``'s meaning:
    ``min(score, 0)``); ``accumulate`` counts only the criteria of the levels down to and including
    the failed one in the numerator, over the whole rubric's positive weight (``weighted``), so a
    lower level adds nothing until the levels above it pass. A numeric ``on_fail`` needs nothing but
    the levels down to the failed one (the scorer does not even ask the judge about the rest when
    those levels are checks); otherwise a failed judgment anywhere gives ``None``.
    """
    by_id = {i.criterion.id: i for i in items}
    k = None
    for level, gate in enumerate(gates):
        members = [by_id[c] for c in gate.criteria if c in by_id and not by_id[c].na]
        if any(m.value is not None and not m.passes for m in members):
            k = level
            break
        if any(m.value is None for m in members):
            return None  # undecided: this level might have failed
    if k is not None and isinstance(gates[k].on_fail, float | int):
        return float(gates[k].on_fail)
    score = AGGREGATORS[method](items, hard=hard)
    if score is None or k is None:
        return score
    rule = str(gates[k].on_fail)
    if rule.startswith("cap:"):
        return min(score, float(rule[4:]))
    if method == "all_or_nothing":
        return 0.0
    counted = {c for g in gates[:k + 1] for c in g.criteria}
    part = raw([i for i in items if i.criterion.id in counted], hard=hard)
    if part is None:
        return None
    if method == "raw":
        return part
    denom = positive_weight(items)
    return part / denom if denom > 0 else None


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
    for item in applicable(items):
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
