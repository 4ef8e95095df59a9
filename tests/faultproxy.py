"""A fault-injecting HTTP proxy for OpenAI-compatible endpoints (test helper, loopback only).

:class:`FaultProxy` listens on 127.0.0.1 and sits between a client (rubrix's
:class:`~rubrix.judges.openai.OpenAIJudge`) and a real server (``llama_cpp.server``). For each
request it either injects one fault or lets a real answer through, and it writes down exactly
what it did in :attr:`FaultProxy.log`, so a test can compute what the client *should* have ended
with and compare.

Faults (names are the keys of ``rates``):

=====================  ===========================================================================
``rate_limit_after``   429 with ``Retry-After: <retry_after_s>``
``rate_limit``         429 without ``Retry-After``
``http_500/502/503``   that status with a short JSON error body
``reset``              the connection is reset (TCP RST) after the request was read
``hang``               no answer until the client gives up and closes the connection
``truncated``          200 with ``Content-Length`` of the full real body, half of it sent, then close
``garbage_body``       200 whose body is not JSON (an HTML error page from a middlebox)
``unparseable``        200, a well-formed chat completion whose answer reads as no label at all
                       (text and top logprobs without any answer token)
``empty_answer``       200, a well-formed chat completion with empty content and no logprobs
=====================  ===========================================================================

Decisions are deterministic: the fault for the *k*-th attempt of an item is drawn from a hash of
``(seed, item key, k)``, so the outcome does not depend on timing or on the order in which
concurrent requests arrive. The item key is the request's messages with any re-ask turns
(an assistant answer followed by "I could not read that answer...") removed: a re-ask is another
attempt at the same item.

Real answers: a request that gets no fault is answered with a body the real server produced for
the same request — forwarded now (``forward_fraction`` of them, and always when nothing is
recorded yet), or replayed from the recording of an earlier forward. Forwards go to the server one
at a time (a 2-core llama.cpp server does not run requests in parallel anyway); when a forward is
wanted but another is running, the recording is replayed instead, so that no client waits in a
queue long enough to time out for reasons the log cannot see. ``upstream_key`` maps a request's
messages to what is sent upstream and recorded (a test uses it to strip a per-item tag so that
many items share a few real requests). Re-asks are answered with the recording of the original
question: the question is unchanged, only the grader's earlier (injected) answer was unreadable.

If a client disconnects while its real answer is being fetched (a natural timeout), the log says
``client_gone`` instead of ``ok``, so an unexpected slowness shows up as what it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

REASK_PREFIX = "I could not read that answer."

TRANSPORT_FAULTS = ("rate_limit_after", "rate_limit", "http_500", "http_502", "http_503", "reset", "hang",
                    "truncated", "garbage_body")
CONTENT_FAULTS = ("unparseable", "empty_answer")
FAULTS = TRANSPORT_FAULTS + CONTENT_FAULTS

#: the typed error a client should end with when this fault is the last straw
FAULT_ERROR = {"rate_limit_after": "rate_limit", "rate_limit": "rate_limit", "http_500": "server",
               "http_502": "server", "http_503": "server", "reset": "server", "hang": "timeout",
               "client_gone": "timeout", "truncated": "server", "garbage_body": "server",
               "unparseable": "parse", "empty_answer": "truncated"}


@dataclass
class Injection:
    """What the proxy did with one HTTP request."""

    n: int                 # arrival order
    item: str              # item key (hash of the messages without re-ask turns)
    attempt: int           # 0-based attempt number of this item
    fault: str             # one of FAULTS, "ok" (a real answer) or "client_gone"
    forwarded: bool = False
    reask: bool = False    # the request carried re-ask turns
    arrived: float = 0.0   # time.monotonic() at arrival
    path: str = ""
    detail: str = ""       # what happened, where the fault name does not say it all


def strip_reasks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The original question: drop trailing (assistant answer, re-ask) pairs."""
    out = list(messages)
    while (len(out) >= 2 and out[-1].get("role") == "user" and out[-2].get("role") == "assistant"
           and str(out[-1].get("content", "")).startswith(REASK_PREFIX)):
        out = out[:-2]
    return out


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _unit(*parts: Any) -> float:
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


