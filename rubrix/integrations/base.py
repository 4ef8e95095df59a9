"""The one reward core every trainer adapter wraps: samples in, rewards a trainer can take out.

:class:`RubricReward` sits between a trainer and a :class:`~rubrix.scoring.Scorer`. It adds what
training needs and scoring does not:

* **one event loop of its own** (a daemon thread), so callers on any loop or thread — TRL's
  persistent reward loop, verl's per-worker loop, OpenRLHF's ``asyncio.to_thread`` workers — share
  one judge, one HTTP client pool and one cache without binding them to a foreign loop;
* **micro-batching**: calls that arrive within ``max_wait_s`` of each other are scored in one judge
  batch (trainers that stream one sample at a time would otherwise get no batching at all), and
  identical (prompt, response, rubric) items in a batch are judged once (GRPO groups often hold
  duplicate short answers);
* the **length penalty**, the **failure policy** and the **circuit breaker** of
  :mod:`rubrix.aggregate`, applied per call (a call is the unit that knows its groups);
* a judge that raises (a crashed server, a bug in a backend) becomes failed rewards that go through
  the failure policy and the breaker, instead of killing the training step; a bad *input* (no
  rubric for a sample, a malformed rubric) still raises, because no policy can fix it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..aggregate import CircuitBreaker, FailurePolicy, LengthPenalty, apply_failure_policy
from ..errors import UserError
from ..records import Sample
from ..rubric import Rubric, load_rubric, rubric_from_items
from ..scoring import CriterionResult, SampleResult, Scorer

log = logging.getLogger("rubrix.integrations")

Prompt = str | list[dict[str, Any]]


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
    """What a trainer adapter gets back for one item.

    ``reward`` is the value after length penalty and failure policy (``None`` only under the
    ``none`` policy); ``score`` is the judged reward before the failure policy (``None`` when the
    judgment failed); ``imputed`` is true when the failure policy supplied ``reward``.
    ``criteria`` maps every criterion id of the item's rubric to its value in [0, 1] or ``None``.
    """

    id: str
    reward: float | None
    score: float | None
    status: str
    criteria: dict[str, float | None] = field(default_factory=dict)
    imputed: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class RubricReward:
    """Rewards from a rubric and a judge, with the failure handling a trainer needs.

    ``rubric``: path, built-in name, dict or :class:`Rubric`; may be ``None`` when every item
    carries its own rubric. ``judge``: a spec (``embedded:0.5b``, ``hf:PATH``, ``openai:MODEL``,
    ``fake``) or a judge object. ``failure``: ``none`` | ``raise`` | ``constant:X`` | ``group_mean``.
    ``fallback``: the number that replaces what the policy leaves ``None`` (adapters whose trainer
    cannot take ``None`` set it). ``breaker``: a failure-rate threshold, a :class:`CircuitBreaker`, or
    ``None`` to disable. ``length_penalty``: a :class:`LengthPenalty` or its ``"F:C[:P[:k]]"`` spec.
    Other keyword arguments go to :class:`Scorer` (``cache``, ``mode``, ``verdict``, ``hard``,
    ``prompts``) and to the judge (``base_url``, ``device`` ...).
    """

    def __init__(self, rubric: str | Rubric | dict | None = None, judge: Any = None, *,
                 failure: str | FailurePolicy = "none", fallback: float | None = None,
                 breaker: float | CircuitBreaker | None = 0.5,
                 length_penalty: LengthPenalty | str | None = None, scorer: Scorer | None = None,
                 max_batch: int = 64, max_wait_s: float = 0.005, cache: Any = True, mode: str = "criteria",
                 verdict: str = "auto", hard: bool = False, prompts: str | None = None, **judge_options: Any):
        try:
            self.failure = FailurePolicy.parse(failure)
        except ValueError as exc:
            raise UserError(str(exc), field="failure") from None
        if self.failure.kind == "raise" and fallback is not None:
            fallback = None
        self.fallback = fallback
        self.breaker = breaker if isinstance(breaker, CircuitBreaker) else CircuitBreaker(breaker)
        if isinstance(length_penalty, str):
            try:
                length_penalty = LengthPenalty.parse(length_penalty)
            except ValueError as exc:
                raise UserError(str(exc), field="length_penalty") from None
        self.length_penalty = length_penalty
        self.scorer = scorer or Scorer(rubric, judge, prompts=prompts, mode=mode, verdict=verdict,
                                       cache=cache, hard=hard, **judge_options)
        self.rubric = self.scorer.rubric
        self.max_batch = max(1, int(max_batch))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._pending: list[tuple[Sample, asyncio.Future]] = []
        self._flush_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()  # strong references, so running batches are not collected
        self._row_rubrics: dict[str, Rubric] = {}
        self.calls = 0
        self.judge_batches = 0

    # -- public ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.rubric.name if self.rubric is not None else "row_rubric"

    @property
    def criterion_ids(self) -> tuple[str, ...]:
        """Criterion ids of the run rubric (the fixed per-criterion keys), or ``()`` without one."""
        if self.rubric is None:
            return ()
        if not self.rubric.criteria or self.rubric.aggregation == "implicit":
            return ("principles",)
        return tuple(c.id for c in self.rubric.criteria)

    async def ascore(self, items: Sequence[RewardItem]) -> list[Reward]:
        """Score items from any event loop; scoring itself runs on this object's own loop."""
        if not items:
            return []
        loop = self._ensure_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return await self._score(list(items))
        fut = asyncio.run_coroutine_threadsafe(self._score(list(items)), loop)
        return await asyncio.wrap_future(fut)

    def score(self, items: Sequence[RewardItem]) -> list[Reward]:
        """Score items from synchronous code (any thread but this object's loop thread)."""
        if not items:
            return []
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            raise RuntimeError("RubricReward.score() called from its own event loop; await ascore() instead")
        return asyncio.run_coroutine_threadsafe(self._score(list(items)), loop).result()

    def row_rubric(self, value: Any) -> Rubric | None:
        """A per-row rubric from a dataset cell: a :class:`Rubric`, a list of items, a rubric object,
        JSON text of either, or a built-in name / path. ``None`` or ``""`` means none."""
        if value is None or value == "":
            return None
        if isinstance(value, Rubric):
            return value
        key = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        found = self._row_rubrics.get(key)
        if found is not None:
            return found
        data = value
        if isinstance(value, str):
            text = value.strip()
            if text[:1] in ("[", "{"):
                try:
                    data = json.loads(text)
                except ValueError as exc:
                    raise UserError(f"rubric text is not valid JSON: {exc}", field="rubric") from None
            else:
                data = None
        if data is None:
            rubric = load_rubric(value)
        elif isinstance(data, dict) and "criteria" in data and "name" in data:
            rubric = load_rubric(data)
        else:
            rubric = rubric_from_items(data, name="row rubric")
        if len(self._row_rubrics) < 4096:
            self._row_rubrics[key] = rubric
        return rubric

    def close(self) -> None:
        """Stop the loop thread and close the judge and cache."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            self.scorer.close()
            return
        asyncio.run_coroutine_threadsafe(self.scorer.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    # -- loop --------------------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="rubrix-reward-loop", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    # -- scoring -----------------------------------------------------------------------------------

    async def _score(self, items: list[RewardItem]) -> list[Reward]:
        self.calls += 1
        samples = [self._sample(item, i) for i, item in enumerate(items)]
        loop = asyncio.get_running_loop()
        futures = []
        for sample in samples:
            fut: asyncio.Future = loop.create_future()
            self._pending.append((sample, fut))
            futures.append(fut)
        if len(self._pending) >= self.max_batch:
            self._flush_now()
        elif self._flush_task is None:
            self._flush_task = loop.create_task(self._flush_later())
        results: list[SampleResult] = list(await asyncio.gather(*futures))
        return self._finish(items, samples, results)

    def _sample(self, item: RewardItem, index: int) -> Sample:
        rubric = item.rubric
        if rubric is None and self.rubric is None:
            raise UserError("no rubric: give the reward a rubric, or give every item its own", field="rubric")
        return Sample(id=item.id or f"item-{index}", prompt=item.prompt, response=item.response or "",
                      rubric=rubric, reference=item.reference,
                      group_id=None if item.group_id is None else str(item.group_id))

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self.max_wait_s)
        finally:
            self._flush_task = None
        self._flush_now()

    def _flush_now(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            task = asyncio.get_running_loop().create_task(self._judge_batch(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _judge_batch(self, batch: list[tuple[Sample, asyncio.Future]]) -> None:
        unique: dict[str, int] = {}
        todo: list[Sample] = []
        slots: list[int] = []
        for sample, _ in batch:
            key = _dedupe_key(sample)
            if key not in unique:
                unique[key] = len(todo)
                todo.append(Sample(id=f"u{len(todo)}", prompt=sample.prompt, response=sample.response,
                                   rubric=sample.rubric, reference=sample.reference))
            slots.append(unique[key])
        self.judge_batches += 1
        try:
            results = await self.scorer.ascore(todo)
        except UserError as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        except Exception as exc:  # a crashed judge: every item failed, the policy decides the rest
            log.warning("judge raised %s: %s; %d samples count as failed", type(exc).__name__, exc,
                        len(batch))
            detail = f"judge raised {type(exc).__name__}: {exc}"[:300]
            results = [self._crashed(s, detail) for s in todo]
        for (_, fut), slot in zip(batch, slots, strict=True):
            if not fut.done():
                fut.set_result(results[slot])

    def _crashed(self, sample: Sample, detail: str) -> SampleResult:
        rubric = sample.rubric or self.rubric
        ids = ["principles"] if rubric is None or not rubric.criteria or rubric.aggregation == "implicit" \
            else [c.id for c in rubric.criteria]
        return SampleResult(id=sample.id, reward=None, reward_raw=None, status="failed",
                            criteria={cid: CriterionResult(p=None, met=None, error="server") for cid in ids},
                            judge=getattr(self.scorer._judge, "name", "?"),
                            rubric_hash=rubric.content_hash() if rubric else "",
                            template_hash=self.scorer.template_hash, errors={"judge": detail})

    def _finish(self, items: list[RewardItem], samples: list[Sample],
                results: list[SampleResult]) -> list[Reward]:
        scores: list[float | None] = []
        for item, result in zip(items, results, strict=True):
            score = result.reward
            if self.length_penalty is not None:
                score = self.length_penalty.apply(score, item.response or "")
            scores.append(score)
        failed = [s is None for s in scores]
        detail = _error_summary(results)
        self.breaker.record(failed, detail=detail)
        rewards = apply_failure_policy(scores, self.failure, [s.group_id for s in samples],
                                       fallback=self.fallback)
        out = []
        for sample, result, score, reward in zip(samples, results, scores, rewards, strict=True):
            error = None
            if result.status != "ok":
                error = "; ".join(f"{k}: {v}" for k, v in list(result.errors.items())[:3]) or result.status
            out.append(Reward(id=sample.id, reward=reward, score=score, status=result.status,
                              criteria={cid: c.p for cid, c in result.criteria.items()},
                              imputed=score is None and reward is not None, error=error))
        return out


def _dedupe_key(sample: Sample) -> str:
    rubric = sample.rubric.content_hash() if sample.rubric is not None else ""
    return json.dumps([sample.prompt, sample.response, sample.reference, rubric], ensure_ascii=False,
                      sort_keys=True, default=str)


def _error_summary(results: list[SampleResult]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        for c in r.criteria.values():
            if c.error:
                counts[c.error] = counts.get(c.error, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


# ------------------------------------------------------------------------------------------------
# text helpers shared by the adapters

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def content_text(content: Any) -> str:
    """Text of a message's ``content``: a string, or a list of parts whose text parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(content)


