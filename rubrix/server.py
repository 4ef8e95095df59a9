"""The HTTP reward server behind ``rubrix serve``: a thin shell over :class:`~rubrix.scoring.Scorer`.

Routes
------
* ``POST /v1/score`` — native: ``{"samples": [{id?, prompt, response, rubric?, group_id?,
  reference?}], "rubric"?: {...} | "builtin-name", "options"?: {"deadline_ms", "on_fail"}}`` →
  ``{"results": [row, ...]}``, one row per sample in order, each shaped like
  :meth:`SampleResult.to_row`.
* ``POST /get_reward`` — OpenRLHF's remote reward model protocol: ``{"query", "prompts",
  "labels"}`` → ``{"rewards", "scores", "extra_logs"}``; every value finite, lists aligned with
  the input.
* ``GET /healthz`` (no token needed) and ``GET /metrics`` (Prometheus text).

Why it is built this way
------------------------
RL trainers ask for rewards one sample per HTTP request (OpenRLHF, verl's streaming reward loop),
but a judge is fastest when it sees many samples at once: a local judge encodes a shared prompt +
response prefix once and batches across samples; an API judge fills its concurrency. So requests
are not scored one by one: they wait in a bounded queue and a single worker merges whatever is
waiting — up to ``max_batch`` samples, waiting at most ``batch_window_ms`` for company when the
judge is idle — into one ``Scorer.ascore`` call. Identical samples in a merged batch (common in
GRPO groups with short answers) are scored once.

Protection, in the order a request meets it: bearer token (401, before the body is read); body
size (413 from ``Content-Length`` before reading, or as soon as a streamed body passes the limit);
a time limit on receiving the body (408, so a slow client cannot hold a request open forever);
strict JSON (400) and field validation (422 naming the field, e.g. ``samples[2].prompt[0].role``);
admission to the bounded queue (429 with ``Retry-After`` instead of unbounded queueing); a
per-request deadline that is kept below the caller's timeout (a sample not judged by then comes
back as a typed ``timeout`` failure, never as a late answer the caller already gave up on).
Judge failures follow the failure policy of :mod:`rubrix.aggregate` (``none`` | ``raise`` |
``constant:X`` | ``group_mean``) and its circuit breaker: while the recent failure rate is above
the threshold, a request with a failed sample is answered 503 rather than with substitute
rewards, so a dead judge cannot silently train a model on constants. A 500 only ever means a bug
in rubrix.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import math
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ._version import __version__
from .aggregate import CircuitBreaker, CircuitOpenError, FailurePolicy, RewardFailure, apply_failure_policy
from .errors import InputError, MissingExtraError, RubricError, UserError
from .integrations.base import strip_reasoning
from .integrations.openrlhf import prompt_from_template, strip_query
from .judges.base import Judge
from .records import Sample, sample_from_dict
from .resources import builtin_rubric_names
from .rubric import Rubric, load_rubric, rubric_from_items
from .scoring import CriterionResult, SampleResult, Scorer

try:  # the [serve] extra; FastAPI resolves the handlers' annotations from this module's names
    from fastapi import FastAPI, Request
    from starlette.requests import ClientDisconnect
    from starlette.responses import PlainTextResponse, Response
except ImportError:  # pragma: no cover - reported by create_app
    FastAPI = None  # type: ignore[assignment,misc]

log = logging.getLogger("rubrix.server")

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_QUEUE = 1024  # samples waiting for the judge
DEFAULT_MAX_BATCH = 64  # samples per judge call
DEFAULT_BATCH_WINDOW_MS = 5.0
DEFAULT_DEADLINE_S = 60.0  # below every common trainer timeout except Oat (5 s) and AReaL (15 s)
DEFAULT_BODY_TIMEOUT_S = 30.0
MAX_JSON_DEPTH = 64
ROUTES = ("/v1/score", "/get_reward", "/healthz", "/metrics")


# ---------------------------------------------------------------------------------------------
# errors answered as JSON


class HTTPProblem(Exception):
    """A request the server refuses, answered as ``{"error": {...}, "detail": "..."}``."""

    def __init__(self, status: int, kind: str, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None):
        message = message if len(message) <= 1000 else message[:999] + "…"
        if field is not None and len(field) > 200:  # field names can come from the request
            field = field[:199] + "…"
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        detail = f"{self.field}: {self.message}" if self.field else self.message
        return {"error": {"type": self.kind, "field": self.field, "message": self.message}, "detail": detail,
                **self.extra}


class _ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


def _invalid(field: str | None, message: str) -> HTTPProblem:
    return HTTPProblem(422, "invalid_request", message, field=field)


# ---------------------------------------------------------------------------------------------
# metrics (Prometheus text format, no dependency)


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, n in zip(self.buckets, self.counts, strict=True):
            running += n
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {self.sum:.6f}")
        out.append(f"{name}_count{suffix} {self.count}")
        return out


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters the server keeps; :meth:`render` writes them in Prometheus text format."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency = {route: _Histogram(LATENCY_BUCKETS) for route in (*ROUTES, "other")}
        self.samples: Counter[str] = Counter()  # by status (ok / partial / failed)
        self.judge_failures: Counter[str] = Counter()  # criterion verdicts by error type
        self.verdicts = 0
        self.cache_hits = 0
        self.batches = 0
        self.batch_samples = _Histogram(BATCH_BUCKETS)
        self.batch_requests = _Histogram(BATCH_BUCKETS)
        self.batch_seconds = _Histogram(LATENCY_BUCKETS)
        self.deduplicated = 0
        self.deadline_exceeded = 0
        self.disconnects = 0
        self.rejected: Counter[str] = Counter()  # by reason
        self.fallbacks: Counter[str] = Counter()  # by policy

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        route = route if route in ROUTES else "other"
        self.requests[(route, status)] += 1
        self.latency[route].observe(seconds)

    def render(self, *, queue_samples: int, queue_requests: int, inflight: int, breaker: CircuitBreaker,
               judge: str, rubric: str | None, held_bytes: int = 0) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        family("rubrix_info", "gauge", "Server build and configuration.")
        lines.append(f'rubrix_info{{version="{__version__}",judge="{_label(judge)}",'
                     f'rubric="{_label(rubric or "")}"}} 1')
        family("rubrix_uptime_seconds", "gauge", "Seconds since the server started.")
        lines.append(f"rubrix_uptime_seconds {time.time() - self.started:.3f}")
        family("rubrix_http_requests_total", "counter", "HTTP requests answered, by route and status code.")
        for (route, status), n in sorted(self.requests.items()):
            lines.append(f'rubrix_http_requests_total{{route="{route}",status="{status}"}} {n}')
        family("rubrix_http_request_duration_seconds", "histogram", "Time from request to answer, by route.")
        for route, hist in self.latency.items():
            if hist.count:
                lines += hist.lines("rubrix_http_request_duration_seconds", f'route="{route}"')
        family("rubrix_samples_total", "counter", "Samples scored, by result status.")
        for status in ("ok", "partial", "failed"):
            lines.append(f'rubrix_samples_total{{status="{status}"}} {self.samples[status]}')
        family("rubrix_judge_failures_total", "counter", "Failed criterion verdicts, by error type.")
        for kind in sorted(set(self.judge_failures) | {"timeout", "rate_limit", "server", "parse", "refused",
                                                        "input"}):
            lines.append(f'rubrix_judge_failures_total{{type="{_label(kind)}"}} {self.judge_failures[kind]}')
        family("rubrix_deadline_exceeded_total", "counter",
               "Samples answered as a timeout failure because the request deadline passed.")
        lines.append(f"rubrix_deadline_exceeded_total {self.deadline_exceeded}")
        family("rubrix_imputed_rewards_total", "counter", "Rewards supplied by the failure policy.")
        for policy, n in sorted(self.fallbacks.items()):
            lines.append(f'rubrix_imputed_rewards_total{{policy="{_label(policy)}"}} {n}')
        family("rubrix_verdicts_total", "counter", "Criterion verdicts used (judged or from the cache).")
        lines.append(f"rubrix_verdicts_total {self.verdicts}")
        family("rubrix_cache_hits_total", "counter", "Verdicts served from the verdict cache.")
        lines.append(f"rubrix_cache_hits_total {self.cache_hits}")
        family("rubrix_batches_total", "counter", "Judge calls (merged micro-batches) made.")
        lines.append(f"rubrix_batches_total {self.batches}")
        family("rubrix_batch_samples", "histogram", "Distinct samples per judge call.")
        lines += self.batch_samples.lines("rubrix_batch_samples")
        family("rubrix_batch_requests", "histogram", "HTTP requests merged into one judge call.")
        lines += self.batch_requests.lines("rubrix_batch_requests")
        family("rubrix_batch_duration_seconds", "histogram", "Time one judge call took.")
        lines += self.batch_seconds.lines("rubrix_batch_duration_seconds")
        family("rubrix_deduplicated_samples_total", "counter",
               "Samples answered from an identical sample in the same batch.")
        lines.append(f"rubrix_deduplicated_samples_total {self.deduplicated}")
        family("rubrix_rejected_total", "counter", "Requests refused before scoring, by reason.")
        for reason, n in sorted(self.rejected.items()):
            lines.append(f'rubrix_rejected_total{{reason="{_label(reason)}"}} {n}')
        family("rubrix_client_disconnects_total", "counter", "Clients that left before their answer.")
        lines.append(f"rubrix_client_disconnects_total {self.disconnects}")
        family("rubrix_queue_samples", "gauge", "Samples waiting for the judge.")
        lines.append(f"rubrix_queue_samples {queue_samples}")
        family("rubrix_queue_requests", "gauge", "Requests waiting for the judge.")
        lines.append(f"rubrix_queue_requests {queue_requests}")
        family("rubrix_held_body_bytes", "gauge", "Body bytes of requests not yet answered.")
        lines.append(f"rubrix_held_body_bytes {held_bytes}")
        family("rubrix_inflight_batches", "gauge", "Judge calls running now.")
        lines.append(f"rubrix_inflight_batches {inflight}")
        family("rubrix_breaker_open", "gauge", "1 while the recent failure rate is above the threshold.")
        lines.append(f"rubrix_breaker_open {int(_breaker_open(breaker))}")
        family("rubrix_breaker_trips_total", "counter", "Times the circuit breaker tripped.")
        lines.append(f"rubrix_breaker_trips_total {breaker.trips}")
        family("rubrix_recent_failure_rate", "gauge", "Failed fraction of the most recent samples.")
        lines.append(f"rubrix_recent_failure_rate {breaker.failure_rate:.4f}")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# micro-batching


@dataclass(eq=False)
class _Job:
    samples: list[Sample]
    future: asyncio.Future
    enqueued: float
    dispatched: bool = False
    cancelled: bool = False


class Batcher:
    """A bounded queue of requests and the worker that merges them into judge calls.

    ``submit`` admits a request or raises 429; the worker waits for the first job, gives others
    up to ``window_s`` (from the first job's arrival) to join while the batch holds fewer than
    ``max_batch`` samples, then scores the whole batch in one ``Scorer.ascore`` call. Requests are
    never split, so a batch can exceed ``max_batch`` when one request alone does. At most
    ``concurrency`` judge calls run at once; while they run, new requests accumulate, so batches
    grow with load on their own.
    """

    def __init__(self, scorer: Scorer, metrics: Metrics, *, max_batch: int, window_s: float, max_queue: int,
                 concurrency: int = 1):
        self.scorer = scorer
        self.metrics = metrics
        self.max_batch = max(1, max_batch)
        self.window_s = max(0.0, window_s)
        self.max_queue = max(1, max_queue)
        self.concurrency = max(1, concurrency)
        self._queue: deque[_Job] = deque()
        self.queued_samples = 0
        self.queued_requests = 0
        self.inflight = 0
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._tasks: set[asyncio.Task] = set()
        self._rate: float | None = None  # samples per second of recent judge calls (EWMA)

    # -- admission ---------------------------------------------------------------------------------

    def submit(self, samples: list[Sample]) -> _Job:
        if self.queued_samples + len(samples) > self.max_queue:
            self.metrics.rejected["overload"] += 1
            wait = self.retry_after()
            raise HTTPProblem(429, "overloaded",
                              f"server busy: {self.queued_samples} samples already wait for the judge "
                              f"(limit {self.max_queue}); retry after {wait} s",
                              headers={"Retry-After": str(wait)})
        loop = asyncio.get_running_loop()
        job = _Job(samples, loop.create_future(), loop.time())
        job.future.add_done_callback(_consume_exception)
        self._queue.append(job)
        self.queued_samples += len(samples)
        self.queued_requests += 1
        self._wake.set()
        return job

    def withdraw(self, job: _Job) -> None:
        """Drop a job whose caller left or timed out; a job already with the judge runs to the end."""
        if job.dispatched or job.cancelled:
            return
        job.cancelled = True
        self.queued_samples -= len(job.samples)
        self.queued_requests -= 1
        self._wake.set()  # the batch window may now run from a later request

    def retry_after(self) -> int:
        """Seconds until the queue has probably drained, from the recent judge throughput."""
        if not self._rate:
            return 1
        return max(1, min(60, math.ceil(self.queued_samples / self._rate)))

    # -- the worker --------------------------------------------------------------------------------

    def _head(self) -> _Job | None:
        while self._queue and self._queue[0].cancelled:
            self._queue.popleft()
        return self._queue[0] if self._queue else None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            try:
                while True:  # the window runs from the arrival of the oldest request still waiting
                    first = self._head()
                    if first is None:
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                    remaining = first.enqueued + self.window_s - loop.time()
                    if self.queued_samples >= self.max_batch or remaining <= 0:
                        break
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), remaining)
                jobs = self._take()
            except BaseException:
                self._slots.release()
                raise
            if not jobs:
                self._slots.release()
                continue
            task = asyncio.create_task(self._dispatch(jobs))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:  # pragma: no cover - a bug
            log.error("batch dispatch failed", exc_info=task.exception())

    def _take(self) -> list[_Job]:
        jobs: list[_Job] = []
        count = 0
        while (job := self._head()) is not None:
            if jobs and count + len(job.samples) > self.max_batch:
                break
            self._queue.popleft()
            job.dispatched = True
            self.queued_samples -= len(job.samples)
            self.queued_requests -= 1
            jobs.append(job)
            count += len(job.samples)
        return jobs

    async def _dispatch(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        unique, where = _deduplicate([s for job in jobs for s in job.samples])
        self.inflight += 1
        start = loop.time()
        try:
            results = await self.scorer.ascore(unique)
        except Exception as exc:
            self.inflight -= 1
            if len(jobs) == 1:
                _settle(jobs[0].future, exc=exc)
            else:  # score each request alone, so one request's problem answers only that request
                for job in jobs:
                    await self._dispatch([job])
            return
        self.inflight -= 1
        elapsed = loop.time() - start
        self._observe(jobs, unique, results, elapsed)
        pos = 0
        for job in jobs:
            mine = []
            for sample in job.samples:
                r = results[where[pos]]
                if r.id != sample.id or r.group_id != sample.group_id:
                    r = dataclasses.replace(r, id=sample.id, group_id=sample.group_id)
                mine.append(r)
                pos += 1
            _settle(job.future, result=mine)

    def _observe(self, jobs: list[_Job], unique: list[Sample], results: list[SampleResult],
                 elapsed: float) -> None:
        m = self.metrics
        m.batches += 1
        m.batch_samples.observe(len(unique))
        m.batch_requests.observe(len(jobs))
        m.batch_seconds.observe(elapsed)
        total = sum(len(j.samples) for j in jobs)
        m.deduplicated += total - len(unique)
        for r in results:
            m.samples[r.status] += 1
            m.verdicts += len(r.criteria)
            m.cache_hits += r.cached
            for c in r.criteria.values():
                if c.error:
                    m.judge_failures[c.error] += 1
        if elapsed > 0:
            rate = len(unique) / elapsed
            self._rate = rate if self._rate is None else 0.7 * self._rate + 0.3 * rate

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for job in self._queue:
            if not job.future.done():
                job.future.cancel()
        self._queue.clear()


def _consume_exception(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()  # marks it retrieved: a caller that already left must not cause a warning


def _settle(future: asyncio.Future, *, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _deduplicate(samples: list[Sample]) -> tuple[list[Sample], list[int]]:
    """Distinct samples (same rubric, prompt, response and reference) and where each input went."""
    hashes: dict[int, str] = {}
    index: dict[tuple, int] = {}
    unique: list[Sample] = []
    where: list[int] = []
    for s in samples:
        rubric = s.rubric
        rid = id(rubric)
        if rid not in hashes:
            hashes[rid] = rubric.content_hash() if rubric is not None else ""
        prompt = s.prompt if isinstance(s.prompt, str) else json.dumps(s.prompt, ensure_ascii=False)
        key = (hashes[rid], prompt, s.response, s.reference)
        pos = index.get(key)
        if pos is None:
            pos = index[key] = len(unique)
            unique.append(s)
        where.append(pos)
    return unique, where


# ---------------------------------------------------------------------------------------------
# request parsing


class _StrictJSON(ValueError):
    pass


def _no_constants(token: str) -> Any:
    raise _StrictJSON(f"{token} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _StrictJSON(f"number {text[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _StrictJSON(f"key {key[:80]!r} appears twice in one object")
        out[key] = value
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constants,
                            parse_float=_finite_float)


def parse_json_body(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no repeated keys, bounded nesting, valid Unicode strings."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPProblem(400, "bad_json", f"body is not UTF-8 (byte {exc.start + 1})") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise HTTPProblem(400, "bad_json", f"body is not valid JSON: {exc.msg} (line {exc.lineno}, "
                                           f"column {exc.colno})") from None
    except RecursionError:
        raise HTTPProblem(400, "bad_json", f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # _StrictJSON, and ints longer than Python's digit limit
        raise HTTPProblem(400, "bad_json", f"body is not valid JSON: {exc}") from None
    _check_tree(value)
    return value


def _check_tree(value: Any) -> None:
    """Refuse deep nesting and lone surrogates (``"\\ud800"`` parses, but is not text), naming the field."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise HTTPProblem(400, "bad_json", f"nested deeper than {MAX_JSON_DEPTH} levels", field=path)
        if isinstance(item, str):
            _check_text(item, path or "<body>")
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, path or "<body>")
                stack.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(item, list):
            for i, child in enumerate(item):
                stack.append((child, f"{path}[{i}]", depth + 1))


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(path, "contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not "
                             "text") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_BUILTIN_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,80}$")


