"""OpenRLHF: the python-file ``reward_func`` and the helpers behind the ``/get_reward`` route.

OpenRLHF takes rewards from ``--reward.remote_url`` (legacy ``--remote_rm_url``): either an HTTP
endpoint (``POST {"query", "prompts", "labels"}`` → ``{"rewards", "scores", "extra_logs"}``) or a
``.py`` file whose ``reward_func(queries, prompts, labels, **kwargs)`` it loads with
``importlib`` and calls through ``asyncio.to_thread`` — synchronously, one sample per call in
current versions. What it hands over:

* ``queries[i]`` is ``tokenizer.decode(prompt_ids + response_ids, skip_special_tokens=False)``:
  the chat-templated prompt, the response and the end-of-sequence token;
* ``prompts[i]`` is the (templated) prompt string, so the response is ``query[len(prompt):]``
  minus EOS — :func:`strip_query` does that, and copes with a prompt OpenRLHF truncated from the left;
* ``labels[i]`` is the dataset's ``--data.label_key`` column, ``""`` without one.

It expects tensors (or lists) of finite floats: ``rewards`` feed the advantage, ``scores`` (in
[0, 1]) feed dynamic filtering, ``extra_logs`` are logged. A ``None`` or NaN reward breaks its
advantage computation, so the default failure policy here is ``constant:0`` with
``extra_logs["rubrix_ok"] = 0`` marking the sample, and the circuit breaker raises when failures pile up.

Labels are read by :func:`rubrix.labels.parse_label`, the same reader as the HTTP server's
``/get_reward`` route: a JSON list is the row's rubric; a JSON object is a rubric (with
``criteria``) or carries ``rubric`` / ``rubric_id`` / ``reference`` / ``group_id``; any other
non-empty text is the reference answer shown to the judge. A malformed label is an error naming
the label, never silently ignored.

Configuration of the module-level :func:`reward_func`: ``RUBRIX_RUBRIC``, ``RUBRIX_JUDGE``,
``RUBRIX_FAILURE``, ``RUBRIX_BREAKER``, ``RUBRIX_BASE_URL``, ``RUBRIX_LENGTH_PENALTY``,
``RUBRIX_CACHE`` (default ``memory``: in this process only; ``1`` or a path for the on-disk cache),
``RUBRIX_EOS_TOKEN``; or build your own with :func:`make_reward_func`.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from typing import Any

from .._paths import env_cache, env_float, env_str
from ..errors import UserError
from ..policy import FailurePolicy
from ..rewards import Reward, RewardItem, RubricReward
from .messages import strip_reasoning

#: end-of-sequence / end-of-turn tokens stripped when no ``eos_token`` is given
COMMON_EOS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "</s>", "<|end|>",
              "<end_of_turn>", "<eos>", "<｜end▁of▁sentence｜>")

_CHATML = re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|$)", re.DOTALL)
_LLAMA3 = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)(?:<\|eot_id\|>|$)", re.DOTALL)


def strip_query(query: str, prompt: str, eos_token: str | Sequence[str] | None = None) -> str:
    """The response inside an OpenRLHF ``query``: remove the prompt prefix and trailing EOS tokens.

    ``query`` is the decoded prompt + response (special tokens kept). When ``query`` starts with
    ``prompt`` the response is ``query[len(prompt):]``. OpenRLHF truncates an over-long prompt from
    the left, so otherwise the longest tail of ``prompt`` that ``query`` starts with is removed;
    failing that, everything up to the last occurrence of ``prompt``'s final line (e.g.
    ``<|im_start|>assistant``) is. Trailing EOS tokens (``eos_token``, or :data:`COMMON_EOS` when
    ``None``), repeated or followed by whitespace, are removed from the end.
    """
    query = query or ""
    prompt = prompt or ""
    response = query
    if prompt and query.startswith(prompt):
        response = query[len(prompt):]
    elif prompt:
        cut = _truncated_prompt_end(query, prompt)
        if cut is not None:
            response = query[cut:]
    if eos_token is None:
        eos: tuple[str, ...] = COMMON_EOS
    else:
        eos = (eos_token,) if isinstance(eos_token, str) else tuple(eos_token)
    eos = tuple(e for e in eos if e)
    changed = True
    while changed:
        changed = False
        trimmed = response.rstrip()
        for token in eos:
            if trimmed.endswith(token):
                response = trimmed[:-len(token)]
                changed = True
                break
    return response.strip()


def _truncated_prompt_end(query: str, prompt: str) -> int | None:
    """Where the prompt ends in a query whose prompt was cut from the left, or ``None``."""
    probe = prompt[-64:]
    start = query.find(probe)
    while start != -1:
        end = start + len(probe)
        if prompt.endswith(query[:end]):
            return end
        start = query.find(probe, start + 1)
    last_line = prompt.rstrip("\n").rsplit("\n", 1)[-1]
    if last_line.strip():
        pos = query.rfind(last_line)
        if pos != -1:
            end = pos + len(last_line)
            if prompt.endswith("\n") and query[end:end + 1] == "\n":
                end += 1
            return end
    return None


def prompt_from_template(prompt: str) -> str | list[dict[str, str]]:
    """Chat messages from a ChatML or Llama-3 templated prompt; other text is returned unchanged.

    The judge then sees the conversation as text, not the policy model's special tokens.
    """
    for pattern in (_CHATML, _LLAMA3):
        turns = [(role, text.strip()) for role, text in pattern.findall(prompt or "")]
        turns = [(role, text) for role, text in turns if role in ("system", "user", "assistant")]
        if turns and turns[-1][0] == "assistant" and not turns[-1][1]:
            turns = turns[:-1]  # the open assistant turn the response continues
        if turns:
            return [{"role": role, "content": text} for role, text in turns]
    return prompt or ""


class OpenRLHFReward:
    """OpenRLHF's ``reward_func(queries, prompts, labels, **kwargs)`` over a :class:`RubricReward`.

    A picklable callable object (see :func:`make_reward_func`); :meth:`items` and :meth:`values`
    are also what the server's ``/get_reward`` route uses, so both read and answer alike.
    """

    def __init__(self, reward: RubricReward, fallback: float, eos_token: str | Sequence[str] | None,
                 include_reasoning: bool):
        self.rubrix = reward
        self.reward = reward
        self.fallback = fallback
        self.eos_token = eos_token
        self.include_reasoning = include_reasoning

    def items(self, queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any] | None
              ) -> list[RewardItem]:
        """Reward items from OpenRLHF's lists; a prompt's samples form a group unless a label names one."""
        if len(queries) != len(prompts):
            raise UserError(f"has {len(prompts)} items but query has {len(queries)}", field="prompts")
        labels = list(labels) if labels is not None else [""] * len(queries)
        if len(labels) != len(queries):
            raise UserError(f"has {len(labels)} items but query has {len(queries)}", field="labels")
        out = []
        for i, (query, prompt, label) in enumerate(zip(queries, prompts, labels, strict=True)):
            response = strip_query(query, prompt, self.eos_token)
            if not self.include_reasoning:
                response = strip_reasoning(response)
            parsed = self.reward.parse_label(label, f"labels[{i}]")
            out.append(RewardItem(prompt=prompt_from_template(prompt), response=response,
                                  rubric=parsed.rubric, reference=parsed.reference,
                                  group_id=parsed.group_id if parsed.group_id is not None else prompt,
                                  id=str(i)))
        return out

    def values(self, results: list[Reward]) -> dict[str, Any]:
        """Plain lists: ``rewards``, ``scores`` (clipped to [0, 1]) and ``extra_logs`` (the same keys
        on every answer: only the configured rubric's criteria)."""
        rewards = [round(_finite(r.reward, self.fallback), 6) for r in results]
        logs: dict[str, list[float]] = {"rubrix_ok": [1.0 if r.ok else 0.0 for r in results],
                                        "rubrix_imputed": [1.0 if r.imputed else 0.0 for r in results]}
        for cid in self.reward.criterion_ids:
            logs[f"rubrix/{cid}"] = [round(_finite(r.criteria.get(cid), 0.0), 6) for r in results]
        return {"rewards": rewards, "scores": [min(1.0, max(0.0, x)) for x in rewards], "extra_logs": logs}

    def __call__(self, queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any] | None = None,
                 **kwargs: Any) -> dict[str, Any]:
        results = self.reward.score(self.items(queries, prompts, labels))
        return _as_tensors(self.values(results))


