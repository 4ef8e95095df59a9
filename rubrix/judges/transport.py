"""How the openai judge's requests reach an endpoint: one seam, with the openai SDK behind it.

The judge hands a transport a chat-completions body and gets back a :class:`Reply` (status,
headers, body bytes) or one of three typed exceptions: :class:`TransportTimeout`,
:class:`TransportError` (refused, reset, cut-off or garbled exchanges) and :class:`Unreachable`
(a URL no retry can fix). Retries, fallbacks and reading answers stay in the judge, so they are
the same whatever carries the bytes.

Transports (``transport=`` or ``RUBRIX_HTTP_TRANSPORT``):

* ``httpx`` (default): :class:`openai.AsyncOpenAI` / :class:`openai.AsyncAzureOpenAI` over the
  SDK's own httpx client, SDK retries off (``max_retries=0``). The SDK owns what users of API
  judges expect: the environment it documents (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
  ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``; ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``,
  ``OPENAI_API_VERSION``), Azure deployment paths and the ``api-key`` header, organization and
  project headers, proxies from the environment, compressed bodies, credentials in the URL and
  IPv6 hosts. Each concurrency slot gets its own SDK client with one keep-alive connection: one
  shared pool of hundreds of connections costs CPU per request that grows with the pool size
  (the connection pool scans its connections and queue on every request).
* ``aiohttp``: the same SDK client over its aiohttp HTTP client (``pip install 'openai[aiohttp]'``),
  one shared connection pool of ``concurrency`` connections (aiohttp's pool has no such cost).

BENCHMARKS.md ("API judge at the concurrency bound") has what each costs per request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError

TRANSPORTS = ("httpx", "aiohttp", "http11")
TRANSPORT_ENV = "RUBRIX_HTTP_TRANSPORT"
DEFAULT_TRANSPORT = "httpx"


class TransportTimeout(Exception):
    """No complete answer within the timeout."""


class TransportError(Exception):
    """The exchange failed on the wire: refused, reset, closed early, or not HTTP."""


class Unreachable(Exception):
    """The URL cannot work at all (an unsupported scheme); retrying would not help."""


@dataclass
class Reply:
    """One HTTP answer: what the judge's retry and reading logic looks at."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass
class Endpoint:
    """Where and how to reach the endpoint; ``None`` fields are left to the SDK (and its environment)."""

    provider: str = "openai"  # or "azure"
    base_url: str | None = None  # openai: the base URL (…/v1); azure: the resource endpoint
    api_key: str | None = None
    organization: str | None = None
    project: str | None = None
    api_version: str | None = None  # azure only
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 60.0


def choose(name: str | None) -> str:
    """The transport to use: the argument, else ``RUBRIX_HTTP_TRANSPORT``, else the default."""
    choice = (name or os.environ.get(TRANSPORT_ENV) or DEFAULT_TRANSPORT).strip().lower()
    if choice == "auto":
        choice = DEFAULT_TRANSPORT
    if choice not in TRANSPORTS:
        raise UserError(f"unknown transport {choice!r} (choose from {', '.join(TRANSPORTS)})",
                        field="transport")
    if choice == "aiohttp":
        import importlib.util

        if importlib.util.find_spec("aiohttp") is None:
            raise UserError("transport aiohttp needs aiohttp: pip install 'openai[aiohttp]'",
                            field="transport")
    return choice


def sdk_client(endpoint: Endpoint, *, http_client: Any = None) -> Any:
    """An ``AsyncOpenAI`` (or ``AsyncAzureOpenAI``) client with SDK retries off.

    Values left ``None`` are read by the SDK from its documented environment variables. A client
    for an endpoint without a key (a local server) gets a placeholder key and omits the
    ``Authorization`` header per request (:func:`request_headers`), so no credential is sent.
    """
    import openai

    common: dict[str, Any] = {"max_retries": 0, "timeout": _timeout(endpoint.timeout_s),
                              "default_headers": dict(endpoint.headers) or None, "http_client": http_client}
    if endpoint.organization is not None:
        common["organization"] = endpoint.organization
    if endpoint.project is not None:
        common["project"] = endpoint.project
    try:
        if endpoint.provider == "azure":
            return openai.AsyncAzureOpenAI(azure_endpoint=endpoint.base_url, api_key=endpoint.api_key,
                                           api_version=endpoint.api_version, **common)
        # the SDK would read OPENAI_API_KEY itself, but refuses to start without a key
        key = endpoint.api_key or os.environ.get("OPENAI_API_KEY") or _NO_KEY
        return openai.AsyncOpenAI(api_key=key, base_url=endpoint.base_url, **common)
    except (openai.OpenAIError, ValueError) as exc:
        raise UserError(f"cannot configure the {endpoint.provider} judge: {exc}", field="judge") from None


_NO_KEY = "rubrix-no-key"  # placeholder: the Authorization header is omitted when it is in use


def request_headers(client: Any) -> dict[str, Any] | None:
    """Per-request header overrides: omit ``Authorization`` for a client without a real key."""
    if getattr(client, "api_key", None) == _NO_KEY:
        import openai

        return {"Authorization": openai.Omit()}
    return None


def _timeout(seconds: float) -> Any:
    import openai

    return openai.Timeout(seconds, connect=min(seconds, 10.0))