class RubricResolver:
    """Turns a request's rubric (built-in name, inline object, or list of criteria) into a Rubric.

    Only built-in names are looked up by name: a request never makes the server read a file.
    """

    def __init__(self) -> None:
        self._builtins: dict[str, Rubric] = {}
        self._names = set(builtin_rubric_names())

    def builtin(self, name: str, field: str) -> Rubric:
        if not _BUILTIN_NAME.match(name) or name not in self._names:
            names = ", ".join(sorted(self._names))
            raise _invalid(field, f"no built-in rubric {name[:80]!r} (built-ins: {names}; or send the "
                                  "rubric itself as an object)")
        if name not in self._builtins:
            self._builtins[name] = load_rubric(name)
        return self._builtins[name]

    def resolve(self, value: Any, field: str) -> Rubric:
        if isinstance(value, Rubric):
            return value
        if isinstance(value, str):
            return self.builtin(value, field)
        try:
            if isinstance(value, dict):
                return load_rubric(value, filename=field)
            if isinstance(value, list):
                try:
                    return rubric_from_items(value, name="inline rubric", filename=field)
                except RubricError as exc:  # name the item as sent, not the wrapper's "criteria[i]"
                    sub = exc.field or ""
                    sub = sub[len("criteria"):] if sub.startswith("criteria[") else sub
                    raise _invalid(_join(field, sub), exc.message) from None
        except RubricError as exc:
            raise _invalid(_join(field, exc.field), exc.message) from None
        raise _invalid(field, f"must be a built-in rubric name, a rubric object or a list of criteria, "
                              f"got {_kind(value)}")


