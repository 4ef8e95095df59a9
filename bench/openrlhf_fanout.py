"""One OpenRLHF step against ``rubrix serve``: every sample its own request, and how many got a reward.

OpenRLHF's remote reward client (``openrlhf/utils/agent.py``, ``_fetch_rewards_via_http``) sends
one ``POST /get_reward`` per sample, each on a new ``aiohttp.ClientSession`` (so a new TCP
connection), with ``ClientTimeout(total=180)``; it raises for any non-2xx status, tries 5 times
1 s apart (ignoring ``Retry-After``), and then leaves the sample without a reward, which stops
training later. This script does exactly that with aiohttp, for ``--samples`` requests started at
once, against a real ``rubrix serve`` process whose judge is ``tests/openai_stub.py`` (an
OpenAI-compatible server answering every request after ``--judge-latency-s``), all on
127.0.0.1. It prints one JSON object: rewards received, samples left without one, the statuses
seen, retries, wall time, the server's own counts from ``/metrics``, the machine and its load.

    python bench/openrlhf_fanout.py --samples 2048
    python bench/openrlhf_fanout.py --samples 8192

``tests/test_openrlhf_fanout.py`` runs the same script with fewer samples.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
RUBRIC = {"name": "fanout", "criteria": [
    {"id": "answers", "text": "The response answers the question.", "weight": 2},
    {"id": "rude", "text": "The response is rude to the user.", "weight": -1},
]}
OPENRLHF_TIMEOUT_S = 180  # aiohttp.ClientTimeout(total=180)
OPENRLHF_TRIES = 5        # try_max_times=5, asyncio.sleep(1) between tries


def chatml(i: int) -> tuple[str, str]:
    """(query, prompt) as OpenRLHF builds them: the decoded prompt + response + EOS, and the prompt."""
    prompt = (f"<|im_start|>user\nQuestion {i // 8}: explain step {i // 8} of the recipe in one "
              f"sentence.<|im_end|>\n<|im_start|>assistant\n")
    return f"{prompt}Step {i // 8} is to mix it well, variant {i % 8}.<|im_end|>", prompt


async def openrlhf_request(url: str, i: int, stats: Counter) -> float | None:
    """One sample, as OpenRLHF's client sends it (new session per try, 180 s, 5 tries 1 s apart)."""
    import aiohttp

    query, prompt = chatml(i)
    payload = {"query": [query], "prompts": [prompt], "labels": [""]}
    timeout = aiohttp.ClientTimeout(total=OPENRLHF_TIMEOUT_S)
    for attempt in range(OPENRLHF_TRIES):
        if attempt:
            stats["retries"] += 1
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.post(url, json=payload) as response:
                    stats[f"status_{response.status}"] += 1
                    response.raise_for_status()
                    body = await response.json()
                    rewards = body["rewards"]
                    if len(rewards) == 1 and isinstance(rewards[0], float) and math.isfinite(rewards[0]):
                        stats["fallback"] += body["extra_logs"]["rubrix_ok"][0] == 0.0
                        return rewards[0]
                    stats["malformed"] += 1
                    return None
        except aiohttp.ClientResponseError:
            pass
        except Exception as exc:  # noqa: BLE001 - OpenRLHF catches everything and retries
            stats[f"error_{type(exc).__name__}"] += 1
        await asyncio.sleep(1)
    return None


async def one_step(url: str, samples: int) -> tuple[list[float | None], Counter, float]:
    stats: Counter = Counter()
    start = time.perf_counter()
    rewards = await asyncio.gather(*(openrlhf_request(url, i, stats) for i in range(samples)))
    return list(rewards), stats, time.perf_counter() - start


def metrics(url: str) -> dict[str, float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in s.labels.items() if k != "message")
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    fh = open(log, "wb")
    return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)


def wait_for(pattern: re.Pattern | None, path: Path, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[:3]} exited {proc.returncode}:\n{path.read_text(errors='replace')}")
        text = path.read_text(errors="replace") if path.exists() else ""
        if pattern is None and text.strip():
            return text.strip()
        if pattern is not None and (m := pattern.search(text)):
            return m.group(1)
        time.sleep(0.1)
    raise SystemExit(f"{proc.args[:3]} did not start in {timeout} s")


def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="rubrix-fanout-"))
    env = {**os.environ, "RUBRIX_HOME": str(tmp / "home"), "PYTHONPATH": str(ROOT)}
    port_file = tmp / "stub.port"
    stub = start([sys.executable, str(ROOT / "tests" / "openai_stub.py"), str(port_file),
                  str(args.judge_latency_s)], tmp / "stub.log", env)
    rubric = tmp / "rubric.json"
    rubric.write_text(json.dumps(RUBRIC))
    server = None
    try:
        stub_port = wait_for(None, port_file, stub)
        cmd = [sys.executable, "-m", "rubrix.cli", "serve", "-r", str(rubric), "-j", "openai:stub-judge",
               "--base-url", f"http://127.0.0.1:{stub_port}/v1", "--port", "0", "--no-cache",
               "--concurrency", str(args.judge_concurrency), "--deadline-s", str(args.deadline_s),
               "--step-samples", str(args.samples), "--log-level", "warning",
               *(["--max-queue", str(args.max_queue)] if args.max_queue else [])]
        log = tmp / "server.log"
        server = start(cmd, log, env)
        url = wait_for(READY, log, server)
        load_before = os.getloadavg()
        rewards, stats, wall = asyncio.run(one_step(f"{url}/get_reward", args.samples))
        m = metrics(url)
        got = sum(r is not None for r in rewards)
        return {
            "command": " ".join(["python", "bench/openrlhf_fanout.py", *sys.argv[1:]]),
            "samples": args.samples, "rewards_received": got, "without_reward": args.samples - got,
            "judged_ok": got - stats["fallback"], "fallback_rewards": stats["fallback"],
            "retries": stats["retries"], "wall_s": round(wall, 2),
            "statuses": {k: v for k, v in sorted(stats.items()) if k.startswith(("status_", "error_"))},
            "judge_latency_s": args.judge_latency_s, "judge_concurrency": args.judge_concurrency,
            "deadline_s": args.deadline_s, "max_queue": args.max_queue or args.samples,
            "server": {k: m.get(k, 0.0) for k in (
                'rubrix_samples_total{status="ok"}', "rubrix_deadline_exceeded_total",
                "rubrix_queue_waited_samples_total", "rubrix_queue_wait_expired_total",
                "rubrix_batches_total",
                "rubrix_client_disconnects_total",
                'rubrix_http_requests_total{route="/get_reward",status="200"}')}
            | {"unsurvivable": sum(v for k, v in m.items()
                                   if k.startswith("rubrix_unsurvivable_answers_total")),
               "limit_warnings": sorted(k for k in m if k.startswith("rubrix_limit_warning_info"))},
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                       f"{platform.system()} {platform.release()}",
            "loadavg_before": [round(x, 2) for x in load_before],
            "server_log_tail": log.read_text(errors="replace")[-1500:],
        }
    finally:
        for proc in (server, stub):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:  # pragma: no cover
                    proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=2048, help="requests started at once (one step)")
    parser.add_argument("--judge-latency-s", type=float, default=0.2)
    parser.add_argument("--judge-concurrency", type=int, default=256, help="rubrix serve --concurrency")
    parser.add_argument("--deadline-s", type=float, default=150.0, help="rubrix serve --deadline-s")
    parser.add_argument("--max-queue", type=int, default=None,
                        help="rubrix serve --max-queue (default: sized from --samples)")
    args = parser.parse_args()
    print(json.dumps(run(args), indent=1))


if __name__ == "__main__":
    main()
