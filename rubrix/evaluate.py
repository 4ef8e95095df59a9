"""Agreement with preference labels: does the judge rank ``chosen`` above ``rejected``?

Three ways to ask, on the same pairs:

* ``rubric``: score each response on its own with a rubric (pointwise, order-free) and compare
  rewards — what a rubric reward gives a trainer;
* ``pairwise``: show the judge both responses and ask which is better, in **both orders**
  (chosen as A, then as B); the two probabilities for ``chosen`` are averaged, and how often the
  two orders pick the same response is reported as *order consistency* (small judges often
  pick a letter, not an answer);
* ``principle``: one holistic 1..5 rating per response against a single principle.

Per pair the outcome is ``win`` (chosen scored higher by more than ``tie_margin``), ``tie``,
``loss`` or ``failed`` (a judgment failed: never turned into a number). *Agreement* is wins over
judged pairs; ties are reported separately (and as half-credit in ``agreement_ties_half``).
The 95% interval is a percentile bootstrap over pairs (seeded); differences between two methods
on the same pairs use a *paired* bootstrap, which is what "beats the baseline outside the
interval" should mean.

Rubric and principle modes score pairs with :meth:`~rubrix.scoring.Scorer.ascore_pairs`, the one
way rubrix scores a pair; pairwise mode builds its own A/B requests and sends them through
:meth:`~rubrix.scoring.Scorer.ajudge`. Either way the cost of a method is read from the scorer's
meter (:mod:`rubrix.cost`), under a stage named after the method.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cost import StageCost
from .errors import UserError
from .records import Pair
from .rubric import Rubric
from .stats import bootstrap_ci

if TYPE_CHECKING:
    from .scoring import Scorer

MODES = ("rubric", "pairwise", "principle")
DEFAULT_PRINCIPLE = ("The response does exactly what the user asked, follows every explicit instruction, "
                     "and is accurate, complete and helpful.")


@dataclass
class PairOutcome:
    """One pair under one method."""

    id: str
    source: str | None
    outcome: str                      # win | tie | loss | failed
    chosen: float | None = None       # score of chosen (reward, level, or P(chosen better))
    rejected: float | None = None
    consistent: bool | None = None    # pairwise only: both orders picked the same response
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "source": self.source, "outcome": self.outcome,
               "chosen": _r(self.chosen), "rejected": _r(self.rejected)}
        if self.consistent is not None:
            out["consistent"] = self.consistent
        if self.error:
            out["error"] = self.error
        return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _outcome(c: float | None, r: float | None, tie_margin: float) -> str:
    if c is None or r is None:
        return "failed"
    d = round(c - r, 9)
    if d > tie_margin:
        return "win"
    if d < -tie_margin:
        return "loss"
    return "tie"


def agreement(outcomes: Sequence[PairOutcome], *, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Counts, agreement (wins / judged), ties, the 95% bootstrap interval, order consistency."""
    counts = Counter(o.outcome for o in outcomes)
    judged = [o for o in outcomes if o.outcome != "failed"]
    wins = [1.0 if o.outcome == "win" else 0.0 for o in judged]
    n = len(judged)
    out: dict[str, Any] = {
        "pairs": len(outcomes), "judged": n, "wins": counts["win"], "ties": counts["tie"],
        "losses": counts["loss"], "failed": counts["failed"],
        "agreement": round(sum(wins) / n, 6) if n else None,
        "agreement_ties_half": round((counts["win"] + 0.5 * counts["tie"]) / n, 6) if n else None,
        "tie_rate": round(counts["tie"] / n, 6) if n else None,
    }
    ci = bootstrap_ci(wins, n_boot=n_boot, seed=seed)
    out["ci95"] = [round(ci[0], 6), round(ci[1], 6)] if ci else None
    flags = [o.consistent for o in judged if o.consistent is not None]
    if flags:
        out["order_consistency"] = round(sum(flags) / len(flags), 6)
    return out


