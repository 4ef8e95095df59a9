"""``GET /metrics``: what the server and its reward core did, in Prometheus text format.

The metrics go through ``prometheus_client`` with one :class:`CollectorRegistry` per app (never
the process-global one), so two apps in one process, or a test that builds many, do not share or
collide. Names and labels are those of the first server, so existing dashboards keep working.

Two kinds of numbers, kept where they are true:

* what only the HTTP shell sees (requests by route and status, latency, refusals by reason,
  client disconnects, imputed rewards by policy kind, held body bytes) is counted here;
* what the reward core does (samples by status, deadlines, batches, de-duplication, the queue,
  the breaker) is read from the core when scraped (:class:`_CoreCollector`), and per-batch facts
  (verdicts, cache hits, judge failures by type, batch sizes and durations) arrive through the
  core's ``on_batch`` hook. Nothing is counted twice and the shell does not re-derive what the
  core already knows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from .._version import __version__
from ..batching import BatchStats
from ..judges.base import ERROR_TYPES
from ..policy import CircuitBreaker
from ..rewards import RubricReward

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ROUTES = ("/v1/score", "/get_reward", "/healthz", "/metrics", "/openapi.json", "/docs")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
JUDGE_ERRORS = ERROR_TYPES


def breaker_open(breaker: CircuitBreaker) -> bool:
    """Whether the next call with a failed sample would be refused (the recent rate is too high)."""
    return bool(breaker.enabled and min(breaker.seen, breaker.window) >= breaker.min_samples
                and breaker.failure_rate > (breaker.threshold or 0.0))


class ServerMetrics:
    """The app's registry and the instruments the HTTP shell updates."""

    def __init__(self, core: RubricReward, *, held_bytes: Callable[[], int]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rubrix_http_requests", "HTTP requests answered, by route and status code.",
                                ["route", "status"], registry=r)
        self.latency = Histogram("rubrix_http_request_duration_seconds",
                                 "Time from request to answer, by route.", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.judge_failures = Counter("rubrix_judge_failures", "Failed criterion verdicts, by error type.",
                                      ["type"], registry=r)
        for kind in JUDGE_ERRORS:
            self.judge_failures.labels(kind)
        self.imputed = Counter("rubrix_imputed_rewards",
                               "Rewards supplied by the failure policy, by policy kind.", ["policy"],
                               registry=r)
        self.verdicts = Counter("rubrix_verdicts", "Criterion verdicts used (judged or from the cache).",
                                registry=r)
        self.cache_hits = Counter("rubrix_cache_hits", "Verdicts served from the verdict cache.", registry=r)
        self.batch_samples = Histogram("rubrix_batch_samples", "Distinct samples per judge call.",
                                       buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("rubrix_batch_requests", "HTTP requests merged into one judge call.",
                                        buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("rubrix_batch_duration_seconds", "Time one judge call took.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("rubrix_rejected", "Requests refused before scoring, by reason.", ["reason"],
                                registry=r)
        self.disconnects = Counter("rubrix_client_disconnects", "Clients that left before their answer.",
                                   registry=r)
        self.unsurvivable = Counter(
            "rubrix_unsurvivable_answers",
            "Answers a trainer cannot recover from, by route and reason: any non-200 to OpenRLHF's "
            "/get_reward (it retries 5 times, 1 s apart, then trains with no reward, which stops the run).",
            ["route", "reason"], registry=r)
        #: the last such answer in words; machine limits that would refuse connections, in words
        self.last_unsurvivable = ""
        self.limit_warnings: dict[str, str] = {}
        r.register(_CoreCollector(core, held_bytes, self))

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else "other"
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def on_batch(self, stats: BatchStats) -> None:
        """The core's ``on_batch`` hook (runs on rubrix's loop thread; the instruments are thread-safe)."""
        self.batch_samples.observe(stats.unique)
        self.batch_requests.observe(stats.tickets)
        self.batch_seconds.observe(stats.seconds)
        verdicts = hits = 0
        for result in stats.results:
            # checked and not-applicable criteria cost no verdict
            verdicts += sum(1 for c in result.criteria.values()
                            if c.source != "check" and not c.na and not c.skipped)
            hits += result.cached
            for c in result.criteria.values():
                if c.error:
                    self.judge_failures.labels(c.error).inc()
        self.verdicts.inc(verdicts)
        self.cache_hits.inc(hits)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CoreCollector(Collector):
    """Read at scrape time from the reward core: its counters, its queue and its breaker."""

    def __init__(self, core: RubricReward, held_bytes: Callable[[], int], shell: ServerMetrics):
        self.core = core
        self.held_bytes = held_bytes
        self.shell = shell
        self.started = time.time()

    def collect(self) -> Iterator[Metric]:
        core, counts = self.core, self.core.counts
        rubric = core.rubric.name if core.rubric is not None else ""
        yield InfoMetricFamily("rubrix", "Server build and configuration.",
                               value={"version": __version__, "judge": core.scorer.judge_label,
                                      "rubric": rubric})
        yield _gauge("rubrix_uptime_seconds", "Seconds since the server started.", time.time() - self.started)
        samples = CounterMetricFamily("rubrix_samples", "Samples scored, by result status.",
                                      labels=["status"])
        for status in ("ok", "partial", "failed"):
            samples.add_metric([status], counts[f"status:{status}"])
        yield samples
        yield _counter("rubrix_deadline_exceeded",
                       "Samples answered as a timeout failure because the request deadline passed.",
                       counts["deadline_exceeded"])
        yield _counter("rubrix_judge_crashes", "Judge calls that raised (their samples count as failed).",
                       counts["judge_crashes"])
        yield _counter("rubrix_batches", "Judge calls (merged micro-batches) made.", counts["batches"])
        yield _counter("rubrix_deduplicated_samples", "Samples answered from an identical sample in the same "
                                                      "batch.", counts["deduplicated"])
        yield _counter("rubrix_queue_wait_expired",
                       "Samples whose deadline passed while they waited for room in the full queue.",
                       counts["queue_wait_expired"])
        yield _counter("rubrix_queue_waited_samples", "Samples that waited for room in the full queue "
                       "(raise --max-queue if this grows and the judge keeps up).", core.waited)
        yield _gauge("rubrix_queue_samples", "Samples waiting for the judge.", core.queued)
        yield _gauge("rubrix_queue_waiting_samples", "Samples waiting for room in the full queue.",
                     core.waiting)
        if self.shell.last_unsurvivable:
            yield InfoMetricFamily("rubrix_unsurvivable_last", "The last answer a trainer cannot recover "
                                   "from, in words.", value={"message": self.shell.last_unsurvivable})
        if self.shell.limit_warnings:
            warning = InfoMetricFamily("rubrix_limit_warning", "A limit of the machine that refuses or "
                                       "delays trainer connections, in words.", labels=["limit"])
            for limit, text in sorted(self.shell.limit_warnings.items()):
                warning.add_metric([limit], {"message": text})
            yield warning
        yield _gauge("rubrix_queue_requests", "Requests waiting for the judge.", core.queued_calls)
        yield _gauge("rubrix_held_body_bytes", "Body bytes of requests not yet answered.", self.held_bytes())
        yield _gauge("rubrix_inflight_batches", "Judge calls running now.", core.inflight)
        breaker = core.breaker
        yield _gauge("rubrix_breaker_open", "1 while the recent failure rate is above the threshold.",
                     int(breaker_open(breaker)))
        yield _counter("rubrix_breaker_trips", "Times the circuit breaker tripped.", breaker.trips)
        yield _gauge("rubrix_recent_failure_rate", "Failed fraction of the most recent samples.",
                     round(breaker.failure_rate, 4))


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)


class Observe:
    """ASGI middleware: counts every answer by route and status and times it; 499 = the client left."""

    def __init__(self, app: Any, metrics: ServerMetrics):
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


__all__ = ["CONTENT_TYPE", "Observe", "ROUTES", "ServerMetrics", "breaker_open"]