def _finite(x: float | None, fallback: float) -> float:
    return float(x) if x is not None and math.isfinite(x) else float(fallback)


def _as_tensors(values: dict[str, Any]) -> dict[str, Any]:
    """Float tensors where torch is installed (as OpenRLHF's own examples return), lists otherwise."""
    try:
        import torch
    except ImportError:  # pragma: no cover - OpenRLHF always has torch
        return values
    return {"rewards": torch.tensor(values["rewards"], dtype=torch.float),
            "scores": torch.tensor(values["scores"], dtype=torch.float),
            "extra_logs": {k: torch.tensor(v, dtype=torch.float) for k, v in values["extra_logs"].items()}}


def make_reward_func(rubric: Any = None, judge: Any = None, *, failure: str = "constant:0",
                     breaker: float | None = 0.5, eos_token: str | Sequence[str] | None = None,
                     include_reasoning: bool = False, reward: RubricReward | None = None,
                     **options: Any) -> OpenRLHFReward:
    """Build an OpenRLHF ``reward_func(queries, prompts, labels, **kwargs) -> dict``.

    Returns ``{"rewards": tensor, "scores": tensor, "extra_logs": {"rubrix_ok": tensor, ...}}``
    with finite floats only. ``failure`` must give a number (``constant:X``, or ``group_mean``,
    which falls back to ``0`` for a group with nothing scored — OpenRLHF passes one sample per call,
    so that is most groups) or ``raise``. ``reward_func.values`` gives the same as plain lists
    (what the ``/get_reward`` HTTP route answers). The object pickles as its configuration.
    """
    try:
        policy = FailurePolicy.parse(failure)
    except ValueError as exc:
        raise UserError(str(exc), field="failure") from None
    if policy.kind == "none":
        raise UserError("failure policy none is not usable with OpenRLHF: a missing reward breaks its "
                        "advantage computation; use constant:X, group_mean or raise", field="failure")
    fallback = policy.value if policy.kind == "constant" else 0.0
    core = reward or RubricReward(rubric, judge, failure=str(policy), fallback=fallback, breaker=breaker,
                                  **options)
    return OpenRLHFReward(core, float(fallback or 0.0), eos_token, include_reasoning)


