"""Samples × criteria → judge requests → verdicts → one :class:`SampleResult` per sample.

The scorer renders one request per (sample, criterion) — or one checklist request per sample in
the cheap mode, or one principle request for a principles-only rubric — sends every request of a
batch to the judge in one call (so a local judge can share prefixes and batch across samples),
consults the verdict cache first, and aggregates. A criterion whose judgment failed keeps its
error and no value; the sample's reward is then ``None`` with status ``partial`` or ``failed``.

Preference pairs are scored here too (:meth:`Scorer.ascore_pairs`): each side pointwise, both
sides of every pair in one judge batch. Agreement evaluation, the transfer check and the
validation of proposed criteria all read pairs this way, so there is one definition of "score a
pair" and one place that records what it cost (:attr:`Scorer.meter`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _aio
from ._version import __version__
from .aggregate import CriterionValue, aggregate, failed_gate, is_met, scale_to_unit
from .cache import MEMORY, VerdictCache
from .checks import CheckFailure
from .cost import CostMeter
from .errors import InputError, UserError
from .judges.base import Judge, JudgeRequest, Verdict
from .logs import event, get_logger
from .records import Pair, Sample
from .render import EXTRA_TEMPLATES, TEMPLATES, PromptRenderer, SampleView
from .rubric import Criterion, Gate, Rubric, load_rubric

_log = get_logger(__name__)

MODES = ("criteria", "checklist")
VERDICTS = ("auto", "token", "json")


@dataclass
class CriterionResult:
    p: float | None  # value in [0, 1] (scales normalized); None when the judgment failed
    met: bool | None
    error: str | None = None
    level: float | None = None  # expected level for 1..5 scales
    from_logprobs: bool = False
    na: bool = False  # not applicable: p and met are None, error is None, and it is no failure
    skipped: bool = False  # not judged: a checked gate failed and decides the reward on its own
    source: str = "judge"  # "judge" or "check" (computed without a judge call)
    rationale: str | None = None  # the judge's reasoning, kept only when the scorer is asked to

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"p": _round(self.p), "met": self.met, "error": self.error}
        if self.level is not None:
            out["level"] = _round(self.level)
        if self.na:
            out["na"] = True
        if self.skipped:
            out["skipped"] = "gate"
        if self.source != "judge":  # judged rows keep the shape they always had
            out["source"] = self.source
        if self.rationale is not None:
            out["rationale"] = self.rationale
        return out


@dataclass
class SampleResult:
    """What the scorer knows about one sample, and the result row it writes."""

    id: str
    reward: float | None
    reward_raw: float | None
    status: str  # ok | partial | failed
    criteria: dict[str, CriterionResult]
    judge: str
    rubric_hash: str
    template_hash: str
    group_id: str | None = None
    errors: dict[str, str] = field(default_factory=dict)  # criterion id -> error detail
    usage: dict[str, int] = field(default_factory=dict)
    cached: int = 0
    latency_s: float = 0.0
    #: whether the sample passed its rubric's gate levels (veto, gates; or length.criteria when the
    #: rubric names them): what correctness-gated length shaping reads. None when not judged in full.
    passed_gate: bool | None = None
    #: what a group rule changed (rubrix.groupwise): the judged ``pointwise`` reward, the group
    #: ``relative`` score, the ``length_penalty`` subtracted. Empty when no group rule applied.
    adjustments: dict[str, float | None] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id}
        if self.group_id is not None:
            row["group_id"] = self.group_id
        row.update({
            "reward": _round(self.reward),
            "reward_raw": _round(self.reward_raw),
            "status": self.status,
            "criteria": {cid: c.to_dict() for cid, c in self.criteria.items()},
            "judge": self.judge,
            "rubric_hash": self.rubric_hash,
            "template_hash": self.template_hash,
            "rubrix_version": __version__,
        })
        if self.errors:
            row["errors"] = self.errors
        if self.adjustments:
            row["adjustments"] = {k: _round(v) for k, v in self.adjustments.items()}
        return row



def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


@dataclass
class PairScore:
    """Both sides of one preference pair, each scored pointwise with the same rubric.

    ``chosen`` and ``rejected`` are the full :class:`SampleResult` of each side (rewards,
    per-criterion values, typed errors). ``margin`` is ``reward(chosen) - reward(rejected)``, or
    ``None`` when either side has no reward: a failed judgment never becomes a margin.
    """

    pair: Pair
    chosen: SampleResult
    rejected: SampleResult

    @property
    def id(self) -> str:
        return self.pair.id

    @property
    def margin(self) -> float | None:
        c, r = self.chosen.reward, self.rejected.reward
        return None if c is None or r is None else c - r

    def values(self, criterion_id: str) -> tuple[float | None, float | None]:
        """(chosen, rejected) value of one criterion; ``None`` on a side where it failed or is absent."""
        return _value(self.chosen, criterion_id), _value(self.rejected, criterion_id)

    def error(self, criterion_id: str) -> str | None:
        """The typed error of one criterion on either side (chosen's first), else ``None``."""
        for side in (self.chosen, self.rejected):
            c = side.criteria.get(criterion_id)
            if c is not None and c.error:
                return c.error
        return None

    @property
    def errors(self) -> dict[str, str]:
        """Error details of both sides by criterion id (rejected's where both sides failed)."""
        return {**self.chosen.errors, **self.rejected.errors}


def _value(result: SampleResult, criterion_id: str) -> float | None:
    c = result.criteria.get(criterion_id)
    return None if c is None or c.error else c.p


class Scorer:
    """Scores samples against a rubric with a judge. Same defaults as ``rubrix score``.

    ``rubric`` may be a path, a built-in name, a dict or a :class:`Rubric`; samples that carry
    their own rubric use that instead. ``judge`` is a judge spec (``embedded``, ``hf:PATH``,
    ``openai:MODEL``) or a judge object. ``cache`` is True (the on-disk default location), False,
    ``"memory"`` (this process only, bounded), a path or a :class:`VerdictCache`.
    ``keep_rationale`` keeps the judge's reasoning (think-then-verdict, reasoning models) in each
    criterion of the result rows.
    """

    def __init__(self, rubric: str | Rubric | dict | None = None, judge: str | Judge | None = None, *,
                 prompts: str | None = None, mode: str = "criteria", verdict: str = "auto",
                 cache: bool | str | VerdictCache = True, hard: bool = False, keep_rationale: bool = False,
                 **judge_options: Any):
        from .judges import check_spec, get_judge

        if mode not in MODES:
            raise UserError(f"mode must be one of {', '.join(MODES)}", field="--mode")
        if verdict not in VERDICTS:
            raise UserError(f"verdict must be one of {', '.join(VERDICTS)}", field="--verdict")
        self.rubric = load_rubric(rubric) if rubric is not None else None
        # A judge given by spec is checked now but built on first use, so bad input fails fast.
        if judge is None or isinstance(judge, str):
            judge = check_spec(judge, judge_options)
        self._judge: Judge | None = judge if judge is not None and not isinstance(judge, str) else None
        self._judge_factory = lambda: get_judge(judge, **judge_options)
        self._judge_spec = judge if isinstance(judge, str) or judge is None else judge.name
        self.renderer = PromptRenderer(prompts)
        self.mode = mode
        self.verdict = verdict
        self.hard = hard
        self.keep_rationale = keep_rationale
        if cache is True:
            self.cache: VerdictCache | None = VerdictCache()
        elif cache in ("memory", MEMORY):
            self.cache = VerdictCache(MEMORY)
        elif cache is False or cache is None:
            self.cache = None
        elif isinstance(cache, VerdictCache):
            self.cache = cache
        else:
            self.cache = VerdictCache(cache)
        self.template_hash = self.renderer.template_hash()
        #: the hash of rows whose rubric asks three-way verdicts (their template is outside the default)
        self.template_hash_na = self.renderer.template_hash(tuple(TEMPLATES) + tuple(EXTRA_TEMPLATES))
        self.counts: Counter[str] = Counter()
        #: what this scorer's judge was asked and what it cost (every pipeline reports from it)
        self.meter = CostMeter()

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            self._judge = self._judge_factory()
        return self._judge

    @property
    def judge_spec(self) -> str:
        """The spec this scorer's judge was named by (its name when it was given as an object)."""
        return str(self._judge_spec or "embedded")

    def preflight(self) -> None:
        """Check an API judge's endpoint with one cheap request before a long job.

        A rejected key, an unknown model or deployment raise :class:`UserError` (one line, exit
        status 2 on the command line) before anything is scored; local judges are not loaded for
        this. Other failures (a busy server) are left to the run's retries.
        """
        kind = self.judge_spec.partition(":")[0]
        if self._judge is None and kind not in ("openai", "azure"):
            return
        from .judges.openai import OpenAIJudge
        from .judges.thinking import ThinkingJudge

        judge = self.judge.inner if isinstance(self.judge, ThinkingJudge) else self.judge
        if isinstance(judge, OpenAIJudge):
            _aio.run(judge.preflight())

    @property
    def judge_label(self) -> str:
        """The judge's name, without loading a model that is not loaded yet."""
        return self._judge.name if self._judge is not None else str(self._judge_spec or "embedded")

    @property
    def judge_identity(self) -> str | None:
        return self._judge.identity() if self._judge is not None else None

    # -- public API ------------------------------------------------------------------------------

    def score(self, samples: Iterable[Sample | dict]) -> list[SampleResult]:
        """Score samples synchronously (runs the async scorer in an event loop)."""
        return _aio.run(self.ascore(list(samples)))

    async def ascore(self, samples: Iterable[Sample | dict]) -> list[SampleResult]:
        """Score a batch of samples; all their requests go to the judge together."""
        samples = [_as_sample(s, i) for i, s in enumerate(samples)]
        plans = [self._plan(s) for s in samples]
        requests = [req for plan in plans for req in plan.requests]
        verdicts = await self.ajudge(requests)
        results = []
        pos = 0
        for sample, plan in zip(samples, plans, strict=True):
            n = len(plan.requests)
            results.append(self._result(sample, plan, verdicts[pos:pos + n]))
            pos += n
        return results

    async def ascore_stream(self, samples: Iterable[Sample], *, batch_size: int = 32
                            ) -> AsyncIterator[list[SampleResult]]:
        """Score an iterable in batches, yielding each batch's results as soon as it is done."""
        batch: list[Sample] = []
        for sample in samples:
            batch.append(sample)
            if len(batch) >= batch_size:
                yield await self.ascore(batch)
                batch = []
        if batch:
            yield await self.ascore(batch)

    async def ascore_pairs(self, pairs: Sequence[Pair],
                           rubric: Rubric | Sequence[Rubric] | None = None) -> list[PairScore]:
        """Score both responses of every pair pointwise, all of them in one judge batch.

        ``rubric`` is one rubric for every pair, one per pair (a sequence as long as ``pairs``:
        extraction validates each pair with its own proposal), or ``None`` for the scorer's own.
        Scoring each side on its own means the order of presentation cannot matter.
        """
        pairs = list(pairs)
        if isinstance(rubric, Rubric) or rubric is None:
            rubrics: list[Rubric | None] = [rubric] * len(pairs)
        else:
            rubrics = list(rubric)
            if len(rubrics) != len(pairs):
                raise ValueError(f"{len(rubrics)} rubrics for {len(pairs)} pairs")
        samples = []
        for p, r in zip(pairs, rubrics, strict=True):
            samples.append(Sample(id=f"{p.id}#chosen", prompt=p.prompt, response=p.chosen, rubric=r))
            samples.append(Sample(id=f"{p.id}#rejected", prompt=p.prompt, response=p.rejected, rubric=r))
        results = await self.ascore(samples)
        return [PairScore(p, results[2 * i], results[2 * i + 1]) for i, p in enumerate(pairs)]

    async def ajudge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        """Verdicts for ready-made requests (pairwise comparisons), through the cache and the meter.

        One call to the judge for whatever the cache does not hold, recorded in :attr:`meter`.
        """
        identity = self.judge.identity()
        keys = [r.cache_key(identity) for r in requests]
        found = self.cache.get_many(keys) if self.cache else {}
        missing = [i for i, k in enumerate(keys) if k not in found]
        if self.cache:
            event(_log, logging.DEBUG, "cache_lookup", requests=len(keys), hits=len(found),
                  misses=len(missing))
        t0 = time.perf_counter()
        # on rubrix's one loop whoever awaits: the judge's connections belong to that loop and live
        # across batches (a caller's own loop would get a pool of its own, closed with it or not)
        fresh = await _aio.arun(self.judge.judge([requests[i] for i in missing])) if missing else []
        if len(fresh) != len(missing):
            raise RuntimeError(f"judge returned {len(fresh)} verdicts for {len(missing)} requests")
        self.meter.add_verdicts(fresh, cache_hits=len(requests) - len(missing),
                                seconds=time.perf_counter() - t0 if missing else 0.0)
        if self.cache:
            self.cache.put_many([(keys[i], v) for i, v in zip(missing, fresh, strict=True)])
        out: list[Verdict] = [found.get(k) for k in keys]  # type: ignore[misc]
        for i, v in zip(missing, fresh, strict=True):
            out[i] = v
        return out

    def requests_for(self, sample: Sample | dict) -> list[JudgeRequest]:
        """Exactly what the judge will be asked for one sample (``rubrix prompts render``)."""
        return self._plan(_as_sample(sample, 0)).requests

    # -- planning ----------------------------------------------------------------------------------

    def _rubric_for(self, sample: Sample) -> Rubric:
        rubric = sample.rubric or self.rubric
        if rubric is None:
            raise InputError("sample has no rubric and no run rubric was given (-r)", line=sample.line,
                             field="rubric")
        return rubric

    def _verdict_style(self) -> str:
        if self.verdict != "auto":
            return self.verdict
        if self._judge is None:  # not loaded yet (e.g. only rendering): every backend starts with logprobs
            return "token"
        return "token" if self.judge.reads_logprobs else "json"

    def _plan(self, sample: Sample) -> _Plan:
        rubric = self._rubric_for(sample)
        view = SampleView(prompt=sample.prompt, response=sample.response, reference=sample.reference)
        meta = {"sample": sample.id}
        if not rubric.criteria:
            return _Plan(rubric, [self.renderer.principle_request(view, rubric.principles, meta=meta)],
                         implicit=True)
        if rubric.aggregation == "implicit":
            principles = rubric.principles or tuple(c.text for c in rubric.criteria)
            return _Plan(rubric, [self.renderer.principle_request(view, principles, meta=meta)],
                         implicit=True)
        # checks and deterministic conditions now: they cost no judge call, and a criterion known
        # not to apply is not sent to the judge at all
        checked = {c.id: c.check.run(sample.response, sample.prompt, sample.reference)
                   for c in rubric.criteria if c.check is not None}
        conditions = {c.id: c.applies_if.check.run(sample.response, sample.prompt, sample.reference)
                      for c in rubric.criteria if c.applies_if is not None and c.applies_if.kind == "check"}
        known = _Applicability(rubric, checked, conditions, {}, {})
        if _checked_gate_decides(rubric, checked, known):  # the reward is the gate's on_fail: judge nothing
            return _Plan(rubric, [], checked=checked, conditions=conditions, gate_decided=True)
        judged = [c for c in rubric.criteria if not c.is_checked and known.applies(c.id) is not False]
        three_way = [c for c in judged if c.allow_na]
        judged = [c for c in judged if not c.allow_na]
        asked = [c for c in rubric.criteria if c.applies_if is not None and c.applies_if.kind == "judged"]
        style = self._verdict_style()
        plan = _Plan(rubric, [], checked=checked, conditions=conditions, judged_ids=[c.id for c in judged],
                     asked_ids=[c.id for c in asked], three_way_ids=[c.id for c in three_way])
        if self.mode == "checklist" and any(not c.is_scale for c in judged):
            plan.requests.append(self.renderer.checklist_request(
                view, rubric, meta=meta, criteria=[c for c in judged if not c.is_scale]))
            plan.checklist = True
            judged = [c for c in judged if c.is_scale]
        plan.requests += [self.renderer.criterion_request(view, c, verdict=style, meta=meta) for c in judged]
        plan.requests += [self.renderer.criterion_request(view, _condition_criterion(c), verdict=style,
                                                          meta=meta) for c in asked]
        for c in three_way:
            plan.requests += self.renderer.three_way_requests(view, c, meta=meta)
        return plan

    # -- results -----------------------------------------------------------------------------------

    def _result(self, sample: Sample, plan: _Plan, verdicts: list[Verdict]) -> SampleResult:
        rubric = plan.rubric
        criteria: dict[str, CriterionResult] = {}
        errors: dict[str, str] = {}
        passed_gate: bool | None = None
        if plan.implicit:
            v = verdicts[0]
            if v.error or v.p is None:  # as for criteria: an answer without a value is a failure
                err = v.error or "parse"
                criteria["principles"] = CriterionResult(p=None, met=None, error=err)
                errors["principles"] = v.error_detail or err
                reward = reward_raw = None
            else:
                value = scale_to_unit(v.p)
                criteria["principles"] = CriterionResult(p=value, met=is_met(value), level=v.p,
                                                         from_logprobs=v.from_logprobs)
                reward, reward_raw = value, v.p
        else:
            by_id, asked = self._criterion_verdicts(rubric, plan, verdicts)
            for c in rubric.criteria:
                if c.id in plan.checked:
                    out = plan.checked[c.id]
                    if isinstance(out, CheckFailure):
                        criteria[c.id] = CriterionResult(p=None, met=None, error=out.error, source="check")
                        errors[c.id] = out.detail
                    else:
                        criteria[c.id] = CriterionResult(p=out, met=is_met(out), source="check")
                    continue
                if plan.gate_decided:  # not asked: the failed checked gate decides (N/A still wins below)
                    criteria[c.id] = CriterionResult(p=None, met=None, skipped=True)
                    continue
                v = by_id.get(c.id)
                if v is None:  # not asked: known before judging not to apply (or the gate decided)
                    continue
                if v is _NOT_APPLICABLE:  # the judge's three-way verdict: N/A, neither met nor failed
                    criteria[c.id] = CriterionResult(p=None, met=None, na=True)
                    continue
                if v.error or v.p is None:
                    err = v.error or "parse"
                    criteria[c.id] = CriterionResult(p=None, met=None, error=err,
                                                     rationale=v.rationale if self.keep_rationale else None)
                    errors[c.id] = v.error_detail or err
                    continue
                value = scale_to_unit(v.p) if c.is_scale else min(1.0, max(0.0, v.p))
                criteria[c.id] = CriterionResult(p=value, met=is_met(value),
                                                 level=v.p if c.is_scale else None,
                                                 from_logprobs=v.from_logprobs,
                                                 rationale=v.rationale if self.keep_rationale else None)
            applicability = _Applicability(rubric, plan.checked, plan.conditions, asked, criteria)
            for c in rubric.criteria:  # conditions last: a criterion that does not apply is N/A, not an error
                if c.applies_if is None:
                    continue
                applies = applicability.applies(c.id)
                if applies is None and plan.gate_decided:  # undecided because nothing was judged
                    criteria[c.id] = CriterionResult(p=None, met=None, skipped=True,
                                                     source="check" if c.is_checked else "judge")
                    continue
                if isinstance(applies, tuple):  # the condition itself could not be decided
                    source = criteria[c.id].source if c.id in criteria else "judge"
                    criteria[c.id] = CriterionResult(p=None, met=None, error=applies[0], source=source)
                    errors[c.id] = f"applies_if: {applies[1]}"
                elif applies is False:
                    criteria[c.id] = CriterionResult(p=None, met=None, na=True,
                                                     source="check" if c.is_checked else "judge")
                    errors.pop(c.id, None)
            criteria = {c.id: criteria[c.id] for c in rubric.criteria}
            items = [CriterionValue(c, criteria[c.id].p, na=criteria[c.id].na) for c in rubric.criteria]
            reward = aggregate(rubric.aggregation, items, hard=self.hard,
                               gates=rubric.gate_levels() if rubric.gates else None)
            reward_raw = aggregate("raw", items, hard=self.hard)
            passed_gate = _passed_gate(rubric, items)
        failed = sum(1 for c in criteria.values() if c.error)
        status = "ok" if failed == 0 else ("failed" if failed == len(criteria) else "partial")
        if status != "ok":
            reward = reward_raw = passed_gate = None
        usage: Counter[str] = Counter()
        for v in verdicts:
            usage.update({k: int(x) for k, x in (v.usage or {}).items() if isinstance(x, int | float)})
        self.counts[status] += 1
        if status != "ok":
            event(_log, logging.INFO, "sample_failed", id=sample.id, status=status,
                  errors={cid: (d[:120] if isinstance(d, str) else d) for cid, d in list(errors.items())[:5]})
        for c in criteria.values():
            if c.error:
                self.counts[f"error:{c.error}"] += 1
            if c.na:
                self.counts["not_applicable"] += 1
            if c.source == "check" and not c.na:
                self.counts["checked"] += 1
        cached = sum(1 for v in verdicts if v.cached)
        return SampleResult(id=sample.id, group_id=sample.group_id, reward=reward, reward_raw=reward_raw,
                            status=status, criteria=criteria, judge=self.judge.name,
                            rubric_hash=rubric.content_hash(),
                            template_hash=self.template_hash_na if any(c.allow_na for c in rubric.criteria)
                            else self.template_hash,
                            errors=errors, usage=dict(usage), cached=cached,
                            latency_s=sum(v.latency_s for v in verdicts), passed_gate=passed_gate)

    def _criterion_verdicts(self, rubric: Rubric, plan: _Plan, verdicts: list[Verdict]
                            ) -> tuple[dict[str, Verdict], dict[str, Verdict]]:
        """(verdicts of judged criteria, verdicts of judged ``applies_if`` conditions) by criterion id."""
        judged = [rubric.criterion(cid) for cid in plan.judged_ids]
        rest = iter(verdicts)
        out: dict[str, Verdict] = {}
        if plan.checklist:
            checklist = next(rest)
            for c in judged:
                if c.is_scale:
                    continue
                if checklist.ok and checklist.values and c.id in checklist.values:
                    out[c.id] = Verdict(p=checklist.values[c.id], label=None, from_logprobs=False)
                else:
                    out[c.id] = Verdict.failed(checklist.error or "parse",
                                               checklist.error_detail or "checklist answer incomplete")
            judged = [c for c in judged if c.is_scale]
        for c in judged:
            out[c.id] = next(rest)
        asked = {cid: next(rest) for cid in plan.asked_ids}
        for cid in plan.three_way_ids:  # (applies, met) read from one Yes / No / NA prompt
            applies, met = next(rest), next(rest)
            if applies.error or applies.p is None:
                out[cid] = applies
            elif not is_met(applies.p):
                out[cid] = _NOT_APPLICABLE
            else:
                out[cid] = met
        return out, asked

    async def aclose(self) -> None:
        if self._judge is not None:
            await self._judge.aclose()
        if self.cache:
            self.cache.close()

    def close(self) -> None:
        _aio.run(self.aclose())


@dataclass
class _Plan:
    rubric: Rubric
    requests: list[JudgeRequest]
    implicit: bool = False
    checklist: bool = False
    checked: dict[str, float | CheckFailure] = field(default_factory=dict)  # check values, no judge
    conditions: dict[str, float | CheckFailure] = field(default_factory=dict)  # deterministic applies_if
    judged_ids: list[str] = field(default_factory=list)  # criteria sent to the judge, in rubric order
    asked_ids: list[str] = field(default_factory=list)  # criteria whose applies_if the judge answers
    three_way_ids: list[str] = field(default_factory=list)  # allow_na criteria: two reads of one prompt
    gate_decided: bool = False  # a checked gate failed with a numeric on_fail: nothing was judged


#: the verdict that stands for "the judge answered N/A" in a three-way reading
_NOT_APPLICABLE = Verdict(p=None, label="NA")


def _checked_gate_decides(rubric: Rubric, checked: dict, known: _Applicability) -> bool:
    """True when the levels down to a failing one are all checks, and that level's ``on_fail`` is a
    number: the reward is then that number whatever the judge would say, so the judge is not asked."""
    for gate in rubric.gate_levels() if rubric.gates else ():
        outcome = "pass"
        for cid in gate.criteria:
            applies = known.applies(cid)
            if applies is False:
                continue
            value = checked.get(cid)
            if value is None or isinstance(value, CheckFailure) or applies is not True:
                return False  # judged, failed or undecided: the judge must be asked
            c = rubric.criterion(cid)
            if (is_met(value) if c.weight > 0 else not is_met(value)) is False:
                outcome = "fail"
        if outcome == "fail":
            return isinstance(gate.on_fail, float | int)
    return False


def _passed_gate(rubric: Rubric, items: list[CriterionValue]) -> bool | None:
    """Whether every gate member passes (``length.criteria`` when named); None without gates."""
    if rubric.length is not None and rubric.length.criteria:
        gates = (Gate(rubric.length.criteria),)
    else:
        gates = rubric.gate_levels()
    if not gates:
        return None
    return failed_gate(items, gates) is None


def _condition_criterion(c: Criterion) -> Criterion:
    """A judged ``applies_if`` condition as a criterion the templates can render."""
    return Criterion(id=f"{c.id}.applies_if", text=c.applies_if.text, weight=1.0)  # type: ignore[union-attr]


class _Applicability:
    """Whether each criterion applies: True, False, None (not known yet) or (error, detail).

    ``{met: ID}`` conditions follow the referenced criterion: a criterion that is itself N/A or
    not met makes the condition false; one that failed makes it undecidable (its error).
    """

    def __init__(self, rubric: Rubric, checked: dict, conditions: dict, asked: dict[str, Verdict],
                 results: dict[str, CriterionResult]):
        self.rubric, self.checked, self.conditions = rubric, checked, conditions
        self.asked, self.results = asked, results
        self.memo: dict[str, Any] = {}

    def applies(self, cid: str) -> Any:
        if cid not in self.memo:
            self.memo[cid] = self._applies(self.rubric.criterion(cid))
        return self.memo[cid]

    def _met(self, cid: str) -> Any:
        """Whether ``cid`` is met: True, False (also when N/A), None (unknown) or (error, detail)."""
        applies = self.applies(cid)
        if applies is False or isinstance(applies, tuple):
            return applies if isinstance(applies, tuple) else False
        if cid in self.checked:
            out = self.checked[cid]
            if isinstance(out, CheckFailure):
                return (out.error, f"{cid}: {out.detail}")
            return is_met(out) if applies is True else None
        r = self.results.get(cid)
        if r is None or applies is None or r.skipped:
            return None
        return (r.error, f"{cid} failed") if r.error else bool(r.met)

    def _applies(self, c: Criterion) -> Any:
        cond = c.applies_if
        if cond is None:
            return True
        if cond.kind == "check":
            out = self.conditions[c.id]
            if isinstance(out, CheckFailure):
                return (out.error, out.detail)
            return is_met(out)
        if cond.kind == "judged":
            v = self.asked.get(c.id)
            if v is None:
                return None
            if v.error or v.p is None:
                return (v.error or "parse", v.error_detail or "condition not judged")
            return is_met(v.p)
        met = self._met(cond.ref)  # type: ignore[arg-type]
        if met is None or isinstance(met, tuple):
            return met
        return met == cond.met


def _as_sample(sample: Sample | dict, index: int) -> Sample:
    if isinstance(sample, Sample):
        return sample
    from .records import sample_from_dict

    return sample_from_dict(sample, file="<api>", line=index + 1, default_id_prefix="sample-")

