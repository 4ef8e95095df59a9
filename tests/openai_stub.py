"""A minimal OpenAI-compatible chat-completions server on 127.0.0.1 that counts TCP connections.

Test helper, named as such: it answers every request "Yes" with top logprobs (so a judge reads
P(Yes) = 0.8 from logprobs) after ``delay_s``, and records how many connections clients opened.
It exists to check how a client uses connections (reuse across batches, closing at exit) and how
rubrix behaves over a judge of a known latency, not to judge anything. It runs in its own process
(``python tests/openai_stub.py PORTFILE [DELAY_S]``) so the client under test shares nothing with it
but the socket. ``GET /v1/models`` lists one model, ``stub-judge`` (as vLLM lists what it serves).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys

ANSWER_LOGPROB = math.log(0.8)
OTHER_LOGPROB = math.log(0.2)


def completion(model: str) -> dict:
    top = [{"token": "Yes", "logprob": ANSWER_LOGPROB, "bytes": None},
           {"token": "No", "logprob": OTHER_LOGPROB, "bytes": None}]
    return {"id": "stub", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Yes"},
                         "logprobs": {"content": [{"token": "Yes", "logprob": ANSWER_LOGPROB, "bytes": None,
                                                   "top_logprobs": top}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}


class Stub:
    def __init__(self, delay_s: float = 0.02):
        self.delay_s = delay_s
        self.connections = 0
        self.open = 0
        self.requests = 0
        self.last: dict = {}  # the last chat request's headers and parameters (not its messages)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                fields = (line.partition(":") for line in lines[1:] if line)
                headers = {k.strip().lower(): v.strip() for k, _, v in fields}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                path = lines[0].split(" ")[1]
                if path.endswith("/stats"):
                    out = json.dumps({"connections": self.connections, "open": self.open,
                                      "requests": self.requests, "last": self.last}).encode()
                elif path.endswith("/models"):
                    models = [{"id": "stub-judge", "object": "model"}]
                    out = json.dumps({"object": "list", "data": models}).encode()
                else:
                    self.requests += 1
                    params = {k: v for k, v in json.loads(body or b"{}").items() if k != "messages"}
                    self.last = {"path": path, "headers": headers, "params": params}
                    await asyncio.sleep(self.delay_s)
                    out = json.dumps(completion(json.loads(body or b"{}").get("model", "stub"))).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(out)).encode() + b"\r\n\r\n" + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


async def main(port_file: str, delay_s: float = 0.02) -> None:
    stub = Stub(delay_s)
    server = await asyncio.start_server(stub.handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    with open(port_file, "w") as fh:
        fh.write(str(port))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.02))
