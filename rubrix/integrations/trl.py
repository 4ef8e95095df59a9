"""TRL (GRPO, RLOO, AsyncGRPO, OnlineDPO): rubric rewards as ``reward_funcs``.

TRL calls each reward function with keyword arguments only::

    reward_func(prompts=..., completions=..., completion_ids=..., **dataset_columns,
                trainer_state=..., log_extra=..., log_metric=...)

and expects one ``float | None`` per completion. ``None`` becomes NaN and that function is left
out for that sample. What each trainer needs from the object it is given:

* GRPO / RLOO run async functions together on their own loop; they tell async from sync with
  ``inspect.iscoroutinefunction`` and name the ``rewards/<name>/mean`` metric after ``__name__``.
* AsyncGRPO computes rewards in a *spawned* process, so reward functions must pickle.
* OnlineDPO calls reward functions synchronously and cannot await a coroutine.

So the adapters are callable objects, not closures: :class:`TRLReward` (async) and
:class:`TRLRewardSync` pickle as their configuration (the copy builds its own judge), carry a
per-instance ``__name__`` (TRL's metric name), and the async ones are recognised as coroutine
functions both by current TRL (which looks at ``__call__``) and by older 1.x releases that ask
``inspect.iscoroutinefunction`` about the object itself (see :mod:`.functionlike`).

Prompts and completions may be text or chat messages; the judge grades the last assistant message
of a completion, without ``<think>`` blocks unless ``include_reasoning=True``. Completions of the
same prompt form a group (for ``group_mean``); a ``group_id`` column overrides that. A ``rubric``
column gives per-row rubrics, a ``reference`` column a reference answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from ..errors import UserError
from ..policy import CircuitBreaker, FailurePolicy, LengthPenalty, apply_failure_policy
from ..rewards import Reward, RewardItem, RubricReward
from ..rubric import Rubric, slugify
from .functionlike import FunctionLike
from .messages import completion_text, prompt_messages

_BATCH_MEMO = 64  # criterion-function batches remembered until every function has picked them up


class _Columns:
    """How a TRL call's dataset columns map to rubrix fields (shared by every adapter object)."""

    def __init__(self, rubric_column: str | None, reference_column: str, group_column: str,
                 include_reasoning: bool):
        self.rubric_column = rubric_column
        self.reference_column = reference_column
        self.group_column = group_column
        self.include_reasoning = include_reasoning

    def items(self, core: RubricReward, prompts: Sequence[Any], completions: Sequence[Any],
              columns: dict[str, Any]) -> list[RewardItem]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        rubrics = columns.get(self.rubric_column) if self.rubric_column else None
        references = columns.get(self.reference_column)
        groups = self.groups(prompts, columns)
        items = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            reference = references[i] if references is not None else None
            rubric = None if rubrics is None else core.row_rubric(rubrics[i], f"{self.rubric_column}[{i}]")
            items.append(RewardItem(
                prompt=prompt_messages(prompt),
                response=completion_text(completion, include_reasoning=self.include_reasoning),
                rubric=rubric,
                reference=None if reference in (None, "") else str(reference),
                group_id=groups[i], id=str(i)))
        return items

    def groups(self, prompts: Sequence[Any], columns: dict[str, Any]) -> list[Any]:
        groups = columns.get(self.group_column)
        if groups is not None:
            return list(groups)
        return [json.dumps(p, sort_keys=True, default=str) for p in prompts]


def _log(results: Sequence[Reward], log_extra: Any, log_metric: Any) -> None:
    if callable(log_extra):
        log_extra("rubrix_status", [r.status for r in results])
    if callable(log_metric) and results:
        log_metric("rubrix/failure_rate", sum(r.score is None for r in results) / len(results))


class TRLReward(FunctionLike):
    """An async TRL reward function over a :class:`RubricReward` (GRPO, RLOO, AsyncGRPO)."""

    def __init__(self, reward: RubricReward, *, name: str, columns: _Columns):
        self.rubrix = reward
        self.__name__ = name
        self.columns = columns

    async def __call__(self, prompts: list, completions: list, completion_ids: list | None = None,
                       **kwargs: Any) -> list[float | None]:
        items = self.columns.items(self.rubrix, prompts, completions, kwargs)
        results = await self.rubrix.ascore(items)
        _log(results, kwargs.get("log_extra"), kwargs.get("log_metric"))
        return [r.reward for r in results]

    def __repr__(self) -> str:
        return f"<rubrix TRL reward {self.__name__}>"


