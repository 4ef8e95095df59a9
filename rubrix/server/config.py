"""The reward server's options and their defaults: one place, read by the app and by the CLI.

This module imports neither FastAPI nor the judge stack, so ``rubrix serve --help`` (and any
code that only wants the defaults) works without the ``[serve]`` extra. The batching and
failure defaults are the reward core's (:data:`rubrix.rewards.DEFAULTS`): the server is one more
shell over that core, and must not drift from the trainer adapters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import UserError
from ..policy import FailurePolicy
from ..rewards import DEFAULTS

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
#: samples one training step sends at once. OpenRLHF sends one HTTP request per sample, each on a
#: new connection, a whole step (``rollout.batch_size`` × ``n_samples_per_prompt``: 1,024 × 8 in
#: its larger recipes) at once; the queue, connection and backlog limits are sized from this
DEFAULT_STEP_SAMPLES = 8192
DEFAULT_MAX_QUEUE = DEFAULT_STEP_SAMPLES  # samples waiting for the judge; beyond it callers wait for room
CONNECTION_HEADROOM = 256  # connections beyond one step's: /metrics, /healthz, a second trainer process
BODY_BYTES_PER_SAMPLE = 64 * 1024  # held-body budget per sample of a step (an OpenRLHF query is a few KB)
DEFAULT_MAX_BATCH = DEFAULTS.max_batch  # samples per judge call
DEFAULT_BATCH_WINDOW_MS = DEFAULTS.window_ms
DEFAULT_DEADLINE_S = 60.0  # below every common trainer timeout except Oat (5 s) and AReaL (15 s)
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_FAILURE = DEFAULTS.failure
DEFAULT_BREAKER = DEFAULTS.breaker
DEFAULT_MIN_HELD_BYTES = 256 * 1024 * 1024
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class ServerConfig:
    """Everything the HTTP shell decides, plus the core options it passes on.

    ``token``: bearer token required on every route but ``/healthz``, ``/openapi.json`` and
    ``/docs`` (``None``: open). ``max_held_bytes``: budget for the bodies of all unanswered
    requests together (``None``: max(256 MiB, 4 × ``max_body_bytes``)). ``deadline_s``: the
    ceiling of every request's deadline (a request may ask for less with ``options.deadline_ms``).
    ``failure`` / ``breaker``: the core's failure policy and circuit breaker threshold (``None`` or
    0 turns the breaker off). ``eos_token`` / ``include_reasoning``: how ``/get_reward`` reads
    OpenRLHF queries.

    ``step_samples``: how many samples the trainer sends at once (one step); ``None`` limits are
    sized from it by :meth:`resolved`: ``max_queue`` (samples waiting for the judge; callers
    beyond it wait for room within their deadline), ``max_connections`` (open connections; uvicorn
    answers 503 beyond, so it must cover a whole step of one-request-per-sample clients) and
    ``backlog`` (the listen queue for connections not yet accepted).
    """

    token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_held_bytes: int | None = None
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    deadline_s: float = DEFAULT_DEADLINE_S
    step_samples: int = DEFAULT_STEP_SAMPLES
    max_queue: int | None = None
    max_connections: int | None = None
    backlog: int | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS
    batch_concurrency: int = 1
    failure: str = DEFAULT_FAILURE
    breaker: float | None = DEFAULT_BREAKER
    eos_token: str | None = None
    include_reasoning: bool = False

    @property
    def held_budget(self) -> int:
        return self.max_held_bytes or max(DEFAULT_MIN_HELD_BYTES, 4 * self.max_body_bytes,
                                          self.step_samples * BODY_BYTES_PER_SAMPLE)

    def resolved(self) -> ServerConfig:
        """The same with every limit left ``None`` sized from ``step_samples``."""
        n = self.step_samples
        return dataclasses.replace(
            self, max_queue=self.max_queue if self.max_queue is not None else n,
            max_connections=(self.max_connections if self.max_connections is not None
                             else n + CONNECTION_HEADROOM),
            backlog=self.backlog if self.backlog is not None else n)

    @property
    def policy(self) -> FailurePolicy:
        return FailurePolicy.parse(self.failure)

    def check(self) -> ServerConfig:
        """Refuse impossible settings with a :class:`UserError` naming the option; returns self."""
        try:
            FailurePolicy.parse(self.failure)
        except ValueError as exc:
            raise UserError(str(exc), field="failure") from None
        for name in ("step_samples", "max_body_bytes", "max_queue", "max_batch", "batch_concurrency",
                     "max_connections", "backlog"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"must be at least 1, got {value}", field=name)
        for name in ("deadline_s", "body_timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                raise UserError(f"must be a positive number of seconds, got {value}", field=name)
        if self.batch_window_ms < 0:
            raise UserError(f"must not be negative, got {self.batch_window_ms}", field="batch_window_ms")
        if self.max_held_bytes is not None and self.max_held_bytes < self.max_body_bytes:
            raise UserError(f"must be at least max_body_bytes ({self.max_body_bytes}), got "
                            f"{self.max_held_bytes}", field="max_held_bytes")
        return self

    @classmethod
    def split(cls, base: ServerConfig | None, options: dict) -> tuple[ServerConfig, dict]:
        """``base`` updated with the options that are config fields, and the options left over."""
        names = {f.name for f in dataclasses.fields(cls)}
        mine = {k: v for k, v in options.items() if k in names}
        rest = {k: v for k, v in options.items() if k not in names}
        config = dataclasses.replace(base or cls(), **mine)
        if config.token == "":
            config = dataclasses.replace(config, token=None)
        return config, rest


__all__ = ["DEFAULT_BATCH_WINDOW_MS", "DEFAULT_BODY_TIMEOUT_S", "DEFAULT_BREAKER", "DEFAULT_DEADLINE_S",
           "DEFAULT_FAILURE", "DEFAULT_MAX_BATCH", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_QUEUE",
           "DEFAULT_STEP_SAMPLES", "MAX_JSON_DEPTH", "ServerConfig"]
