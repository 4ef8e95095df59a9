"""A judge behind any OpenAI-compatible ``/v1/chat/completions`` endpoint.

OpenAI, vLLM, SGLang, llama.cpp (``llama_cpp.server``), Ollama and most hosted APIs speak this
protocol. The judge speaks HTTP itself rather than through the ``openai`` SDK because retries,
backoff and fallbacks are part of what a verdict means here (a request that failed after four
retries is a typed failure, never a number), and because per-request overhead matters when
hundreds of requests are in flight from one core: by default each concurrency slot owns one
keep-alive connection of the small client in :mod:`.http11`; ``transport="httpx"`` (or
``RUBRIX_HTTP_TRANSPORT=httpx``, and any URL the environment routes through a proxy) uses
:mod:`httpx` instead.

Reading answers:

* choice requests (binary / scale / pairwise, ``json_field`` unset) ask for ``logprobs`` and read
  the expected option value from the ``top_logprobs`` of the first answer token; a server that
  does not give logprobs gets its text parsed instead (:func:`.parsing.parse_label`);
* JSON requests (``json_field`` set, or a checklist) ask for ``response_format=json_object`` and
  parse the (repaired) JSON object.

Unreadable answers are re-asked a bounded number of times, then fail as ``parse``; refusals
fail as ``refused``. Transport trouble is retried with backoff and jitter (``Retry-After`` is
honoured) and fails as ``rate_limit`` / ``server`` / ``timeout`` once retries run out.

Authentication failures (401/403) are not retried: every request would fail the same way. They
fail as ``input`` with a detail naming the status and the base URL, :attr:`OpenAIJudge.auth_error`
is set, and requests that start afterwards fail at once without another HTTP call, so a run with
a bad key stops costing time after the first answer and the caller can check one attribute.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .. import _aio
from ..errors import UserError
from ..logs import event, get_logger
from .base import ErrorType, Generation, JudgeRequest, Verdict
from .http11 import Connection, HTTPConnectionError, HTTPTimeout, proxy_for
from .parsing import (
    _DECORATION,
    checklist_values,
    label_from_json,
    looks_like_refusal,
    parse_json_object,
    parse_label,
    read_logprobs,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRY_AFTER_CAP_S = 300.0


_log = get_logger(__name__)


def _env_key() -> str | None:
    return os.environ.get("RUBRIX_API_KEY") or os.environ.get("OPENAI_API_KEY") or None


def retry_after_seconds(headers: httpx.Headers | dict[str, str], now: float | None = None) -> float | None:
    """Seconds a server asked us to wait: ``retry-after-ms``, or ``Retry-After`` as seconds or an
    HTTP date. ``None`` when absent or unreadable (the caller then backs off on its own)."""
    get = headers.get
    ms = get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass
class _Item:
    """Bookkeeping for one request across its HTTP attempts, re-asks and fallbacks."""

    client: Any  # an httpx.AsyncClient or an http11.Connection: both have post() and aclose()
    attempts: int = 0
    usage: dict[str, int] = field(default_factory=dict)

    def add_usage(self, usage: Any) -> dict[str, int]:
        """Add one response's token counts; return what was added (servers may omit fields)."""
        added: dict[str, int] = {}
        if isinstance(usage, dict):
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    added[key] = value
                    self.usage[key] = self.usage.get(key, 0) + value
        return added


class _Failure(Exception):
    """A typed, final failure of one HTTP exchange (retries exhausted or not retryable)."""

    def __init__(self, error: ErrorType, detail: str):
        super().__init__(detail)
        self.error = error
        self.detail = detail


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _first_answer_top_logprobs(logprobs: Any) -> Any:
    """The ``top_logprobs`` of the first generated token that carries meaning.

    A one-token answer is read at position 0. When a judge opens with pure formatting ("**",
    a space, a quote) the answer distribution sits on the next token, so such tokens are skipped.
    Also reads the legacy completions shape ``{"top_logprobs": [{token: logprob}, ...]}``.
    """
    if not isinstance(logprobs, dict):
        return None
    content = logprobs.get("content")
    if isinstance(content, list) and content:
        for entry in content:
            if not isinstance(entry, dict):
                continue
            token = entry.get("token")
            if isinstance(token, str) and not token.strip(_DECORATION) and entry is not content[-1]:
                continue
            return entry.get("top_logprobs")
        return None
    legacy = logprobs.get("top_logprobs")
    if isinstance(legacy, list) and legacy:
        tokens = logprobs.get("tokens") or []
        for i, entry in enumerate(legacy):
            token = tokens[i] if i < len(tokens) else None
            if isinstance(token, str) and not token.strip(_DECORATION) and i < len(legacy) - 1:
                continue
            return entry
    return None


