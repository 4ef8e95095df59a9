"""The HTTP reward server behind ``rubrix serve``: a thin shell over the one reward core.

Routes
------
* ``POST /v1/score`` — native: ``{"samples": [{id?, prompt, response, rubric?, group_id?,
  reference?}], "rubric"?: {...} | "builtin-name", "options"?: {"deadline_ms", "on_fail"}}`` →
  ``{"results": [row, ...]}``, one row per sample in order, each shaped like
  :meth:`SampleResult.to_row`.
* ``POST /get_reward`` — OpenRLHF's remote reward model protocol: ``{"query", "prompts",
  "labels"}`` → ``{"rewards", "scores", "extra_logs"}``; every value finite, lists aligned with
  the input; read and answered by :class:`rubrix.integrations.openrlhf.OpenRLHFReward`, exactly
  as the python-file reward function reads and answers.
* ``GET /healthz`` (no token needed), ``GET /metrics`` (Prometheus text), ``GET /openapi.json``
  and ``GET /docs`` (a self-contained page; no CDN).

Why it is built this way
------------------------
RL trainers ask for rewards one sample per HTTP request (OpenRLHF, verl's streaming reward loop),
but a judge is fastest when it sees many samples at once. The reward core
(:class:`rubrix.rewards.RubricReward`) already merges concurrent calls into judge batches,
de-duplicates, applies the failure policy and the circuit breaker and keeps deadlines — for every
trainer adapter. The server is one more caller of that core, so it owns only what HTTP adds:
authentication, body limits, strict JSON, request validation, status codes and metrics.

Modules: :mod:`.config` (options and defaults; importable without FastAPI), :mod:`.app` (routes,
auth, the core's exceptions as status codes, ``serve``), :mod:`.body` (reading bodies within
limits, strict JSON), :mod:`.models` (request models, 422 field paths), :mod:`.metrics`
(prometheus_client), :mod:`.errors` (the error JSON), :mod:`.docs_page` (``/docs``).
"""

from __future__ import annotations

from typing import Any

from .config import (
    DEFAULT_BATCH_WINDOW_MS,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_BREAKER,
    DEFAULT_DEADLINE_S,
    DEFAULT_FAILURE,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_STEP_SAMPLES,
    ServerConfig,
)


def __getattr__(name: str) -> Any:
    # create_app / serve pull in FastAPI and pydantic; the CLI imports the defaults above without them
    if name in ("create_app", "serve"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_BATCH_WINDOW_MS", "DEFAULT_BODY_TIMEOUT_S", "DEFAULT_BREAKER", "DEFAULT_DEADLINE_S",
           "DEFAULT_FAILURE", "DEFAULT_MAX_BATCH", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_QUEUE",
           "DEFAULT_STEP_SAMPLES", "ServerConfig", "create_app", "serve"]