class TRLRewardSync:
    """The same reward, called synchronously (OnlineDPO, scripts): returns the list, not a coroutine."""

    def __init__(self, reward: RubricReward, *, name: str, columns: _Columns):
        self.rubrix = reward
        self.__name__ = name
        self.columns = columns

    def __call__(self, prompts: list, completions: list, completion_ids: list | None = None,
                 **kwargs: Any) -> list[float | None]:
        items = self.columns.items(self.rubrix, prompts, completions, kwargs)
        results = self.rubrix.score(items)
        _log(results, kwargs.get("log_extra"), kwargs.get("log_metric"))
        return [r.reward for r in results]

    def __repr__(self) -> str:
        return f"<rubrix TRL reward {self.__name__} (sync)>"


def reward_func(rubric: str | Rubric | dict | None = None, judge: Any = None, *, failure: str = "none",
                name: str | None = None, breaker: float | CircuitBreaker | None = 0.5,
                length_penalty: LengthPenalty | str | None = None, include_reasoning: bool = False,
                rubric_column: str = "rubric", reference_column: str = "reference",
                group_column: str = "group_id", sync: bool = False, reward: RubricReward | None = None,
                **options: Any) -> TRLReward | TRLRewardSync:
    """A TRL reward function scoring completions against ``rubric`` with ``judge``.

    Returns an async callable (``sync=True``: a synchronous one, for OnlineDPO) named
    ``rubrix_<rubric name>`` unless ``name`` is given. ``failure`` is the failure policy (``none``
    = TRL skips the sample for this function); ``breaker`` the failure-rate threshold above which
    it raises. Other options go to :class:`~rubrix.rewards.RubricReward` (``cache``, ``mode``,
    ``base_url`` ...). The reward core is ``fn.rubrix`` (``fn.rubrix.close()`` frees the judge).
    """
    core = reward or RubricReward(rubric, judge, failure=failure, breaker=breaker,
                                  length_penalty=length_penalty, **options)
    columns = _Columns(rubric_column, reference_column, group_column, include_reasoning)
    cls = TRLRewardSync if sync else TRLReward
    return cls(core, name=name or _default_name(core), columns=columns)


def _default_name(core: RubricReward) -> str:
    """``rubrix_<rubric>``: the name TRL logs the reward under (``rewards/<name>/mean``)."""
    return f"rubrix_{slugify(core.name, fallback='rubric', max_len=80)}"


class _SharedJudgment:
    """One judgment per batch for all criterion functions of a rubric.

    TRL calls the functions concurrently on the same batch: the first call scores it, the others
    await the same task, so N functions cost one set of judge calls. Pickles empty (the tasks
    belong to a loop of the process that made them).
    """

    def __init__(self, reward: RubricReward, columns: _Columns, users: int):
        self.reward = reward
        self.columns = columns
        self.users = users
        self._memo: dict[str, tuple[asyncio.Future, list[int]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"reward": self.reward, "columns": self.columns, "users": self.users}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["reward"], state["columns"], state["users"])  # type: ignore[misc]

    async def results(self, prompts: list, completions: list, kwargs: dict) -> list[Reward]:
        key = json.dumps([prompts, completions], sort_keys=True, default=str)
        entry = self._memo.get(key)
        if entry is None:
            items = self.columns.items(self.reward, prompts, completions, kwargs)
            entry = (asyncio.ensure_future(self.reward.ascore(items)), [0])
            while len(self._memo) >= _BATCH_MEMO:  # functions the trainer never calls must not pin batches
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = entry
        task, seen = entry
        seen[0] += 1
        if seen[0] >= self.users:  # every criterion function has picked up this batch
            self._memo.pop(key, None)
        return await asyncio.shield(task)


