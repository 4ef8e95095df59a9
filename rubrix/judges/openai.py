"""A judge behind any OpenAI-compatible chat completions endpoint, Azure OpenAI included.

OpenAI, Azure OpenAI, vLLM, SGLang, llama.cpp (``llama_cpp.server``), Ollama and most hosted APIs
speak this protocol. Requests go through the ``openai`` SDK (:mod:`.transport`: ``AsyncOpenAI``,
or ``AsyncAzureOpenAI`` for ``azure:DEPLOYMENT``), which owns configuration, authentication and
HTTP. The SDK's own retries are off: retries, backoff and fallbacks are part of what a verdict
means here (a request that failed after four retries is a typed failure, never a number), so the
judge keeps them.

Reading answers:

* choice requests (binary / scale / pairwise, ``json_field`` unset) ask for ``logprobs`` and read
  the expected option value from the ``top_logprobs`` of the first answer token; a server that
  does not give logprobs gets its text parsed instead (:func:`.parsing.parse_label`);
* JSON requests (``json_field`` set, or a checklist) ask for ``response_format=json_object`` and
  parse the (repaired) JSON object.

Unreadable answers are re-asked a bounded number of times, then fail as ``parse``; refusals
fail as ``refused``; an answer that is empty, or cut off by the token budget before a verdict
(a reasoning model that spent its budget thinking), fails as ``truncated``. Transport trouble is
retried with backoff and jitter (``Retry-After`` is honoured) and fails as ``rate_limit`` /
``server`` / ``timeout`` once retries run out.

Reasoning models: ``reasoning_effort`` is sent as given (a server that rejects it fails the
request as ``input``: it was asked for), the budget becomes ``max_completion_tokens`` with
``reasoning_tokens`` added for the hidden reasoning, and ``temperature`` is dropped (and
remembered) when the server refuses it. Reasoning text a server returns beside the answer
(``reasoning_content`` / ``reasoning``) is kept as the verdict's rationale.

Authentication failures (401/403) are not retried: every request would fail the same way. They
fail as ``input`` with a detail naming the status and the base URL, :attr:`OpenAIJudge.auth_error`
is set, and requests that start afterwards fail at once without another HTTP call.
:meth:`OpenAIJudge.preflight` makes one cheap request so a command can stop before scoring.
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

from .. import _aio
from ..errors import UserError
from ..logs import event, get_logger
from . import transport as _transport
from .base import ErrorType, Generation, JudgeRequest, Verdict
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


PROVIDERS = ("openai", "azure")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")


def _env_key(provider: str) -> str | None:
    """``RUBRIX_API_KEY`` wins; otherwise the SDK reads its own variable (``OPENAI_API_KEY``,
    ``AZURE_OPENAI_API_KEY``)."""
    return os.environ.get("RUBRIX_API_KEY") or None


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
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

    client: Any  # the transport's client for one concurrency slot
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

    ``provider``: ``openai`` (``base_url``: the API base, e.g. ``http://127.0.0.1:8000/v1``) or
    ``azure`` (``model`` is the deployment; ``base_url`` the resource endpoint, else
    ``AZURE_OPENAI_ENDPOINT``; ``api_version``, else ``OPENAI_API_VERSION``). ``api_key``: given,
    else ``RUBRIX_API_KEY``, else the SDK's variable; ``organization`` / ``project`` / ``headers``
    are sent with every request.

    ``logprobs``: ``None`` (auto) asks for logprobs on choice requests and, if the server rejects
    the parameter (HTTP 400 naming it) or answers without them, remembers that and reads the answer
    text from then on; ``True`` always asks (a rejection is an ``input`` failure); ``False`` never
    asks. ``response_format`` falls back the same way for JSON requests, and ``temperature``
    (``None``: never sent) when a reasoning model refuses it.

    ``stats`` counts ``requests`` (items judged or generated), ``http_calls``, ``retries``,
    ``reasks``, ``fallbacks``, prompt/completion tokens and final ``errors`` by type.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 provider: str = "openai", api_version: str | None = None, organization: str | None = None,
                 project: str | None = None, headers: dict[str, str] | None = None,
                 concurrency: int = 32, timeout_s: float = 60.0, max_retries: int = 4, max_reasks: int = 2,
                 logprobs: bool | None = None, top_logprobs: int = 10, temperature: float | None = 0.0,
                 seed: int | None = 0, reasoning_effort: str | None = None, reasoning_tokens: int = 4096,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0, transport: str | None = None,
                 top_p: float | None = None):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if provider not in PROVIDERS:
            raise UserError(f"unknown provider {provider!r} (openai or azure)", field="provider")
        if timeout_s <= 0:
            raise UserError("timeout must be positive (seconds)", field="timeout")
        if max_retries < 0:
            raise UserError("max_retries must be 0 or more", field="max_retries")
        if reasoning_effort is not None and reasoning_effort not in REASONING_EFFORTS:
            raise UserError(f"unknown reasoning effort {reasoning_effort!r} "
                            f"(choose from {', '.join(REASONING_EFFORTS)})", field="reasoning_effort")
        self.model = model
        self.provider = provider
        if base_url is not None:
            base_url = base_url.strip().rstrip("/")
            if not base_url.startswith(("http://", "https://")):
                raise UserError(f"judge base URL {base_url!r} must start with http:// or https:// "
                                f"(for example http://127.0.0.1:8000/v1)", field="base_url")
        if provider == "openai" and base_url is None and not os.environ.get("OPENAI_BASE_URL"):
            base_url = DEFAULT_BASE_URL
        self.api_key = api_key if api_key is not None else _env_key(provider)
        self.endpoint = _transport.Endpoint(provider=provider, base_url=base_url, api_key=self.api_key,
                                            organization=organization, project=project,
                                            api_version=api_version, headers=dict(headers or {}),
                                            timeout_s=timeout_s)
        #: what carries the requests (:mod:`.transport`): the SDK over httpx unless told otherwise
        self._transport = _transport.make(transport, self.endpoint, concurrency=concurrency)
        self.transport = self._transport.name
        self.base_url = self._transport.base_url
        self.api_key = self._transport.api_key
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
        self.reasoning_effort = reasoning_effort
        self.reasoning_tokens = reasoning_tokens
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.name = f"{provider}:{model}"
        #: set to a message when the server rejected the API key; later requests fail at once
        self.auth_error: str | None = None
        self.stats: dict[str, Any] = {"requests": 0, "http_calls": 0, "retries": 0, "reasks": 0,
                                      "fallbacks": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                      "errors": {}}
        self._use_logprobs = logprobs is not False
        self._saw_logprobs = False  # some answer came with logprobs: a missing one is a glitch
        self._use_json_mode = True
        self._use_seed = seed is not None
        self._use_temperature = temperature is not None
        # reasoning models take only the newer name; others learn it from a 400 (see _call)
        self._max_tokens_key = "max_completion_tokens" if reasoning_effort else "max_tokens"
        self._rng = random.Random()
        self._preflighting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._free: list[Any] = []      # idle per-slot clients, reused LIFO
        _aio.close_at_exit(self)  # connections live across batches; they are closed when the process ends

    # ------------------------------------------------------------------ protocol bits

    @property
    def reads_logprobs(self) -> bool:
        """Whether choice verdicts currently come from token probabilities."""
        return self._use_logprobs

    def identity(self) -> str:
        mode = {None: "auto", True: "on", False: "off"}[self.logprobs]
        ident = {"judge": self.provider, "model": self.model, "base_url": self.base_url,
                 "temperature": self.temperature, "seed": self.seed, "logprobs": mode,
                 "top_logprobs": self.top_logprobs}
        if self.reasoning_effort:
            ident["reasoning_effort"] = self.reasoning_effort
        if self.top_p is not None:
            ident["top_p"] = self.top_p
        return json.dumps(ident, sort_keys=True)

    def __repr__(self) -> str:
        return f"OpenAIJudge({self.model!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        _aio.forget(self)
        loop = self._loop
        self._free, self._loop, self._sem = [], None, None
        if loop is not asyncio.get_running_loop():
            # The clients belong to another loop (a caller's own, possibly closed by now):
            # closing them from here raises "Event loop is closed".
            self._transport.forget()
            return
        await self._transport.aclose()

    def _ensure(self) -> asyncio.Semaphore:
        """The concurrency semaphore of the running event loop (with its clients).

        Connections and semaphores belong to one loop. rubrix drives judges from its one background
        loop (:mod:`rubrix._aio`), so they live across batches; a caller that drives the judge from
        loops of its own gets fresh ones for each loop instead of failing on stale sockets.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
            self._free = []
            self._transport.forget()
            self._loop = loop
        return self._sem

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

    async def preflight(self) -> None:
        """One cheap request (a one-token answer) before a long job; raises :class:`UserError` when
        the endpoint rejects the key, the model or the request (any ``input`` failure: retrying
        or scoring would fail the same way). Other failures are left to the run, which retries."""
        self._preflighting = True  # the error becomes the command's one line; no log event besides
        try:
            [g] = await self.generate([[{"role": "user", "content": "Reply with: ok"}]], max_tokens=1)
        finally:
            self._preflighting = False
        if g.error == "input":
            detail = g.error_detail or "rejected"
            raise UserError(detail if self.base_url in detail else f"{self.base_url}: {detail}",
                            field="judge")

    # ------------------------------------------------------------------ one item

    async def _guarded(self, sem: asyncio.Semaphore, fn, *args):
        async with sem:
            self.stats["requests"] += 1
            free = self._free
            client = free.pop() if free else self._transport.slot()
            try:
                result = await fn(_Item(client=client), *args)
            finally:
                if free is self._free:  # not from a loop (or aclose) that has since replaced the pool
                    free.append(client)
        if isinstance(result, Verdict | Generation) and result.error is not None:
            errors = self.stats["errors"]
            errors[result.error] = errors.get(result.error, 0) + 1
        return result

    def _budget(self, max_tokens: int) -> int:
        """Output tokens to ask for: a reasoning model's hidden reasoning counts against them."""
        return max_tokens + (self.reasoning_tokens if self.reasoning_effort else 0)

    async def _generate_one(self, item: _Item, messages: list[dict[str, str]], max_tokens: int,
                            stop: list[str] | None, json_mode: bool) -> Generation:
        t0 = time.perf_counter()
        try:
            data, _ = await self._call(item, messages, self._budget(max_tokens), logprobs=False,
                                       json_mode=json_mode, stop=stop)
        except _Failure as f:
            return Generation.failed(f.error, f.detail, usage=item.usage, attempts=item.attempts,
                                     latency_s=time.perf_counter() - t0)
        choice = data["choices"][0]
        message = choice.get("message") or {}
        if message.get("refusal"):
            return Generation.failed("refused", str(message["refusal"]), usage=item.usage,
                                     attempts=item.attempts, latency_s=time.perf_counter() - t0)
        return Generation(text=_message_text(message), usage=item.usage, attempts=item.attempts,
                          latency_s=time.perf_counter() - t0,
                          truncated=choice.get("finish_reason") == "length")

    async def _judge_one(self, item: _Item, req: JudgeRequest) -> Verdict:
        t0 = time.perf_counter()
        messages = list(req.messages)
        wants_json = req.expects_json
        budget = self._budget(req.max_tokens)
        text = ""
        rationale = None

        def failed(error: ErrorType, detail: str, raw: str | None) -> Verdict:
            return Verdict.failed(error, detail, raw=raw, usage=item.usage, attempts=item.attempts,
                                  latency_s=time.perf_counter() - t0, rationale=rationale)

        for ask in range(self.max_reasks + 1):
            try:
                data, sent = await self._call(item, messages, budget, logprobs=not wants_json,
                                              json_mode=wants_json)
            except _Failure as f:
                return failed(f.error, f.detail, text or None)
            choice = data["choices"][0]
            message = choice.get("message") or {}
            text = _message_text(message)
            rationale = _reasoning_text(message) or rationale
            refusal = message.get("refusal")
            if refusal or choice.get("finish_reason") == "content_filter":
                return failed("refused", str(refusal or "content_filter"), text or str(refusal))
            if wants_json:
                verdict = self._read_json(req, text)
            else:
                verdict = self._read_choice(req, choice, text, asked="logprobs" in sent)
            if verdict is not None:
                verdict.usage = item.usage
                verdict.attempts = item.attempts
                verdict.latency_s = time.perf_counter() - t0
                verdict.rationale = rationale
                return verdict
            if choice.get("finish_reason") == "length" and budget > 1:
                # the budget ran out before a verdict: asking again would spend it again
                what = "an empty answer" if not text.strip() else "an answer cut off before its verdict"
                return failed("truncated", f"{what} at the limit of {budget} output tokens "
                              f"({'reasoning used it up; ' if self.reasoning_effort else ''}"
                              f"raise max_tokens or reasoning_tokens): {text[:160]!r}", text or None)
            if looks_like_refusal(text):
                return failed("refused", text, text)
            if ask < self.max_reasks:
                self.stats["reasks"] += 1
                messages = messages + [{"role": "assistant", "content": text},
                                       {"role": "user", "content": _reask_message(req)}]
        if not text.strip():
            return failed("truncated", f"empty answer after {self.max_reasks} re-asks", None)
        return failed("parse", f"unreadable answer after {self.max_reasks} re-asks: {text[:200]!r}", text)

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
        body: dict[str, Any] = {"model": self.model, "messages": messages, self._max_tokens_key: max_tokens}
        if self.top_p is not None:
            body["top_p"] = self.top_p
        optional = set()
        if self._use_temperature and "temperature" not in drop:
            body["temperature"] = self.temperature
            optional.add("temperature")
        if self.reasoning_effort:
            body["reasoning_effort"] = self.reasoning_effort
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
        if "temperature" in droppable and "temperature" in text:
            named.add("temperature")  # reasoning models: "Only the default (1) value is supported"
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
        if "temperature" in dropped:
            self._use_temperature = False

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
                resp = await self._transport.post(client, body)
            except _transport.TransportTimeout as exc:
                error, detail = "timeout", f"no answer within {self.timeout_s:g}s ({exc})"
            except _transport.Unreachable as exc:
                raise _Failure("input", f"cannot reach {self.base_url}: {exc}") from None
            except _transport.TransportError as exc:  # refused, reset, cut-off body
                error, detail = "server", f"connection failed: {exc}"
            else:
                status = resp.status
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
                    where = "AZURE_OPENAI_API_KEY" if self.provider == "azure" else "OPENAI_API_KEY"
                    self.auth_error = (f"{status} {word}: the judge endpoint {self.base_url} rejected the "
                                       f"API key (set RUBRIX_API_KEY or {where}): {resp.text[:200]}")
                    if not self._preflighting:
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


def _reasoning_text(message: dict[str, Any]) -> str | None:
    """Reasoning a server returns beside the answer (vLLM / DeepSeek ``reasoning_content``,
    OpenRouter / Ollama ``reasoning``), if any."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