def paired_difference(a: Sequence[PairOutcome], b: Sequence[PairOutcome], *, n_boot: int = 2000,
                      seed: int = 0) -> dict[str, Any] | None:
    """Agreement of ``a`` minus ``b`` on the pairs both judged, with a paired bootstrap interval."""
    bmap = {o.id: o for o in b if o.outcome != "failed"}
    diffs = [float(o.outcome == "win") - float(bmap[o.id].outcome == "win")
             for o in a if o.outcome != "failed" and o.id in bmap]
    if not diffs:
        return None
    ci = bootstrap_ci(diffs, n_boot=n_boot, seed=seed)
    mean = sum(diffs) / len(diffs)
    assert ci is not None
    return {"pairs": len(diffs), "difference": round(mean, 6), "ci95": [round(ci[0], 6), round(ci[1], 6)],
            "outside_interval": ci[0] > 0 or ci[1] < 0}


# ---------------------------------------------------------------------------------------------
# outcomes per method


async def rubric_outcomes(scorer: Scorer, pairs: Sequence[Pair], rubric: Rubric | None = None, *,
                          tie_margin: float = 0.0, batch_pairs: int = 4,
                          on_progress: Callable[[int], None] | None = None) -> list[PairOutcome]:
    """Score chosen and rejected pointwise with ``rubric`` (or the scorer's own) and compare."""
    out: list[PairOutcome] = []
    for start in range(0, len(pairs), batch_pairs):
        chunk = pairs[start:start + batch_pairs]
        for ps in await scorer.ascore_pairs(chunk, rubric):
            errors = ps.errors
            err = "; ".join(sorted(set(errors.values())))[:300] if errors else None
            c, r = ps.chosen.reward, ps.rejected.reward
            out.append(PairOutcome(ps.id, ps.pair.source, _outcome(c, r, tie_margin), c, r, error=err))
        if on_progress:
            on_progress(len(chunk))
    return out


async def pairwise_outcomes(scorer: Scorer, pairs: Sequence[Pair], *, criteria: Sequence[str] = (),
                            tie_margin: float = 0.0, batch_pairs: int = 4,
                            on_progress: Callable[[int], None] | None = None) -> list[PairOutcome]:
    """Ask the judge directly, chosen as A then as B; average P(chosen better) over the two orders."""
    out: list[PairOutcome] = []
    renderer = scorer.renderer
    for start in range(0, len(pairs), batch_pairs):
        chunk = pairs[start:start + batch_pairs]
        requests = []
        for p in chunk:
            requests.append(renderer.pairwise_request(p.prompt, p.chosen, p.rejected,
                                                      criteria=tuple(criteria),
                                                      meta={"pair": p.id, "order": "chosen_first"}))
            requests.append(renderer.pairwise_request(p.prompt, p.rejected, p.chosen,
                                                      criteria=tuple(criteria),
                                                      meta={"pair": p.id, "order": "chosen_second"}))
        verdicts = await scorer.ajudge(requests)
        for i, p in enumerate(chunk):
            v1, v2 = verdicts[2 * i], verdicts[2 * i + 1]
            if v1.error or v2.error or v1.p is None or v2.p is None:
                err = v1.error_detail or v1.error or v2.error_detail or v2.error or "parse"
                out.append(PairOutcome(p.id, p.source, "failed", error=str(err)[:300]))
                continue
            first, second = float(v1.p), 1.0 - float(v2.p)   # P(chosen better) in each order
            chosen = (first + second) / 2
            consistent = (first > 0.5) == (second > 0.5)
            out.append(PairOutcome(p.id, p.source, _outcome(chosen, 1.0 - chosen, tie_margin), chosen,
                                   1.0 - chosen, consistent=consistent))
        if on_progress:
            on_progress(len(chunk))
    return out


def principle_rubric(principle: str = DEFAULT_PRINCIPLE) -> Rubric:
    """A principles-only rubric: the scorer asks one holistic 1..5 rating per response."""
    return Rubric(name="principle", criteria=(), principles=(principle,))


# ---------------------------------------------------------------------------------------------
# a whole evaluation


@dataclass
class MethodReport:
    name: str
    mode: str
    outcomes: list[PairOutcome]
    seconds: float
    cost: StageCost = field(default_factory=StageCost)  # from the scorer's meter, this method only
    rubric: dict[str, Any] | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    by_source: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        """Verdicts the judge produced for this method (cache hits not included)."""
        return self.cost.calls

    @property
    def prompt_tokens(self) -> int:
        return self.cost.prompt_tokens


