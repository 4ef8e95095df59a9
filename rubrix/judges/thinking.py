"""Think-then-verdict: any judge reasons first, then gives its verdict as it normally would.

Why a wrapper and not a template: reading P(Yes) from the next-token distribution needs the
verdict to be one token at a known position. A judge that writes its reasoning and its verdict in
one answer puts the verdict somewhere in free text, where only parsing can find it. So the two
are separate turns of one conversation:

1. the judge is asked the usual question plus "think it through first, no final answer yet" and
   generates its reasoning (``think_tokens`` at most);
2. the reasoning goes back as the assistant's turn, a short user turn asks for the final answer
   in the format the request already names, and the judge answers that request *as usual*: a
   local judge reads P(Yes) from the next-token distribution after the reasoning, an API judge
   reads ``top_logprobs`` where the server gives them and parses the answer otherwise, and JSON
   or checklist requests are read as JSON.

So the verdict step is exactly the judge's ordinary verdict on a longer conversation, and every
judge kind gets the mode without code of its own.

Budget: reasoning cut off at ``think_tokens`` is kept as it is and the verdict is asked after it
(a thinking budget, as reasoning models enforce one); the verdict step then still has its own
budget. Reasoning that comes back empty, or a generation that failed, is a typed failure
(``truncated`` for an empty answer, the generation's own type otherwise), never a verdict. The
reasoning travels on :attr:`Verdict.rationale`; result rows keep it only when asked.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .base import Generation, Judge, JudgeRequest, Verdict

THINK_PROMPT = ("Before you answer, think it through step by step: what exactly is asked, and what in "
                "the text speaks for and against it. Write only your reasoning; do not give the final "
                "answer yet.")
DEFAULT_THINK_TOKENS = 512


def verdict_prompt(request: JudgeRequest) -> str:
    """The turn that asks for the final answer after the reasoning, in the request's own format."""
    if request.expects_json:
        return "Now give your final answer: only the JSON object asked for above."
    labels = ", ".join(label for label, _ in request.options)
    return f"Now give your final answer. Reply with exactly one of: {labels}."


def think_messages(request: JudgeRequest) -> list[dict[str, str]]:
    """The conversation that asks for the reasoning."""
    return [*request.messages, {"role": "user", "content": THINK_PROMPT}]


def verdict_request(request: JudgeRequest, reasoning: str) -> JudgeRequest:
    """The original request, continued by the reasoning and the final-answer turn."""
    messages = (*request.messages, {"role": "user", "content": THINK_PROMPT},
                {"role": "assistant", "content": reasoning},
                {"role": "user", "content": verdict_prompt(request)})
    return dataclasses.replace(request, messages=messages)


class ThinkingJudge:
    """Wraps any :class:`~.base.Judge`: reasoning first (``think_tokens``), then its usual verdict."""

    def __init__(self, inner: Judge, *, think_tokens: int = DEFAULT_THINK_TOKENS):
        if think_tokens < 1:
            raise ValueError("think_tokens must be at least 1")
        self.inner = inner
        self.think_tokens = think_tokens
        self.name = f"{inner.name}+think"

    @property
    def reads_logprobs(self) -> bool:
        return self.inner.reads_logprobs

    def identity(self) -> str:
        return f"{self.inner.identity()}|think={self.think_tokens}"

    def __getattr__(self, name: str) -> Any:  # stats, auth_error, preflight... of the wrapped judge
        return getattr(self.inner, name)

    async def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        if not requests:
            return []
        thoughts = await self.inner.generate([think_messages(r) for r in requests],
                                             max_tokens=self.think_tokens)
        out: list[Verdict | None] = [None] * len(requests)
        pending: list[int] = []
        for i, g in enumerate(thoughts):
            if not g.ok:
                out[i] = Verdict.failed(g.error or "server", f"reasoning step: {g.error_detail or 'failed'}",
                                        usage=dict(g.usage), latency_s=g.latency_s, attempts=g.attempts)
            elif not g.text.strip():
                out[i] = Verdict.failed("truncated", "the judge's reasoning came back empty"
                                        + (" (cut off by the token budget)" if g.truncated else ""),
                                        usage=dict(g.usage), latency_s=g.latency_s, attempts=g.attempts)
            else:
                pending.append(i)
        verdicts = await self.inner.judge([verdict_request(requests[i], thoughts[i].text.strip())
                                           for i in pending]) if pending else []
        for i, v in zip(pending, verdicts, strict=True):
            out[i] = _with_reasoning(v, thoughts[i])
        return out  # type: ignore[return-value]

    async def generate(self, messages: list[list[dict[str, str]]], *, max_tokens: int = 512,
                       stop: list[str] | None = None, json_mode: bool = False) -> list[Generation]:
        return await self.inner.generate(messages, max_tokens=max_tokens, stop=stop, json_mode=json_mode)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __repr__(self) -> str:
        return f"ThinkingJudge({self.inner!r}, think_tokens={self.think_tokens})"


def _with_reasoning(verdict: Verdict, thought: Generation) -> Verdict:
    """The verdict with the reasoning attached and the reasoning step's cost added to its own."""
    usage = dict(verdict.usage or {})
    for key, value in (thought.usage or {}).items():
        usage[key] = usage.get(key, 0) + value
    verdict.usage = usage
    verdict.latency_s += thought.latency_s
    verdict.attempts += thought.attempts
    verdict.rationale = thought.text.strip()
    return verdict
