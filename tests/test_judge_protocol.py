"""The typed judge protocol: what every backend offers, and what no caller may reach around.

Pure logic: the deterministic FAKE judge (``rubrix.judges.fake``), an OpenAI judge object that is
built but never sent a request, and the hf judge's JSON-verdict reader (no model loaded).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from rubrix.judges.base import Generation, Judge, JudgeRequest, Verdict
from rubrix.judges.fake import FakeJudge

RUBRIX = Path(__file__).resolve().parent.parent / "rubrix"


def test_generation_is_typed_and_a_failure_is_never_text() -> None:
    ok = Generation(text="{}", usage={"prompt_tokens": 3})
    assert ok.ok and ok.error is None
    bad = Generation.failed("rate_limit", "x" * 900, attempts=3)
    assert not bad.ok and bad.text == "" and bad.error == "rate_limit" and len(bad.error_detail) == 500
    assert bad.attempts == 3


def test_every_backend_implements_the_whole_protocol() -> None:
    from rubrix.judges.hf import HFJudge
    from rubrix.judges.openai import OpenAIJudge

    fake = FakeJudge()
    assert isinstance(fake, Judge)
    [gen] = asyncio.run(fake.generate([[{"role": "user", "content": "two words"}]], json_mode=True))
    assert isinstance(gen, Generation) and gen.ok
    assert gen.usage == {"prompt_tokens": 2, "completion_tokens": 1}
    assert fake.count_tokens(["a b c", ""]) == [3, 0]
    assert isinstance(OpenAIJudge("m", base_url="http://127.0.0.1:9/v1"), Judge)
    for method in ("judge", "generate", "count_tokens", "identity", "aclose"):
        assert callable(getattr(HFJudge, method)), method


def test_a_failed_generation_inside_a_json_verdict_stays_the_same_typed_failure() -> None:
    """The hf judge reads JSON-format verdicts from its own generations; a generation that failed
    (e.g. a prompt too long for llama.cpp's context) must stay that failure, not become ``parse``."""
    from rubrix.judges.hf import _verdict_from_json
    from rubrix.judges.parsing import parse_json_object, value_from_json

    req = JudgeRequest(messages=({"role": "user", "content": "x"},), json_field="verdict")
    failed = _verdict_from_json(req, Generation.failed("input", "llama.cpp: too long",
                                                       usage={"prompt_tokens": 9}),
                                parse_json_object, value_from_json)
    assert isinstance(failed, Verdict) and failed.error == "input" and failed.p is None
    assert failed.usage == {"prompt_tokens": 9}
    read = _verdict_from_json(req, Generation('{"verdict": "Yes"}', usage={"completion_tokens": 4}),
                              parse_json_object, value_from_json)
    assert read.ok and read.p == 1.0 and read.usage == {"completion_tokens": 4}
    junk = _verdict_from_json(req, Generation("no json"), parse_json_object, value_from_json)
    assert junk.error == "parse"


#: what a caller would write to reach around the protocol
_FORBIDDEN = {
    # a judge's methods probed for capabilities (reading a constructor's or a library
    # function's declared defaults is fine: that is how options are checked and defaults shared)
    "inspect.signature": re.compile(r"inspect\.signature\([^)]*\b(?:judge|proposer|generate|gen)\b"),
    "a judge's tokenizer": re.compile(r"\bjudge\.tokenizer\b|getattr\(\w*judge\w*, \"tokenizer\""),
    "getattr on a judge": re.compile(r"getattr\((?:self\.)?(?:judge|proposer)\b"),
    "patching the scorer": re.compile(r"\b_verdicts\s*="),
    "a scorer's private verdicts": re.compile(r"scorer\._verdicts\b"),
}


@pytest.mark.parametrize("what", sorted(_FORBIDDEN))
def test_no_caller_reaches_around_the_protocol(what: str) -> None:
    hits = []
    for path in sorted(RUBRIX.rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _FORBIDDEN[what].search(line):
                hits.append(f"{path.relative_to(RUBRIX.parent)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)
