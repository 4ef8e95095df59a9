"""The one reward core: samples in, rewards a trainer can take out — for every adapter and the server.

:class:`RubricReward` sits between a caller (TRL, verl, OpenRLHF, verifiers, the HTTP server, a
script) and a :class:`~rubrix.scoring.Scorer`, and adds what training needs and scoring does not:

* **micro-batching** (:mod:`rubrix.batching`): calls that arrive within ``window_ms`` of each other
  are judged in one batch, and identical (prompt, response, reference, rubric) samples once;
* **one event loop** (:mod:`rubrix._aio`): callers on any loop or thread share one judge, one
  connection pool and one cache;
* the **length penalty**, correctness-gated **length shaping** (:mod:`rubrix.shaping`), the
  **failure policy** and the **circuit breaker** of
  :mod:`rubrix.policy`, applied per call (a call is the unit that knows its groups);
* a **deadline**: a sample not judged in time comes back as a typed ``timeout`` failure (and
  goes through the policy), never as a late answer the caller already gave up on;
* a judge that **raises** (a crashed server, a bug in a backend) becomes failed samples that go
  through the policy and the breaker, instead of killing a training step; bad *input* (no
  rubric, a malformed rubric in a label) still raises :class:`~rubrix.errors.UserError`, because no
  policy can fix it.

Every trainer adapter and the server are thin shells over this class, so they share defaults
(:class:`RewardConfig`) and behaviour. A :class:`RubricReward` pickles as its configuration (what
TRL's AsyncGRPO does with reward functions): the copy builds its own judge on first use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import pickle
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _aio
from .batching import MicroBatcher
from .errors import UserError
from .groupwise import GroupRewards
from .labels import Label, RubricResolver, parse_label
from .policy import (
    CircuitBreaker,
    CircuitOpenError,
    FailurePolicy,
    LengthPenalty,
    RewardFailure,
    apply_failure_policy,
)
from .records import Sample
from .relative import GroupRelative
from .rubric import Rubric
from .scoring import CriterionResult, SampleResult, Scorer
from .shaping import LengthShaping

log = logging.getLogger("rubrix.rewards")

Prompt = str | list[dict[str, Any]]
_UNSET: Any = object()


@dataclass(frozen=True)
class RewardConfig:
    """Defaults shared by every shell over the core (adapters, server, CLI).

    ``max_queue`` ``None`` means unbounded: a trainer bounds its own load; the server sets a limit
    so that load cannot become unbounded memory (callers past it wait for room within their
    deadline). ``deadline_s`` ``None`` waits as long as the
    judge takes (its own timeouts still apply).
    """

    failure: str = "none"
    breaker: float | None = 0.5
    max_batch: int = 64
    window_ms: float = 5.0
    max_queue: int | None = None
    concurrency: int = 1
    deadline_s: float | None = None


DEFAULTS = RewardConfig()


@dataclass
class RewardItem:
    """One completion to reward. ``rubric`` overrides the reward's rubric for this item only."""

    prompt: Prompt
    response: str
    rubric: Rubric | None = None
    reference: str | None = None
    group_id: Hashable | None = None
    id: str | None = None


@dataclass
class Reward:
    """What a caller gets back for one item.

    ``reward`` is the value after length penalty and failure policy (``None`` only where the policy
    leaves it so); ``score`` is the judged reward before the policy (``None`` when the judgment
    failed); ``imputed_by`` names the policy when it supplied ``reward``. ``criteria`` maps every
    criterion id of the item's rubric to its value in [0, 1] or ``None``. ``result`` is the full
    :class:`SampleResult` (the row ``rubrix score`` would write).
    """

    id: str
    reward: float | None
    score: float | None
    status: str
    criteria: dict[str, float | None] = field(default_factory=dict)
    imputed_by: str | None = None
    error: str | None = None
    result: SampleResult | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def imputed(self) -> bool:
        return self.imputed_by is not None


