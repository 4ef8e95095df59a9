"""The openai judge at the concurrency bound: throughput against an endpoint with fixed latency.

A minimal OpenAI-compatible endpoint (a raw asyncio HTTP server in a separate process, pinned to
its own core) answers every chat completion after a fixed delay with a one-token answer and
top_logprobs. With L seconds of latency and N requests in flight, no client can exceed N / L
requests per second; this prints what rubrix's judge sustains as a fraction of that bound, and
its own CPU time per request (the judge process is pinned to one core), for each transport of
the judge's seam (:mod:`rubrix.judges.transport`) in one run, one after the other, against the
same endpoint process.

    python bench/api_concurrency.py --inflight 256 --latency 0.5 --requests 10000
    python bench/api_concurrency.py --transports httpx,aiohttp   # only these
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import socket
import time

from rubrix.judges.transport import TRANSPORTS

BODY = json.dumps({
    "id": "x", "object": "chat.completion", "model": "latency",
    "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "Yes"},
                 "logprobs": {"content": [{"token": "Yes", "logprob": -0.1, "top_logprobs": [
                     {"token": "Yes", "logprob": -0.1}, {"token": "No", "logprob": -2.4}]}]}}],
    "usage": {"prompt_tokens": 60, "completion_tokens": 1, "total_tokens": 61},
}).encode()


def serve(port: int, latency: float, core: int | None) -> None:
    """A bare-bones HTTP/1.1 keep-alive server: read a request, wait ``latency``, answer."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                await asyncio.sleep(latency)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run(args, base_url: str, transport: str) -> dict:
    from rubrix.judges.base import JudgeRequest
    from rubrix.judges.openai import OpenAIJudge

    judge = OpenAIJudge("latency", base_url=base_url, api_key="bench", concurrency=args.inflight,
                        timeout_s=30,
                        max_retries=0, transport=transport)
    reqs = [JudgeRequest(messages=({"role": "user", "content": f"Is statement {i} true? Reply Yes or No."},))
            for i in range(args.requests)]
    await judge.judge(reqs[: args.inflight])  # warm up connections
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    verdicts = await judge.judge(reqs)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    await judge.aclose()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    ok = sum(v.ok for v in verdicts)
    bound = args.inflight / args.latency
    rate = len(reqs) / wall
    print(f"config: inflight={args.inflight} latency={args.latency}s requests={args.requests} "
          f"client pinned to core {args.client_core}, server to core {args.server_core}")
    waves = -(-len(reqs) // args.inflight)  # a finite run cannot beat whole waves of `latency`
    ceiling = len(reqs) / (waves * args.latency)
    print(f"transport {judge.transport}")
    print(f"throughput {rate:.1f} req/s of a {bound:.1f} req/s bound = {rate / bound:.1%}; "
          f"ok {ok}/{len(reqs)}")
    print(f"finite-run ceiling ({waves} waves of {args.latency}s): {ceiling:.1f} req/s; "
          f"achieved {rate / ceiling:.1%} of it")
    print(f"rubrix overhead: {cpu / len(reqs) * 1e3:.2f} ms CPU per request "
          f"({cpu:.1f} s CPU in {wall:.1f} s)")
    return {"transport": judge.transport, "rate": rate, "of_bound": rate / bound,
            "cpu_ms": cpu / len(reqs) * 1e3,
            "ok": ok}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--transports", default=",".join(TRANSPORTS),
                    help=f"comma-separated, from {', '.join(TRANSPORTS)} (default: all)")
    args = ap.parse_args()
    port = free_port()
    proc = multiprocessing.Process(target=serve, args=(port, args.latency, args.server_core), daemon=True)
    proc.start()
    time.sleep(0.5)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.client_core})
    rows = []
    try:
        for name in args.transports.split(","):
            rows.append(asyncio.run(run(args, f"http://127.0.0.1:{port}/v1", name.strip())))
            print()
    finally:
        proc.terminate()
    print("| transport | req/s | of the bound | CPU per request | ok |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['transport']} | {r['rate']:.1f} | {r['of_bound']:.1%} | {r['cpu_ms']:.2f} ms | "
              f"{r['ok']}/{args.requests} |")


if __name__ == "__main__":
    main()
