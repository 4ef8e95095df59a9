"""rubrix's own HTTP/1.1 keep-alive client: an opt-in transport of the openai judge (``transport="http11"``).

Why it is kept: the default transport is the openai SDK (:mod:`.transport`), which owns what
users of API judges need (Azure, the documented environment, headers, proxies, compression,
credentials in URLs, IPv6 hosts). At hundreds of requests in flight from one core, though, the
SDK over httpx or aiohttp spends about ten times the CPU per request of this client and stays
below 90% of the ``in-flight / latency`` bound (``bench/api_concurrency.py``, BENCHMARKS.md,
"API judge at the concurrency bound"). For that case, and only for plain OpenAI-compatible
endpoints, this client can be chosen behind the same seam. It speaks exactly what the judge
needs: POST with a body, keep-alive, TLS, ``Content-Length``, ``chunked`` and read-until-close
responses. No proxies, no compression, no Azure.

Errors are typed for the judge's retry logic: :class:`HTTPTimeout` (no complete answer in time)
and :class:`HTTPConnectionError` (refused, reset, closed or cut-off answers, malformed
responses). A pooled connection that the server closed while it was idle is noticed before the
request is sent and replaced (normal keep-alive churn); a connection that fails after the request
went out is an error for the judge to retry and count.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024  # a chat completion is kilobytes; anything near this is broken


class HTTPConnectionError(ConnectionError):
    """The exchange failed on the wire: refused, reset, closed early, or not HTTP."""


class HTTPTimeout(TimeoutError):
    """No complete answer within the timeout."""


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class Connection:
    """One keep-alive connection to one origin; requests on it are sequential."""

    def __init__(self, url: str, *, headers: dict[str, str], timeout_s: float, connect_timeout_s: float,
                 ssl_context: _ssl.SSLContext | None = None):
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.ssl_context = ssl_context
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        host_header = self.host if parts.port is None else f"{self.host}:{self.port}"
        base = {"Host": host_header, "Connection": "keep-alive", **headers}
        self._head_lines = "".join(f"{k}: {v}\r\n" for k, v in base.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, url: str, content: bytes) -> Response:
        """POST ``content`` to ``url`` (same origin as the connection) and read the whole answer."""
        path = urlsplit(url)
        target = (path.path or "/") + (f"?{path.query}" if path.query else "")
        head = f"POST {target} HTTP/1.1\r\n{self._head_lines}Content-Length: {len(content)}\r\n\r\n".encode()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(head + content)
        except TimeoutError:
            await self.aclose()
            raise HTTPTimeout(f"no complete answer within {self.timeout_s:g}s") from None
        except HTTPConnectionError:
            await self.aclose()
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            await self.aclose()
            raise HTTPConnectionError(f"{type(exc).__name__}: {exc}") from None

    async def _exchange(self, data: bytes) -> Response:
        if self._writer is not None and (self._writer.is_closing() or self._reader.at_eof()):
            await self.aclose()  # closed by the server while idle: not a fault, just reconnect
        if self._writer is None:
            await self._open()
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        writer.write(data)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise HTTPConnectionError("server closed the connection without answering")
        status, headers = await self._read_head(status_line, reader)
        body, keep = await self._read_body(headers, reader)
        if not keep:
            await self.aclose()
        return Response(status, headers, body)

    async def _open(self) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                self._reader, self._writer = await asyncio.open_connection(
                    self.host, self.port, ssl=(self.ssl_context or True) if self.tls else None,
                    server_hostname=self.host if self.tls else None, limit=MAX_HEADER_BYTES)
        except TimeoutError:
            raise HTTPTimeout(f"could not connect within {self.connect_timeout_s:g}s") from None

    @staticmethod
    async def _read_head(status_line: bytes, reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HTTPConnectionError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        size = 0
        while True:
            line = await reader.readline()
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise HTTPConnectionError("response headers too large")
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise HTTPConnectionError("connection closed inside the response headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise HTTPConnectionError(f"malformed response header: {line[:80]!r}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return int(parts[1]), headers

    @staticmethod
    async def _read_body(headers: dict[str, str], reader: asyncio.StreamReader) -> tuple[bytes, bool]:
        """The body and whether the connection may be reused."""
        keep = "close" not in headers.get("connection", "").lower()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size_line = await reader.readline()
                if not size_line:
                    raise HTTPConnectionError("connection closed inside a chunked body")
                size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks), keep
                total += size
                if total > MAX_BODY_BYTES:
                    raise HTTPConnectionError("response body too large")
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length = headers.get("content-length")
        if length is not None:
            n = int(length)
            if n < 0 or n > MAX_BODY_BYTES:
                raise HTTPConnectionError(f"bad content-length {length!r}")
            return await reader.readexactly(n), keep
        body = b""  # no length: the body ends with the connection (read at most one byte too many)
        while len(body) <= MAX_BODY_BYTES and (more := await reader.read(MAX_BODY_BYTES + 1 - len(body))):
            body += more
        if len(body) > MAX_BODY_BYTES:
            raise HTTPConnectionError("response body too large")
        return body, False

    async def aclose(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, _ssl.SSLError):
                pass
