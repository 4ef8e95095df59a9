"""What the openai SDK brings to the API judge, checked on the wire (issue 13).

Every test talks to :class:`AssertingServer`, a real HTTP server on 127.0.0.1 (or ::1) that records
each request's method, path, query and headers and answers a scripted chat completion. It is not a
model: the point is the request shape (Azure deployment paths, ``api-version``, ``api-key``,
organization/project/custom headers, credentials in the URL, the IPv6 ``Host`` header), how
compressed answers are read, and the reasoning-model parameters and failures.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import math
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from rubrix.errors import UserError
from rubrix.judges import get_judge
from rubrix.judges.base import JudgeRequest
from rubrix.judges.openai import OpenAIJudge
from rubrix.judges.thinking import THINK_PROMPT, ThinkingJudge


def completion(text: str | None = "Yes", top: dict[str, float] | None = None, finish: str = "stop",
               **message: Any) -> dict[str, Any]:
    logprobs = None
    if top:
        first = next(iter(top))
        logprobs = {"content": [{"token": first, "logprob": top[first], "bytes": None,
                                 "top_logprobs": [{"token": t, "logprob": lp, "bytes": None}
                                                  for t, lp in top.items()]}]}
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": logprobs,
                         "message": {"role": "assistant", "content": text, **message}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


@dataclass
class AssertingServer:
    """A real HTTP server that records requests and answers ``answer(body) -> (status, dict)``."""

    answer: Any = None
    host: str = "127.0.0.1"
    gzip_answers: bool = False
    seen: list[Seen] = field(default_factory=list)

    def __enter__(self) -> AssertingServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw or b"{}")
                parts = urlsplit(self.path)
                outer.seen.append(Seen("POST", parts.path, parse_qs(parts.query),
                                       {k.lower(): v for k, v in self.headers.items()}, body))
                status, data = outer.answer(body) if outer.answer else (200, completion())
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if outer.gzip_answers:
                    payload = gzip.compress(payload)
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family

        self._server = Server((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def ask(text: str = "Is it?", **kw: Any) -> JudgeRequest:
    return JudgeRequest(messages=({"role": "user", "content": text},), **kw)


def run(judge, requests):
    async def go():
        try:
            return await judge.judge(requests)
        finally:
            await judge.aclose()
    return asyncio.run(go())


# ------------------------------------------------------------------ request shape


def test_azure_request_shape(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-secret")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("RUBRIX_API_KEY", raising=False)
    top = {"Yes": math.log(0.9), "No": math.log(0.1)}
    with AssertingServer(lambda b: (200, completion("Yes", top))) as srv:
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", srv.origin)
        judge = get_judge("azure:my-deployment")
        assert judge.name == "azure:my-deployment"
        [v] = run(judge, [ask()])
    assert v.ok and v.from_logprobs and v.p == pytest.approx(0.9)
    [req] = srv.seen
    assert req.path == "/openai/deployments/my-deployment/chat/completions"
    assert req.query == {"api-version": ["2024-10-21"]}
    assert req.headers["api-key"] == "az-secret" and "authorization" not in req.headers
    assert req.body["model"] == "my-deployment"


def test_azure_without_endpoint_or_version_is_a_user_error(monkeypatch):
    for name in ("AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    with pytest.raises(UserError, match="azure"):
        get_judge("azure:dep", base_url="http://127.0.0.1:9")  # no api version
    with pytest.raises(UserError, match="azure"):
        get_judge("azure:dep", api_version="2024-10-21")  # no endpoint


def test_organization_project_custom_headers_and_bearer_key(monkeypatch):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    with AssertingServer() as srv:
        judge = OpenAIJudge("m", base_url=f"{srv.origin}/v1", api_key="sk-1", project="proj-1",
                            headers={"X-Team": "evals"}, logprobs=False)
        run(judge, [ask()])
    h = srv.seen[0].headers
    assert h["authorization"] == "Bearer sk-1"
    assert h["openai-organization"] == "org-env" and h["openai-project"] == "proj-1"
    assert h["x-team"] == "evals" and srv.seen[0].path == "/v1/chat/completions"


def test_no_key_sends_no_authorization(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("RUBRIX_API_KEY", raising=False)
    with AssertingServer() as srv:
        judge = OpenAIJudge("m", base_url=f"{srv.origin}/v1", logprobs=False)
        assert judge.api_key is None
        [v] = run(judge, [ask()])
    assert v.ok and "authorization" not in srv.seen[0].headers


def test_credentials_in_the_url_are_basic_auth(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("RUBRIX_API_KEY", raising=False)
    with AssertingServer() as srv:
        judge = OpenAIJudge("m", base_url=f"http://alice:s3cret@127.0.0.1:{srv.port}/v1", logprobs=False)
        [v] = run(judge, [ask()])
    assert v.ok
    assert srv.seen[0].headers["authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()


def test_gzip_answers_are_read():
    with AssertingServer(lambda b: (200, completion("No", {"No": math.log(0.75), "Yes": math.log(0.25)})),
                         gzip_answers=True) as srv:
        judge = OpenAIJudge("m", base_url=f"{srv.origin}/v1", api_key="k")
        [v] = run(judge, [ask()])
    assert v.ok and v.p == pytest.approx(0.25) and v.from_logprobs


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_base_url_sends_a_bracketed_host_header():
    with AssertingServer(host="::1") as srv:
        judge = OpenAIJudge("m", base_url=f"{srv.origin}/v1", api_key="k", logprobs=False)
        [v] = run(judge, [ask()])
    assert v.ok and srv.seen[0].headers["host"] == f"[::1]:{srv.port}"


# ------------------------------------------------------------------ reasoning models


def _reasoning_model(body: dict) -> tuple[int, dict]:
    """Answers like an o-series model: refuses temperature and max_tokens, gives no logprobs."""
    if "temperature" in body and body["temperature"] != 1:
        return 400, {"error": {"message": "Unsupported value: 'temperature' does not support 0.0 with this "
                                          "model. Only the default (1) value is supported.",
                               "param": "temperature"}}
    if "max_tokens" in body:
        return 400, {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this "
                                          "model. Use 'max_completion_tokens' instead."}}
    if "logprobs" in body:
        return 400, {"error": {"message": "logprobs is not supported with this model"}}
    return 200, completion("Yes")


def test_reasoning_effort_budget_and_temperature_fallback():
    with AssertingServer(_reasoning_model) as srv:
        judge = OpenAIJudge("o-mini", base_url=f"{srv.origin}/v1", api_key="k", reasoning_effort="low",
                            reasoning_tokens=1000)
        verdicts = run(judge, [ask("a"), ask("b")])
    assert all(v.ok and v.p == 1.0 and not v.from_logprobs for v in verdicts)
    last = srv.seen[-1].body
    assert last["reasoning_effort"] == "low" and last["max_completion_tokens"] == 1001
    assert "temperature" not in last and "max_tokens" not in last and "logprobs" not in last
    assert not judge._use_temperature and not judge.reads_logprobs


def test_temperature_none_is_never_sent():
    with AssertingServer() as srv:
        run(OpenAIJudge("m", base_url=f"{srv.origin}/v1", api_key="k", temperature=None), [ask()])
    assert "temperature" not in srv.seen[0].body


def test_rejected_reasoning_effort_is_an_input_failure():
    def answer(body):
        if "reasoning_effort" in body:
            return 400, {"error": {"message": "Unrecognized request argument supplied: reasoning_effort"}}
        return 200, completion()

    with AssertingServer(answer) as srv:
        [v] = run(OpenAIJudge("m", base_url=f"{srv.origin}/v1", api_key="k", reasoning_effort="high"),
                  [ask()])
    assert v.error == "input" and "reasoning_effort" in v.error_detail and v.p is None


def test_empty_answer_at_the_budget_is_truncated_not_no():
    """A reasoning model that spends its budget thinking returns empty content, finish_reason length."""
    with AssertingServer(lambda b: (200, completion("", finish="length"))) as srv:
        judge = OpenAIJudge("m", base_url=f"{srv.origin}/v1", api_key="k", reasoning_effort="low",
                            reasoning_tokens=50)
        [v] = run(judge, [ask()])
    assert v.error == "truncated" and v.p is None and v.label is None
    assert len(srv.seen) == 1, "a re-ask would spend the same budget again"
    assert judge.stats["errors"] == {"truncated": 1}


def test_json_answer_cut_off_is_truncated_and_empty_after_reasks_is_truncated():
    req = ask("json", json_field="verdict", max_tokens=30)
    cut = completion('{"rationale": "the answer names Par', finish="length")
    with AssertingServer(lambda b: (200, cut)) as srv:
        [v] = run(OpenAIJudge("m", base_url=f"{srv.origin}/v1", api_key="k"), [req])
    assert v.error == "truncated" and v.raw.startswith('{"rationale"')
    with AssertingServer(lambda b: (200, completion(""))) as srv:
        [v] = run(OpenAIJudge("m", base_url=f"{srv.origin}/v1", api_key="k", max_reasks=1), [ask()])
    assert v.error == "truncated" and len(srv.seen) == 2


def test_reasoning_text_from_the_server_is_the_rationale():
    with AssertingServer(lambda b: (200, completion("No", reasoning_content="It names Berlin."))) as srv:
        [v] = run(OpenAIJudge("m", base_url=f"{srv.origin}/v1", api_key="k", logprobs=False), [ask()])
    assert v.ok and v.label == "No" and v.rationale == "It names Berlin."


# ------------------------------------------------------------------ think-then-verdict (API)


def test_think_then_verdict_reads_logprobs_after_the_reasoning():
    def answer(body):
        if body["messages"][-1]["content"] == THINK_PROMPT:
            return 200, completion("The response names Paris, which is right.")
        return 200, completion("Yes", {"Yes": math.log(0.8), "No": math.log(0.2)})

    with AssertingServer(answer) as srv:
        judge = get_judge("openai:m", base_url=f"{srv.origin}/v1", api_key="k", think=True, think_tokens=64)
        assert isinstance(judge, ThinkingJudge) and judge.name == "openai:m+think"
        [v] = run(judge, [ask("Does it name Paris? Answer Yes or No.")])
    think, verdict = srv.seen
    assert think.body["max_tokens"] == 64 and "logprobs" not in think.body
    roles = [m["role"] for m in verdict.body["messages"]]
    assert roles == ["user", "user", "assistant", "user"]
    assert verdict.body["messages"][2]["content"] == "The response names Paris, which is right."
    assert verdict.body["max_tokens"] == 1 and verdict.body["logprobs"] is True
    assert v.ok and v.from_logprobs and v.p == pytest.approx(0.8)
    assert v.rationale == "The response names Paris, which is right."
    assert v.usage["prompt_tokens"] == 10  # both calls counted


def test_think_with_empty_reasoning_is_truncated():
    with AssertingServer(lambda b: (200, completion("", finish="length"))) as srv:
        judge = get_judge("openai:m", base_url=f"{srv.origin}/v1", api_key="k", think=True)
        [v] = run(judge, [ask()])
    assert v.error == "truncated" and v.p is None and len(srv.seen) == 1


# ------------------------------------------------------------------ the CLI


def test_cli_judges_check_and_flags(tmp_path, monkeypatch):
    import subprocess
    import sys

    def answer(body):
        if body.get("response_format"):
            return 200, completion('{"verdict": "Yes"}')
        top = {"Yes": math.log(0.7), "No": math.log(0.3)}
        return 200, completion("Yes", top if body.get("logprobs") else None)

    with AssertingServer(answer) as srv:
        proc = subprocess.run([sys.executable, "-m", "rubrix", "judges", "check", "-j", "openai:m",
                               "--base-url", f"{srv.origin}/v1", "--header", "X-Run=42", "--timeout", "5"],
                              capture_output=True, text=True, timeout=60,
                              env={**__import__("os").environ, "RUBRIX_API_KEY": "k", "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    for capability in ("reachable", "auth ok", "model", "logprobs", "JSON mode", "reasoning"):
        assert capability in proc.stdout
    assert "P(Yes) = 0.700" in proc.stdout
    assert all(s.headers.get("x-run") == "42" for s in srv.seen)
    assert any(s.body.get("reasoning_effort") == "low" for s in srv.seen)

    with AssertingServer(lambda b: (401, {"error": {"message": "Incorrect API key provided"}})) as srv:
        proc = subprocess.run([sys.executable, "-m", "rubrix", "judges", "check", "-j", "openai:m",
                               "--base-url", f"{srv.origin}/v1"], capture_output=True, text=True, timeout=60,
                              env={**__import__("os").environ, "RUBRIX_API_KEY": "bad", "COLUMNS": "200"})
    assert proc.returncode == 2 and "401" in proc.stdout
    assert len(srv.seen) == 1


def test_header_flag_needs_key_value():
    from rubrix.cli._common import judge_flag_options

    assert judge_flag_options(header=["A=1", "B = two"], timeout=3.0, think=False) == {
        "headers": {"A": "1", "B": "two"}, "timeout_s": 3.0}
    with pytest.raises(UserError, match="KEY=VALUE"):
        judge_flag_options(header=["nope"])
