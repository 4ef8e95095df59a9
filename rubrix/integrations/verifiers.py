"""verifiers (Prime Intellect): a rubrix rubric as a verifiers judge, rubric, or criteria file.

verifiers changed shape between releases, so this module covers both:

* **verifiers ≥ 0.4 (``verifiers.v1``)**: a plugged judge implements
  ``async score(task, trace) -> float``; a judge that raises errors the rollout, which prime-rl then
  drops from training ("a judge failure must error the rollout, not score the model"). :func:`as_judge`
  builds such a judge around a rubrix rubric; the default failure policy is therefore ``raise``. Per
  criterion values are recorded as trace metrics ``<judge name>/<criterion id>``.
  To plug it by config (``--taskset.task.judges``), verifiers imports the judge id as a top-level
  module and takes the ``Judge`` subclass from its ``__all__``; rubrix's wheel ships that module
  (``rubrix_judge``), so the id ``rubrix-judge`` works with nothing of the user's own. It is
  configured the way verifiers' own judges are — ``model``, ``base_url``, ``api_key_var``,
  ``headers``, ``sampling`` name the OpenAI-compatible judge endpoint (:func:`judge_settings`
  maps them onto rubrix's ``openai:`` judge) — plus ``rubric``::

      judges = [{id = "rubrix-judge", rubric = "helpfulness", model = "gpt-4.1-mini",
                 base_url = "https://api.openai.com/v1", api_key_var = "OPENAI_API_KEY"}]

  ``rubrix_judge = "embedded"`` (or ``embedded:0.5b``, ``hf:PATH``, ``fake``) judges locally
  instead; combined with endpoint fields that is an error, never a silent choice between them,
  and so is a field or a sampling option rubrix does not support.
* **verifiers < 0.4 (classic ``vf.Rubric``)**: :func:`as_rubric` returns a ``vf.Rubric`` with one
  weighted reward function and weight-0 metric functions per criterion, all sharing one judgment
  cached in ``state["rubrix"]``. The classic rubric turns an exception into 0.0, so the default
  policy there is ``constant:0`` with a ``rubrix_ok`` metric.
* Without rubrix at training time: :func:`criteria_file` converts a rubric into the criteria file
  of verifiers' built-in ``RubricJudge`` (``rubrix export --to verifiers``).

verifiers is imported lazily; without it these functions raise
:class:`~rubrix.errors.MissingExtraError`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ..errors import MissingExtraError, UserError
from ..rewards import RewardItem, RubricReward
from ..rubric import Rubric, load_rubric, slugify
from .messages import completion_text, prompt_messages

_CORES: dict[tuple, RubricReward] = {}
_LOCK = threading.Lock()


def _require_v1() -> Any:
    try:
        import verifiers.v1 as vf  # noqa: F401
    except ImportError:
        raise MissingExtraError("the verifiers judge", "verifiers", "verifiers") from None
    return vf


def _core(rubric: Any, judge: Any, failure: str, options: dict[str, Any]) -> RubricReward:
    """One :class:`RubricReward` per configuration: verifiers builds judges anew for every rollout."""
    key = (id(rubric) if isinstance(rubric, Rubric | dict) else rubric,
           id(judge) if judge is not None and not isinstance(judge, str) else judge, failure,
           json.dumps(options, sort_keys=True, default=str))
    with _LOCK:
        core = _CORES.get(key)
        if core is None:
            core = RubricReward(rubric, judge, failure=failure, **options)
            _CORES[key] = core
        return core


# ------------------------------------------------------------------------------------------------
# verifiers >= 0.4: a v1 Judge


ENDPOINT_FIELDS = ("model", "base_url", "api_key_var", "headers", "sampling")
#: verifiers ``sampling`` keys and the :class:`~rubrix.judges.openai.OpenAIJudge` option each maps to
SAMPLING_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed"}
_LOCAL_KINDS = ("embedded", "hf", "fake")


def judge_settings(rubrix_judge: str, fields: dict[str, Any], given: set[str],
                   api_key: str | None = None) -> tuple[str, dict[str, Any]]:
    """rubrix's judge spec and options from a verifiers judge config (see the module docstring).

    ``fields`` holds the config's ``model``, ``base_url``, ``headers`` and ``sampling`` (a dict);
    ``given`` names the fields the user set; ``api_key`` is what verifiers resolved from
    ``api_key_var``. An empty ``rubrix_judge`` means verifiers' own convention: an
    OpenAI-compatible endpoint. Raises :class:`ValueError` (verifiers reports it as a config
    error) for a local judge combined with endpoint fields, and for sampling options rubrix's
    judge does not take.
    """
    spec = (rubrix_judge or "").strip()
    kind, _, arg = spec.partition(":")
    if spec and kind in _LOCAL_KINDS:
        clash = [f for f in ENDPOINT_FIELDS if f in given]
        if clash:
            raise ValueError(f"rubrix_judge = {spec!r} judges locally, but {', '.join(clash)} "
                             f"{'configures' if len(clash) == 1 else 'configure'} an OpenAI-compatible "
                             "endpoint; remove one or the other")
        return spec, {}
    if spec and kind != "openai":
        raise ValueError(f"rubrix_judge = {spec!r}: use embedded, embedded:0.5b, hf:PATH, fake, "
                         "openai:MODEL, or leave it empty and set model / base_url like any verifiers judge")
    model = str(fields.get("model") or "")
    if arg and "model" in given and model != arg:
        raise ValueError(f"rubrix_judge = {spec!r} and model = {model!r} name different models; keep one")
    model = arg or model
    if not model:
        raise ValueError("no judge model: set model (the endpoint's model name)")
    options: dict[str, Any] = {"base_url": str(fields["base_url"])} if fields.get("base_url") else {}
    if api_key is not None:
        options["api_key"] = api_key
    headers = dict(fields.get("headers") or {})
    if headers:
        options["headers"] = {str(k): str(v) for k, v in headers.items()}
    for key, value in (fields.get("sampling") or {}).items():
        if value is None:
            continue
        if key not in SAMPLING_OPTIONS:
            why = ("rubrix sets each verdict's token budget itself"
                   if key in ("max_tokens", "max_completion_tokens") else "rubrix's judge does not send it")
            raise ValueError(f"sampling.{key} is not supported by the rubrix judge ({why}); supported: "
                             f"{', '.join(SAMPLING_OPTIONS)}")
        options[SAMPLING_OPTIONS[key]] = value
    return f"openai:{model}", options


def _build_classes() -> tuple[type, type]:
    vf = _require_v1()
    from pydantic import ConfigDict, PrivateAttr, model_validator
    from verifiers.v1.configs.client import resolve_api_key
    from verifiers.v1.configs.judge import JudgeConfig
    from verifiers.v1.judge import judge_question, judge_response

    class RubrixJudgeConfig(JudgeConfig):
        """Config of :class:`RubrixJudge`: the judge endpoint as verifiers configures judges
        (``model``, ``base_url``, ``api_key_var``, ``headers``, ``sampling``), the rubric, what a
        failure does. Unknown fields are an error."""

        model_config = ConfigDict(extra="forbid")

        rubric: str = "helpfulness"
        """A rubric file or built-in rubric name."""
        rubrix_judge: str = ""
        """Empty: the OpenAI-compatible endpoint of model / base_url (verifiers' convention). Or a
        local rubrix judge: embedded, embedded:0.5b, hf:PATH, fake."""
        failure: str = "raise"
        """raise (error the rollout; prime-rl drops it), constant:X or none-as-raise."""
        question_field: str = ""
        """Task field holding the question; empty = the task prompt as text."""
        view: str = "last_reply"
        """last_reply (the final answer) or full_trace (the whole transcript)."""

        # the fields the user wrote (verifiers' own validators fill base_url and headers in later)
        _given: set = PrivateAttr(default_factory=set)

        def rubrix_settings(self) -> tuple[str, dict[str, Any]]:
            """rubrix's judge spec and options for this config (:func:`judge_settings`)."""
            fields = {"model": self.model, "base_url": self.base_url, "headers": dict(self.headers),
                      "sampling": self.sampling.model_dump(exclude_none=True)}
            spec = (self.rubrix_judge or "").strip()
            local = spec.partition(":")[0] in _LOCAL_KINDS
            return judge_settings(spec, fields, self._given, None if local else resolve_api_key(self))

        @model_validator(mode="wrap")
        @classmethod
        def _check_rubrix(cls, data: Any, handler: Any) -> RubrixJudgeConfig:
            config = handler(data)
            if isinstance(data, dict):
                config._given = set(data)
            elif isinstance(data, JudgeConfig):
                config._given = set(data.model_fields_set)
            config.rubrix_settings()  # a wrong combination fails when the config is read, not mid-run
            return config

    class RubrixJudge(vf.Judge[str, RubrixJudgeConfig]):
        """Scores a trace with a rubrix rubric; returns the rubric reward, records criteria as metrics."""

        _reward: RubricReward | None = None

        def _rubric_reward(self) -> RubricReward:
            if self._reward is not None:
                return self._reward
            cfg = self.config
            spec, options = cfg.rubrix_settings()
            failure = "raise" if cfg.failure in ("", "none") else cfg.failure
            return _core(cfg.rubric, spec, failure, options)

        async def score(self, task: Any, trace: Any) -> float:
            core = self._rubric_reward()
            question = judge_question(task, self.config.question_field)
            response = judge_response(trace, self.config.view)  # type: ignore[arg-type]
            [result] = await core.ascore([RewardItem(prompt=question, response=response)])
            for cid, value in result.criteria.items():
                if value is not None:
                    trace.record_metric(f"{self.reward_name}/{cid}", value)
            if result.reward is None:
                raise RuntimeError(f"rubrix judge failed ({result.status}): {result.error}")
            return float(result.reward)

    RubrixJudge.__module__ = RubrixJudgeConfig.__module__ = __name__
    return RubrixJudge, RubrixJudgeConfig


_CLASSES: dict[str, type] = {}


def __getattr__(name: str) -> Any:  # lazy: importing this module must not import verifiers
    if name in ("RubrixJudge", "RubrixJudgeConfig"):
        if not _CLASSES:
            judge_cls, config_cls = _build_classes()
            _CLASSES.update(RubrixJudge=judge_cls, RubrixJudgeConfig=config_cls)
        return _CLASSES[name]
    raise AttributeError(name)


def as_judge(rubric: str | Rubric | dict = "helpfulness", judge: Any = None, *, failure: str = "raise",
             name: str = "rubrix", weight: float = 1.0, question_field: str = "", view: str = "last_reply",
             **options: Any) -> Any:
    """A ``verifiers.v1`` judge instance scoring with a rubrix rubric (see the module docstring).

    ``failure="raise"`` errors the rollout on a failed judgment (verifiers' own rule); a
    ``constant:X`` policy returns X instead. ``judge`` is a rubrix judge spec or object and
    ``options`` go to :class:`RubricReward` (``base_url``, ``headers`` ...): this is the Python
    form; the config form (``id = "rubrix-judge"``) takes verifiers' judge fields instead.
    """
    judge_cls = __getattr__("RubrixJudge")
    config_cls = __getattr__("RubrixJudgeConfig")
    config = config_cls(id="rubrix-judge", name=name, weight=weight,
                        rubric=rubric if isinstance(rubric, str) else "<object>",
                        rubrix_judge=judge if isinstance(judge, str) and judge else "embedded",
                        failure=failure, question_field=question_field, view=view)
    instance = judge_cls(config)
    instance._reward = _core(rubric, judge, failure, options)
    return instance


# ------------------------------------------------------------------------------------------------
# verifiers < 0.4: a classic vf.Rubric


def as_rubric(rubric: str | Rubric | dict, judge: Any = None, *, failure: str = "constant:0",
              weight: float = 1.0, metrics: bool = True, include_reasoning: bool = False,
              **options: Any) -> Any:
    """A classic ``vf.Rubric`` (verifiers < 0.4): one weighted rubrix reward plus per-criterion metrics.

    The reward function is ``async def rubrix_<rubric>(prompt, completion, answer, state)``; the
    metric functions (weight 0) read the same judgment from ``state["rubrix"]``, so the judge is
    asked once per rollout. ``answer`` is shown to the judge as the reference answer.
    """
    try:
        from verifiers import Rubric as ClassicRubric  # type: ignore[attr-defined]
    except ImportError:
        try:
            import verifiers.v1  # noqa: F401
        except ImportError:
            raise MissingExtraError("the verifiers rubric", "verifiers", "verifiers") from None
        raise UserError("this verifiers release has no classic vf.Rubric (verifiers >= 0.4); "
                        "use rubrix.integrations.verifiers.as_judge() instead", field="verifiers") from None
    core = _core(rubric, judge, failure, options)
    slug = slugify(core.name, fallback="rubric", max_len=80)

    async def _result(prompt: Any, completion: Any, answer: Any, state: dict) -> Any:
        cached = state.get("rubrix") if isinstance(state, dict) else None
        if cached is not None:
            return cached
        reference = answer if isinstance(answer, str) and answer.strip() else None
        [result] = await core.ascore([RewardItem(prompt=prompt_messages(prompt),
                                                 response=completion_text(completion,
                                                                          include_reasoning=include_reasoning),
                                                 reference=reference)])
        if isinstance(state, dict):
            state["rubrix"] = result
        return result

    async def reward(prompt: Any, completion: Any, answer: Any = "", state: Any = None) -> float:
        result = await _result(prompt, completion, answer, state if state is not None else {})
        if result.reward is None:
            raise RuntimeError(f"rubrix judge failed ({result.status}): {result.error}")
        return float(result.reward)

    reward.__name__ = reward.__qualname__ = f"rubrix_{slug}"
    funcs: list[Any] = [reward]
    weights = [float(weight)]

    async def ok(prompt: Any, completion: Any, answer: Any = "", state: Any = None) -> float:
        result = await _result(prompt, completion, answer, state if state is not None else {})
        return 1.0 if result.ok else 0.0

    ok.__name__ = ok.__qualname__ = "rubrix_ok"
    funcs.append(ok)
    weights.append(0.0)
    if metrics:
        for cid in core.criterion_ids:
            def make(criterion_id: str) -> Any:
                async def metric(prompt: Any, completion: Any, answer: Any = "", state: Any = None) -> float:
                    result = await _result(prompt, completion, answer, state if state is not None else {})
                    value = result.criteria.get(criterion_id)
                    return 0.0 if value is None else float(value)

                metric.__name__ = metric.__qualname__ = f"rubrix_{slug}__{criterion_id}"
                return metric

            funcs.append(make(cid))
            weights.append(0.0)
    return ClassicRubric(funcs=funcs, weights=weights)


# ------------------------------------------------------------------------------------------------
# the RubricJudge criteria file (no verifiers needed)


def criteria_file(rubric: str | Rubric | dict) -> dict[str, Any]:
    """verifiers' ``RubricJudge`` criteria (``{"criteria": [{name, text, weight, choices}]}``).

    ``RubricJudge`` scores ``Σ w·pos(verdict)/(n_choices − 1) / Σ w`` with weights ≥ 0 and choices
    ordered worst → best. The conversion:

    * a positive binary criterion → ``choices = ["no", "yes"]``, ``weight = w``;
    * a pitfall (``w < 0``, met = fault present) → ``choices = ["yes", "no"]`` (present is worst),
      ``weight = |w|``;
    * a 1..5 scale → ``choices = ["1", ..., "5"]`` with the level descriptors in the text.

    The score is then ``(Σ_{met, w>0} w + Σ_{absent pitfalls} |w|) / Σ|w|``: pitfalls count in the
    denominator, unlike rubrix's HealthBench ``weighted`` (where an avoided pitfall adds nothing),
    so the two agree on the order of responses but not on the numbers. A principles-only rubric
    becomes one criterion per principle, weight 1.
    """
    r = load_rubric(rubric)
    items: list[dict[str, Any]] = []
    if not r.criteria:
        for i, principle in enumerate(r.principles, 1):
            items.append({"name": f"principle_{i}", "weight": 1.0, "choices": ["no", "yes"],
                          "text": f"The response follows this principle: {principle}"})
    for c in r.criteria:
        if c.is_scale:
            levels = "; ".join(f"{k} = {v.rstrip('.')}" for k, v in sorted(c.scale.items()))
            items.append({"name": c.id, "text": f"{c.text} (levels — {levels})", "weight": abs(c.weight),
                          "choices": [str(k) for k in sorted(c.scale)]})
        elif c.weight < 0:
            items.append({"name": c.id, "text": c.text, "weight": abs(c.weight), "choices": ["yes", "no"]})
        else:
            items.append({"name": c.id, "text": c.text, "weight": c.weight, "choices": ["no", "yes"]})
    return {"criteria": items}


def criteria_toml(data: dict[str, Any], *, header: str = "") -> str:
    """TOML text of :func:`criteria_file`'s result (JSON string escapes are valid TOML basic strings)."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    for item in data["criteria"]:
        if lines:
            lines.append("")
        lines.append("[[criteria]]")
        lines.append(f"name = {json.dumps(item['name'], ensure_ascii=False)}")
        lines.append(f"text = {json.dumps(item['text'], ensure_ascii=False)}")
        lines.append(f"weight = {float(item['weight'])!r}")
        choices = ", ".join(json.dumps(c, ensure_ascii=False) for c in item["choices"])
        lines.append(f"choices = [{choices}]")
    return "\n".join(lines) + "\n"


__all__ = ["ENDPOINT_FIELDS", "SAMPLING_OPTIONS", "as_judge", "as_rubric", "criteria_file", "criteria_toml",
           "judge_settings"]
