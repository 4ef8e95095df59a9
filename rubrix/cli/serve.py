"""``rubrix serve``: the HTTP reward server (:mod:`rubrix.server`), moved here as it was; its
defaults are the server's own constants."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..server import (
    DEFAULT_BATCH_WINDOW_MS,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_STEP_SAMPLES,
)
from ._common import (
    BaseUrlOpt,
    JudgeOpt,
    LengthShapingOpt,
    PromptsOpt,
    RelativeOpt,
    err,
    judge_options,
    with_judge_flags,
)


@with_judge_flags
def serve(
    rubric: Annotated[str | None, typer.Option("--rubric", "-r", help="default rubric (file or built-in "
                                               "name) for samples that bring none")] = None,
    judge: JudgeOpt = None,
    base_url: BaseUrlOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0 picks a free one)")] = 8000,
    token_env: Annotated[str | None, typer.Option(
        "--token-env", help="require 'Authorization: Bearer TOKEN', TOKEN read from this environment "
        "variable")] = None,
    max_batch: Annotated[int, typer.Option(help="samples per judge call")] = DEFAULT_MAX_BATCH,
    batch_window_ms: Annotated[float, typer.Option(
        help="how long an idle judge waits for more requests to batch together (0 and --max-batch 1: "
        "no batching)")] = DEFAULT_BATCH_WINDOW_MS,
    deadline_s: Annotated[float, typer.Option(
        help="per-request deadline; keep it below the trainer's timeout (samples not judged by then "
        "fail as 'timeout')")] = DEFAULT_DEADLINE_S,
    step_samples: Annotated[int, typer.Option(
        help="samples the trainer sends at once (one step: OpenRLHF rollout.batch_size x "
             "n_samples_per_prompt); the three limits below default to sizes that fit "
             "it")] = DEFAULT_STEP_SAMPLES,
    max_queue: Annotated[int | None, typer.Option(
        help="samples allowed to wait for the judge; callers beyond it wait for room within their "
             "deadline (default: --step-samples)")] = None,
    max_connections: Annotated[int | None, typer.Option(
        help="open connections (uvicorn's limit_concurrency; 503 beyond it) (default: --step-samples "
             "+ 256)")] = None,
    backlog: Annotated[int | None, typer.Option(
        help="listen backlog for connections not yet accepted (capped by the kernel's somaxconn) "
             "(default: --step-samples)")] = None,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body (413 "
                                                "beyond)")] = DEFAULT_MAX_BODY_BYTES,
    body_timeout_s: Annotated[float, typer.Option(help="time a client gets to send its body (408 "
                                                  "beyond)")] = DEFAULT_BODY_TIMEOUT_S,
    failure: Annotated[str, typer.Option(help="failed samples: none (reward null), constant:X, group_mean, "
                                         "or raise (502)")] = "none",
    breaker: Annotated[float, typer.Option(help="refuse substitute rewards (503) while more than this "
                                           "fraction of recent samples failed; 0 turns it off")] = 0.5,
    eos_token: Annotated[str | None, typer.Option(help="end-of-sequence token to strip from OpenRLHF "
                                                  "queries (default: the common ones)")] = None,
    include_reasoning: Annotated[bool, typer.Option("--include-reasoning", help="grade <think> blocks in "
                                                    "OpenRLHF responses too (default: drop them)")] = False,
    length_shaping: LengthShapingOpt = None,
    relative: RelativeOpt = None,
    mode: Annotated[str, typer.Option(help="criteria or checklist")] = "criteria",
    verdict: Annotated[str, typer.Option(help="auto, token or json")] = "auto",
    prompts: PromptsOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not use the verdict cache")] = False,
    cache_path: Annotated[Path | None, typer.Option(help="verdict cache file")] = None,
    hard: Annotated[bool, typer.Option("--hard", help="threshold verdicts at 0.5")] = False,
    concurrency: Annotated[int | None, typer.Option(help="requests in flight (openai judge)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
    judge_flags: dict | None = None,
) -> None:
    """Serve rewards over HTTP: POST /v1/score, POST /get_reward (OpenRLHF), GET /healthz, GET /metrics."""
    import os

    from ..server import serve as run_server

    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise UserError(f"environment variable {token_env} is not set or empty", field="--token-env")
    cache = False if no_cache else (str(cache_path) if cache_path else True)
    run_server(rubric, judge, host=host, port=port, token=token, max_batch=max_batch,
               batch_window_ms=batch_window_ms, deadline_s=deadline_s, step_samples=step_samples,
               max_queue=max_queue, max_connections=max_connections, backlog=backlog,
               max_body_bytes=max_body_bytes, body_timeout_s=body_timeout_s, failure=failure,
               breaker=breaker or None, eos_token=eos_token, include_reasoning=include_reasoning,
               mode=mode, verdict=verdict, prompts=str(prompts) if prompts else None, cache=cache, hard=hard,
               log_level=log_level, **({"length_shaping": length_shaping} if length_shaping else {}),
               **({"relative": relative} if relative else {}),
               on_ready=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True),
               **judge_options(base_url, concurrency, device, judge_flags))