def _join(base: str, sub: str | None) -> str:
    if not sub or sub in ("<root>", "rubric"):
        return base
    return f"{base}{sub}" if sub.startswith("[") else f"{base}.{sub}"


def _sample(row: Any, index: int, where: str, resolver: RubricResolver, default: Rubric | None) -> Sample:
    """Validate one request sample; errors name ``where`` (e.g. ``samples[3]``) and the field."""
    if not isinstance(row, dict):
        raise _invalid(where, f"a sample must be an object with prompt and response, got {_kind(row)}")
    row = dict(row)
    if row.get("id") is None:
        row["id"] = index
    rubric_field = "rubric" if "rubric" in row else ("rubrics" if "rubrics" in row else None)
    own: Rubric | None = None
    if rubric_field is not None and row[rubric_field] is not None:
        own = resolver.resolve(row.pop(rubric_field), f"{where}.{rubric_field}")
    try:
        sample = sample_from_dict(row, file=where, line=None)
    except RubricError as exc:  # pragma: no cover - rubrics are resolved above
        raise _invalid(_join(f"{where}.rubric", exc.field), exc.message) from None
    except InputError as exc:
        raise _invalid(_join(where, exc.field), exc.message) from None
    sample.rubric = own or default
    if sample.rubric is None:
        raise _invalid(f"{where}.rubric", "no rubric: the server has no default rubric (-r), so send one "
                                          "with the sample or at the top level of the request")
    sample.line = index + 1
    return sample