def strip_reasoning(text: str) -> str:
    """Drop ``<think>...</think>`` blocks (and an unclosed trailing ``<think>``) from a response."""
    text = _THINK.sub("", text)
    if "<think>" in text:
        text = text[:text.index("<think>")]
    return text.strip()


def completion_text(completion: Any, *, include_reasoning: bool = False) -> str:
    """The response text a judge should grade, from a completion as trainers hand it over.

    A string is taken as is. A list of chat messages (TRL's conversational format, possibly with
    tool turns) gives the content of the **last assistant message**; its ``reasoning_content`` is
    prepended only with ``include_reasoning``. ``<think>`` blocks are removed unless
    ``include_reasoning``.
    """
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list | tuple):
        assistant = [m for m in completion
                     if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        if not assistant:
            return ""
        last = assistant[-1]
        text = content_text(last.get("content"))
        if include_reasoning and last.get("reasoning_content"):
            text = f"<think>{last['reasoning_content']}</think>\n{text}"
        return text if include_reasoning else strip_reasoning(text)
    text = "" if completion is None else str(completion)
    return text if include_reasoning else strip_reasoning(text)


def prompt_messages(prompt: Any) -> Prompt:
    """A prompt as text or as ``{"role", "content"}`` messages with text content (other keys dropped)."""
    if isinstance(prompt, list | tuple):
        return [{"role": str(m.get("role", "user")), "content": content_text(m.get("content"))}
                for m in prompt if isinstance(m, dict)]
    return "" if prompt is None else str(prompt)


__all__ = ["Reward", "RewardItem", "RubricReward", "completion_text", "content_text", "prompt_messages",
           "strip_reasoning"]
