"""Think-then-verdict with the real embedded 0.5B judge (marked ``model``).

The judge generates its reasoning, the verdict prompt is appended after it, and P(Yes) is read from
the next-token distribution by the tree engine. That must be the probability a plain full forward
pass of the same token sequence gives (fp32 tolerance): the reasoning step changes the text the
verdict is read after, never how it is read.
"""

from __future__ import annotations

import asyncio

import pytest

from rubrix.judges.base import JudgeRequest
from rubrix.judges.thinking import ThinkingJudge, verdict_request

pytestmark = pytest.mark.model


def _request(response: str) -> JudgeRequest:
    return JudgeRequest(messages=(
        {"role": "system", "content": "You are a strict grader."},
        {"role": "user", "content": f"Question: What is the capital of France?\nAnswer: {response}\n"
                                    "Criterion: The answer names the correct capital.\n"
                                    "Is the criterion met? Reply Yes or No."}))


def test_p_after_generated_reasoning_equals_a_full_forward(small_judge):
    torch = small_judge.torch
    judge = ThinkingJudge(small_judge, think_tokens=48)
    requests = [_request("Paris."), _request("Berlin.")]
    verdicts = asyncio.run(judge.judge(requests))
    for req, v in zip(requests, verdicts, strict=True):
        assert v.ok, (v.error, v.error_detail)
        assert v.from_logprobs and v.rationale and 0.0 <= v.p <= 1.0
        ids = small_judge.encode(verdict_request(req, v.rationale).messages)
        with torch.inference_mode():
            logits = small_judge.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
        full = small_judge._read(req, logits)
        assert v.p == pytest.approx(full.p, abs=1e-4), (v.p, full.p, v.rationale)
        assert v.usage["completion_tokens"] >= 1  # the reasoning's tokens are counted
    assert verdicts[0].p > verdicts[1].p, [v.rationale for v in verdicts]