def describe_rubric(rubric: Rubric) -> dict[str, Any]:
    return {"name": rubric.name, "origin": rubric.origin, "criteria": len(rubric.criteria),
            "hash": rubric.content_hash()}


async def evaluate_pairs(pairs: Sequence[Pair], *, scorer: Scorer, modes: Sequence[str] = ("rubric",),
                         rubrics: Sequence[Rubric] = (), principle: str = DEFAULT_PRINCIPLE,
                         tie_margin: float = 0.0, n_boot: int = 2000, seed: int = 0, batch_pairs: int = 4,
                         on_progress: Callable[[str, int], None] | None = None) -> list[MethodReport]:
    """Run every requested method on the same pairs; one :class:`MethodReport` per method."""
    for m in modes:
        if m not in MODES:
            raise UserError(f"unknown mode {m!r} (use {', '.join(MODES)})", field="--mode")
    if "rubric" in modes and not rubrics:
        raise UserError("mode 'rubric' needs a rubric (-r)", field="--rubric")
    methods: list[tuple[str, str, Rubric | None]] = []
    for m in modes:
        if m == "rubric":
            methods += [(f"rubric:{r.name}", "rubric", r) for r in rubrics]
        elif m == "principle":
            methods.append(("principle", "principle", principle_rubric(principle)))
        else:
            methods.append(("pairwise", "pairwise", None))
    reports = []
    for name, mode, rubric in methods:
        t0 = time.perf_counter()
        before = scorer.meter.snapshot()

        def tick(n: int, name: str = name) -> None:
            if on_progress:
                on_progress(name, n)

        with scorer.meter.stage(name):
            if mode == "pairwise":
                outcomes = await pairwise_outcomes(scorer, pairs, tie_margin=tie_margin,
                                                   batch_pairs=batch_pairs, on_progress=tick)
            else:
                outcomes = await rubric_outcomes(scorer, pairs, rubric, tie_margin=tie_margin,
                                                 batch_pairs=batch_pairs, on_progress=tick)
        rep = MethodReport(name=name, mode=mode, outcomes=outcomes, seconds=time.perf_counter() - t0,
                           cost=scorer.meter.total(before),
                           rubric=describe_rubric(rubric) if mode == "rubric" and rubric else None)
        rep.summary = agreement(outcomes, n_boot=n_boot, seed=seed)
        groups: dict[str, list[PairOutcome]] = {}
        for o in outcomes:
            groups.setdefault(o.source or "(none)", []).append(o)
        rep.by_source = {s: agreement(g, n_boot=n_boot, seed=seed) for s, g in sorted(groups.items())}
        reports.append(rep)
    return reports


def report_json(reports: Sequence[MethodReport], *, pairs_file: str | None, judge: str, skipped: list,
                n_boot: int, seed: int, tie_margin: float, principle: str | None = None) -> dict[str, Any]:
    """The JSON document ``rubrix eval`` writes: summaries, per-source, paired differences, outcomes."""
    methods = []
    for rep in reports:
        n = max(1, len(rep.outcomes))
        methods.append({
            "name": rep.name, "mode": rep.mode, "rubric": rep.rubric, "summary": rep.summary,
            "by_source": rep.by_source,
            "cost": {"judge_calls": rep.calls, "prompt_tokens": rep.prompt_tokens,
                     "cache_hits": rep.cost.cache_hits,
                     "seconds": round(rep.seconds, 2), "seconds_per_pair": round(rep.seconds / n, 3)},
            "outcomes": [o.to_dict() for o in rep.outcomes],
        })
    diffs = []
    if len(reports) > 1:
        first = reports[0]
        for other in reports[1:]:
            d = paired_difference(first.outcomes, other.outcomes, n_boot=n_boot, seed=seed)
            if d:
                diffs.append({"a": first.name, "b": other.name, **d})
    from ._version import __version__

    return {"pairs_file": pairs_file, "judge": judge, "rubrix_version": __version__,
            "pairs_evaluated": len(reports[0].outcomes) if reports else 0,
            "pairs_skipped": [{"line": s.line, "id": s.id, "reason": s.reason} for s in skipped],
            "bootstrap": {"resamples": n_boot, "seed": seed, "level": 0.95}, "tie_margin": tie_margin,
            "principle": principle, "methods": methods, "differences": diffs}
