"""A deterministic fake judge for tests of pure logic (caching, resume, aggregation, I/O).

It never looks at meaning: each verdict is a pseudo-random probability derived from a hash of
the request, so the same request always gets the same answer. It can inject typed failures at
a fixed rate, also derived from the hash. It is named "fake" everywhere it appears, including
result rows, so its numbers can never pass for real verdicts.
"""

from __future__ import annotations

import hashlib

from .base import Generation, JudgeRequest, Verdict


class FakeJudge:
    reads_logprobs = True

    def __init__(self, seed: int = 0, fail_rate: float = 0.0):
        self.seed = seed
        self.fail_rate = float(fail_rate)
        self.name = f"fake:{seed}"
        self.calls = 0

    def identity(self) -> str:
        return f"{self.name}|fail={self.fail_rate}"

    def _unit(self, request: JudgeRequest, salt: str) -> float:
        h = hashlib.sha256(f"{self.seed}|{salt}|{request.cache_key('fake')}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64

    async def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        self.calls += len(requests)
        out = []
        for req in requests:
            if self._unit(req, "fail") < self.fail_rate:
                out.append(Verdict.failed("server", "fake judge: injected failure"))
                continue
            u = self._unit(req, "p")
            if req.kind == "checklist":
                values = {cid: float(self._unit(req, cid) > 0.5) for cid in req.checklist_ids}
                out.append(Verdict(values=values))
                continue
            values = [v for _, v in req.options]
            p = min(values) + u * (max(values) - min(values))
            out.append(Verdict(p=p, label=req.options[0][0], from_logprobs=True,
                               usage={"prompt_tokens": 1, "completion_tokens": 0}))
        return out

    async def generate(self, messages: list[list[dict[str, str]]], *, max_tokens: int = 512,
                       stop: list[str] | None = None, json_mode: bool = False) -> list[Generation]:
        """An empty JSON object for every conversation: structurally valid, never a usable answer."""
        return [Generation(text="{}", usage={"prompt_tokens": sum(self.count_tokens([m.get("content", "")
                                                                                      for m in convo])),
                                             "completion_tokens": 1})
                for convo in messages]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Whitespace-separated words: the fake judge has no tokenizer and needs none."""
        return [len(t.split()) for t in texts]

    async def aclose(self) -> None:
        return None