class OpenAIJudge:
    """Judge over an OpenAI-compatible chat completions endpoint (see the module docstring).

    ``logprobs``: ``None`` (auto) asks for logprobs on choice requests and, if the server rejects
    the parameter (HTTP 400 naming it) or answers without them, remembers that and reads the answer
    text from then on; ``True`` always asks (a rejection is an ``input`` failure); ``False`` never
    asks. ``response_format`` falls back the same way for JSON requests.

    ``stats`` counts ``requests`` (items judged or generated), ``http_calls``, ``retries``,
    ``reasks``, ``fallbacks``, prompt/completion tokens and final ``errors`` by type.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 32, timeout_s: float = 60.0, max_retries: int = 4, max_reasks: int = 2,
                 logprobs: bool | None = None, top_logprobs: int = 10, temperature: float = 0.0,
                 seed: int | None = 0, backoff_base_s: float = 0.5, backoff_max_s: float = 30.0,
                 transport: str | None = None, headers: dict[str, str] | None = None,
                 top_p: float | None = None):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        transport = (transport or os.environ.get("RUBRIX_HTTP_TRANSPORT") or "auto").strip().lower()
        if transport not in ("auto", "http11", "httpx"):
            raise UserError(f"unknown transport {transport!r} (auto, http11 or httpx)", field="transport")
        self.model = model
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = url.strip().rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise UserError(f"judge base URL {self.base_url!r} must start with http:// or https:// "
                            f"(for example http://127.0.0.1:8000/v1)", field="base_url")
        self.api_key = api_key if api_key is not None else _env_key()
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_reasks = max_reasks
        self.logprobs = logprobs
        self.top_logprobs = top_logprobs
        self.temperature = temperature
        self.top_p = top_p
        #: extra HTTP headers on every request (a gateway's routing or team header)
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.seed = seed
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.name = f"openai:{model}"
        self.url = f"{self.base_url}/chat/completions"
        #: which HTTP client carries the requests: the lean one unless a proxy (or the caller) says httpx
        self.transport = "httpx" if transport == "httpx" or (transport == "auto" and proxy_for(self.url)) \
            else "http11"
        #: set to a message when the server rejected the API key; later requests fail at once
        self.auth_error: str | None = None
        self.stats: dict[str, Any] = {"requests": 0, "http_calls": 0, "retries": 0, "reasks": 0,
                                      "fallbacks": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                      "errors": {}}
        self._use_logprobs = logprobs is not False
        self._saw_logprobs = False  # some answer came with logprobs: a missing one is a glitch
        self._use_json_mode = True
        self._use_seed = seed is not None
        self._max_tokens_key = "max_tokens"
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._free: list[Any] = []      # idle per-slot clients, reused LIFO
        self._clients: list[Any] = []   # every client of the current loop
        self._ssl: Any = None
        _aio.close_at_exit(self)  # connections live across batches; they are closed when the process ends

    # ------------------------------------------------------------------ protocol bits

    @property
    def reads_logprobs(self) -> bool:
        """Whether choice verdicts currently come from token probabilities."""
        return self._use_logprobs

    def identity(self) -> str:
        mode = {None: "auto", True: "on", False: "off"}[self.logprobs]
        return json.dumps({"judge": "openai", "model": self.model, "base_url": self.base_url,
                           "temperature": self.temperature, "seed": self.seed, "logprobs": mode,
                           "top_logprobs": self.top_logprobs,
                           **({"top_p": self.top_p} if self.top_p is not None else {})}, sort_keys=True)

    def __repr__(self) -> str:
        return f"OpenAIJudge({self.model!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        _aio.forget(self)
        loop = self._loop
        clients, self._clients, self._free, self._loop, self._sem = self._clients, [], [], None, None
        if loop is not asyncio.get_running_loop():
            # The clients belong to another loop (a caller's own, possibly closed by now):
            # closing them from here raises "Event loop is closed".
            return
        for client in clients:
            await client.aclose()

    def _ensure(self) -> asyncio.Semaphore:
        """The concurrency semaphore of the running event loop (with its clients).

        Connections and semaphores belong to one loop. rubrix drives judges from its one background
        loop (:mod:`rubrix._aio`), so they live across batches; a caller that drives the judge from
        loops of its own gets fresh ones for each loop instead of failing on stale sockets.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
            self._free, self._clients = [], []
            self._loop = loop
        return self._sem

    def _new_client(self) -> Any:
        """One client per concurrency slot, each with a single keep-alive connection.

        A shared pool is the wrong shape here: httpcore's scans every connection and queued
        request on each request and release (quadratic in the pool size; one pool of 256
        connections spent ~27 ms of CPU per request). Single-connection clients keep bookkeeping
        trivial. They share one SSL context, which is the expensive part of a client.
        """
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        headers = {**self.headers, "Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.transport == "http11":
            conn = Connection(self.url, headers={**headers, "User-Agent": "rubrix"}, timeout_s=self.timeout_s,
                              connect_timeout_s=min(self.timeout_s, 10.0), ssl_context=self._ssl)
            self._clients.append(conn)
            return conn
        client = httpx.AsyncClient(
            headers=headers, verify=self._ssl,
            timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0), pool=None),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self._clients.append(client)
        return client

    # ------------------------------------------------------------------ public calls

    async def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        """One verdict per request, in order; at most ``concurrency`` requests in flight."""
        if not requests:
            return []
        sem = self._ensure()
        return list(await asyncio.gather(*(self._guarded(sem, self._judge_one, r) for r in requests)))

    async def generate(self, messages: list[list[dict[str, str]]], *, max_tokens: int = 512,
                       stop: list[str] | None = None, json_mode: bool = False) -> list[Generation]:
        """Plain completions (for rubric extraction); a failure is a failed :class:`Generation`.

        ``json_mode`` sends ``response_format=json_object`` (dropped, and remembered, for a server
        that rejects it). ``usage`` is what the server reported, summed over attempts; a server
        that reports none leaves it empty and callers estimate with :meth:`count_tokens`.
        """
        if not messages:
            return []
        sem = self._ensure()
        return list(await asyncio.gather(*(
            self._guarded(sem, self._generate_one, list(m), max_tokens, stop, json_mode) for m in messages)))

    def count_tokens(self, texts: list[str]) -> list[int]:
        """An estimate: about four characters per token (OpenAI's rule of thumb for English text).

        The endpoint's tokenizer is not reachable from here, and the exact counts of real calls
        come from the server's ``usage``; this only fills in where a server reports none.
        """
        return [(len(t) + 3) // 4 for t in texts]

    # ------------------------------------------------------------------ one item

    async def _guarded(self, sem: asyncio.Semaphore, fn, *args):
        async with sem:
            self.stats["requests"] += 1
            free = self._free
            client = free.pop() if free else self._new_client()
            try:
                result = await fn(_Item(client=client), *args)
            finally:
                if free is self._free:  # not from a loop (or aclose) that has since replaced the pool
                    free.append(client)
        if isinstance(result, Verdict | Generation) and result.error is not None:
            errors = self.stats["errors"]
            errors[result.error] = errors.get(result.error, 0) + 1
        return result

    async def _generate_one(self, item: _Item, messages: list[dict[str, str]], max_tokens: int,
                            stop: list[str] | None, json_mode: bool) -> Generation:
        t0 = time.perf_counter()
        try:
            data, _ = await self._call(item, messages, max_tokens, logprobs=False, json_mode=json_mode,
                                       stop=stop)
        except _Failure as f:
            return Generation.failed(f.error, f.detail, usage=item.usage, attempts=item.attempts,
                                     latency_s=time.perf_counter() - t0)
        message = data["choices"][0].get("message") or {}
        if message.get("refusal"):
            return Generation.failed("refused", str(message["refusal"]), usage=item.usage,
                                     attempts=item.attempts, latency_s=time.perf_counter() - t0)
        return Generation(text=_message_text(message), usage=item.usage, attempts=item.attempts,
                          latency_s=time.perf_counter() - t0)

    async def _judge_one(self, item: _Item, req: JudgeRequest) -> Verdict:
        t0 = time.perf_counter()
        messages = list(req.messages)
        wants_json = req.expects_json
        text = ""
        for ask in range(self.max_reasks + 1):
            try:
                data, sent = await self._call(item, messages, req.max_tokens, logprobs=not wants_json,
                                              json_mode=wants_json)
            except _Failure as f:
                return Verdict.failed(f.error, f.detail, raw=text or None, usage=item.usage,
                                      attempts=item.attempts, latency_s=time.perf_counter() - t0)
            choice = data["choices"][0]
            message = choice.get("message") or {}
            text = _message_text(message)
            refusal = message.get("refusal")
            if refusal or choice.get("finish_reason") == "content_filter":
                return Verdict.failed("refused", str(refusal or "content_filter"), raw=text or str(refusal),
                                      usage=item.usage, attempts=item.attempts,
                                      latency_s=time.perf_counter() - t0)
            if wants_json:
                verdict = self._read_json(req, text)
            else:
                verdict = self._read_choice(req, choice, text, asked="logprobs" in sent)
            if verdict is not None:
                verdict.usage = item.usage
                verdict.attempts = item.attempts
                verdict.latency_s = time.perf_counter() - t0
                return verdict
            if looks_like_refusal(text):
                return Verdict.failed("refused", text, raw=text, usage=item.usage, attempts=item.attempts,
                                      latency_s=time.perf_counter() - t0)
            if ask < self.max_reasks:
                self.stats["reasks"] += 1
                messages = messages + [{"role": "assistant", "content": text},
                                       {"role": "user", "content": _reask_message(req)}]
        return Verdict.failed("parse", f"unreadable answer after {self.max_reasks} re-asks: {text[:200]!r}",
                              raw=text, usage=item.usage, attempts=item.attempts,
                              latency_s=time.perf_counter() - t0)

    def _read_choice(self, req: JudgeRequest, choice: dict[str, Any], text: str,
                     asked: bool) -> Verdict | None:
        """Expected value from first-token logprobs when present, else the label in the text."""
        logprobs = choice.get("logprobs")
        top = _first_answer_top_logprobs(logprobs)
        if top:
            self._saw_logprobs = True
            hit = read_logprobs(top, req.options)
            if hit is not None:
                p, coverage, label = hit
                return Verdict(p=p, label=label, raw=text, from_logprobs=True, coverage=coverage)
        hit = parse_label(text, req.options)
        if hit is None:
            return None
        if (not top and asked and logprobs is None and self.logprobs is None and self._use_logprobs
                and not self._saw_logprobs):
            # asked, and a readable answer came without them: the server silently ignores the
            # parameter, so stop asking. Only a readable answer from a server that never sent
            # logprobs counts: one empty or garbled reply (a proxy hiccup) must not switch a run
            # from probabilities to hard 0/1 verdicts for good.
            self._use_logprobs = False
            self.stats["fallbacks"] += 1
        return Verdict(p=float(hit[1]), label=hit[0], raw=text, from_logprobs=False)

    def _read_json(self, req: JudgeRequest, text: str) -> Verdict | None:
        obj = parse_json_object(text)
        if req.kind == "checklist":
            values = checklist_values(obj, req.checklist_ids) if obj is not None else None
            if values is None or not req.checklist_ids:
                return None
            p = sum(values.values()) / len(values)
            return Verdict(p=p, label=None, raw=text, values=values, from_logprobs=False)
        if obj is not None:
            hit = label_from_json(obj, req.json_field, req.options)
        else:
            hit = parse_label(text, req.options)
        if hit is None:
            return None
        return Verdict(p=float(hit[1]), label=hit[0], raw=text, from_logprobs=False)

    # ------------------------------------------------------------------ HTTP

    def _payload(self, messages: list[dict[str, str]], max_tokens: int, *, logprobs: bool, json_mode: bool,
                 stop: list[str] | None, drop: frozenset[str]) -> tuple[dict[str, Any], frozenset[str]]:
        """The request body and the names of the optional parameters in it (for fallbacks)."""
        body: dict[str, Any] = {"model": self.model, "messages": messages,
                                self._max_tokens_key: max_tokens, "temperature": self.temperature}
        if self.top_p is not None:
            body["top_p"] = self.top_p
        optional = set()
        if self._use_seed and "seed" not in drop:
            body["seed"] = self.seed
            optional.add("seed")
        if logprobs and self._use_logprobs and "logprobs" not in drop:
            body["logprobs"] = True
            if self.top_logprobs:
                body["top_logprobs"] = self.top_logprobs
            optional.add("logprobs")
        if json_mode and self._use_json_mode and "response_format" not in drop:
            body["response_format"] = {"type": "json_object"}
            optional.add("response_format")
        if stop:
            body["stop"] = stop
        return body, frozenset(optional)

    def _backoff(self, retry: int) -> float:
        """Full jitter: uniform over [0, min(cap, base·2^(retry-1))], so a burst of clients that
        were throttled together does not come back together."""
        return self._rng.uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * (2 ** (retry - 1))))

    def _fallback(self, status: int, body_text: str, optional: frozenset[str]) -> tuple[set[str], bool]:
        """Which optional parameters to drop after a 4xx that may be about them, and whether the
        error named them (a lasting fallback) or not (a probe for this request only).

        A parameter is blamed when the error names it; an error that names none of them is tried
        once more without all of them (and only turned into a lasting fallback if that works).
        ``logprobs=True`` is a demand, so it is never dropped.
        """
        text = body_text.lower()
        droppable = {name for name in optional if not (name == "logprobs" and self.logprobs is True)}
        if status >= 500 and not any(k in text for k in ("not supported", "unsupported", "logits_all")):
            return set(), False  # a 5xx only counts when it says the parameter is unsupported
        if self.logprobs is True and "logprobs" in optional and "logprob" in text:
            return set(), False  # the error is about logprobs, which the user demanded
        named = set()
        if "logprobs" in droppable and "logprob" in text:
            named.add("logprobs")
        json_words = ("response_format", "json_object", "json mode")
        if "response_format" in droppable and any(k in text for k in json_words):
            named.add("response_format")
        if "seed" in droppable and "seed" in text:
            named.add("seed")
        if named:
            return named, True
        if status in (400, 422) and droppable:
            return droppable, False
        return set(), False

    def _remember(self, dropped: set[str]) -> None:
        self.stats["fallbacks"] += 1
        event(_log, logging.INFO, "judge_fallback", model=self.model, dropped=sorted(dropped))
        if "logprobs" in dropped:
            self._use_logprobs = False
        if "response_format" in dropped:
            self._use_json_mode = False
        if "seed" in dropped:
            self._use_seed = False

    async def _call(self, item: _Item, messages: list[dict[str, str]], max_tokens: int, *, logprobs: bool,
                    json_mode: bool, stop: list[str] | None = None) -> tuple[dict[str, Any], frozenset[str]]:
        """One chat completion with retries and parameter fallbacks; raises :class:`_Failure`.

        Returns the response body and the optional parameters the successful attempt carried.
        """
        if self.auth_error:
            raise _Failure("input", self.auth_error)
        client = item.client
        retries = 0
        drop: frozenset[str] = frozenset()
        probing: frozenset[str] = frozenset()  # dropped on a hunch; remembered only if it works
        while True:
            body, optional = self._payload(messages, max_tokens, logprobs=logprobs, json_mode=json_mode,
                                           stop=stop, drop=drop)
            item.attempts += 1
            self.stats["http_calls"] += 1
            wait: float | None = None
            try:
                resp = await client.post(self.url, content=json.dumps(body, ensure_ascii=False).encode())
            except (httpx.TimeoutException, HTTPTimeout) as exc:
                error, detail = "timeout", f"no answer within {self.timeout_s:g}s ({type(exc).__name__})"
            except httpx.UnsupportedProtocol as exc:
                raise _Failure("input", f"cannot reach {self.url}: {exc}") from None
            except (httpx.RequestError, HTTPConnectionError) as exc:  # refused, reset, cut-off body
                error, detail = "server", f"connection failed: {type(exc).__name__}: {exc}"
            else:
                status = resp.status_code
                if status == 200:
                    try:
                        data = json.loads(resp.content)
                        if not (isinstance(data, dict) and isinstance(data.get("choices"), list)
                                and data["choices"] and isinstance(data["choices"][0], dict)):
                            raise ValueError("no choices")
                    except ValueError as exc:
                        error, detail = "server", f"invalid response body ({exc}): {resp.text[:200]!r}"
                    else:
                        added = item.add_usage(data.get("usage"))
                        self.stats["prompt_tokens"] += added.get("prompt_tokens", 0)
                        self.stats["completion_tokens"] += added.get("completion_tokens", 0)
                        if probing:
                            self._remember(set(probing))
                        return data, optional
                elif status == 429:
                    error, detail = "rate_limit", f"429 rate limited: {resp.text[:200]}"
                    wait = retry_after_seconds(resp.headers)
                elif status == 408:
                    error, detail = "timeout", f"408 request timeout: {resp.text[:200]}"
                elif status >= 500 or status == 409:
                    # llama.cpp answers 500 for a parameter it cannot serve (logprobs without
                    # --logits_all); an error that names one of ours is a fallback, not an outage
                    dropped, named = self._fallback(status, resp.text, optional)
                    if named:
                        self._remember(dropped)
                        drop = drop | frozenset(dropped)
                        continue
                    error, detail = "server", f"{status} server error: {resp.text[:200]}"
                elif status in (401, 403):
                    word = "unauthorized" if status == 401 else "forbidden"
                    self.auth_error = (f"{status} {word}: the judge endpoint {self.base_url} rejected the "
                                       f"API key (set RUBRIX_API_KEY or OPENAI_API_KEY): {resp.text[:200]}")
                    event(_log, logging.ERROR, "judge_auth_error", status=status, base_url=self.base_url)
                    raise _Failure("input", self.auth_error)
                else:
                    text = resp.text
                    if self._max_tokens_key == "max_tokens" and "max_completion_tokens" in text:
                        # newer OpenAI models renamed the parameter
                        self._max_tokens_key = "max_completion_tokens"
                        self.stats["fallbacks"] += 1
                        continue
                    dropped, named = self._fallback(status, text, optional)
                    if dropped:
                        if named:
                            self._remember(dropped)
                        else:
                            probing = probing | frozenset(dropped)
                        drop = drop | frozenset(dropped)
                        continue
                    raise _Failure("input", f"{status} rejected: {text[:300]}")
            if retries >= self.max_retries:
                event(_log, logging.INFO, "judge_gave_up", model=self.model, error=error,
                      attempts=retries + 1, detail=detail[:200])
                raise _Failure(error, f"{detail} (after {retries + 1} attempts)")
            retries += 1
            self.stats["retries"] += 1
            if wait is None:
                wait = self._backoff(retries)
            event(_log, logging.INFO, "judge_retry", model=self.model, error=error, attempt=retries,
                  wait_s=min(wait, _RETRY_AFTER_CAP_S))
            await asyncio.sleep(min(wait, _RETRY_AFTER_CAP_S))


def _reask_message(req: JudgeRequest) -> str:
    labels = ", ".join(label for label, _ in req.options)
    if req.kind == "checklist":
        ids = ", ".join(f'"{cid}"' for cid in req.checklist_ids)
        return (f"I could not read that answer. Reply with only a JSON object with exactly these keys: "
                f"{ids}; each value true or false.")
    if req.json_field:
        return (f'I could not read that answer. Reply with only a JSON object whose "{req.json_field}" '
                f"is one of: {labels}.")
    return f"I could not read that answer. Reply with exactly one of: {labels}."
