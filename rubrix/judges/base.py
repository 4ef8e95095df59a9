"""The judge interface: requests in, verdicts out; conversations in, generations out.

Every backend implements ``async judge(requests) -> list[Verdict]`` with one verdict per request,
in order, and ``async generate(messages, *, max_tokens, stop, json_mode) -> list[Generation]``
with one generation per conversation. A backend never raises for a single bad answer: the
verdict or generation carries a typed ``error`` instead (a verdict's ``p`` stays ``None``, a
generation's ``text`` stays empty), so a failed judgment can never be mistaken for a "no" and a
failed generation never for an answer.

Everything a caller needs from a judge is in :class:`Judge`: no caller reads a backend's
tokenizer or private state, or inspects signatures to find out what a backend supports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

ErrorType = Literal["timeout", "rate_limit", "server", "parse", "refused", "input", "truncated"]
#: ``truncated``: the answer was empty, or cut off by the token budget before a verdict (a reasoning
#: model that spent its budget thinking); never read as a "no"
ERROR_TYPES: tuple[str, ...] = ("timeout", "rate_limit", "server", "parse", "refused", "input", "truncated")

Kind = Literal["binary", "scale", "pairwise", "checklist", "generate"]


@dataclass(frozen=True)
class JudgeRequest:
    """What a judge is asked: chat messages plus how to read the answer.

    ``options`` maps each answer label to its value, e.g. ``{"Yes": 1.0, "No": 0.0}`` for a binary
    check, ``{"1": 1, ..., "5": 5}`` for a scale or ``{"A": 1.0, "B": 0.0}`` for a pairwise
    comparison. A logprob-capable judge returns the expected value over these labels; others
    parse the label from text. ``json_field`` names the key to read from a JSON answer (for
    templates that ask for a rationale first). ``checklist_ids`` lists criterion ids for the
    all-in-one checklist mode, whose answer is a JSON object of booleans.
    """

    messages: tuple[dict[str, str], ...]
    kind: Kind = "binary"
    options: tuple[tuple[str, float], ...] = (("Yes", 1.0), ("No", 0.0))
    json_field: str | None = None
    checklist_ids: tuple[str, ...] = ()
    max_tokens: int = 1
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def expects_json(self) -> bool:
        return self.json_field is not None or self.kind == "checklist"

    def cache_key(self, judge_id: str) -> str:
        """A key over everything that determines the answer: judge, messages, reading rule."""
        blob = json.dumps({"judge": judge_id, "messages": list(self.messages), "kind": self.kind,
                           "options": list(self.options), "json_field": self.json_field,
                           "checklist": list(self.checklist_ids), "max_tokens": self.max_tokens},
                          sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Verdict:
    """One judge answer.

    ``p`` is the probability the criterion is met (binary), the expected level (scale), or the
    probability that A is better (pairwise). For a checklist request ``values`` holds one
    probability per criterion id. On failure ``p`` is ``None`` and ``error`` names the type.
    """

    p: float | None = None
    label: str | None = None
    raw: str | None = None
    from_logprobs: bool = False
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    error: ErrorType | None = None
    error_detail: str | None = None
    values: dict[str, float] | None = None
    cached: bool = False
    attempts: int = 1
    #: probability mass the judge put on the recognized answer labels (logprob verdicts only)
    coverage: float | None = None
    #: the judge's reasoning before its verdict (think-then-verdict mode, or a reasoning model that
    #: returns its reasoning); kept in result rows only when asked (``--keep-rationale``)
    rationale: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, error: ErrorType, detail: str, **kw: Any) -> Verdict:
        return cls(p=None, error=error, error_detail=detail[:500], **kw)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Generation:
    """One free-text answer (a criterion proposal, a revision, a theme grouping).

    ``usage`` holds ``prompt_tokens`` and ``completion_tokens`` as the backend counted them (its
    own tokenizer, or the server's report); a backend that cannot know leaves a key out and the
    caller estimates with :meth:`Judge.count_tokens`. On failure ``text`` is empty and ``error``
    names the type, with the same vocabulary as :class:`Verdict` errors: a failed generation is
    never an empty answer that a parser would then call a ``parse`` failure.
    """

    text: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    error: ErrorType | None = None
    error_detail: str | None = None
    attempts: int = 1
    #: the backend stopped at ``max_tokens``, not at the end of its answer
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, error: ErrorType, detail: str, **kw: Any) -> Generation:
        return cls(text="", error=error, error_detail=detail[:500], **kw)


@runtime_checkable
class Judge(Protocol):
    """The one interface every backend implements."""

    name: str
    #: whether verdicts come from token probabilities (so the one-token templates are right)
    reads_logprobs: bool

    async def judge(self, requests: list[JudgeRequest]) -> list[Verdict]: ...

    async def generate(self, messages: list[list[dict[str, str]]], *, max_tokens: int = 512,
                       stop: list[str] | None = None, json_mode: bool = False) -> list[Generation]:
        """One greedy answer per conversation, in order.

        ``json_mode`` asks for a JSON object. Every backend accepts it; how strongly it holds
        differs (llama.cpp and OpenAI-compatible servers constrain decoding, transformers treats
        it as a hint the prompt already gives), so callers still parse with repair.
        """
        ...

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens in each text as this judge counts them (its tokenizer where it has one, else a
        documented estimate): for cost reports and for sizing inputs, never for verdicts."""
        ...

    def identity(self) -> str:
        """A string naming the judge and everything that changes its answers (for caching)."""
        ...

    async def aclose(self) -> None: ...
