"""The reward server's HTTP shell: routes, protection and status codes around one reward core.

Everything about *rewards* — micro-batching, de-duplication, the failure policy, the circuit
breaker, the deadline, judges that crash, reading rubrics and OpenRLHF labels — belongs to
:class:`rubrix.rewards.RubricReward`, the core every trainer adapter uses too. This module only
turns HTTP into calls of that core and its answers and exceptions back into HTTP, so the server
and a python-file reward function cannot drift apart.

Protection, in the order a request meets it: bearer token (401, before the body is read); the
body's size, arrival time and the memory held for unanswered bodies (413 / 408 / 429, see
:mod:`rubrix.server.body`); strict JSON (400); the request models (422 naming the field, see
:mod:`rubrix.server.models`); the number of samples in one request (413 beyond the queue size);
then the core: a request that finds the queue full waits for room, first come first served, for
as long as its deadline allows (a trainer that sends one request per sample must not be refused
while the judge can still answer in time); a sample not judged by the deadline comes back as a
typed ``timeout`` failure (never as a late answer the caller already gave up on), the ``raise``
policy is a 502 with the rows, and while the breaker is open a request with a failed sample is
a 503 rather than substitute rewards, so a dead judge cannot silently train a model on constants.
A client that disconnects cancels its wait, and the core withdraws its queued samples. A 500
only ever means a bug in rubrix.

OpenRLHF cannot survive a refusal: it retries a failed ``/get_reward`` request 5 times, 1 s apart,
and then trains on with no reward for that sample, which later stops the run with an error that
does not point here. So every non-200 answer to ``/get_reward`` (and every client that gave up
before its answer) is said in words in the server log and counted in ``/metrics``
(``rubrix_unsurvivable_answers_total``, the last message in ``rubrix_unsurvivable_last_info``), and
so are limits of the machine that would refuse connections (the open-file limit, the kernel's
listen backlog) at start-up (``rubrix_limit_warning_info``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._version import __version__
from ..batching import QueueFull
from ..errors import MissingExtraError, UserError
from ..integrations.openrlhf import OpenRLHFReward
from ..policy import CircuitOpenError, FailurePolicy, RewardFailure
from ..rewards import Reward, RewardItem, RubricReward
from ..rubric import Rubric
from .body import BodyReader
from .config import ServerConfig
from .docs_page import PAGE
from .errors import ClientGone, HTTPProblem, from_user_error, invalid
from .models import (
    ErrorResponse,
    RewardRequest,
    RewardResponse,
    SampleIn,
    ScoreOptions,
    ScoreRequest,
    ScoreResponse,
    openapi_components,
    validate,
)

try:  # the [serve] extra; FastAPI resolves the handlers' annotations from this module's names
    from fastapi import FastAPI, Request
    from fastapi.openapi.utils import get_openapi
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import HTMLResponse, Response

    from .metrics import CONTENT_TYPE, Observe, ServerMetrics, breaker_open
    _MISSING = None
except ImportError as exc:  # pragma: no cover - reported by create_app
    FastAPI = None  # type: ignore[assignment,misc]
    _MISSING = exc.name

log = logging.getLogger("rubrix.server")

_NO_RUBRIC = "no rubric: the server has no default rubric (-r), so send one with the sample or the request"


class RewardServer:
    """What the routes share: the core, the configuration, the body reader and the metrics."""

    def __init__(self, core: RubricReward, config: ServerConfig):
        self.core = core
        self.config = config
        self.body = BodyReader(max_body_bytes=config.max_body_bytes, held_budget=config.held_budget,
                               timeout_s=config.body_timeout_s, reject=self.reject)
        self.metrics = ServerMetrics(core, held_bytes=lambda: self.body.held_bytes)
        core.on_batch = self.metrics.on_batch
        # /get_reward reads and answers exactly as the python-file reward function does; a request
        # that the policy leaves without a number gets 0.0 (OpenRLHF needs finite rewards)
        self.openrlhf = OpenRLHFReward(core, 0.0, config.eos_token, config.include_reasoning)
        #: limits of the machine that would refuse trainer connections, in words (set by ``serve``)
        self.limit_warnings: dict[str, str] = {}
        self.metrics.limit_warnings = self.limit_warnings
        self._said: dict[str, float] = {}

    # -- plumbing ---------------------------------------------------------------------------------

    def reject(self, reason: str) -> None:
        self.metrics.rejected.labels(reason).inc()

    def authorized(self, request: Any) -> bool:
        token = self.config.token
        if not token:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    def check_token(self, request: Any) -> None:
        if not self.authorized(request):
            self.reject("unauthorized")
            why = "missing bearer token" if not request.headers.get("authorization") else "wrong bearer token"
            raise HTTPProblem(401, "unauthorized", f"{why}: send 'Authorization: Bearer <token>'",
                              headers={"WWW-Authenticate": 'Bearer realm="rubrix"'})

    def check_count(self, body: Any, key: str) -> None:
        """413 for more samples than the queue holds, before the models look at each one."""
        rows = body.get(key) if isinstance(body, dict) else None
        if isinstance(rows, list) and len(rows) > self.config.max_queue:
            self.reject("too_many_samples")
            raise HTTPProblem(413, "too_many_samples", f"{len(rows)} samples in one request; the limit is "
                                                       f"{self.config.max_queue} (the queue size)")

    def unsurvivable(self, reason: str, what: str) -> None:
        """Say in words (log and metrics) that OpenRLHF got an answer it cannot recover from."""
        message = (f"/get_reward {what.rstrip('.')}. OpenRLHF retries a failed request 5 times, 1 s apart, "
                   "then trains on with no reward for the sample, which stops the run later (a None reward "
                   "in torch.cat, or 'reward_model_group is required')")
        self.metrics.unsurvivable.labels("/get_reward", reason).inc()
        self.metrics.last_unsurvivable = message
        now = time.monotonic()
        if now - self._said.get(reason, -1e9) >= 10.0:  # once per reason per 10 s; the metric counts all
            self._said[reason] = now
            log.error("trainer at risk: %s", message)

    def deadline(self, ms: float | None) -> float:
        seconds = self.config.deadline_s
        return seconds if ms is None else min(seconds, ms / 1000.0)

    async def rewards(self, request: Any, items: list[RewardItem], *, deadline_s: float,
                      failure: str | None = None, fallback: float | None = None) -> list[Reward]:
        """The core's rewards for ``items``, its refusals as HTTP, and a wait the client can cancel."""
        kwargs: dict[str, Any] = {"failure": failure, "deadline_s": deadline_s}
        if fallback is not None:
            kwargs["fallback"] = fallback
        task = asyncio.ensure_future(self.core.ascore(items, **kwargs))
        gone = asyncio.ensure_future(_wait_disconnect(request.receive))
        try:
            done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            gone.cancel()
        if task not in done:
            task.cancel()  # the core withdraws the samples that still wait in its queue
            self.metrics.disconnects.inc()
            raise ClientGone()
        try:
            return task.result()
        except QueueFull as exc:
            self.reject("overload")
            raise HTTPProblem(429, "overloaded", f"server busy: {exc}",
                              headers={"Retry-After": str(exc.retry_after)}) from None
        except CircuitOpenError as exc:
            self.reject("breaker_open")
            raise HTTPProblem(503, "judge_failing", str(exc), headers={"Retry-After": "10"}) from None
        except RewardFailure as exc:
            rows = [r.to_row() for r in getattr(exc, "results", None) or []]
            raise HTTPProblem(502, "judge_failed", str(exc), extra={"results": rows}) from None
        except UserError as exc:
            raise from_user_error(exc) from None

    def count_imputed(self, rewards: list[Reward], policy: FailurePolicy, *, finite: bool) -> None:
        # labelled by kind: a request's own constant must not create a new series
        label = "zero_for_get_reward" if finite and policy.kind == "none" else policy.kind
        n = sum(r.imputed for r in rewards)
        if n:
            self.metrics.imputed.labels(label).inc(n)

    # -- routes -----------------------------------------------------------------------------------

    async def score(self, request: Any) -> dict[str, Any]:
        self.check_token(request)
        body = await self.body.read(request)
        key, rename = "samples", None
        if isinstance(body, dict) and "items" in body:
            if "samples" in body:
                raise invalid("items", "send either 'samples' or 'items', not both")
            body = {("samples" if k == "items" else k): v for k, v in body.items()}
            key, rename = "items", {"samples": "items"}
        self.check_count(body, "samples")
        req: ScoreRequest = validate(ScoreRequest, body, rename=rename)
        options = req.options or ScoreOptions()
        if req.rubric is not None and req.rubric_id is not None:
            raise invalid("rubric_id", "send either 'rubric' or 'rubric_id', not both")
        resolver = self.core.resolver
        try:
            default = self.core.rubric
            if req.rubric is not None:
                default = resolver.resolve(req.rubric, "rubric")
            elif req.rubric_id is not None:
                default = resolver.builtin(req.rubric_id, "rubric_id")
            items = [self._item(s, i, f"{key}[{i}]", default) for i, s in enumerate(req.samples)]
        except UserError as exc:
            raise from_user_error(exc) from None
        policy = FailurePolicy.parse(options.on_fail) if options.on_fail else self.core.failure
        rewards = await self.rewards(request, items, failure=options.on_fail,
                                     deadline_s=self.deadline(options.deadline_ms))
        self.count_imputed(rewards, policy, finite=False)
        return {"results": [_row(r) for r in rewards]}

    def _item(self, sample: SampleIn, index: int, where: str, default: Rubric | None) -> RewardItem:
        field = "rubric" if sample.rubric is not None or sample.rubrics is None else "rubrics"
        own = self.core.row_rubric(getattr(sample, field), f"{where}.{field}")
        if own is None and default is None:
            raise invalid(f"{where}.rubric", _NO_RUBRIC)
        prompt = sample.prompt if isinstance(sample.prompt, str) else \
            [{"role": m.role, "content": m.content} for m in sample.prompt]
        return RewardItem(prompt=prompt, response=sample.response, rubric=own or default,
                          reference=sample.reference or None, group_id=sample.group_id,
                          id=sample.id if sample.id is not None else str(index))

    async def get_reward(self, request: Any) -> dict[str, Any]:
        self.check_token(request)
        body = await self.body.read(request)
        self.check_count(body, "query")
        req: RewardRequest = validate(RewardRequest, body)
        try:
            items = self.openrlhf.items(req.query, req.prompts, req.labels)
        except UserError as exc:
            raise from_user_error(exc) from None
        if self.core.rubric is None:
            for i, item in enumerate(items):
                if item.rubric is None:
                    raise invalid(f"labels[{i}]", _NO_RUBRIC.replace("sample or the request", "label"))
        rewards = await self.rewards(request, items, fallback=0.0, deadline_s=self.config.deadline_s)
        self.count_imputed(rewards, self.core.failure, finite=True)
        return self.openrlhf.values(rewards)

    def healthz(self, request: Any) -> dict[str, Any]:
        """Liveness for anyone; the details only for a caller with the token (when one is set)."""
        status = "degraded" if breaker_open(self.core.breaker) else "ok"
        if not self.authorized(request):
            return {"status": status}
        core = self.core
        return {"status": status, "version": __version__, "judge": core.scorer.judge_label,
                "rubric": core.rubric.name if core.rubric is not None else None,
                "queue_samples": core.queued, "inflight_batches": core.inflight}


