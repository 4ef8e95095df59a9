"""Load on ``rubrix serve``: requests/s and latency with and without micro-batching.

Starts the server (a real ``rubrix serve`` process on 127.0.0.1, verdict cache off so every sample
is judged), drives it with N concurrent keep-alive clients for a bounded time, and prints the
exact configuration, requests/s, samples/s, latency percentiles, and — from the server's own
``/metrics`` — how many judge calls the samples took. "Unbatched" runs the same server with
``--max-batch 1 --batch-window-ms 0``: every request is its own judge call.

The workload looks like RL rollouts: ``--group`` responses per prompt (a GRPO group), each
response distinct, one sample per request by default (how OpenRLHF and verl's reward loop call).

    python bench/server_load.py --judge fake --clients 32 --duration 10
    python bench/server_load.py --judge embedded:0.5b --criteria 3 --clients 8 --duration 30 --warmup 10

The load generator is a minimal asyncio HTTP/1.1 client (so that it costs the machine little),
but it still shares the CPU with the server: on a small machine both numbers are lower bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READY = re.compile(r"listening on http://([\d.]+):(\d+)")

TOPICS = ["photosynthesis", "the French revolution", "binary search", "inflation", "plate tectonics",
          "the immune system", "compound interest", "TCP handshakes", "the water cycle", "black holes",
          "supply chains", "vaccines", "recursion", "the Roman republic", "climate feedbacks", "jazz harmony"]


def make_prompt(i: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return (f"Explain {topic} to a curious high-school student in a short paragraph. Mention one common "
            f"misconception and correct it. Keep it under 120 words. (prompt {i})")


def make_response(prompt_index: int, k: int, serial: int) -> str:
    topic = TOPICS[prompt_index % len(TOPICS)]
    return (f"Here is a short explanation of {topic}. At its core it is about how a system changes over "
            f"time and why. A common misconception is that it happens all at once; in fact it unfolds in "
            f"stages, each depending on the last. Variant {k}, draft {serial}: think of it like a recipe, "
            f"where skipping a step changes the result.")


class Workload:
    """Distinct samples, ``group`` responses per prompt, cycling over ``prompts`` prompts."""

    def __init__(self, route: str, group: int, prompts: int, per_request: int):
        self.route = route
        self.group = max(1, group)
        self.prompts = max(1, prompts)
        self.per_request = max(1, per_request)
        self.serial = 0

    def _next(self) -> tuple[str, str]:
        n = self.serial
        self.serial += 1
        p = (n // self.group) % self.prompts
        return make_prompt(p), make_response(p, n % self.group, n)

    def body(self) -> bytes:
        pairs = [self._next() for _ in range(self.per_request)]
        if self.route == "/get_reward":
            chat = [f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n" for p, _ in pairs]
            data = {"query": [c + r + "<|im_end|>" for c, (_, r) in zip(chat, pairs, strict=True)],
                    "prompts": chat, "labels": [""] * len(pairs)}
        else:
            data = {"samples": [{"prompt": p, "response": r} for p, r in pairs]}
        return json.dumps(data).encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    body = await reader.readexactly(length) if length else b""
    return status, body, close


async def client(host: str, port: int, workload: Workload, stop_at: float, record_from: float,
                 latencies: list[float], statuses: dict[int, int], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    reader = writer = None
    try:
        while loop.time() < stop_at:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            body = workload.body()
            head = (f"POST {workload.route} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
            request = head.encode() + body
            start = loop.time()
            writer.write(request)
            await writer.drain()
            status, _, close = await asyncio.wait_for(read_response(reader), timeout)
            end = loop.time()
            if start >= record_from and end <= stop_at:
                latencies.append(end - start)
                statuses[status] = statuses.get(status, 0) + 1
            if status == 429:
                await asyncio.sleep(0.05)
            if close:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return None


async def drive(host: str, port: int, args: argparse.Namespace, pid: int | None = None) -> dict:
    loop = asyncio.get_running_loop()
    workload = Workload(args.route, args.group, args.prompts, args.samples_per_request)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = loop.time()
    record_from = start + args.warmup
    stop_at = record_from + args.duration
    before = None
    cpu_before = None

    async def snapshot_after_warmup():
        nonlocal before, cpu_before
        await asyncio.sleep(args.warmup)
        cpu_before = cpu_seconds(pid)
        before = await asyncio.to_thread(fetch_metrics, host, port)

    snap = asyncio.create_task(snapshot_after_warmup())
    await asyncio.gather(*(client(host, port, workload, stop_at, record_from, latencies, statuses,
                                  args.request_timeout) for _ in range(args.clients)))
    cpu_after = cpu_seconds(pid)
    await snap
    after = await asyncio.to_thread(fetch_metrics, host, port)
    cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
    return {"latencies": latencies, "statuses": statuses, "before": before, "after": after, "cpu_s": cpu}


def fetch_metrics(host: str, port: int) -> dict[str, float]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families  # the [serve] extra

    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in s.labels.items())
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def start_server(args: argparse.Namespace, batched: bool, rubric: str,
                 home: str) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "rubrix.cli", "serve", "-r", rubric, "-j", args.judge, "--port", "0",
           "--no-cache", "--max-queue", str(args.max_queue), "--deadline-s", str(args.deadline_s)]
    cmd += ["--max-batch", str(args.max_batch), "--batch-window-ms", str(args.window_ms)] if batched else \
        ["--max-batch", "1", "--batch-window-ms", "0"]
    log = open(Path(home) / f"server-{int(batched)}.log", "w+b")  # noqa: SIM115 - closed with the process
    env = dict(os.environ)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"server exited:\n{log.read().decode(errors='replace')}")
        log.seek(0)
        match = READY.search(log.read().decode(errors="replace"))
        if match:
            port = int(match.group(2))
            try:
                fetch_metrics("127.0.0.1", port)
                return proc, port
            except OSError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start in time")


def run_mode(args: argparse.Namespace, batched: bool, rubric: str, home: str) -> dict:
    proc, port = start_server(args, batched, rubric, home)
    try:
        res = asyncio.run(drive("127.0.0.1", port, args, proc.pid))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    lat = res["latencies"]
    b, a = res["before"], res["after"]
    calls = a["rubrix_batches_total"] - b["rubrix_batches_total"]
    judged = a["rubrix_batch_samples_sum"] - b["rubrix_batch_samples_sum"]
    n = len(lat)
    return {
        "mode": "batched" if batched else "unbatched", "requests": n,
        "requests_per_s": n / args.duration, "samples_per_s": n * args.samples_per_request / args.duration,
        "p50_ms": percentile(lat, 50) * 1000, "p90_ms": percentile(lat, 90) * 1000,
        "p99_ms": percentile(lat, 99) * 1000, "max_ms": max(lat) * 1000 if lat else float("nan"),
        "statuses": res["statuses"], "judge_calls": int(calls),
        "samples_per_call": judged / calls if calls else float("nan"),
        "server_cpu_ms_per_sample": (res["cpu_s"] * 1000 / (n * args.samples_per_request)
                                     if res["cpu_s"] is not None and n else float("nan")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--judge", default="fake", help="judge spec for the server (fake, embedded:0.5b, ...)")
    ap.add_argument("--rubric", default="helpfulness", help="rubric file or built-in name")
    ap.add_argument("--criteria", type=int, default=None, help="use only the first N criteria of the rubric")
    ap.add_argument("--route", default="/get_reward", choices=["/get_reward", "/v1/score"])
    ap.add_argument("--clients", type=int, default=32, help="concurrent keep-alive clients")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per mode")
    ap.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before measuring")
    ap.add_argument("--samples-per-request", type=int, default=1)
    ap.add_argument("--group", type=int, default=8, help="responses per prompt (GRPO group size)")
    ap.add_argument("--prompts", type=int, default=64, help="distinct prompts to cycle over")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--window-ms", type=float, default=5.0)
    ap.add_argument("--max-queue", type=int, default=1024)
    ap.add_argument("--deadline-s", type=float, default=60.0)
    ap.add_argument("--request-timeout", type=float, default=180.0, help="client timeout (OpenRLHF's)")
    ap.add_argument("--start-timeout", type=float, default=600.0)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--no-batching", action="store_true", help="only the unbatched server")
    mode.add_argument("--batching-only", action="store_true", help="only the batched server")
    ap.add_argument("--json", action="store_true", help="also print one JSON line per mode")
    args = ap.parse_args()

    from rubrix import __version__
    from rubrix.rubric import load_rubric

    with tempfile.TemporaryDirectory(prefix="rubrix-bench-") as home:
        rubric_obj = load_rubric(args.rubric)
        rubric = args.rubric
        if args.criteria:
            data = rubric_obj.to_dict()
            data["criteria"] = data["criteria"][:args.criteria]
            if not any(c["weight"] > 0 for c in data["criteria"]):
                raise SystemExit("the first criteria must include a positive one")
            rubric = str(Path(home) / "rubric.json")
            Path(rubric).write_text(json.dumps(data))
        n_criteria = args.criteria or len(rubric_obj.criteria)
        print(f"rubrix {__version__} server load — {platform.system()} {platform.machine()}, "
              f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
        print(f"judge {args.judge}; rubric {args.rubric} ({n_criteria} criteria); route {args.route}; "
              f"{args.clients} clients; {args.samples_per_request} sample(s)/request; groups of {args.group} "
              f"over {args.prompts} prompts; warmup {args.warmup:g} s, measured {args.duration:g} s "
              f"per mode; "
              f"batched = --max-batch {args.max_batch} --batch-window-ms {args.window_ms:g}; "
              f"unbatched = --max-batch 1 --batch-window-ms 0; verdict cache off")
        modes = [True, False]
        if args.no_batching:
            modes = [False]
        elif args.batching_only:
            modes = [True]
        rows = [run_mode(args, batched, rubric, home) for batched in modes]
    header = f"{'mode':<10} {'req/s':>8} {'samples/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} " \
             f"{'max ms':>8} {'judge calls':>11} {'samples/call':>12} {'cpu ms/sample':>13}  statuses"
    print(header)
    for r in rows:
        print(f"{r['mode']:<10} {r['requests_per_s']:>8.1f} {r['samples_per_s']:>10.1f} {r['p50_ms']:>8.1f} "
              f"{r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['judge_calls']:>11} "
              f"{r['samples_per_call']:>12.1f} {r['server_cpu_ms_per_sample']:>13.2f}  {r['statuses']}")
    if len(rows) == 2 and rows[1]["requests_per_s"]:
        print(f"batched / unbatched throughput: {rows[0]['requests_per_s'] / rows[1]['requests_per_s']:.2f}x")
    if args.json:
        for r in rows:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
