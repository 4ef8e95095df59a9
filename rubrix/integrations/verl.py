"""verl: a ``custom_reward_function`` that scores rollouts against a rubric.

verl loads a function from a file and calls it once per sample, with keyword arguments::

    compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=..., **reward_kwargs)

``reward_kwargs`` comes from ``reward.custom_reward_function.reward_kwargs`` (legacy:
``custom_reward_function.reward_kwargs``). The return value may be a float or a dict with
``score``; every other key of a dict is logged as reward extra info. Two verl facts shape this
adapter:

* verl reads the extra-info keys from the **first** sample and indexes every later sample with
  them, so every call must return the **same keys**. With a run rubric the keys are ``score``,
  ``rubrix_ok``, ``rubrix_imputed`` and ``c_<criterion id>`` for each criterion; with per-row
  rubrics (whose criteria differ by row) ``c_*`` is replaced by ``rubrix_failed_criteria``.
* verl has **no NaN or None handling** (one NaN poisons the whole GRPO group), so every value is a
  finite float. A failed judgment gets the failure policy's value (default ``constant:0``) and
  ``rubrix_ok = 0``; a failed criterion's ``c_*`` value is ``0``. ``none`` and ``group_mean`` are
  refused here (verl passes one sample at a time and no group id). The circuit breaker raises when
  the rolling failure rate passes its threshold, which stops the run instead of training on zeros.

* verl's ``rate_limited`` manager turns an exception from ``compute_score`` into *other* keys
  (``error`` / ``timeout`` and ``acc``) — a KeyError later. So nothing a single sample can cause
  raises here: a bad row (a malformed rubric in ``ground_truth``) or an unexpected error gives the
  same keys with ``rubrix_ok = 0`` and ``rubrix_error = 1``, said in the log. What must stop the
  run — the circuit breaker, the ``raise`` policy — raises :class:`RewardRunStopped`, a
  ``BaseException``, which no manager's ``except Exception`` turns into a 0.0. Each sample also has
  a deadline (``deadline_s``, default 240 s) below ``rate_limited``'s own ``reward.timeout``
  (300 s), so that manager's timeout path (more swapped keys) is never reached.
* When verl runs the judge model itself (``reward.reward_model.enable=true`` with a GenRM), it
  passes ``reward_router_address`` (``host:port`` of its router in front of the model's
  OpenAI-compatible servers) to every call. The judge is then that endpoint:
  ``openai:<model>`` at ``http://<address>/v1``, the model being ``judge_model`` (or the model of
  ``judge = "openai:MODEL"``), else the one the router lists at ``/v1/models``. A local judge spec or
  a ``base_url`` together with a router address is an error naming both.
* One judge per node: verl's ``reward.num_workers`` actors would each build their own judge. With
  ``server = "http://127.0.0.1:8000"`` (or ``RUBRIX_SERVER``) they post their samples to one
  ``rubrix serve`` on the node instead (:class:`~rubrix.integrations.remote.ServerReward`), which
  holds the one judge and merges every worker's samples into its batches.

Versions: the file form (``custom_reward_function.path=/path/to/file.py``) works in every verl;
``compute_score`` is async, which verl awaits from 0.6.1 (use ``compute_score_sync`` before);
the ``pkg://rubrix.integrations.verl`` form needs verl >= 0.7.0; the keys live under ``reward.``
from 0.7.1 (top-level ``custom_reward_function`` before).

verl does not pass the prompt. Put it in ``extra_info["question"]`` (text) or
``extra_info["prompt"]`` (text or chat messages) at preprocessing time, as verl's own gsm8k example
does. With a run rubric, ``ground_truth`` (when a string) is shown to the judge as the reference
answer. Without one, ``ground_truth`` holds the row's rubric (a JSON list of items or a rubric
object) — or put the rubric in ``extra_info["rubric"]``.

Configuration: either :func:`make_compute_score` in your own file, or point verl straight at this
module's :func:`compute_score` (``custom_reward_function.path=pkg://rubrix.integrations.verl``,
``name=compute_score``) and configure it with ``reward_kwargs`` (``rubric``, ``judge``, ``judge_model``,
``failure``, ``breaker``, ``base_url``, ``length_penalty``, ``length_shaping``, ``cache``,
``deadline_s``, ``concurrency``) or the environment
variables ``RUBRIX_RUBRIC``, ``RUBRIX_JUDGE``, ``RUBRIX_FAILURE``, ``RUBRIX_BREAKER``,
``RUBRIX_BASE_URL``, ``RUBRIX_LENGTH_PENALTY``, ``RUBRIX_CACHE`` (``memory``, the default: in this
process only; ``1`` or a path: on disk; ``0``: none).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from .._paths import env_cache, env_float, env_str
from ..errors import UserError
from ..policy import CircuitOpenError, FailurePolicy, RewardFailure
from ..rewards import Reward, RewardItem, RubricReward
from .functionlike import FunctionLike
from .messages import completion_text, prompt_messages
from .remote import ServerReward

log = logging.getLogger("rubrix.integrations.verl")

CRITERION_PREFIX = "c_"
#: seconds a sample may take: below the 300 s ``reward.timeout`` of verl's ``rate_limited`` manager
DEFAULT_DEADLINE_S = 240.0
_CONFIG_KEYS = ("rubric", "judge", "judge_model", "failure", "breaker", "base_url", "length_penalty",
                "length_shaping", "cache", "deadline_s", "concurrency", "reward_router_address", "server")


class RewardRunStopped(BaseException):  # noqa: N818 - named for what it does to the run
    """The run must stop (the circuit breaker opened, or the ``raise`` policy met a failure).

    A ``BaseException`` on purpose: verl's ``rate_limited`` manager (and others) catch
    ``Exception`` and hand the trainer 0.0 instead, which is the very thing the breaker exists to
    prevent (a dead judge training the model on constants).
    """


def _policy_for_verl(failure: str) -> FailurePolicy:
    try:
        policy = FailurePolicy.parse(failure)
    except ValueError as exc:
        raise UserError(str(exc), field="failure") from None
    if policy.kind in ("none", "group_mean"):
        raise UserError(f"failure policy {policy} is not usable with verl: it needs a finite number for "
                        "every sample and passes one sample at a time without its group; use constant:X "
                        "or raise", field="failure")
    return policy


def _finite(x: float | None, fallback: float) -> float:
    return float(x) if x is not None and math.isfinite(x) else float(fallback)


class VerlComputeScore(FunctionLike):
    """verl's ``compute_score`` over a :class:`RubricReward`: a picklable async callable.

    ``await fn(data_source, solution_str, ground_truth, extra_info)`` returns one dict; :meth:`sync`
    is the same for synchronous callers; :meth:`batch` is the legacy batch-manager signature
    (plural names, a list of dicts); :attr:`keys` lists the keys every returned dict has.
    """

    def __init__(self, reward: RubricReward, fallback: float, prompt_fields: Sequence[str],
                 include_reasoning: bool):
        self.__name__ = "compute_score"
        self.rubrix = reward
        self.reward = reward
        self.fallback = fallback
        self.prompt_fields = tuple(prompt_fields)
        self.include_reasoning = include_reasoning
        self.keys = self._keys()

    def _keys(self) -> tuple[str, ...]:
        base = ("score", "rubrix_ok", "rubrix_imputed", "rubrix_error")
        ids = self.reward.criterion_ids
        if ids:
            return base + tuple(CRITERION_PREFIX + cid for cid in ids)
        return base + ("rubrix_failed_criteria",)

    def item(self, solution_str: Any, ground_truth: Any, extra_info: Any) -> RewardItem:
        info = extra_info if isinstance(extra_info, dict) else {}
        prompt: Any = ""
        for name in self.prompt_fields:
            if info.get(name) not in (None, ""):
                prompt = info[name]
                break
        rubric = self.reward.row_rubric(info.get("rubric"), "extra_info.rubric")
        if rubric is None and self.reward.rubric is None and isinstance(ground_truth, str) \
                and ground_truth.strip()[:1] not in ("", "[", "{"):
            rubric = self.reward.row_rubric(ground_truth, "ground_truth")  # a rubric name or file
            label = None
        else:  # the same label reading as OpenRLHF's labels and the server
            label = self.reward.parse_label(ground_truth, "ground_truth")
            rubric = rubric or label.rubric
        if rubric is None and self.reward.rubric is None:
            raise UserError("no rubric for this sample: configure one (rubric=... / RUBRIX_RUBRIC) "
                            "or put the row's rubric in ground_truth or extra_info['rubric']", field="rubric")
        reference = info.get("reference")
        if reference in (None, "") and label is not None:
            reference = label.reference
        return RewardItem(prompt=prompt_messages(prompt),
                          response=completion_text(solution_str, include_reasoning=self.include_reasoning),
                          rubric=rubric, reference=None if reference in (None, "") else str(reference),
                          group_id=label.group_id if label is not None else None,
                          id=str(info.get("index", "0")))

    def to_dict(self, r: Reward) -> dict[str, float]:
        out = {"score": _finite(r.reward, self.fallback), "rubrix_ok": 1.0 if r.ok else 0.0,
               "rubrix_imputed": 1.0 if r.imputed else 0.0, "rubrix_error": 0.0}
        ids = self.reward.criterion_ids
        if ids:
            for cid in ids:
                out[CRITERION_PREFIX + cid] = _finite(r.criteria.get(cid), 0.0)
        else:
            # failed criteria only: a criterion that does not apply (N/A) is no failure
            failed = r.result.errors if r.result is not None else \
                {k: v for k, v in r.criteria.items() if v is None}
            out["rubrix_failed_criteria"] = float(len(failed))
        return out

    def errored(self, exc: BaseException) -> dict[str, float]:
        """The same keys for a sample that could not be scored at all (said in the log).

        It counts as a failure for the circuit breaker, so rows that all fail (no rubric
        configured, say) stop the run instead of training it on the fallback.
        """
        _say_once(f"verl sample not scored ({type(exc).__name__}: {exc}); it gets the fallback "
                  f"{self.fallback:g} with rubrix_ok = 0, rubrix_error = 1")
        try:
            self.reward.breaker.record([True], detail=f"{type(exc).__name__}: {exc}"[:200])
        except CircuitOpenError as stop:
            raise RewardRunStopped(str(stop)) from exc
        out = {k: 0.0 for k in self.keys}
        out.update(score=float(self.fallback), rubrix_error=1.0, rubrix_imputed=1.0)
        return out

    async def __call__(self, data_source: Any = None, solution_str: Any = "", ground_truth: Any = None,
                       extra_info: Any = None, **kwargs: Any) -> dict[str, float]:
        try:
            [result] = await self.reward.ascore([self.item(solution_str, ground_truth, extra_info)])
        except (CircuitOpenError, RewardFailure) as exc:
            raise RewardRunStopped(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - one sample must not swap verl's keys
            return self.errored(exc)
        return self.to_dict(result)

    def sync(self, data_source: Any = None, solution_str: Any = "", ground_truth: Any = None,
             extra_info: Any = None, **kwargs: Any) -> dict[str, float]:
        """The same, for verl's managers that only call synchronous functions (``remote``, ``prime``)."""
        try:
            [result] = self.reward.score([self.item(solution_str, ground_truth, extra_info)])
        except (CircuitOpenError, RewardFailure) as exc:
            raise RewardRunStopped(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001
            return self.errored(exc)
        return self.to_dict(result)

    def batch(self, data_sources: Sequence[Any], solution_strs: Sequence[Any], ground_truths: Sequence[Any],
              extra_infos: Sequence[Any] | None = None, **kwargs: Any) -> list[dict[str, float]]:
        """Legacy ``batch`` reward manager: plural arguments, one dict per sample, one judge batch."""
        infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
        items: list[RewardItem | BaseException] = []
        for s, g, e in zip(solution_strs, ground_truths, infos, strict=True):
            try:
                items.append(self.item(s, g, e))
            except Exception as exc:  # noqa: BLE001
                items.append(exc)
        good = [i for i in items if isinstance(i, RewardItem)]
        try:
            results = iter(self.reward.score(good)) if good else iter(())
        except (CircuitOpenError, RewardFailure) as exc:
            raise RewardRunStopped(str(exc)) from exc
        return [self.errored(i) if isinstance(i, BaseException) else self.to_dict(next(results))
                for i in items]


_SAID: dict[str, float] = {}


def _say_once(message: str, every_s: float = 30.0) -> None:
    key = message[:120]
    now = time.monotonic()
    if now - _SAID.get(key, -1e9) >= every_s:
        _SAID[key] = now
        log.error("%s", message)


def make_compute_score(rubric: Any = None, judge: Any = None, *, failure: str = "constant:0",
                       breaker: float | None = 0.5, prompt_fields: Sequence[str] = ("question", "prompt",
                                                                                     "raw_prompt"),
                       include_reasoning: bool = False, reward: RubricReward | None = None,
                       deadline_s: float | None = DEFAULT_DEADLINE_S, **options: Any) -> VerlComputeScore:
    """Build a verl ``compute_score`` for a rubric and a judge (see the module docstring).

    Use it in the file verl loads::

        from rubrix.integrations.verl import make_compute_score
        compute_score = make_compute_score("helpfulness", judge="openai:gpt-4.1-mini")

    The result is an async callable that ``inspect.iscoroutinefunction`` recognises (verl awaits
    async reward functions on its worker loop) and that pickles (verl's reward workers are Ray
    actors). ``compute_score.sync`` and ``compute_score.batch`` cover verl's synchronous and legacy
    batch managers, and ``compute_score.keys`` lists the keys every returned dict has.
    """
    policy = _policy_for_verl(failure)
    fallback = policy.value if policy.kind == "constant" else 0.0
    core = reward or RubricReward(rubric, judge, failure=str(policy), fallback=fallback, breaker=breaker,
                                  deadline_s=deadline_s, **options)
    return VerlComputeScore(core, float(fallback or 0.0), prompt_fields, include_reasoning)


# ------------------------------------------------------------------------------------------------
# module-level entry point configured by reward_kwargs or environment variables

_SCORERS: dict[tuple, VerlComputeScore] = {}
_LOCK = threading.Lock()


def _config(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``reward_kwargs`` first, then ``RUBRIX_*`` variables (read by :mod:`rubrix._paths`)."""
    env = {"rubric": env_str("RUBRIX_RUBRIC"), "judge": env_str("RUBRIX_JUDGE"), "judge_model": None,
           "failure": env_str("RUBRIX_FAILURE"), "breaker": env_float("RUBRIX_BREAKER", 0.5),
           "base_url": env_str("RUBRIX_BASE_URL"), "length_penalty": env_str("RUBRIX_LENGTH_PENALTY"),
           "length_shaping": env_str("RUBRIX_LENGTH_SHAPING"), "cache": env_cache("RUBRIX_CACHE", "memory"),
           "deadline_s": env_float("RUBRIX_DEADLINE_S", DEFAULT_DEADLINE_S), "concurrency": None,
           "reward_router_address": None, "server": env_str("RUBRIX_SERVER")}
    cfg = {k: (kwargs[k] if kwargs.get(k) is not None else env[k]) for k in _CONFIG_KEYS}
    breaker = cfg["breaker"]
    if isinstance(breaker, str):
        cfg["breaker"] = None if breaker.strip().lower() in ("", "none", "off") else float(breaker)
    if isinstance(cfg["cache"], str) and cfg["cache"].strip().lower() in ("0", "false", "no", "off"):
        cfg["cache"] = False
    return cfg


def judge_for(cfg: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The judge spec and options of a configuration; verl's router address makes it that endpoint."""
    options: dict[str, Any] = {"base_url": cfg["base_url"]} if cfg.get("base_url") else {}
    if cfg.get("concurrency"):
        options["judge_concurrency"] = int(cfg["concurrency"])
    judge = cfg.get("judge")
    router = cfg.get("reward_router_address")
    if not router:
        if cfg.get("judge_model"):
            judge = f"openai:{cfg['judge_model']}"
        return judge, options
    kind, _, model = (judge or "").partition(":")
    if judge and kind != "openai":
        raise UserError(f"verl passes reward_router_address {router} (it runs the judge model itself), but "
                        f"judge = {judge!r} is a local judge; remove judge or reward.reward_model",
                        field="judge")
    if cfg.get("base_url"):
        raise UserError(f"verl passes reward_router_address {router}, and base_url = {cfg['base_url']!r} "
                        "names another endpoint; remove base_url", field="base_url")
    if model and cfg.get("judge_model") and model != cfg["judge_model"]:
        raise UserError(f"judge = {judge!r} and judge_model = {cfg['judge_model']!r} differ",
                        field="judge_model")
    base_url = f"http://{router}/v1"
    model = model or cfg.get("judge_model") or _served_model(base_url)
    return f"openai:{model}", {**options, "base_url": base_url}


def _served_model(base_url: str) -> str:
    """The model an OpenAI-compatible server (verl's GenRM router) lists first at ``/models``."""
    import httpx

    try:
        data = httpx.get(f"{base_url}/models", timeout=30).json()["data"]
        return str(data[0]["id"])
    except Exception as exc:  # noqa: BLE001 - any failure means the same: say which model to use
        raise UserError(f"cannot read the judge model from {base_url}/models ({type(exc).__name__}: {exc}); "
                        "set reward_kwargs.judge_model to the served model name",
                        field="judge_model") from None


def scorer_from_config(**kwargs: Any) -> VerlComputeScore:
    """The (cached) scorer for a configuration given as keyword arguments, else the environment."""
    cfg = _config(kwargs)
    key = tuple(str(cfg[k]) for k in _CONFIG_KEYS)
    with _LOCK:
        found = _SCORERS.get(key)
        if found is not None:
            return found
        if cfg["server"]:  # one judge per node: a rubrix serve the workers share
            if cfg["judge"] or cfg["base_url"] or cfg["reward_router_address"]:
                raise UserError("server = ... judges in the rubrix server; judge, base_url and verl's reward "
                                "model belong to that server's command line, not here", field="server")
            deadline = float(cfg["deadline_s"]) if cfg["deadline_s"] else None
            core = ServerReward(cfg["server"], cfg["rubric"], failure=cfg["failure"] or "constant:0",
                                breaker=cfg["breaker"], deadline_s=deadline)
            scorer = make_compute_score(failure=cfg["failure"] or "constant:0",
                                        reward=core)  # type: ignore[arg-type]
            _SCORERS[key] = scorer
            return scorer
        judge, options = judge_for(cfg)
        scorer = make_compute_score(cfg["rubric"], judge, failure=cfg["failure"] or "constant:0",
                                    breaker=cfg["breaker"], length_penalty=cfg["length_penalty"] or None,
                                    length_shaping=cfg["length_shaping"] or None, cache=cfg["cache"],
                                    deadline_s=float(cfg["deadline_s"]) if cfg["deadline_s"] else None,
                                    **options)
        _SCORERS[key] = scorer
        return scorer


async def compute_score(data_source: Any = None, solution_str: Any = "", ground_truth: Any = None,
                        extra_info: Any = None, **kwargs: Any) -> dict[str, float]:
    """verl's ``compute_score``, configured by ``reward_kwargs`` or ``RUBRIX_*`` variables.

    Returns ``{"score", "rubrix_ok", "rubrix_imputed", "rubrix_error", "c_<criterion>"...}`` (same
    keys every call, finite floats only). ``reward_router_address`` (passed by verl when it runs
    the judge model) makes that endpoint the judge; ``reward_model_tokenizer`` is not needed.
    """
    kwargs.pop("reward_model_tokenizer", None)
    return await scorer_from_config(**kwargs)(data_source, solution_str, ground_truth, extra_info)


def compute_score_sync(data_source: Any = None, solution_str: Any = "", ground_truth: Any = None,
                       extra_info: Any = None, **kwargs: Any) -> dict[str, float]:
    """Synchronous :func:`compute_score` for verl's ``remote`` manager, which refuses async functions."""
    kwargs.pop("reward_model_tokenizer", None)
    return scorer_from_config(**kwargs).sync(data_source, solution_str, ground_truth, extra_info)


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[Any],
                        ground_truths: Sequence[Any], extra_infos: Sequence[Any] | None = None,
                        **kwargs: Any) -> list[dict[str, float]]:
    """verl's legacy ``batch`` manager signature (plural names)."""
    kwargs.pop("reward_model_tokenizer", None)
    return scorer_from_config(**kwargs).batch(data_sources, solution_strs, ground_truths, extra_infos)


__all__ = ["CRITERION_PREFIX", "DEFAULT_DEADLINE_S", "RewardRunStopped", "VerlComputeScore", "compute_score",
           "compute_score_batch", "compute_score_sync", "judge_for", "make_compute_score",
           "scorer_from_config"]