@dataclass
class _Recorded:
    status: int
    content_type: str
    body: bytes


@dataclass
class FaultProxy:
    """See the module docstring. Use as a context manager; ``base_url`` ends in ``/v1``."""

    upstream: str                                   # e.g. http://127.0.0.1:PORT/v1
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    forward_fraction: float = 1.0
    retry_after_s: int = 1
    hang_max_s: float = 120.0
    upstream_key: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = lambda m: m
    upstream_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        if sum(self.rates.values()) > 1.0:
            raise ValueError("fault rates add up to more than 1")
        self.log: list[Injection] = []
        self.recordings: dict[str, _Recorded] = {}
        self.upstream_calls = 0
        self.upstream_times: list[float] = []  # seconds per forwarded chat completion
        self._attempts: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._forwarding: asyncio.Lock | None = None
        self._fresh_busy = False
        self._client: httpx.AsyncClient | None = None
        self._conns: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("fault proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def start() -> None:
            self._forwarding = asyncio.Lock()
            self._client = httpx.AsyncClient(timeout=self.upstream_timeout_s)
            self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
            port = self._server.sockets[0].getsockname()[1]
            self.base_url = f"http://127.0.0.1:{port}/v1"

        loop.run_until_complete(start())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._conns.values()):  # EOF for every handler (cancelling them is noisy)
            writer.transport.abort()
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=10)
        if self._client is not None:
            await self._client.aclose()

    # ------------------------------------------------------------------ reports

    def faults(self) -> dict[str, int]:
        """How many requests got each fault (and ``ok`` / ``client_gone``)."""
        out: dict[str, int] = {}
        for inj in self.log:
            out[inj.fault] = out.get(inj.fault, 0) + 1
        return out

    def by_item(self) -> dict[str, list[Injection]]:
        """Each item's requests in attempt order."""
        out: dict[str, list[Injection]] = {}
        for inj in sorted(self.log, key=lambda i: (i.item, i.attempt)):
            out.setdefault(inj.item, []).append(inj)
        return out

    # ------------------------------------------------------------------ HTTP

    def _choose(self, item: str, attempt: int) -> str:
        u = _unit(self.seed, item, attempt, "fault")
        acc = 0.0
        for name in FAULTS:
            acc += self.rates.get(name, 0.0)
            if u < acc:
                return name
        return "ok"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                keep = await self._handle(request, reader, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            self._conns.pop(task, None)
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, request: tuple[str, str, dict[str, str], bytes], reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        """Answer one request; return whether the connection stays open."""
        method, path, _headers, body = request
        arrived = time.monotonic()
        if method != "POST" or not path.endswith("/chat/completions"):
            status, ctype, data = await self._forward(method, path, body)
            await _respond(writer, status, data, ctype)
            return True
        payload = json.loads(body)
        messages = payload.get("messages") or []
        original = strip_reasks(messages)
        item = _digest(original)
        attempt = self._attempts.get(item, 0)
        self._attempts[item] = attempt + 1
        fault = self._choose(item, attempt)
        inj = Injection(n=len(self.log), item=item, attempt=attempt, fault=fault,
                        reask=len(original) != len(messages), arrived=arrived, path=path)
        self.log.append(inj)

        if fault in ("rate_limit_after", "rate_limit"):
            headers = {"Retry-After": str(self.retry_after_s)} if fault == "rate_limit_after" else {}
            await _respond(writer, 429, _error_body("rate limited, slow down"), extra=headers)
            return True
        if fault.startswith("http_"):
            status = int(fault[5:])
            await _respond(writer, status, _error_body(f"upstream failure {status}"))
            return True
        if fault == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:  # SO_LINGER 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if fault == "hang":
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(), self.hang_max_s)  # until the client closes
            return False
        if fault == "garbage_body":
            await _respond(writer, 200, b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>",
                           "application/json")
            return True
        if fault in CONTENT_FAULTS:
            await _respond(writer, 200, json.dumps(_fake_completion(payload, fault)).encode())
            return True

        # a real answer (also the body that ``truncated`` cuts in half)
        up_messages = self.upstream_key(original)
        up_payload = {**payload, "messages": up_messages}
        key = _digest(up_payload)
        recorded = self.recordings.get(key)
        forward = recorded is None or (not inj.reask and _unit(self.seed, item, attempt, "fwd")
                                       < self.forward_fraction)
        if forward and recorded is not None:
            if self._fresh_busy:
                forward = False  # do not queue behind another forward; the recording is the same answer
            else:
                self._fresh_busy = True  # set before any await, so no second request slips past
        if forward:
            gone = asyncio.ensure_future(reader.read(1))  # b"" once the client closes the connection
            fresh = recorded is not None
            fetch = asyncio.ensure_future(self._forward_recorded(path, up_payload, key, fresh=fresh))
            try:
                done, _ = await asyncio.wait({gone, fetch}, return_when=asyncio.FIRST_COMPLETED)
                if gone in done and fetch not in done:
                    inj.fault = "client_gone"
                    exc = gone.exception()
                    inj.detail = (f"after {time.monotonic() - arrived:.1f}s: "
                                  f"{repr(exc) if exc else repr(gone.result())}")
                    await asyncio.shield(fetch)  # keep the recording for later requests
                    return False
            finally:
                if fresh:
                    self._fresh_busy = False
            gone.cancel()
            with contextlib.suppress(BaseException):  # let the reader go before the next request
                await gone
            recorded, inj.forwarded = fetch.result()
        assert recorded is not None
        if fault == "truncated":
            await _respond(writer, recorded.status, recorded.body, recorded.content_type, truncate=True)
            return False
        await _respond(writer, recorded.status, recorded.body, recorded.content_type)
        return True

    async def _forward_recorded(self, path: str, payload: dict[str, Any], key: str, *,
                                fresh: bool) -> tuple[_Recorded, bool]:
        """Forward (one at a time) and record; unless ``fresh``, a recording made while this
        request waited for its turn is used instead (many items share one real request)."""
        assert self._forwarding is not None
        async with self._forwarding:
            if not fresh and key in self.recordings:
                return self.recordings[key], False
            t0 = time.monotonic()
            status, ctype, data = await self._forward("POST", path, json.dumps(payload).encode())
            self.upstream_times.append(time.monotonic() - t0)
        rec = _Recorded(status, ctype, data)
        if status == 200:
            self.recordings[key] = rec
        return rec, True

    async def _forward(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        assert self._client is not None
        base = self.upstream.rsplit("/v1", 1)[0]
        self.upstream_calls += 1
        resp = await self._client.request(method, base + path, content=body or None,
                                          headers={"Content-Type": "application/json"})
        return resp.status_code, resp.headers.get("content-type", "application/json"), resp.content


def _error_body(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "server_error"}}).encode()


def _fake_completion(payload: dict[str, Any], fault: str) -> dict[str, Any]:
    """A well-formed chat completion whose answer cannot be read as any label."""
    if fault == "empty_answer":
        content, logprobs = "", None
    else:
        content = "Hmm, let me think about this"
        top = [{"token": t, "logprob": lp, "bytes": None}
               for t, lp in (("Hmm", -0.1), ("Well", -2.5), ("The", -3.0), ("Let", -4.0))]
        logprobs = {"content": [{"token": "Hmm", "logprob": -0.1, "bytes": None, "top_logprobs": top}]}
    return {"id": "chatcmpl-faultproxy", "object": "chat.completion", "created": int(time.time()),
            "model": payload.get("model", "?"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "logprobs": logprobs, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}}


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    """One HTTP/1.1 request (Content-Length bodies only; httpx sends nothing else)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


_REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}


async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes,
                   content_type: str = "application/json", *, extra: dict[str, str] | None = None,
                   truncate: bool = False) -> None:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    head.append("Connection: close" if truncate else "Connection: keep-alive")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    writer.write(body[: len(body) // 2] if truncate else body)
    await writer.drain()
    if truncate:
        writer.close()
