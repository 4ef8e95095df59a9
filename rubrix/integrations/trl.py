"""TRL (GRPOTrainer, RLOOTrainer): rubric rewards as ``reward_funcs``.

TRL calls each reward function with keyword arguments only::

    reward_func(prompts=..., completions=..., completion_ids=..., **dataset_columns,
                trainer_state=..., log_extra=..., log_metric=...)

and expects one ``float | None`` per completion. ``None`` becomes NaN and that function is left
out for that sample (a row where every function gives ``None`` gets advantage 0). TRL detects async
functions with ``inspect.iscoroutinefunction`` and runs them together on its own event loop, and
names the ``rewards/<name>/mean`` metric after ``__name__``. So :func:`reward_func` returns a real
``async def`` function with a meaningful ``__name__``, and the default failure policy is ``none``.

Prompts and completions may be text (standard format) or lists of chat messages (conversational
format); the judge grades the last assistant message of a completion, without ``<think>`` blocks
unless ``include_reasoning=True``. Completions of the same prompt in one call form a group (used by
``group_mean``); a ``group_id`` dataset column overrides that. A ``rubric`` column (a list of items,
a rubric object, or JSON text of either) gives per-row rubrics, and a ``reference`` column a
reference answer.

Not supported: TRL's experimental AsyncGRPO, which needs picklable reward functions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from ..aggregate import CircuitBreaker, FailurePolicy, LengthPenalty, apply_failure_policy
from ..errors import UserError
from ..rubric import Rubric
from .base import Reward, RewardItem, RubricReward, completion_text, prompt_messages

RewardFn = Callable[..., Any]


def _slug(text: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")
    return out or "rubric"


def _items(core: RubricReward, prompts: Sequence[Any], completions: Sequence[Any], columns: dict[str, Any], *,
           rubric_column: str | None, reference_column: str, group_column: str,
           include_reasoning: bool) -> list[RewardItem]:
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    rubrics = columns.get(rubric_column) if rubric_column else None
    references = columns.get(reference_column)
    groups = _group_ids(prompts, columns, group_column)
    items = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        group = groups[i]
        reference = references[i] if references is not None else None
        items.append(RewardItem(
            prompt=prompt_messages(prompt),
            response=completion_text(completion, include_reasoning=include_reasoning),
            rubric=core.row_rubric(rubrics[i]) if rubrics is not None else None,
            reference=None if reference in (None, "") else str(reference),
            group_id=group, id=str(i)))
    return items


def _log(results: Sequence[Reward], log_extra: Any, log_metric: Any) -> None:
    if callable(log_extra):
        log_extra("rubrix_status", [r.status for r in results])
    if callable(log_metric) and results:
        log_metric("rubrix/failure_rate", sum(r.score is None for r in results) / len(results))


def reward_func(rubric: str | Rubric | dict | None = None, judge: Any = None, *, failure: str = "none",
                name: str | None = None, breaker: float | CircuitBreaker | None = 0.5,
                length_penalty: LengthPenalty | str | None = None, include_reasoning: bool = False,
                rubric_column: str = "rubric", reference_column: str = "reference",
                group_column: str = "group_id", reward: RubricReward | None = None,
                **options: Any) -> RewardFn:
    """A TRL reward function scoring completions against ``rubric`` with ``judge``.

    Returns ``async def rubrix_<name>(prompts, completions, completion_ids=None, **kwargs) ->
    list[float | None]``. ``failure`` is the failure policy (``none`` = TRL skips the sample for
    this function); ``breaker`` the failure-rate threshold above which it raises. Other options
    go to :class:`~rubrix.integrations.base.RubricReward` (``cache``, ``mode``, ``base_url`` ...).
    The :class:`RubricReward` is reachable as ``fn.rubrix`` (``fn.rubrix.close()`` frees the judge).
    """
    core = reward or RubricReward(rubric, judge, failure=failure, breaker=breaker,
                                  length_penalty=length_penalty, **options)

    async def rubrix_reward(prompts: list, completions: list, completion_ids: list | None = None,
                            **kwargs: Any) -> list[float | None]:
        items = _items(core, prompts, completions, kwargs, rubric_column=rubric_column,
                       reference_column=reference_column, group_column=group_column,
                       include_reasoning=include_reasoning)
        results = await core.ascore(items)
        _log(results, kwargs.get("log_extra"), kwargs.get("log_metric"))
        return [r.reward for r in results]

    fn_name = name or f"rubrix_{_slug(core.name)}"
    rubrix_reward.__name__ = rubrix_reward.__qualname__ = fn_name
    rubrix_reward.rubrix = core  # type: ignore[attr-defined]
    return rubrix_reward


def criterion_reward_funcs(rubric: str | Rubric | dict, judge: Any = None, *, failure: str = "none",
                           breaker: float | CircuitBreaker | None = 0.5, include_reasoning: bool = False,
                           reference_column: str = "reference", group_column: str = "group_id",
                           prefix: str | None = None, reward: RubricReward | None = None,
                           **options: Any) -> tuple[list[RewardFn], list[float]]:
    """One TRL reward function per criterion, plus suggested ``reward_weights``.

    Function ``i`` returns criterion ``i``'s value in [0, 1] (for a pitfall: the probability the
    fault is present). The suggested weights are ``w_i / Σ_{w>0} w`` (pitfalls negative), so with
    TRL's default ``multi_objective_aggregation="sum_then_normalize"`` the combined reward
    ``Σ_i weight_i · v_i`` is exactly the ``weighted`` (HealthBench) reward; with
    ``"normalize_then_sum"`` (GDPO) each criterion is normalized within its group first.

    All functions share one judgment per (prompt, completion): TRL calls them concurrently on
    the same batch, the first call scores the batch and the others await the same result, so N
    functions cost one set of judge calls, not N. Needs a fixed rubric (not per-row rubrics).
    The failure policy applies to each criterion column separately.
    """
    core = reward or RubricReward(rubric, judge, failure="none", breaker=breaker, **options)
    if core.rubric is None:
        raise UserError("criterion_reward_funcs needs a rubric (per-row rubrics have no fixed criteria)",
                        field="rubric")
    if not core.rubric.criteria or core.rubric.aggregation == "implicit":
        raise UserError("criterion_reward_funcs needs a rubric with criteria scored one by one "
                        "(not a principles-only or implicit rubric)", field="rubric")
    try:
        policy = FailurePolicy.parse(failure)
    except ValueError as exc:
        raise UserError(str(exc), field="failure") from None
    criteria = core.rubric.criteria
    positive = sum(c.weight for c in criteria if c.weight > 0)
    weights = [c.weight / positive for c in criteria]
    shared: dict[str, tuple[asyncio.Task, list[int]]] = {}
    base = prefix or f"rubrix_{_slug(core.name)}"

    async def _results(prompts: list, completions: list, kwargs: dict) -> list[Reward]:
        key = json.dumps([prompts, completions], sort_keys=True, default=str)
        entry = shared.get(key)
        if entry is None:
            items = _items(core, prompts, completions, kwargs, rubric_column=None,
                           reference_column=reference_column, group_column=group_column,
                           include_reasoning=include_reasoning)
            task = asyncio.ensure_future(core.ascore(items))
            entry = (task, [0])
            while len(shared) >= 64:  # functions the trainer never calls must not pin old batches
                shared.pop(next(iter(shared)))
            shared[key] = entry
        task, users = entry
        users[0] += 1
        if users[0] >= len(criteria):  # every criterion function has picked up this batch
            shared.pop(key, None)
        return await asyncio.shield(task)

    def make(index: int, criterion_id: str) -> RewardFn:
        async def rubrix_criterion(prompts: list, completions: list, completion_ids: list | None = None,
                                   **kwargs: Any) -> list[float | None]:
            results = await _results(prompts, completions, kwargs)
            if index == 0:
                _log(results, kwargs.get("log_extra"), kwargs.get("log_metric"))
            values = [r.criteria.get(criterion_id) for r in results]
            return apply_failure_policy(values, policy, _group_ids(prompts, kwargs, group_column))

        rubrix_criterion.__name__ = rubrix_criterion.__qualname__ = f"{base}__{_slug(criterion_id)}"
        rubrix_criterion.rubrix = core  # type: ignore[attr-defined]
        return rubrix_criterion

    return [make(i, c.id) for i, c in enumerate(criteria)], weights


def _group_ids(prompts: Sequence[Any], kwargs: dict, group_column: str) -> list[Any]:
    groups = kwargs.get(group_column)
    if groups is not None:
        return list(groups)
    return [json.dumps(p, sort_keys=True, default=str) for p in prompts]


__all__ = ["reward_func", "criterion_reward_funcs"]
