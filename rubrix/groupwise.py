"""Rewards that depend on the other answers of a group, applied to scored samples.

Two rules read a whole GRPO group rather than one answer: correctness-gated **length shaping**
(:mod:`rubrix.shaping`: a rubric's ``length:`` section, or an override) and **group-relative**
rewards (:mod:`rubrix.relative`: every pair of the group judged in both orders). Those modules own
the formulas; :class:`GroupRewards` owns applying them to a scorer's results, so that the reward
core (:class:`~rubrix.rewards.RubricReward`: adapters and server, where a call is the group) and
``rubrix score`` (:func:`rubrix.runs.score_file`, which forms batches of whole groups) do exactly the
same thing. Groups are samples sharing a ``group_id``; a sample without one is alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UserError
from .records import Sample
from .relative import GroupRelative
from .rubric import Rubric
from .scoring import SampleResult, Scorer
from .shaping import LengthShaping, ShapingError

log = logging.getLogger("rubrix.groupwise")


@dataclass(frozen=True)
class GroupRewards:
    """The group rules of a run: ``shaping`` overrides every rubric's ``length:``; ``relative`` on/off."""

    shaping: LengthShaping | None = None
    relative: GroupRelative | None = None

    @classmethod
    def parse(cls, shaping: LengthShaping | str | None = None,
              relative: GroupRelative | str | None = None) -> GroupRewards:
        """From the CLI / server / adapter forms; a bad spec is a :class:`UserError` naming its field."""
        if isinstance(shaping, str):
            try:
                shaping = LengthShaping.parse(shaping)
            except ShapingError as exc:
                raise UserError(str(exc), field="length_shaping") from None
        if isinstance(relative, str):
            try:
                relative = GroupRelative.parse(relative)
            except ValueError as exc:
                raise UserError(str(exc), field="relative") from None
        return cls(shaping=shaping, relative=relative)

    def applies_to(self, samples: Sequence[Sample], default: Rubric | None = None) -> bool:
        """Whether anything here changes a reward of these samples (else groups need not be formed)."""
        if self.relative is not None or self.shaping is not None:
            return True
        if default is not None and default.length is not None:
            return True
        return any(s.rubric is not None and s.rubric.length is not None for s in samples)

    # -- group-relative -----------------------------------------------------------------------------

    async def arelative(self, scorer: Scorer, samples: Sequence[Sample], results: Sequence[SampleResult],
                        default: Rubric | None, counts: Counter) -> list[SampleResult]:
        """Blend each judged answer's reward with its standing in its group (both orders of every pair).

        An answer whose every comparison failed becomes a failed result, never a number.
        """
        rel = self.relative
        results = list(results)
        if rel is None:
            return results
        pairs = rel.pairs([s.group_id for s in samples], [r.status == "ok" for r in results])
        if not pairs:
            return results
        requests = []
        for i, j in pairs:
            a, b = samples[i], samples[j]
            rubric = a.rubric or default
            standards = dict(principles=rubric.principles if rubric else (),
                             criteria=tuple(c.text for c in rubric.judged_criteria) if rubric else ())
            for first, second, tag in ((a, b, f"{a.id}|{b.id}"), (b, a, f"{b.id}|{a.id}")):
                requests.append(scorer.renderer.pairwise_request(a.prompt, first.response, second.response,
                                                                 reference=a.reference, **standards,
                                                                 meta={"pair": tag}))
        try:
            with scorer.meter.stage("relative"):
                verdicts = await scorer.ajudge(requests)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a crashed judge fails the comparisons, not the step
            log.warning("judge raised %s during group comparisons", type(exc).__name__)
            verdicts = []
        counts["relative_verdicts"] += len(requests)
        ps = [None if v.error or v.p is None else v.p for v in verdicts] or [None] * len(requests)
        scores = rel.combine(len(samples), pairs, ps[0::2], ps[1::2])
        out = []
        for r, rel_score in zip(results, scores, strict=True):
            if rel_score is ...:
                out.append(r)
            elif rel_score is None:
                counts["relative_failed"] += 1
                out.append(dataclasses.replace(r, reward=None, status="failed",
                                               errors={**r.errors, "relative": "every comparison failed"}))
            else:
                out.append(dataclasses.replace(r, reward=rel.blended(r.reward, rel_score),
                                               adjustments={**r.adjustments, "pointwise": r.reward,
                                                            "relative": rel_score}))
        return out

    # -- length shaping -----------------------------------------------------------------------------

    def shape(self, samples: Sequence[Sample], responses: Sequence[str], results: Sequence[SampleResult],
              scores: Sequence[float | None], default: Rubric | None, counts: Counter) -> list[float | None]:
        """Correctness-gated length shaping of ``scores`` (the rubric's ``length:`` or the override).

        Only answers that passed their gate are shaped, relative to the passing answers of their
        group among ``samples`` (mode ``group``) or to a target.
        """
        out = list(scores)
        for rule, idx in self._rules(samples, default).items():
            shaped = rule.apply([scores[i] for i in idx], [responses[i] or "" for i in idx],
                                [results[i].passed_gate is not False for i in idx],
                                [samples[i].group_id for i in idx])
            for i, v in zip(idx, shaped, strict=True):
                if v != out[i]:
                    counts["length_shaped"] += 1
                out[i] = v
        return out

    def _rules(self, samples: Sequence[Sample], default: Rubric | None) -> dict[Any, list[int]]:
        """Indices of the samples by the shaping rule that applies to them (a batch may mix rubrics)."""
        out: dict[Any, list[int]] = {}
        for i, sample in enumerate(samples):
            rubric = sample.rubric or default
            rule = self.shaping or (rubric.length if rubric is not None else None)
            if rule is not None:
                out.setdefault(rule, []).append(i)
        return out

    # -- both, on scored results (rubrix score) --------------------------------------------------------

    async def aapply(self, scorer: Scorer, samples: Sequence[Sample], results: Sequence[SampleResult],
                     counts: Counter) -> list[SampleResult]:
        """Both rules on results of whole groups: relative first, then shaping of the blended reward.

        The row keeps what it was before (``adjustments``: ``pointwise``, ``relative``,
        ``length_penalty``), so a shaped reward can always be traced back to its judged one.
        """
        default = scorer.rubric
        results = await self.arelative(scorer, samples, results, default, counts)
        scores = [r.reward if r.status == "ok" else None for r in results]
        shaped = self.shape(samples, [s.response for s in samples], results, scores, default, counts)
        out = []
        for r, before, after in zip(results, scores, shaped, strict=True):
            if after == before:
                out.append(r)
                continue
            extra = {"length_penalty": round(before - after, 6)} if before is not None and after is not None \
                else {}
            out.append(dataclasses.replace(
                r, reward=after, adjustments={"pointwise": r.adjustments.get("pointwise", before),
                                              **r.adjustments, **extra}))
        return out


__all__ = ["GroupRewards"]