_DEFAULT: dict[str, OpenRLHFReward] = {}
_LOCK = threading.Lock()


def _from_env() -> OpenRLHFReward:
    with _LOCK:
        fn = _DEFAULT.get("fn")
        if fn is None:
            options: dict[str, Any] = {}
            if env_str("RUBRIX_BASE_URL"):
                options["base_url"] = env_str("RUBRIX_BASE_URL")
            fn = make_reward_func(
                env_str("RUBRIX_RUBRIC"), env_str("RUBRIX_JUDGE"),
                failure=env_str("RUBRIX_FAILURE") or "constant:0", breaker=env_float("RUBRIX_BREAKER", 0.5),
                eos_token=env_str("RUBRIX_EOS_TOKEN"), length_penalty=env_str("RUBRIX_LENGTH_PENALTY"),
                length_shaping=env_str("RUBRIX_LENGTH_SHAPING") or None,
                relative=env_str("RUBRIX_RELATIVE") or None,
                cache=env_cache("RUBRIX_CACHE", "memory"), **options)
            _DEFAULT["fn"] = fn
        return fn


def reward_func(queries: list[str], prompts: list[str], labels: list | None = None, **kwargs: Any
                ) -> dict[str, Any]:
    """OpenRLHF's python-file reward function, configured by ``RUBRIX_*`` environment variables."""
    return _from_env()(queries, prompts, labels, **kwargs)


__all__ = ["COMMON_EOS", "OpenRLHFReward", "make_reward_func", "prompt_from_template", "reward_func",
           "strip_query"]
