"""The openai judge's lean HTTP/1.1 client against a scripted raw-socket server on 127.0.0.1.

The server below is not an OpenAI endpoint: it writes exactly the bytes each test scripts
(chunked bodies, bodies without a length, cut-off bodies, hangs, garbage), which is what the
client's framing and error typing must survive.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from rubrix.judges.http11 import Connection, HTTPConnectionError, HTTPTimeout
from rubrix.judges.openai import OpenAIJudge


class RawServer:
    """Answers each request with ``respond(n, request_bytes) -> (bytes, close)``; counts connections."""

    def __init__(self, respond):
        self.respond = respond
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat/completions"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                data, close = await self.respond(len(self.requests), head + body)
                if data:
                    writer.write(data)
                    await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b'{"ok": true}', extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
            .encode() + body)


def conn(url: str, timeout: float = 5.0) -> Connection:
    return Connection(url, headers={"Content-Type": "application/json"}, timeout_s=timeout,
                      connect_timeout_s=2.0)


def run(coro):
    return asyncio.run(coro)


def exchange(respond, posts: int, *, pause: float = 0.0):
    """Send ``posts`` requests in turn on ONE client connection; return the server and the responses."""
    async def main():
        async with RawServer(respond) as srv:
            c = conn(srv.url)
            out = []
            for i in range(posts):
                if i and pause:
                    await asyncio.sleep(pause)
                out.append(await c.post(srv.url, content=b'{"q": 1}'))
            await c.aclose()
            return srv, out

    return run(main())


def test_keep_alive_reuses_one_connection_and_sends_a_proper_request():
    async def respond(n, req):
        return ok(json.dumps({"n": n}).encode()), False

    srv, responses = exchange(respond, 3)
    bodies = [json.loads(r.content) for r in responses]
    assert bodies == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert srv.connections == 1
    head = srv.requests[0].split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    assert "Host: 127.0.0.1:" in head and "Content-Length: 8" in head
    assert srv.requests[0].endswith(b'{"q": 1}')


def test_chunked_body_with_trailers_and_repeated_headers():
    async def respond(n, req):
        return (b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\nRetry-After: 2\r\n"
                b"X-A: 1\r\nx-a: 2\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n"
                b"X-Trailer: t\r\n\r\n"), False

    srv, (r1, r2) = exchange(respond, 2)  # the second answer parses only if the trailer was consumed
    assert (r1.status_code, r1.content, r2.content) == (429, b"hello world", b"hello world")
    assert r1.headers["retry-after"] == "2" and r1.headers["x-a"] == "1, 2"
    assert srv.connections == 1


def test_body_without_length_ends_with_the_connection_and_next_request_reconnects():
    async def respond(n, req):
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + f'{{"n": {n}}}'.encode(), True

    srv, responses = exchange(respond, 2)
    out = [json.loads(r.content) for r in responses]
    assert out == [{"n": 1}, {"n": 2}] and srv.connections == 2


def test_idle_connection_closed_by_the_server_is_replaced_silently():
    async def respond(n, req):
        return ok(), True  # answers with keep-alive framing, then hangs up while idle

    srv, (_, r) = exchange(respond, 2, pause=0.2)  # the pause lets the client see the server's FIN
    assert r.status_code == 200 and srv.connections == 2


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut\":",          # body cut off
    b"SSH-2.0-OpenSSH_9.6\r\n",                                          # not HTTP
    b"HTTP/1.1 200 OK\r\nContent-Len",                                   # headers cut off
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",      # bad chunk size
    b"",                                                                 # closed without a word
])
def test_broken_answers_are_connection_errors(reply):
    async def main():
        async def respond(n, req):
            return reply, True

        async with RawServer(respond) as srv:
            c = conn(srv.url)
            with pytest.raises(HTTPConnectionError):
                await c.post(srv.url, content=b"{}")
            await c.aclose()

    run(main())


def test_hang_is_a_timeout_and_refused_is_a_connection_error():
    async def main():
        async def respond(n, req):
            await asyncio.sleep(10)
            return b"", True

        async with RawServer(respond) as srv:
            c = conn(srv.url, timeout=0.3)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(HTTPTimeout):
                await c.post(srv.url, content=b"{}")
            assert loop.time() - t0 < 2
            await c.aclose()
            url = srv.url
        with pytest.raises(HTTPConnectionError):  # the server is gone now
            await conn(url).post(url, content=b"{}")

    run(main())


def test_the_sdk_is_the_default_and_http11_is_opt_in(monkeypatch):
    from rubrix.errors import UserError

    monkeypatch.delenv("RUBRIX_HTTP_TRANSPORT", raising=False)
    assert OpenAIJudge("m", base_url="https://api.example.com/v1").transport == "httpx"
    assert OpenAIJudge("m", base_url="https://api.example.com/v1", transport="http11").transport == "http11"
    monkeypatch.setenv("RUBRIX_HTTP_TRANSPORT", "http11")
    assert OpenAIJudge("m", base_url="https://api.example.com/v1").transport == "http11"
    with pytest.raises(UserError, match="OpenAI-compatible endpoints only"):
        OpenAIJudge("dep", provider="azure", base_url="https://x.example.com", api_version="2024-10-21",
                    api_key="k", transport="http11")
