"""Fakes shared by the tests of the generating pipelines (extract, generate); each is named FAKE.

A scripted generator stands where a model writes free text (proposals, rubrics, degraded
answers), so that the pipelines' logic is tested with exact, known generations.
"""

from __future__ import annotations

from rubrix.judges.base import Generation


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
