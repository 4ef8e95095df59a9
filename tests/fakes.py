"""Fakes shared by the tests of the generating pipelines (extract, generate); each is named FAKE.

A scripted generator stands where a model writes free text (proposals, rubrics, degraded
answers), so that the pipelines' logic is tested with exact, known generations.
"""

from __future__ import annotations

import re

from rubrix.judges.base import Generation, JudgeRequest, Verdict


class FakeScriptedGenerator:
    """FAKE generator: ``script(messages) -> str`` gives each generation; records every call and
    the last ``json_mode`` asked for."""

    name = "fake:scripted-generator"
    reads_logprobs = True

    def __init__(self, script):
        self.script = script
        self.calls: list[list[dict]] = []
        self.json_mode = False

    def identity(self) -> str:
        return self.name

    async def judge(self, requests):  # pragma: no cover - generators only generate
        raise AssertionError(f"{self.name} is not asked for verdicts")

    async def generate(self, messages, *, max_tokens=512, stop=None, json_mode=False):
        out = []
        for m in messages:
            self.calls.append(m)
            self.json_mode = json_mode
            out.append(Generation(text=self.script(m)))
        return out

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    async def aclose(self):
        return None


_ANSWER = re.compile(r"<<<(ANSWER-[0-9a-f]+)>>>\n(.*?)\n<<<END \1>>>", re.S)


class FakeKeywordJudge:
    """FAKE judge: "The response mentions X." is met iff the word X occurs in the answer.

    ``fail_word``: a statement ending in that word fails as a ``timeout`` instead (an injected
    judge error). Asked to generate, it answers with one theme (what extraction's theme step reads).
    """

    name = "fake:keyword"
    reads_logprobs = True

    def __init__(self, fail_word: str | None = None):
        self.requests = 0
        self.fail_word = fail_word

    def identity(self) -> str:
        return self.name

    async def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        out = []
        for req in requests:
            self.requests += 1
            text = req.messages[-1]["content"]
            answer = _ANSWER.search(text)
            stmt = re.search(r"Statement: (.*)$", text, re.S)
            if not answer or not stmt:
                out.append(Verdict.failed("parse", "fake judge cannot read the request"))
                continue
            word = stmt.group(1).strip().rstrip(".").split()[-1].lower()
            if word == self.fail_word:
                out.append(Verdict.failed("timeout", "fake judge: injected timeout"))
                continue
            met = word in answer.group(2).lower()
            out.append(Verdict(p=1.0 if met else 0.0, label="Yes" if met else "No", from_logprobs=True,
                               usage={"prompt_tokens": 10, "completion_tokens": 0}))
        return out

    async def generate(self, messages, *, max_tokens=512, stop=None, json_mode=False):
        answer = '{"themes": [{"theme": "The response covers the asked-for items.", "tips": [1, 2]}]}'
        return [Generation(answer) for _ in messages]

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    async def aclose(self):
        return None