def _row(reward: Reward) -> dict[str, Any]:
    assert reward.result is not None
    row = reward.result.to_row()
    if reward.imputed:
        row["reward"] = None if reward.reward is None else round(float(reward.reward), 6)
        row["imputed_by"] = reward.imputed_by
    return row


async def _wait_disconnect(receive: Callable[[], Awaitable[dict]]) -> None:
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), status_code=status, headers=headers, media_type="application/json")


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text} for code, text in (
        (400, "malformed JSON (bad_json)"), (401, "missing or wrong bearer token"),
        (408, "body not received in time"), (413, "body or sample count over the limit"),
        (422, "wrong shape or type; error.field names it"), (429, "overloaded: retry after Retry-After"),
        (502, "failure policy raise and a sample failed (rows in results)"),
        (503, "circuit breaker open: the judge is failing"))}


def _body(model: str) -> dict[str, Any]:
    """Document the request model although the route parses the body itself (strictly, first)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model}"}}}}}


def create_app(rubric: str | Rubric | dict | None = None, judge: Any = None, *,
               config: ServerConfig | None = None, reward: RubricReward | None = None,
               cache: bool | str = True, prompts: str | None = None, mode: str = "criteria",
               verdict: str = "auto", hard: bool = False,
               **options: Any) -> Any:
    """The reward server as an ASGI app (FastAPI). Same defaults as ``rubrix serve``.

    ``rubric`` is the default for samples that bring none (a path or a built-in name here, since it
    comes from the operator; requests may only name built-ins). Options are the fields of
    :class:`ServerConfig` (``token``, ``max_queue``, ``deadline_s``, ``failure``, ``breaker`` ...),
    given as ``config`` or as keywords; other keywords go to the judge (``base_url``, ``device``).
    The judge is built now, so a missing model fails before the server listens. ``reward``: a
    ready :class:`RubricReward` to serve instead of building one (its batching settings apply; it
    must not resolve rubric paths).
    """
    if FastAPI is None:
        raise MissingExtraError("the reward server", "serve", _MISSING or "fastapi")
    config, judge_options = ServerConfig.split(config, options)
    config = config.resolved().check()
    own_core = reward is None
    if reward is None:
        reward = RubricReward(rubric, judge, failure=config.failure, breaker=config.breaker or None,
                              max_batch=config.max_batch, window_ms=config.batch_window_ms,
                              max_queue=config.max_queue, concurrency=config.batch_concurrency,
                              deadline_s=config.deadline_s, allow_rubric_paths=False, cache=cache,
                              prompts=prompts, mode=mode, verdict=verdict, hard=hard,
                              judge_concurrency=judge_options.pop("concurrency", None), **judge_options)
    elif reward.resolver.allow_paths:
        raise UserError("a served RubricReward must be built with allow_rubric_paths=False: a request must "
                        "never make the server read a file", field="reward")
    reward.scorer.judge  # noqa: B018 - build (load) the judge now, before the port opens
    server = RewardServer(reward, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        try:
            yield
        finally:
            if own_core:
                await server.core.aclose()

    app = FastAPI(title="rubrix reward server", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json",
                  description="Rubric-based rewards over HTTP: the native /v1/score and OpenRLHF's "
                              "/get_reward.")
    app.state.rubrix = server

    @app.exception_handler(HTTPProblem)
    async def _problem(request: Request, exc: HTTPProblem) -> Response:
        return _json(exc.body(), exc.status, exc.headers)

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it; counted as "client closed request"

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:  # 404, 405
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return _json(HTTPProblem(exc.status_code, kind, str(exc.detail)).body(), exc.status_code,
                     getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.error("bug: %s %s raised", request.method, request.url.path, exc_info=exc)
        problem = HTTPProblem(500, "internal", f"a bug in rubrix ({type(exc).__name__}); please report it")
        return _json(problem.body(), 500)

    @app.post("/v1/score", response_model=ScoreResponse, responses=_ERRORS,
              openapi_extra=_body("ScoreRequest"), summary="Score samples against a rubric",
              description="One result row per sample, in order.")
    async def v1_score(request: Request) -> Response:
        try:
            return _json(await server.score(request))
        finally:
            server.body.release(request)

    @app.post("/get_reward", response_model=RewardResponse, responses=_ERRORS,
              openapi_extra=_body("RewardRequest"), summary="OpenRLHF remote reward model protocol",
              description="Rewards are always finite; failed samples have extra_logs.rubrix_ok = 0.")
    async def get_reward(request: Request) -> Response:
        try:
            return _json(await server.get_reward(request))
        except HTTPProblem as exc:
            server.unsurvivable(exc.kind, f"answered {exc.status} {exc.kind}: {exc.message}")
            raise
        except ClientGone:
            server.unsurvivable("client_gone", "client gave up before its answer (its timeout is shorter "
                                               "than the wait: lower --deadline-s below the trainer's "
                                               "timeout, 180 s for OpenRLHF)")
            raise
        finally:
            server.body.release(request)

    @app.get("/healthz", summary="Liveness (details with the token)")
    async def healthz(request: Request) -> Response:
        return _json(server.healthz(request))

    @app.get("/metrics", summary="Prometheus metrics (token required when one is set)",
             responses={200: {"content": {"text/plain": {}}}, 401: _ERRORS[401]})
    async def metrics(request: Request) -> Response:
        server.check_token(request)
        return Response(server.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return HTMLResponse(PAGE)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(openapi_components())
            if config.token:
                schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
                for path, ops in schema["paths"].items():
                    if path != "/healthz":
                        for op in ops.values():
                            op["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(Observe, metrics=server.metrics)
    return app


def serve(rubric: str | Rubric | dict | None = None, judge: Any = None, *, host: str = "127.0.0.1",
          port: int = 8000, log_level: str = "warning", access_log: bool = False,
          on_ready: Callable[[str], None] | None = None, **options: Any) -> None:
    """Build the app (loading the judge) and run it with uvicorn until interrupted.

    The socket is bound here, so ``port=0`` picks a free port and ``on_ready`` is told the real
    address. ``max_connections`` (a :class:`ServerConfig` option, like ``backlog`` and
    ``step_samples``) bounds open connections (uvicorn answers 503 beyond it), which with the body
    limits bounds the memory that clients can make the server hold. The process's open-file limit
    is raised to fit it where the hard limit allows; where it does not, or where the kernel caps
    the listen backlog, the server says so in words (log and ``/metrics``) before it listens.
    """
    import uvicorn

    app = create_app(rubric, judge, **options)
    state: RewardServer = app.state.rubrix
    limits = state.config
    assert limits.max_connections is not None and limits.backlog is not None
    state.limit_warnings.update(machine_limits(limits.max_connections, limits.backlog))
    for text in state.limit_warnings.values():
        log.warning("%s", text)
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
                            limit_concurrency=limits.max_connections, backlog=limits.backlog,
                            timeout_keep_alive=5, timeout_graceful_shutdown=5)
    if on_ready is not None:
        c, core = state.config, state.core
        auth = "bearer token required" if c.token else "no token"
        rubric_name = core.rubric.name if core.rubric is not None else "none (per request)"
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        on_ready(f"rubrix serve: listening on http://{shown}:{bound} — judge {core.scorer.judge_label}, "
                 f"rubric {rubric_name}, {auth}, max batch {c.max_batch}, window {c.batch_window_ms:g} ms, "
                 f"deadline {c.deadline_s:g} s, queue {c.max_queue}, connections {c.max_connections}, "
                 f"backlog {c.backlog}, failure {c.policy}")
    uvicorn.Server(config).run(sockets=[sock])


FILES_PER_PROCESS = 64  # descriptors the process holds besides client connections (judge, cache, logs)


def machine_limits(max_connections: int, backlog: int) -> dict[str, str]:
    """Raise the open-file limit to fit ``max_connections``; what still does not fit, in words.

    A connection is a file descriptor: past the soft ``RLIMIT_NOFILE`` the kernel refuses to accept
    (EMFILE) however large ``max_connections`` is. The listen backlog is capped by
    ``net.core.somaxconn``; connections beyond it are not lost but wait for the client's SYN retry.
    """
    out: dict[str, str] = {}
    need = max_connections + FILES_PER_PROCESS
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < need:
            target = need if hard == resource.RLIM_INFINITY else min(need, hard)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < need:
            out["open_files"] = (
                f"the open-file limit ({soft}, hard limit {hard}) allows about {soft - FILES_PER_PROCESS} "
                f"connections, fewer than --max-connections {max_connections}: connections beyond it are "
                f"refused, and a trainer that sends one request per sample (OpenRLHF) loses those samples' "
                f"rewards; raise it (ulimit -n {need}) or lower --step-samples / --max-connections")
    except ImportError:  # pragma: no cover - not POSIX
        pass
    try:
        somaxconn = int(open("/proc/sys/net/core/somaxconn").read().split()[0])
    except (OSError, ValueError, IndexError):
        somaxconn = None
    if somaxconn is not None and somaxconn < backlog:
        out["backlog"] = (
            f"the kernel caps the listen backlog at net.core.somaxconn = {somaxconn}, below --backlog "
            f"{backlog}: connection attempts beyond it wait for the client's SYN retry (1 s, then 3 s ...), "
            f"which is slower but loses nothing (sysctl -w net.core.somaxconn={backlog} to avoid it)")
    return out


__all__ = ["RewardServer", "create_app", "machine_limits", "serve"]
