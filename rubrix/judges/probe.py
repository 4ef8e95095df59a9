"""What a judge endpoint supports, learned before a long job (``rubrix judges check``).

A handful of one- or few-token requests, each on a fresh judge so that one finding (a fallback
remembered after a rejected parameter) cannot hide the next:

* reachable / auth ok: a one-token answer at all; a 401/403 is an answer that says the key is wrong;
* model: the model (or Azure deployment) is known to the endpoint;
* logprobs: a Yes/No question read from ``top_logprobs`` (the verdict is then a probability);
* JSON mode: ``response_format=json_object`` accepted and a JSON object returned;
* reasoning: ``reasoning_effort`` accepted (reasoning models), and whether ``temperature`` had to go.

Local judges (embedded, hf) answer from their own weights: they are described, not loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import JudgeRequest

YES_NO = JudgeRequest(messages=({"role": "user",
                                 "content": "Is the sky on a clear day blue? Answer Yes or No."},))
JSON_ASK = JudgeRequest(messages=({"role": "user", "content": 'Is 2+2=4? Reply with a JSON object '
                                   '{"verdict": "Yes" or "No"}.'},), json_field="verdict", max_tokens=20)


@dataclass
class Finding:
    """One row of the check: a capability, yes / no / unknown (``None``), and what was seen."""

    capability: str
    ok: bool | None
    detail: str

    @property
    def mark(self) -> str:
        return {True: "yes", False: "no", None: "-"}[self.ok]


def usable(findings: list[Finding]) -> bool:
    """Whether a job can run at all: reachable, with a key and a model the endpoint accepts."""
    return all(f.ok is not False for f in findings if f.capability in ("reachable", "auth ok", "model"))


async def check(spec: str, **options: Any) -> list[Finding]:
    """The findings for a judge spec and its options (see the module docstring)."""
    kind = spec.partition(":")[0]
    if kind not in ("openai", "azure"):
        return _local(kind)
    from .openai import OpenAIJudge

    options = {k: v for k, v in options.items()
               if v is not None and k not in ("think", "think_tokens", "log")}
    options.setdefault("max_retries", 1)
    options.setdefault("timeout_s", 30.0)
    model = spec.partition(":")[2]

    async def ask(request: JudgeRequest, **extra: Any):
        judge = OpenAIJudge(model, provider=kind, **{**options, **extra})
        try:
            [verdict] = await judge.judge([request])
        finally:
            await judge.aclose()
        return verdict, judge

    first, judge = await ask(YES_NO, logprobs=False, max_reasks=0)
    where = judge.base_url
    out: list[Finding] = []
    unreachable = first.error == "input" and "cannot reach" in (first.error_detail or "")
    if first.error in ("server", "timeout", "rate_limit") or unreachable:
        return [Finding("reachable", False, f"{where}: {first.error}: {first.error_detail}"),
                Finding("auth ok", None, "not reached"), Finding("model", None, "not reached"),
                Finding("logprobs", None, "not reached"), Finding("JSON mode", None, "not reached"),
                Finding("reasoning", None, "not reached")]
    out.append(Finding("reachable", True, where))
    if judge.auth_error:
        out.append(Finding("auth ok", False, judge.auth_error))
        return out + [Finding(c, None, "needs a key that works") for c in ("model", "logprobs", "JSON mode",
                                                                           "reasoning")]
    out.append(Finding("auth ok", True, "key accepted" if judge.api_key else "no key sent, none needed"))
    if first.error == "input":
        out.append(Finding("model", False, first.error_detail or "rejected"))
        return out + [Finding(c, None, "needs a model that works")
                      for c in ("logprobs", "JSON mode", "reasoning")]
    out.append(Finding("model", True, f"{model} answered {first.raw!r}" if first.raw is not None
                       else f"{model} answered"))

    lp, lp_judge = await ask(YES_NO, logprobs=None, max_reasks=0)
    if lp.ok and lp.from_logprobs:
        out.append(Finding("logprobs", True, f"P(Yes) = {lp.p:.3f} from top_logprobs"))
    else:
        reason = lp.error_detail if not lp.ok else "answers came without them: verdicts parsed from text"
        out.append(Finding("logprobs", False, reason or "not given"))

    js, js_judge = await ask(JSON_ASK, logprobs=False)
    if js.ok and js_judge._use_json_mode:
        out.append(Finding("JSON mode", True, f"response_format json_object: {js.raw!r}"))
    elif js.ok:
        out.append(Finding("JSON mode", False, "response_format rejected; JSON parsed from plain text"))
    else:
        out.append(Finding("JSON mode", False, f"{js.error}: {js.error_detail}"))

    effort = options.get("reasoning_effort") or "low"
    rs, rs_judge = await ask(YES_NO, logprobs=False, reasoning_effort=effort, reasoning_tokens=256,
                             max_reasks=0)
    dropped = "; refuses temperature (dropped)" if not rs_judge._use_temperature else ""
    if rs.ok:
        out.append(Finding("reasoning", True, f"reasoning_effort={effort} accepted{dropped}"
                           + ("; returns reasoning text" if rs.rationale else "")))
    elif rs.error == "input":
        out.append(Finding("reasoning", False, f"reasoning_effort rejected: {rs.error_detail}"))
    else:
        out.append(Finding("reasoning", None, f"{rs.error}: {rs.error_detail}"))
    return out


def _local(kind: str) -> list[Finding]:
    if kind == "fake":
        return [Finding("reachable", True, "in process (fake judge: tests only)"),
                Finding("auth ok", None, "no key"), Finding("model", True, "fake"),
                Finding("logprobs", False, "fixed verdicts"), Finding("JSON mode", False, "no text"),
                Finding("reasoning", False, "no text")]
    return [Finding("reachable", True, "local weights (not loaded for this check)"),
            Finding("auth ok", None, "no key needed"),
            Finding("model", True, "loaded on first use"),
            Finding("logprobs", True, "next-token distribution at the answer position"),
            Finding("JSON mode", True, "llama.cpp grammar on CPU when installed; a prompt hint with "
                    "transformers"),
            Finding("reasoning", True, "--think: reasons first, then P(Yes) after the reasoning")]
