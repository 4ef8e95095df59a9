"""The discrimination check: keep a criterion only if its verdicts separate good answers from bad.

Every drafted criterion that passed the lint is judged on every answer of the contrast set
(:mod:`.degrade`): the good answer and its degradations, each scored on its own by the same
:class:`~rubrix.scoring.Scorer` that ``rubrix score`` uses, so the check measures the criterion as it
will be used. With ``p(kind)`` the judge's probability that the criterion is met on that answer and
``s`` its polarity (+1, or -1 for a pitfall, where met means the fault is present):

* the good answer must come out right: a positive criterion met (``p(good) >= 0.5``), a pitfall
  not met — otherwise the criterion, or its polarity, is wrong for this prompt;
* a degradation is **caught** when ``s * (p(good) - p(kind)) >= margin``;
* a degradation is **preferred** when ``s * (p(kind) - p(good)) >= margin``: the criterion rewards
  the worse answer (for ``padded``, that is a criterion that rewards length);
* the criterion is kept when it catches at least ``min_caught`` degradations and prefers none.

A judge error is never a verdict: an error on the good answer drops the criterion as untested, an
error on a degradation leaves that degradation out of its evidence (both are reported). A
criterion not applicable (``applies_if``) to the good answer is untested too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..records import Prompt, Sample
from ..rubric import Rubric
from ..scoring import SampleResult
from .degrade import Contrast


@dataclass
class CriterionCheck:
    """What the check found for one criterion."""

    id: str
    kept: bool
    reason: str
    values: dict[str, float | None] = field(
        default_factory=dict
    )  # contrast kind -> P(met); None: error / N/A
    caught: list[str] = field(default_factory=list)
    preferred: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kept": self.kept,
            "reason": self.reason,
            "p": {k: None if v is None else round(v, 4) for k, v in self.values.items()},
            "caught": self.caught,
            "preferred": self.preferred,
        }
        if self.errors:
            out["errors"] = self.errors
        return out


def contrast_samples(
    prompt_id: str, prompt: Prompt, rubric: Rubric, contrasts: list[Contrast]
) -> list[Sample]:
    """One sample per contrast answer, each carrying the drafted rubric (scored pointwise, no reference:
    the judge sees what it will see when the rubric is used)."""
    return [
        Sample(id=f"{prompt_id}#{c.kind}", prompt=prompt, response=c.text, rubric=rubric) for c in contrasts
    ]


def check_criteria(
    rubric: Rubric,
    contrasts: list[Contrast],
    results: list[SampleResult],
    *,
    margin: float,
    min_caught: int = 1,
) -> list[CriterionCheck]:
    """Apply the rule of the module docstring to each criterion of ``rubric``; ``contrasts[0]`` is the
    good answer and ``results`` are the scorer's results for ``contrasts`` in order."""
    if not contrasts or contrasts[0].kind != "good":
        raise ValueError("the first contrast must be the good answer")
    out = []
    for c in rubric.criteria:
        sign = -1.0 if c.is_pitfall else 1.0
        values: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        na: set[str] = set()
        for contrast, res in zip(contrasts, results, strict=True):
            cr = res.criteria.get(c.id)
            if cr is None or cr.error:
                values[contrast.kind] = None
                errors[contrast.kind] = (cr.error if cr is not None else None) or "no verdict"
            elif cr.na:
                values[contrast.kind] = None
                na.add(contrast.kind)
            else:
                values[contrast.kind] = cr.p
        good = values["good"]
        check = CriterionCheck(c.id, False, "", values=values, errors=errors)
        if "good" in errors:
            check.reason = f"untested: judge error on the good answer ({errors['good']})"
        elif "good" in na:
            check.reason = "untested: not applicable to the good answer"
        elif good is None:  # pragma: no cover - every branch above covers None
            check.reason = "untested"
        elif not c.is_pitfall and good < 0.5:
            check.reason = f"the good answer does not meet it (P(met) {good:.2f})"
        elif c.is_pitfall and good >= 0.5:
            check.reason = f"pitfall present in the good answer (P(met) {good:.2f}): wrong polarity or wrong"
        else:
            for kind, v in values.items():
                if kind == "good" or v is None:
                    continue
                gap = sign * (good - v)
                if gap >= margin:
                    check.caught.append(kind)
                elif -gap >= margin:
                    check.preferred.append(kind)
            if check.preferred:
                check.reason = "prefers the worse answer: " + ", ".join(check.preferred)
            elif len(check.caught) < min_caught:
                check.reason = (
                    "catches no degradation"
                    if not check.caught
                    else f"catches {len(check.caught)} degradation(s), fewer than {min_caught}"
                )
            else:
                check.kept = True
                check.reason = "catches " + ", ".join(check.caught)
        out.append(check)
    return out


__all__ = ["CriterionCheck", "check_criteria", "contrast_samples"]