# ---------------------------------------------------------------------------------------------
# the app


@dataclass
class ServerConfig:
    token: str | None
    max_body_bytes: int
    max_queue: int
    deadline_s: float
    batch_window_ms: float
    max_batch: int
    failure: FailurePolicy
    body_timeout_s: float
    eos_token: str | None
    include_reasoning: bool
    max_held_bytes: int


class RewardServer:
    """State shared by the routes: the scorer, the batcher, the metrics and the configuration."""

    def __init__(self, scorer: Scorer, config: ServerConfig, breaker: CircuitBreaker, *, concurrency: int):
        self.scorer = scorer
        self.config = config
        self.metrics = Metrics()
        self.breaker = breaker
        self.resolver = RubricResolver()
        self.batcher: Batcher | None = None
        self.held_bytes = 0
        self._concurrency = concurrency
        self._worker: asyncio.Task | None = None

    async def start(self) -> None:
        c = self.config
        self.batcher = Batcher(self.scorer, self.metrics, max_batch=c.max_batch,
                               window_s=c.batch_window_ms / 1000.0, max_queue=c.max_queue,
                               concurrency=self._concurrency)
        self._worker = asyncio.create_task(self.batcher.run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self.batcher is not None:
            await self.batcher.aclose()
        await self.scorer.aclose()

    # -- request plumbing --------------------------------------------------------------------------

    def authorized(self, request: Any) -> bool:
        token = self.config.token
        if not token:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    def check_token(self, request: Any) -> None:
        if not self.authorized(request):
            self.metrics.rejected["unauthorized"] += 1
            header = request.headers.get("authorization", "")
            why = "missing bearer token" if not header else "wrong bearer token"
            raise HTTPProblem(401, "unauthorized", f"{why}: send 'Authorization: Bearer <token>'",
                              headers={"WWW-Authenticate": 'Bearer realm="rubrix"'})

    async def read_json(self, request: Any) -> Any:
        """The body, refused with 413 before it is read when it announces too many bytes, and as
        soon as a streamed body passes the limit; 408 when the client takes too long to send it."""
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise HTTPProblem(400, "bad_request", "Content-Length is not a number") from None
            if size > limit:
                self.metrics.rejected["too_large"] += 1
                raise HTTPProblem(413, "too_large",
                                  f"body of {size} bytes is over the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.config.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        self.metrics.rejected["too_large"] += 1
                        raise HTTPProblem(413, "too_large", f"body is over the limit of {limit} bytes")
                    self._hold(request, len(chunk))
                    chunks.append(chunk)
        except TimeoutError:
            self.metrics.rejected["body_timeout"] += 1
            raise HTTPProblem(408, "body_timeout", f"the body did not arrive within "
                                                   f"{self.config.body_timeout_s:g} s") from None
        except ClientDisconnect:
            raise _ClientGone() from None
        return parse_json_body(b"".join(chunks))

    def _hold(self, request: Any, n: int) -> None:
        """Count body bytes held for requests not yet answered; past the budget, answer 429.

        With the per-body limit and the connection limit this bounds what clients can make the
        server keep in memory, whether their bodies are still arriving or already queued.
        """
        if self.held_bytes + n > self.config.max_held_bytes:
            self.metrics.rejected["memory"] += 1
            raise HTTPProblem(429, "overloaded",
                              f"server holds {self.held_bytes} bytes of unanswered requests "
                              f"(limit {self.config.max_held_bytes}); retry later",
                              headers={"Retry-After": "1"})
        self.held_bytes += n
        request.state.rubrix_held = getattr(request.state, "rubrix_held", 0) + n

    def release(self, request: Any) -> None:
        """Forget a finished request's body bytes (called however the request ended)."""
        held = getattr(request.state, "rubrix_held", 0)
        if held:
            self.held_bytes -= held
            request.state.rubrix_held = 0

    async def score(self, request: Any, samples: list[Sample], deadline_at: float) -> list[SampleResult]:
        """Queue the samples, then wait for their results, the deadline, or the client leaving."""
        if not samples:
            return []
        assert self.batcher is not None
        if len(samples) > self.config.max_queue:
            self.metrics.rejected["too_many_samples"] += 1
            raise HTTPProblem(413, "too_many_samples", f"{len(samples)} samples in one request; the limit is "
                                                       f"{self.config.max_queue} (the queue size)")
        loop = asyncio.get_running_loop()
        job = self.batcher.submit(samples)
        gone = asyncio.ensure_future(_wait_disconnect(request.receive))
        try:
            done, _ = await asyncio.wait({job.future, gone}, timeout=max(0.0, deadline_at - loop.time()),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if job.future in done:
            try:
                return job.future.result()
            except UserError as exc:  # input the up-front checks missed: still the caller's problem
                raise _invalid(exc.field, exc.message) from None
        self.batcher.withdraw(job)
        if gone in done:
            self.metrics.disconnects += 1
            raise _ClientGone()
        self.metrics.deadline_exceeded += len(samples)
        return [self._timed_out(s) for s in samples]

    def _timed_out(self, sample: Sample) -> SampleResult:
        rubric = sample.rubric
        assert rubric is not None
        ids = _criterion_ids(rubric)
        detail = "no verdict within the request deadline"
        return SampleResult(id=sample.id, group_id=sample.group_id, reward=None, reward_raw=None,
                            status="failed",
                            criteria={cid: CriterionResult(p=None, met=None, error="timeout") for cid in ids},
                            judge=self.scorer.judge.name, rubric_hash=rubric.content_hash(),
                            template_hash=self.scorer.template_hash, errors={cid: detail for cid in ids})

    def deadline(self, request_ms: Any = None) -> float:
        seconds = self.config.deadline_s
        if request_ms is not None:
            if isinstance(request_ms, bool) or not isinstance(request_ms, int | float) or request_ms <= 0:
                raise _invalid("options.deadline_ms", f"must be a positive number of milliseconds, got "
                                                      f"{request_ms!r}"[:200])
            seconds = min(seconds, request_ms / 1000.0)
        return asyncio.get_running_loop().time() + seconds

    def rewards(self, results: list[SampleResult], policy: FailurePolicy, *, finite: bool
                ) -> list[tuple[float | None, bool]]:
        """(reward, substituted) per result, after the failure policy of :mod:`rubrix.aggregate`.

        With ``finite`` (OpenRLHF) whatever the policy leaves null becomes 0.0. Every request's
        outcomes feed the circuit breaker; while it is tripped, a request with a failed sample is
        answered 503 instead of with substitute rewards (a request judged in full still gets them).
        Under the ``raise`` policy a failed sample makes the answer a 502.
        """
        judged = [r.reward if r.status == "ok" else None for r in results]
        failed = [r is None for r in judged]
        try:
            self.breaker.record(failed)
        except CircuitOpenError as exc:
            if any(failed):
                self.metrics.rejected["breaker_open"] += 1
                raise HTTPProblem(503, "judge_failing", str(exc), headers={"Retry-After": "10"}) from None
        try:
            final = apply_failure_policy(judged, policy, [r.group_id for r in results],
                                         fallback=0.0 if finite else None)
        except RewardFailure as exc:
            raise HTTPProblem(502, "judge_failed", str(exc)) from None
        out = [(new, old is None and new is not None) for old, new in zip(judged, final, strict=True)]
        substituted = sum(sub for _, sub in out)
        if substituted:  # labelled by kind: a request's constant must not create a new series
            label = "zero_for_get_reward" if finite and policy.kind == "none" else policy.kind
            self.metrics.fallbacks[label] += substituted
        return out

    # -- routes -----------------------------------------------------------------------------------

    async def route_score(self, request: Any) -> Any:
        self.check_token(request)
        body = await self.read_json(request)
        if not isinstance(body, dict):
            raise _invalid("<body>", f"must be an object with 'samples', got {_kind(body)}")
        allowed = {"samples", "items", "rubric", "rubric_id", "options"}
        for key in body:
            if key not in allowed:
                raise _invalid(key, f"unknown field (allowed: {', '.join(sorted(allowed))})")
        if "samples" in body and "items" in body:
            raise _invalid("items", "send either 'samples' or 'items', not both")
        key = "items" if "items" in body else "samples"
        rows = body.get(key)
        if not isinstance(rows, list):
            raise _invalid(key, "missing (required)" if rows is None
                           else f"must be a list, got {_kind(rows)}")
        options = body.get("options")
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise _invalid("options", f"must be an object, got {_kind(options)}")
        for opt in options:
            if opt not in ("deadline_ms", "on_fail"):
                raise _invalid(f"options.{opt}", "unknown option (allowed: deadline_ms, on_fail)")
        deadline_at = self.deadline(options.get("deadline_ms"))
        policy = self.config.failure
        if options.get("on_fail") is not None:
            if not isinstance(options["on_fail"], str):
                raise _invalid("options.on_fail", f"must be a string, got {_kind(options['on_fail'])}")
            try:
                policy = FailurePolicy.parse(options["on_fail"])
            except ValueError as exc:
                raise _invalid("options.on_fail", str(exc)) from None
        if body.get("rubric") is not None and body.get("rubric_id") is not None:
            raise _invalid("rubric_id", "send either 'rubric' or 'rubric_id', not both")
        default = self.scorer.rubric
        if body.get("rubric") is not None:
            default = self.resolver.resolve(body["rubric"], "rubric")
        elif body.get("rubric_id") is not None:
            if not isinstance(body["rubric_id"], str):
                raise _invalid("rubric_id", f"must be a string, got {_kind(body['rubric_id'])}")
            default = self.resolver.builtin(body["rubric_id"], "rubric_id")
        if len(rows) > self.config.max_queue:
            self.metrics.rejected["too_many_samples"] += 1
            raise HTTPProblem(413, "too_many_samples", f"{len(rows)} samples in one request; the limit is "
                                                       f"{self.config.max_queue} (the queue size)")
        samples = [_sample(row, i, f"{key}[{i}]", self.resolver, default) for i, row in enumerate(rows)]
        results = await self.score(request, samples, deadline_at)
        try:
            rewards = self.rewards(results, policy, finite=False)
        except HTTPProblem as exc:
            if exc.status == 502:  # the 'raise' policy: say which samples failed
                exc.extra = {"results": [r.to_row() for r in results]}
            raise
        rows_out = []
        for result, (reward, substituted) in zip(results, rewards, strict=True):
            row = result.to_row()
            if substituted:
                row["reward"] = reward
                row["imputed_by"] = str(policy)
            rows_out.append(row)
        return {"results": rows_out}

    async def route_get_reward(self, request: Any) -> Any:
        self.check_token(request)
        body = await self.read_json(request)
        if not isinstance(body, dict):
            raise _invalid("<body>", f"must be an object with 'query', 'prompts' and 'labels', "
                                     f"got {_kind(body)}")
        queries = _string_list(body, "query")
        prompts = _string_list(body, "prompts")
        if len(prompts) != len(queries):
            raise _invalid("prompts", f"has {len(prompts)} items but query has {len(queries)}")
        labels = body.get("labels")
        if labels is None:
            labels = [None] * len(queries)
        if not isinstance(labels, list):
            raise _invalid("labels", f"must be a list, got {_kind(labels)}")
        if len(labels) != len(queries):
            raise _invalid("labels", f"has {len(labels)} items but query has {len(queries)}")
        deadline_at = self.deadline()
        if len(queries) > self.config.max_queue:
            self.metrics.rejected["too_many_samples"] += 1
            raise HTTPProblem(413, "too_many_samples", f"{len(queries)} samples in one request; the limit is "
                                                       f"{self.config.max_queue} (the queue size)")
        samples = []
        for i, (query, prompt, label) in enumerate(zip(queries, prompts, labels, strict=True)):
            response = strip_query(query, prompt, self.config.eos_token)
            if not self.config.include_reasoning:
                response = strip_reasoning(response)
            # the same reading of OpenRLHF's fields as rubrix.integrations.openrlhf's reward_func;
            # a prompt's samples form a group (for the group_mean policy)
            row: dict[str, Any] = {"id": i, "prompt": prompt_from_template(prompt), "response": response,
                                   "group_id": prompt}
            row.update(self._label(label, f"labels[{i}]"))
            samples.append(_sample(row, i, f"labels[{i}]", self.resolver, self.scorer.rubric))
        results = await self.score(request, samples, deadline_at)
        rewards = self.rewards(results, self.config.failure, finite=True)
        values = [round(float(r), 6) for r, _ in rewards]
        ids = _criterion_ids(self.scorer.rubric) if self.scorer.rubric is not None else []
        extra: dict[str, list[float]] = {
            "rubrix_ok": [1.0 if r.status == "ok" else 0.0 for r in results],
            "rubrix_imputed": [1.0 if sub else 0.0 for _, sub in rewards],
        }
        for cid in ids:  # the same keys on every answer: only the server rubric's criteria
            extra[f"rubrix/{cid}"] = [_criterion_value(r, cid) for r in results]
        return {"rewards": values, "scores": [min(1.0, max(0.0, v)) for v in values], "extra_logs": extra}

    def _label(self, label: Any, where: str) -> dict[str, Any]:
        """An OpenRLHF label, read as :func:`rubrix.integrations.openrlhf.parse_label` reads it:
        ``""``/null → the server rubric; a JSON list → the sample's criteria; a JSON object → a
        rubric (with ``criteria``) or ``rubric`` (items, object or built-in name) and
        ``reference``; any other text or number → the reference answer. Here an object may also
        name ``rubric_id`` (a built-in) and ``group_id``. Wrong types inside are a 422."""
        if isinstance(label, str):
            stripped = label.strip()
            if not stripped:
                return {}
            if stripped[0] in "[{":
                try:
                    label = parse_json_body(stripped.encode("utf-8"))
                except HTTPProblem:
                    return {"reference": label}  # text that only looks like JSON, e.g. "[0, 1)"
            else:
                return {"reference": label}
        if label is None:
            return {}
        if isinstance(label, bool):
            raise _invalid(where, "must be text, a number, a list of criteria or an object, got a boolean")
        if isinstance(label, int | float):
            return {"reference": str(label)}
        if isinstance(label, list):
            return {"rubric": self.resolver.resolve(label, f"{where}.rubric")}
        if isinstance(label, dict):
            if "criteria" in label or "principles" in label:
                return {"rubric": self.resolver.resolve(label, where)}
            out: dict[str, Any] = {}
            if label.get("rubric") is not None:
                out["rubric"] = self.resolver.resolve(label["rubric"], f"{where}.rubric")
            elif label.get("rubric_id") is not None:
                if not isinstance(label["rubric_id"], str):
                    raise _invalid(f"{where}.rubric_id", f"must be a string, got {_kind(label['rubric_id'])}")
                out["rubric"] = self.resolver.builtin(label["rubric_id"], f"{where}.rubric_id")
            value = label.get("reference")
            if value is not None and value != "":
                if isinstance(value, bool) or not isinstance(value, str | int | float):
                    raise _invalid(f"{where}.reference", f"must be text or a number, got {_kind(value)}")
                out["reference"] = str(value)
            if label.get("group_id") is not None:
                out["group_id"] = label["group_id"]
            return out
        raise _invalid(where, f"unsupported label ({_kind(label)})")  # pragma: no cover

    def healthz(self, request: Any) -> dict[str, Any]:
        """Liveness for anyone; the details only for a caller with the token (when one is set)."""
        b = self.batcher
        status = "degraded" if _breaker_open(self.breaker) else "ok"
        if not self.authorized(request):
            return {"status": status}
        return {"status": status, "version": __version__,
                "judge": self.scorer.judge.name,
                "rubric": self.scorer.rubric.name if self.scorer.rubric is not None else None,
                "queue_samples": b.queued_samples if b else 0, "inflight_batches": b.inflight if b else 0}

    def render_metrics(self) -> str:
        b = self.batcher
        return self.metrics.render(queue_samples=b.queued_samples if b else 0,
                                   queue_requests=b.queued_requests if b else 0,
                                   inflight=b.inflight if b else 0, breaker=self.breaker,
                                   held_bytes=self.held_bytes,
                                   judge=self.scorer.judge.name,
                                   rubric=self.scorer.rubric.name if self.scorer.rubric is not None else None)


def _breaker_open(breaker: CircuitBreaker) -> bool:
    """Whether the next request with a failed sample would be refused (the recent rate is too high)."""
    return bool(breaker.enabled and min(breaker.seen, breaker.window) >= breaker.min_samples
                and breaker.failure_rate > (breaker.threshold or 0.0))


def _criterion_ids(rubric: Rubric) -> list[str]:
    """The criterion keys of a rubric's result rows (one ``principles`` key for a holistic rubric)."""
    if not rubric.criteria or rubric.aggregation == "implicit":
        return ["principles"]
    return [c.id for c in rubric.criteria]


def _criterion_value(result: SampleResult, cid: str) -> float:
    c = result.criteria.get(cid)
    return round(float(c.p), 6) if c is not None and c.p is not None else 0.0


def _string_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        raise _invalid(key, "missing (required)")
    if not isinstance(value, list):
        raise _invalid(key, f"must be a list of strings, got {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _invalid(f"{key}[{i}]", f"must be a string, got {_kind(item)}")
    return value


async def _wait_disconnect(receive: Callable[[], Awaitable[dict]]) -> None:
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


def _json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), status_code=status, headers=headers, media_type="application/json")


class _Observe:
    """ASGI middleware: counts every answer by route and status and times it; 499 = client left."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def observe_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe_send)
        finally:
            self.metrics.observe_request(scope.get("path", ""), status["code"], time.perf_counter() - start)


def create_app(rubric: str | Rubric | dict | None, judge: str | Judge | None, *, token: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_queue: int = DEFAULT_MAX_QUEUE,
               deadline_s: float = DEFAULT_DEADLINE_S, batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS,
               max_batch: int = DEFAULT_MAX_BATCH, failure: str | FailurePolicy = "none",
               breaker: float | None = 0.5, batch_concurrency: int = 1,
               body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S, max_held_bytes: int | None = None,
               eos_token: str | None = None, include_reasoning: bool = False,
               cache: bool | str = True, prompts: str | None = None, mode: str = "criteria",
               verdict: str = "auto", hard: bool = False, scorer: Scorer | None = None,
               **judge_options: Any) -> Any:
    """The reward server as an ASGI app (FastAPI). Same defaults as ``rubrix serve``.

    ``rubric`` is the default for samples that bring none (a path or built-in name here, since it
    comes from the operator; requests may only name built-ins). The judge is built now, so a
    missing model fails before the server listens. ``failure`` is the policy for failed samples
    (see :class:`FailurePolicy`); ``/get_reward`` always answers finite numbers, so there a
    ``none`` policy gives 0.0 with ``rubrix_ok = 0``. ``breaker`` is the recent failure rate above
    which substitute rewards are refused with 503 (``None`` or 0 turns it off).
    """
    if FastAPI is None:
        raise MissingExtraError("the reward server", "serve", "fastapi")
    try:
        policy = FailurePolicy.parse(failure)
    except ValueError as exc:
        raise UserError(str(exc), field="failure") from None
    for name, value in (("max_body_bytes", max_body_bytes), ("max_queue", max_queue),
                        ("max_batch", max_batch), ("batch_concurrency", batch_concurrency)):
        if value < 1:
            raise UserError(f"must be at least 1, got {value}", field=name)
    for name, fvalue in (("deadline_s", deadline_s), ("body_timeout_s", body_timeout_s)):
        if not fvalue > 0:
            raise UserError(f"must be a positive number of seconds, got {fvalue}", field=name)
    if batch_window_ms < 0:
        raise UserError(f"must not be negative, got {batch_window_ms}", field="batch_window_ms")
    if scorer is None:
        scorer = Scorer(rubric, judge, prompts=prompts, mode=mode, verdict=verdict, cache=cache, hard=hard,
                        **judge_options)
    scorer.judge  # noqa: B018 - build (load) the judge now, before the port opens
    config = ServerConfig(token=token or None, max_body_bytes=max_body_bytes, max_queue=max_queue,
                          deadline_s=deadline_s, batch_window_ms=batch_window_ms, max_batch=max_batch,
                          failure=policy, body_timeout_s=body_timeout_s, eos_token=eos_token or None,
                          include_reasoning=include_reasoning,
                          max_held_bytes=max_held_bytes or max(256 * 1024 * 1024, 4 * max_body_bytes))
    server = RewardServer(scorer, config, CircuitBreaker(breaker if breaker else None),
                          concurrency=batch_concurrency)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(title="rubrix reward server", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.rubrix = server

    @app.exception_handler(HTTPProblem)
    async def _problem(request: Request, exc: HTTPProblem) -> Response:
        return _json_response(exc.body(), exc.status, exc.headers)

    @app.exception_handler(_ClientGone)
    async def _gone(request: Request, exc: _ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it; counted as "client closed request"

    @app.post("/v1/score")
    async def v1_score(request: Request) -> Response:
        try:
            return _json_response(await server.route_score(request))
        finally:
            server.release(request)

    @app.post("/get_reward")
    async def get_reward(request: Request) -> Response:
        try:
            return _json_response(await server.route_get_reward(request))
        finally:
            server.release(request)

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        return _json_response(server.healthz(request))

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        server.check_token(request)
        return PlainTextResponse(server.render_metrics(), media_type="text/plain; version=0.0.4")

    app.add_middleware(_Observe, metrics=server.metrics)
    return app


def serve(rubric: str | Rubric | dict | None, judge: str | Judge | None, *, host: str = "127.0.0.1",
          port: int = 8000, max_connections: int = 1024, log_level: str = "warning", access_log: bool = False,
          on_ready: Callable[[str], None] | None = None, **options: Any) -> None:
    """Build the app (loading the judge) and run it with uvicorn until interrupted.

    The socket is bound here, so ``port=0`` picks a free port and ``on_ready`` is told the real
    address. ``max_connections`` bounds open connections (uvicorn answers 503 beyond it), which
    with the body limit bounds the memory that clients can make the server hold.
    """
    import socket

    import uvicorn

    app = create_app(rubric, judge, **options)
    state: RewardServer = app.state.rubrix
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    # whose protocol says TCP, and a response written as headers + body would otherwise wait ~40 ms
    # for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}", field="--port") from None
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, host=host, port=bound, log_level=log_level, access_log=access_log,
                            limit_concurrency=max_connections, timeout_keep_alive=5,
                            timeout_graceful_shutdown=5)
    if on_ready is not None:
        c = state.config
        auth = "bearer token required" if c.token else "no token"
        rubric_name = state.scorer.rubric.name if state.scorer.rubric is not None else "none (per request)"
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        on_ready(f"rubrix serve: listening on http://{shown}:{bound} — judge {state.scorer.judge.name}, "
                 f"rubric {rubric_name}, {auth}, max batch {c.max_batch}, window {c.batch_window_ms:g} ms, "
                 f"deadline {c.deadline_s:g} s, queue {c.max_queue}, failure {c.failure}")
    uvicorn.Server(config).run(sockets=[sock])
