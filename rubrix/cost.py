"""What judging cost: one meter for judge calls, verdicts, cache hits, generations, tokens and time.

Every command that talks to a judge reports what it spent (``rubrix eval`` per method, ``rubrix
extract`` per stage, ``rubrix audit`` overall). The numbers come from one place, the
:class:`CostMeter` a :class:`~rubrix.scoring.Scorer` owns (``scorer.meter``): the scorer records
each judge batch as it sends it, and :func:`~rubrix.extract.propose.ask_json` records each
generation. Pipelines do not keep counters of their own, so two reports of the same work cannot
disagree.

Costs are kept per **stage** (``validate``, ``transfer``, ``gate``, ``rubric:NAME`` ...). A caller
names the stage around its work with ``with meter.stage("validate"):``; the name lives in a
context variable, so concurrent tasks on one event loop each charge their own stage. Work done
outside any stage is charged to ``default``.

``calls`` — the number earlier reports call "judge calls" — counts answers the judge had to
produce: fresh verdicts plus generations. Verdicts served from the cache are counted apart
(``cache_hits``) and cost no tokens; ``judge_calls`` counts batches sent to ``judge.judge``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from .judges.base import Generation, Judge, Verdict

DEFAULT_STAGE = "default"


@dataclass
class StageCost:
    """Counts for one stage (or a total, or the difference between two snapshots)."""

    judge_calls: int = 0        # batches sent to judge.judge()
    verdicts: int = 0           # verdicts the judge produced (cache hits not included)
    cache_hits: int = 0         # verdicts served from the verdict cache
    generations: int = 0        # free-text answers asked for (each re-ask counts)
    failed: int = 0             # verdicts or generations that came back with a typed error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0        # time spent waiting for the judge

    @property
    def calls(self) -> int:
        """Answers the judge had to produce: fresh verdicts plus generations."""
        return self.verdicts + self.generations

    def __add__(self, other: StageCost) -> StageCost:
        return StageCost(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __sub__(self, other: StageCost) -> StageCost:
        return StageCost(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "seconds": round(self.seconds, 2),
                "judge_calls": self.judge_calls, "verdicts": self.verdicts, "cache_hits": self.cache_hits,
                "generations": self.generations, "failed": self.failed}


class CostMeter:
    """Per-stage costs of everything asked of judges through one scorer (see the module docstring)."""

    def __init__(self) -> None:
        self.stages: dict[str, StageCost] = {}
        self._stage: contextvars.ContextVar[str] = contextvars.ContextVar(f"rubrix-stage-{id(self)}",
                                                                          default=DEFAULT_STAGE)

    # -- naming the work ---------------------------------------------------------------------------

    @contextmanager
    def stage(self, name: str) -> Iterator[StageCost]:
        """Charge everything recorded inside the block to ``name``; yields that stage's counts."""
        token = self._stage.set(name)
        try:
            yield self._get(name)
        finally:
            self._stage.reset(token)

    @property
    def current(self) -> str:
        return self._stage.get()

    def _get(self, name: str | None = None) -> StageCost:
        name = name or self._stage.get()
        if name not in self.stages:
            self.stages[name] = StageCost()
        return self.stages[name]

    # -- recording ---------------------------------------------------------------------------------

    def add_verdicts(self, fresh: Sequence[Verdict], *, cache_hits: int = 0, seconds: float = 0.0) -> None:
        """One judge batch: the verdicts it produced, and how many more the cache answered."""
        st = self._get()
        if fresh:
            st.judge_calls += 1
        st.verdicts += len(fresh)
        st.cache_hits += cache_hits
        st.failed += sum(1 for v in fresh if v.error is not None)
        st.prompt_tokens += sum(_int((v.usage or {}).get("prompt_tokens")) for v in fresh)
        st.completion_tokens += sum(_int((v.usage or {}).get("completion_tokens")) for v in fresh)
        st.seconds += seconds

    def add_generation(self, judge: Judge, messages: Sequence[dict[str, str]], gen: Generation, *,
                       seconds: float = 0.0) -> None:
        """One generation; token counts the backend left out are estimated with its ``count_tokens``.

        A failed generation counts only the tokens its backend reported: a request that timed out
        or was refused at the door may have cost nothing, and an estimate would invent a cost.
        """
        st = self._get()
        st.generations += 1
        st.failed += int(gen.error is not None)
        usage = gen.usage or {}
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if prompt is None and gen.ok:
            prompt = sum(judge.count_tokens([m.get("content", "") for m in messages]))
        if completion is None and gen.ok:
            completion = judge.count_tokens([gen.text])[0] if gen.text else 0
        st.prompt_tokens += _int(prompt)
        st.completion_tokens += _int(completion)
        st.seconds += seconds

    # -- reporting ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, StageCost]:
        """A copy of the per-stage counts now, for reporting only what a later step spent."""
        return {k: v + StageCost() for k, v in self.stages.items()}

    def since(self, snapshot: dict[str, StageCost] | None = None) -> dict[str, StageCost]:
        """Per-stage counts spent after ``snapshot`` (all of them without one); idle stages left out."""
        base = snapshot or {}
        out = {}
        for name, st in sorted(self.stages.items()):
            diff = st - base.get(name, StageCost())
            if diff != StageCost():
                out[name] = diff
        return out

    def total(self, snapshot: dict[str, StageCost] | None = None) -> StageCost:
        out = StageCost()
        for st in self.since(snapshot).values():
            out = out + st
        return out

    def to_dict(self, snapshot: dict[str, StageCost] | None = None) -> dict[str, dict[str, Any]]:
        return {name: st.to_dict() for name, st in self.since(snapshot).items()}


def _int(x: Any) -> int:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) else 0


__all__ = ["CostMeter", "DEFAULT_STAGE", "StageCost"]