class TRLCriterionReward(FunctionLike):
    """One criterion's value as its own TRL reward function (see :func:`criterion_reward_funcs`)."""

    def __init__(self, shared: _SharedJudgment, *, index: int, criterion_id: str, name: str,
                 policy: FailurePolicy):
        self.shared = shared
        self.index = index
        self.criterion_id = criterion_id
        self.policy = policy
        self.__name__ = name

    @property
    def rubrix(self) -> RubricReward:
        return self.shared.reward

    async def __call__(self, prompts: list, completions: list, completion_ids: list | None = None,
                       **kwargs: Any) -> list[float | None]:
        results = await self.shared.results(prompts, completions, kwargs)
        if self.index == 0:
            _log(results, kwargs.get("log_extra"), kwargs.get("log_metric"))
        # all or nothing: a sample with any failed criterion gets None from every function, so
        # TRL's nansum cannot turn a failure into a lower (or, for a pitfall, a higher) reward
        values = [r.criteria.get(self.criterion_id) if r.ok else None for r in results]
        return apply_failure_policy(values, self.policy, self.shared.columns.groups(prompts, kwargs))

    def __repr__(self) -> str:
        return f"<rubrix TRL criterion reward {self.__name__}>"


def criterion_reward_funcs(rubric: str | Rubric | dict, judge: Any = None, *, failure: str = "none",
                           breaker: float | CircuitBreaker | None = 0.5, include_reasoning: bool = False,
                           reference_column: str = "reference", group_column: str = "group_id",
                           prefix: str | None = None, reward: RubricReward | None = None,
                           **options: Any) -> tuple[list[TRLCriterionReward], list[float]]:
    """One TRL reward function per criterion, plus suggested ``reward_weights``.

    Function ``i`` returns criterion ``i``'s value in [0, 1] (for a pitfall: the probability the
    fault is present). The suggested weights are ``w_i / Σ_{w>0} w`` (pitfalls negative), so with
    TRL's default ``multi_objective_aggregation="sum_then_normalize"`` the combined reward
    ``Σ_i weight_i · v_i`` is exactly the ``weighted`` (HealthBench) reward; with
    ``"normalize_then_sum"`` (GDPO) each criterion is normalized within its group first.

    A sample with any failed criterion gets ``None`` from every function (then the failure
    policy, per column): a failure never becomes a number. All functions share one judgment per
    batch. Needs a fixed rubric (not per-row rubrics).
    """
    core = reward or RubricReward(rubric, judge, failure="none", breaker=breaker, **options)
    if core.rubric is None:
        raise UserError("criterion_reward_funcs needs a rubric (per-row rubrics have no fixed criteria)",
                        field="rubric")
    if not core.rubric.criteria or core.rubric.aggregation == "implicit":
        raise UserError("criterion_reward_funcs needs a rubric with criteria scored one by one "
                        "(not a principles-only or implicit rubric)", field="rubric")
    r = core.rubric
    if r.gates or r.length is not None or any(c.applies_if is not None for c in r.criteria):
        # TRL sums the columns: a gate, an N/A criterion (which leaves the denominator) or length
        # shaping cannot be a fixed weighted sum, so the columns would not add up to the reward
        raise UserError("criterion_reward_funcs cannot split a rubric with gates, applies_if or length "
                        "shaping into a weighted sum; use reward_func", field="rubric")
    try:
        policy = FailurePolicy.parse(failure)
    except ValueError as exc:
        raise UserError(str(exc), field="failure") from None
    criteria = core.rubric.criteria
    positive = sum(c.weight for c in criteria if c.weight > 0)
    weights = [c.weight / positive for c in criteria]
    shared = _SharedJudgment(core, _Columns(None, reference_column, group_column, include_reasoning),
                             users=len(criteria))
    base = prefix or _default_name(core)
    funcs = [TRLCriterionReward(shared, index=i, criterion_id=c.id, policy=policy,
                                name=f"{base}__{slugify(c.id, max_len=80)}") for i, c in enumerate(criteria)]
    return funcs, weights


__all__ = ["TRLCriterionReward", "TRLReward", "TRLRewardSync", "criterion_reward_funcs", "reward_func"]
