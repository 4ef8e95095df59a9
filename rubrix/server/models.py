"""The request (and documented response) shapes of the HTTP routes, as Pydantic models.

The models are the one description of what a request may hold: FastAPI puts them in
``/openapi.json``, and the routes validate every (already strictly parsed) body with them, so the
schema a client reads is the check it meets. Validation is strict (no ``"5"`` for 5, no 1 for
``"1"``, no ``true`` for a number) and the first error becomes a 422 naming the field as a path
into the request — ``samples[2].prompt[0].role`` — in the error shape of
:mod:`rubrix.server.errors`.

What the models do not check is left to the reward core on purpose: rubrics (built-in names,
inline objects, criteria lists) and OpenRLHF labels are read by :mod:`rubrix.labels`, the reader
every trainer adapter uses, so the server cannot accept a rubric that a training script refuses
(or the other way round).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from .._json import kind_of
from ..policy import FailurePolicy
from .errors import invalid


class Message(BaseModel):
    """One chat turn; other keys (``name``, tool metadata) are dropped: a judge prompt has no use for them."""

    model_config = ConfigDict(strict=True, extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str


def _prompt_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "chat"
    return None


_UNION_TAGS = {"prompt": ("text", "chat")}  # tags in error locations that are not part of the request path

Prompt = Annotated[
    Annotated[str, Tag("text")] | Annotated[list[Message], Tag("chat"), Field(min_length=1)],
    Discriminator(_prompt_kind, custom_error_type="prompt_type",
                  custom_error_message="must be text or a list of chat messages"),
    Field(description="text, or chat messages [{role, content}]"),
]


def _id_value(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PydanticCustomError("id_type", "must be a string or an integer, got {kind}",
                                  {"kind": kind_of(value)})
    return str(value)


Identifier = Annotated[str | None, PlainValidator(_id_value),
                       WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]})]

RubricValue = Annotated[Any, WithJsonSchema({
    "anyOf": [{"type": "string", "description": "a built-in rubric name (helpfulness, math, ...)"},
              {"type": "object", "description": "a rubric: {name?, criteria | principles, ...} "
                                                "(see `rubrix rubric schema`)"},
              {"type": "array", "items": {"type": "object"}, "description": "a list of criteria"},
              {"type": "null"}]}),
    Field(description="a built-in name, an inline rubric object or a list of criteria; a request never "
                      "makes the server read a file")]


class SampleIn(BaseModel):
    """One (prompt, response) to score. Other keys are allowed and ignored (they are the caller's)."""

    model_config = ConfigDict(strict=True, extra="ignore")
    id: Identifier = Field(None, description="echoed in the result row; defaults to the position")
    prompt: Prompt
    response: str
    rubric: RubricValue = None
    rubrics: RubricValue = Field(None, description="the same as rubric (HealthBench / RaR spelling)")
    group_id: Identifier = Field(None, description="samples of one group share a group_mean substitute")
    reference: str | None = Field(None, description="a reference answer shown to the judge")


class ScoreOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    deadline_ms: float | None = Field(None, gt=0, description="a tighter deadline for this request; the "
                                                              "server's deadline is the ceiling")
    on_fail: str | None = Field(None, description="failure policy for this request: none, constant:X, "
                                                  "group_mean or raise")

    @field_validator("on_fail")
    @classmethod
    def _policy(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                FailurePolicy.parse(value)
            except ValueError as exc:
                raise PydanticCustomError("failure_policy", str(exc)) from None
        return value


class ScoreRequest(BaseModel):
    """``POST /v1/score``. ``items`` is accepted as another name for ``samples``."""

    model_config = ConfigDict(strict=True, extra="forbid")
    samples: list[SampleIn] = Field(description="the samples to score (alias: items)")
    rubric: RubricValue = None
    rubric_id: str | None = Field(None, description="a built-in rubric name (the same as a string rubric)")
    options: ScoreOptions | None = None


class RewardRequest(BaseModel):
    """``POST /get_reward``: OpenRLHF's remote reward model protocol (other keys are ignored)."""

    model_config = ConfigDict(strict=True, extra="ignore")
    query: list[str] = Field(description="decoded prompt + response + EOS, one per sample")
    prompts: list[str] = Field(description="the templated prompts, aligned with query")
    labels: list[Any] | None = Field(None, description=(
        "per sample: '' (server rubric), a reference answer, criteria as JSON, or an object with rubric / "
        "rubric_id / reference / group_id"))


# -- answers (documentation only: the routes write them directly) ---------------------------------


class CriterionOut(BaseModel):
    p: float | None
    met: bool | None
    error: str | None
    level: float | None = Field(None, description="expected level of a 1..5 scale criterion")
    na: bool | None = Field(None, description="true: the criterion does not apply (neither met nor failed)")
    source: Literal["check"] | None = Field(None, description="'check': computed without a judge call")
    skipped: Literal["gate"] | None = Field(None, description="'gate': not judged, a failed checked gate "
                                                              "decided the reward")


class ResultRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    group_id: str | None = None
    reward: float | None
    reward_raw: float | None
    status: Literal["ok", "partial", "failed"]
    criteria: dict[str, CriterionOut]
    judge: str
    rubric_hash: str
    template_hash: str
    rubrix_version: str
    imputed_by: str | None = Field(None, description="the failure policy that supplied reward")


class ScoreResponse(BaseModel):
    results: list[ResultRow]


class RewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float] = Field(description="rewards clipped to [0, 1]")
    extra_logs: dict[str, list[float]] = Field(description="rubrix_ok, rubrix_imputed, rubrix/<criterion>")


class ErrorInfo(BaseModel):
    type: str
    field: str | None
    message: str


class ErrorResponse(BaseModel):
    error: ErrorInfo
    detail: str


# -- validation errors as 422 answers ---------------------------------------------------------------

_ALLOWED = {"": "samples (or items), rubric, rubric_id, options", "options": "deadline_ms, on_fail"}
_TYPES = {"string_type": "a string", "list_type": "a list", "model_type": "an object",
          "dict_type": "an object",
          "model_attributes_type": "an object", "float_type": "a number", "int_type": "an integer",
          "bool_type": "a boolean"}


def validate(model: type[BaseModel], body: Any, *, rename: dict[str, str] | None = None) -> Any:
    """``model`` from ``body``, or the 422 :class:`HTTPProblem` of its most telling error.

    ``rename`` maps a top-level field to the name the request used (``samples`` → ``items``).
    """
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    # an unknown key is the likeliest cause of the other errors (a misspelt field), so say it first
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    parts = _parts(error["loc"])
    if rename and parts and parts[0] in rename:
        parts[0] = rename[parts[0]]
    raise invalid(join_path(parts) or "<body>", _message(error, join_path(parts[:-1])))


def _parts(loc: tuple) -> list[str | int]:
    out: list[str | int] = []
    for item in loc:
        if isinstance(item, str) and out and item in _UNION_TAGS.get(str(out[-1]), ()):
            continue
        out.append(item)
    return out


def join_path(parts: list[str | int]) -> str:
    """``["samples", 2, "prompt", 0, "role"]`` → ``samples[2].prompt[0].role``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _message(error: dict[str, Any], parent: str) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
        allowed = _ALLOWED.get(parent)
        return f"unknown field (allowed: {allowed})" if allowed else "unknown field"
    if kind in _TYPES:
        return f"must be {_TYPES[kind]}, got {kind_of(value)}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}, got {_short(value)}"
    if kind in ("greater_than", "greater_than_equal"):
        return f"must be a positive number, got {_short(value)}" if ctx.get("gt") == 0 else \
            f"{error['msg'].lower()}, got {_short(value)}"
    if kind == "prompt_type":
        return f"must be text or a list of chat messages, got {kind_of(value)}"
    if kind == "too_short":
        return "must not be empty"
    return str(error["msg"])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def openapi_components() -> dict[str, Any]:
    """JSON Schemas of the request models, for ``components.schemas`` of the OpenAPI document."""
    out: dict[str, Any] = {}
    for model in (ScoreRequest, RewardRequest):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


__all__ = ["ErrorResponse", "Message", "RewardRequest", "RewardResponse", "SampleIn",
           "ScoreOptions", "ScoreRequest", "ScoreResponse", "join_path", "openapi_components", "validate"]