def _http_module() -> Any:
    """The HTTP library under the installed SDK: ``httpx2`` from openai 3, ``httpx`` before.

    Both majors are supported because trainers pin the SDK (verifiers 0.4 requires openai < 3);
    the two libraries share the names used here (``Limits``, ``Response``).
    """
    import openai

    if int(openai.__version__.split(".")[0]) >= 3:
        import httpx2

        return httpx2
    import httpx

    return httpx


def _limits(connections: int) -> Any:
    return _http_module().Limits(max_connections=connections, max_keepalive_connections=connections)


class SDKTransport:
    """The openai SDK over httpx (a client per slot) or aiohttp (one shared client)."""

    def __init__(self, endpoint: Endpoint, *, client: str = DEFAULT_TRANSPORT, concurrency: int = 32):
        self.endpoint = endpoint
        self.name = client
        self.concurrency = concurrency
        self._shared: Any = None
        self._clients: list[Any] = []
        # configuration errors (no Azure endpoint, no API version) now, not per request
        probe = sdk_client(endpoint)
        #: the base URL the SDK resolved (argument or environment), for messages
        self.base_url = str(probe.base_url).rstrip("/")
        #: the key the SDK resolved (argument or environment); ``None`` for none
        self.api_key = probe.api_key if probe.api_key and probe.api_key != _NO_KEY else None

    def slot(self) -> Any:
        """A client for one concurrency slot (created on the running event loop)."""
        import openai

        if self.name == "aiohttp":
            if self._shared is None:
                self._shared = sdk_client(self.endpoint, http_client=openai.DefaultAioHttpClient(
                    timeout=_timeout(self.endpoint.timeout_s), limits=_limits(self.concurrency)))
                self._clients.append(self._shared)
            return self._shared
        client = sdk_client(self.endpoint, http_client=openai.DefaultAsyncHttpxClient(
            timeout=_timeout(self.endpoint.timeout_s), limits=_limits(1)))
        self._clients.append(client)
        return client

    async def post(self, client: Any, body: dict[str, Any]) -> Reply:
        """One chat completion through the SDK; any HTTP status comes back as a :class:`Reply`."""
        import openai

        headers = request_headers(client)
        try:
            # the SDK's request path (auth, Azure deployment routing, headers, errors) with the body
            # as built: the typed create() re-walks every message against its TypedDicts, a
            # quarter of the client's CPU per request in a profile (BENCHMARKS.md)
            response = await client.post("/chat/completions", body=body, cast_to=_http_module().Response,
                                         options={"headers": headers} if headers else {})
        except openai.APIStatusError as exc:  # 4xx / 5xx: the judge decides what it means
            return Reply(exc.status_code, exc.response.headers, exc.response.content)
        except openai.APITimeoutError as exc:
            raise TransportTimeout(str(exc)) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            if type(cause).__name__ == "UnsupportedProtocol":
                raise Unreachable(str(cause)) from None
            name = type(cause).__name__ if cause else "connection"
            raise TransportError(f"{name}: {cause or exc}") from None
        return Reply(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        clients, self._clients, self._shared = self._clients, [], None
        for client in clients:
            await client.close()

    def forget(self) -> None:
        """Drop the clients of a loop that is gone (closing them there would fail)."""
        self._clients, self._shared = [], None


class Http11Transport:
    """rubrix's own HTTP/1.1 client (:mod:`.http11`), one connection per slot; plain OpenAI only."""

    name = "http11"

    def __init__(self, endpoint: Endpoint, *, concurrency: int = 32):
        import ssl

        if endpoint.provider != "openai":
            raise UserError("transport http11 speaks to OpenAI-compatible endpoints only", field="transport")
        self.endpoint = endpoint
        self.base_url = (endpoint.base_url or os.environ.get("OPENAI_BASE_URL")
                         or "https://api.openai.com/v1").rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        key = self.api_key = endpoint.api_key or os.environ.get("OPENAI_API_KEY")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        "User-Agent": "rubrix",
                        **({"Authorization": f"Bearer {key}"} if key else {}), **endpoint.headers}
        self._ssl = ssl.create_default_context()
        self._clients: list[Any] = []

    def slot(self) -> Any:
        from .http11 import Connection

        conn = Connection(self.url, headers=self.headers, timeout_s=self.endpoint.timeout_s,
                          connect_timeout_s=min(self.endpoint.timeout_s, 10.0), ssl_context=self._ssl)
        self._clients.append(conn)
        return conn

    async def post(self, conn: Any, body: dict[str, Any]) -> Reply:
        from .http11 import HTTPConnectionError, HTTPTimeout

        try:
            resp = await conn.post(self.url, json.dumps(body, ensure_ascii=False).encode())
        except HTTPTimeout as exc:
            raise TransportTimeout(str(exc)) from None
        except HTTPConnectionError as exc:
            raise TransportError(str(exc)) from None
        return Reply(resp.status_code, resp.headers, resp.content)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        for conn in clients:
            await conn.aclose()

    def forget(self) -> None:
        self._clients = []


def make(name: str | None, endpoint: Endpoint, *, concurrency: int) -> SDKTransport | Http11Transport:
    """The transport called ``name`` (see :func:`choose`) for ``endpoint``."""
    choice = choose(name)
    if choice == "http11":
        return Http11Transport(endpoint, concurrency=concurrency)
    return SDKTransport(endpoint, client=choice, concurrency=concurrency)