class RubricReward:
    """Rewards from a rubric and a judge, with the failure handling a trainer needs.

    ``rubric``: path, built-in name, dict or :class:`Rubric`; may be ``None`` when every item
    carries its own rubric. ``judge``: a spec (``embedded:0.5b``, ``hf:PATH``, ``openai:MODEL``,
    ``fake``) or a judge object. ``failure``: ``none`` | ``raise`` | ``constant:X`` | ``group_mean``.
    ``fallback``: the number that replaces what the policy leaves ``None`` (for trainers that
    cannot take ``None``). ``breaker``: a failure-rate threshold, a :class:`CircuitBreaker`, or
    ``None``. ``length_penalty``: a :class:`LengthPenalty` or its ``"F:C[:P[:k]]"`` spec (every
    answer). ``length_shaping``: a :class:`~rubrix.shaping.LengthShaping` or its spec
    (``group[:P]``, ``target:N[:P]``) that overrides the rubric's ``length:`` — only answers that
    pass their gate are shaped, relative to their group's passing answers in the call.
    ``relative``: ``"pairwise[:BLEND]"`` or a :class:`~rubrix.relative.GroupRelative` — rewards
    relative to the other answers of the same group in the call, judged pairwise in both orders.
    ``allow_rubric_paths``: whether rubrics named in items/labels may be file paths (off for the
    HTTP server). ``cache`` defaults to ``"memory"``: repeats within the process are answered from a
    bounded in-memory cache and nothing grows on disk during training (pass ``True`` or a path for
    the on-disk cache). Other keyword arguments go to :class:`Scorer` (``mode``, ``verdict``,
    ``hard``, ``prompts``) and to the judge (``base_url``, ``device`` ...); ``judge_concurrency`` is
    the judge's own ``concurrency`` (requests in flight), which ``concurrency`` (batches in flight)
    would otherwise shadow.
    """

    def __init__(self, rubric: str | Rubric | dict | None = None, judge: Any = None, *,
                 failure: str | FailurePolicy = DEFAULTS.failure, fallback: float | None = None,
                 breaker: float | CircuitBreaker | None = DEFAULTS.breaker,
                 length_penalty: LengthPenalty | str | None = None,
                 length_shaping: LengthShaping | str | None = None,
                 relative: GroupRelative | str | None = None, scorer: Scorer | None = None,
                 max_batch: int = DEFAULTS.max_batch, window_ms: float = DEFAULTS.window_ms,
                 max_queue: int | None = DEFAULTS.max_queue, concurrency: int = DEFAULTS.concurrency,
                 deadline_s: float | None = DEFAULTS.deadline_s, allow_rubric_paths: bool = True,
                 cache: Any = "memory", mode: str = "criteria", verdict: str = "auto", hard: bool = False,
                 prompts: str | None = None, judge_concurrency: int | None = None, **judge_options: Any):
        self._init = None if scorer is not None else (
            (rubric, judge),
            dict(failure=failure, fallback=fallback, breaker=breaker, length_penalty=length_penalty,
                 length_shaping=length_shaping, relative=relative,
                 max_batch=max_batch, window_ms=window_ms, max_queue=max_queue, concurrency=concurrency,
                 deadline_s=deadline_s, allow_rubric_paths=allow_rubric_paths, cache=cache, mode=mode,
                 verdict=verdict, hard=hard, prompts=prompts, judge_concurrency=judge_concurrency,
                 **judge_options))
        try:
            self.failure = FailurePolicy.parse(failure)
        except ValueError as exc:
            raise UserError(str(exc), field="failure") from None
        self.fallback = None if self.failure.kind == "raise" else fallback
        self.breaker = breaker if isinstance(breaker, CircuitBreaker) else CircuitBreaker(breaker)
        if isinstance(length_penalty, str):
            try:
                length_penalty = LengthPenalty.parse(length_penalty)
            except ValueError as exc:
                raise UserError(str(exc), field="length_penalty") from None
        self.length_penalty = length_penalty
        self.group_rules = GroupRewards.parse(length_shaping, relative)
        self.length_shaping: LengthShaping | None = self.group_rules.shaping
        self.relative: GroupRelative | None = self.group_rules.relative
        for name, value in (("max_batch", max_batch), ("concurrency", concurrency),
                            ("max_queue", 1 if max_queue is None else max_queue)):
            if value < 1:
                raise UserError(f"must be at least 1, got {value}", field=name)
        if window_ms < 0:
            raise UserError(f"must not be negative, got {window_ms}", field="window_ms")
        if deadline_s is not None and not deadline_s > 0:
            raise UserError(f"must be a positive number of seconds, got {deadline_s}", field="deadline_s")
        if judge_concurrency is not None:  # ``concurrency`` here is batches in flight, not judge requests
            judge_options["concurrency"] = judge_concurrency
        self.scorer = scorer or Scorer(rubric, judge, prompts=prompts, mode=mode, verdict=verdict,
                                       cache=cache, hard=hard, **judge_options)
        self.rubric = self.scorer.rubric
        self.resolver = RubricResolver(allow_paths=allow_rubric_paths)
        self.max_batch = int(max_batch)
        self.window_ms = float(window_ms)
        self.max_queue = max_queue
        self.concurrency = int(concurrency)
        self.deadline_s = deadline_s
        #: running totals: ``status:<s>``, ``imputed:<policy>``, ``deadline_exceeded``, ``judge_crashes``,
        #: ``breaker_refusals``, ``deduplicated``, ``batches``
        self.counts: Counter[str] = Counter()
        self.on_batch: Any = None  # optional hook: called with each batch's BatchStats (server metrics)
        self._batcher: MicroBatcher[Sample, SampleResult] | None = None

    # -- pickling: a reward travels as its configuration --------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        if self._init is None:
            raise TypeError("a RubricReward built around a Scorer object cannot be pickled; build it from "
                            "a rubric and a judge spec instead")
        (_, judge), _ = self._init
        if judge is not None and not isinstance(judge, str):
            try:
                pickle.dumps(judge)
            except Exception as exc:  # noqa: BLE001 - any pickling failure means the same to the user
                raise TypeError(f"this RubricReward's judge object cannot be pickled ({exc}); give the judge "
                                "as a spec string such as 'openai:MODEL' so that each process builds its own"
                                ) from None
        return {"init": self._init}

    def __setstate__(self, state: dict[str, Any]) -> None:
        (rubric, judge), kwargs = state["init"]
        self.__init__(rubric, judge, **kwargs)  # type: ignore[misc]

    # -- public ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.rubric.name if self.rubric is not None else "row_rubric"

    @property
    def criterion_ids(self) -> tuple[str, ...]:
        """Result keys of the run rubric (the fixed per-criterion keys), or ``()`` without one."""
        return self.rubric.result_ids() if self.rubric is not None else ()

    @property
    def calls(self) -> int:
        """Calls made to :meth:`ascore` / :meth:`score` (trainer steps, HTTP requests)."""
        return self.counts["calls"]

    @property
    def judge_batches(self) -> int:
        """Batches sent to the judge (calls merged by the micro-batcher count once)."""
        return self.counts["batches"]

    @property
    def queued(self) -> int:
        return self._batcher.queued_samples if self._batcher is not None else 0

    @property
    def waiting(self) -> int:
        """Samples whose callers wait for room in the full queue."""
        return self._batcher.waiting_samples if self._batcher is not None else 0

    @property
    def waited(self) -> int:
        """Samples that ever had to wait for room in the full queue."""
        return self._batcher.waited_samples if self._batcher is not None else 0

    @property
    def queued_calls(self) -> int:
        """Calls (``ascore`` / ``score``) whose samples wait in the queue (the server's queued requests)."""
        return self._batcher.queued_tickets if self._batcher is not None else 0

    @property
    def inflight(self) -> int:
        return self._batcher.inflight if self._batcher is not None else 0

    def retry_after(self) -> int:
        return self._batcher.retry_after() if self._batcher is not None else 1

    async def ascore(self, items: Sequence[RewardItem], *, failure: str | FailurePolicy | None = None,
                     fallback: float | None = _UNSET, deadline_s: float | None = _UNSET) -> list[Reward]:
        """Rewards for ``items``, from any event loop (the work runs on rubrix's own loop).

        ``failure`` / ``fallback`` / ``deadline_s`` override this reward's settings for this call.
        Past ``max_queue`` the call waits for room within its deadline (then its samples fail
        as ``timeout``). Raises :class:`CircuitOpenError` when the breaker refuses substitutes,
        :class:`~rubrix.policy.RewardFailure` under ``raise``.
        """
        if not items:
            return []
        return await _aio.arun(self._ascore(list(items), failure, fallback, deadline_s))

    def score(self, items: Sequence[RewardItem], *, failure: str | FailurePolicy | None = None,
              fallback: float | None = _UNSET, deadline_s: float | None = _UNSET) -> list[Reward]:
        """The same from synchronous code (any thread but rubrix's loop thread)."""
        if not items:
            return []
        return _aio.run(self._ascore(list(items), failure, fallback, deadline_s))

    def row_rubric(self, value: Any, field: str = "rubric") -> Rubric | None:
        """A per-row rubric from a dataset cell (``None`` or ``""`` means none); see :mod:`rubrix.labels`."""
        if value is None or value == "":
            return None
        return self.resolver.resolve(value, field)

    def parse_label(self, label: Any, where: str = "label") -> Label:
        """A trainer's label read the one way every shell reads it (:func:`rubrix.labels.parse_label`)."""
        return parse_label(label, self.resolver, where)

    async def aclose(self) -> None:
        """Stop batching and close the judge and the cache (on rubrix's loop)."""
        async def close() -> None:
            if self._batcher is not None:
                await self._batcher.aclose()
                self._batcher = None
            await self.scorer.aclose()

        await _aio.arun(close())

    def close(self) -> None:
        """Close from synchronous code."""
        _aio.run(self.aclose())

    # -- scoring -----------------------------------------------------------------------------------

    def _batcher_here(self) -> MicroBatcher[Sample, SampleResult]:
        if self._batcher is None:
            self._batcher = MicroBatcher(self._judge_batch, max_batch=self.max_batch,
                                         window_s=self.window_ms / 1000.0,
                                         max_queue=self.max_queue or 2 ** 62, concurrency=self.concurrency,
                                         key=_dedupe_key, group=_prompt_key, on_batch=self._observe)
        return self._batcher

    async def _ascore(self, items: list[RewardItem], failure: Any, fallback: Any, deadline_s: Any
                      ) -> list[Reward]:
        self.counts["calls"] += 1
        policy = self.failure if failure is None else FailurePolicy.parse(failure)
        if fallback is _UNSET:
            fallback = self.fallback if policy == self.failure else None
        deadline = self.deadline_s if deadline_s is _UNSET else deadline_s
        samples = [self._sample(item, i) for i, item in enumerate(items)]
        batcher = self._batcher_here()
        loop = asyncio.get_running_loop()
        start = loop.time()
        ticket = None
        try:
            # a full queue is waited out (first come first served) as long as the deadline allows
            ticket = await batcher.enter(samples, deadline)
            left = None if deadline is None else max(0.0, deadline - (loop.time() - start))
            results = await asyncio.wait_for(asyncio.shield(ticket.future), left)
        except TimeoutError:
            if ticket is None:
                self.counts["queue_wait_expired"] += len(samples)
            else:
                batcher.withdraw(ticket)
            self.counts["deadline_exceeded"] += len(samples)
            results = [self._failed(s, "timeout", "no verdict within the deadline") for s in samples]
        except asyncio.CancelledError:
            if ticket is not None:
                batcher.withdraw(ticket)
            raise
        if self.relative is not None:
            results = [r if (r.id, r.group_id) == (s.id, s.group_id)
                       else dataclasses.replace(r, id=s.id, group_id=s.group_id)
                       for s, r in zip(samples, results, strict=True)]
            results = await self.group_rules.arelative(self.scorer, samples, results, self.rubric,
                                                       self.counts)
        return self._finish(items, samples, results, policy, fallback)

    def _sample(self, item: RewardItem, index: int) -> Sample:
        rubric = item.rubric or self.rubric
        if rubric is None:
            raise UserError("no rubric: give the reward a rubric, or give every item its own", field="rubric")
        return Sample(id=item.id or f"item-{index}", prompt=item.prompt, response=item.response or "",
                      rubric=rubric, reference=item.reference,
                      group_id=None if item.group_id is None else str(item.group_id))

    async def _judge_batch(self, samples: list[Sample]) -> list[SampleResult]:
        try:
            return await self.scorer.ascore(samples)
        except UserError:
            raise
        except Exception as exc:  # a crashed judge: every sample failed, the policy decides the rest
            log.warning("judge raised %s: %s; %d samples count as failed", type(exc).__name__, exc,
                        len(samples))
            self.counts["judge_crashes"] += 1
            detail = f"judge raised {type(exc).__name__}: {exc}"[:300]
            return [self._failed(s, "server", detail) for s in samples]

    def _observe(self, stats: Any) -> None:
        self.counts["batches"] += 1
        self.counts["deduplicated"] += stats.items - stats.unique
        if self.on_batch is not None:
            self.on_batch(stats)

    def _failed(self, sample: Sample, error: str, detail: str) -> SampleResult:
        rubric = sample.rubric or self.rubric
        ids = rubric.result_ids() if rubric is not None else ("principles",)
        return SampleResult(id=sample.id, group_id=sample.group_id, reward=None, reward_raw=None,
                            status="failed",
                            criteria={cid: CriterionResult(p=None, met=None, error=error) for cid in ids},
                            judge=self.scorer.judge_label,
                            rubric_hash=rubric.content_hash() if rubric is not None else "",
                            template_hash=self.scorer.template_hash, errors={cid: detail for cid in ids})

    def _finish(self, items: list[RewardItem], samples: list[Sample], results: list[SampleResult],
                policy: FailurePolicy, fallback: float | None) -> list[Reward]:
        results = [r if (r.id, r.group_id) == (s.id, s.group_id)
                   else dataclasses.replace(r, id=s.id, group_id=s.group_id)
                   for s, r in zip(samples, results, strict=True)]
        scores: list[float | None] = []
        for item, result in zip(items, results, strict=True):
            score = result.reward if result.status == "ok" else None
            if self.length_penalty is not None:
                score = self.length_penalty.apply(score, item.response or "")
            scores.append(score)
            self.counts[f"status:{result.status}"] += 1
        scores = self.group_rules.shape(samples, [item.response or "" for item in items], results, scores,
                                        self.rubric, self.counts)
        failed = [s is None for s in scores]
        try:
            self.breaker.record(failed, detail=_error_summary(results))
        except CircuitOpenError:
            if any(failed):  # a call judged in full still gets its rewards: the judge works again
                self.counts["breaker_refusals"] += 1
                raise
        try:
            rewards = apply_failure_policy(scores, policy, [s.group_id for s in samples], fallback=fallback)
        except RewardFailure as exc:
            exc.results = results  # what did fail: the server answers 502 with these rows
            raise
        out = []
        label = str(policy) if policy.kind != "none" else "fallback"
        for sample, result, score, reward in zip(samples, results, scores, rewards, strict=True):
            imputed = label if score is None and reward is not None else None
            if imputed:
                self.counts[f"imputed:{label}"] += 1
            error = None
            if result.status != "ok":
                error = "; ".join(f"{k}: {v}" for k, v in list(result.errors.items())[:3]) or result.status
            out.append(Reward(id=sample.id, reward=reward, score=score, status=result.status,
                              criteria={cid: c.p for cid, c in result.criteria.items()},
                              imputed_by=imputed, error=error, result=result))
        return out


def _prompt_key(sample: Sample) -> Hashable:
    """The prompt as a key: answers to one prompt share the judge's prefix (batched together)."""
    if isinstance(sample.prompt, str):
        return sample.prompt
    return json.dumps(sample.prompt, ensure_ascii=False, sort_keys=True, default=str)


def _dedupe_key(sample: Sample) -> Hashable:
    rubric = sample.rubric.content_hash() if sample.rubric is not None else ""
    return (rubric, _prompt_key(sample), sample.response, sample.reference)


def _error_summary(results: list[SampleResult]) -> str:
    counts: Counter[str] = Counter()
    for r in results:
        for c in r.criteria.values():
            if c.error:
                counts[c.error] += 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


__all__ = ["DEFAULTS", "Reward", "RewardConfig", "RewardItem", "RubricReward"]
