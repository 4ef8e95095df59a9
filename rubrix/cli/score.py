"""``rubrix score``: score a samples file into result rows and a manifest (:func:`rubrix.runs.score_file`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import UserError
from ..runs import DEFAULT_BATCH_SIZE, DEFAULT_MAX_FAILURE_RATE, ENGINES
from ..scoring import Scorer
from ._common import (
    BaseUrlOpt,
    ExitCode,
    FieldOpt,
    JudgeOpt,
    LengthShapingOpt,
    PromptsOpt,
    RelativeOpt,
    default,
    err,
    judge_options,
    resume_command,
    with_judge_flags,
)
from ._common import out as _stdout


@with_judge_flags
def score(
    input: Annotated[str, typer.Argument(help="samples: JSONL, JSON, CSV or Parquet file; "
                                         "hf:PATH_OR_NAME[:split] (a datasets save_to_disk folder, "
                                         "data files, or the Hub); - for JSONL on stdin")],
    output: Annotated[str, typer.Option("--output", "-o", help="results: .jsonl, .parquet, or - for JSONL on "
                                        "stdout (one row per sample)")],
    rubric: Annotated[str | None, typer.Option("--rubric", "-r", help="rubric file or built-in name; "
                                               "optional when every row has its own rubric")] = None,
    judge: JudgeOpt = None,
    base_url: BaseUrlOpt = None,
    field: FieldOpt = None,
    fmt: Annotated[str | None, typer.Option("--format", help="input format: jsonl, json, csv or parquet "
                                            "(default: from suffix; jsonl for -)")] = None,
    mode: Annotated[str, typer.Option(help="criteria: one check per criterion; checklist: all in one call "
                                      "(cheaper, criteria may influence each "
                                      "other)")] = default(Scorer, "mode"),
    verdict: Annotated[str, typer.Option(help="auto, token (one-token answer, logprobs) or json (short "
                                         "rationale then verdict)")] = default(Scorer, "verdict"),
    prompts: PromptsOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="skip ids already in OUTPUT and append")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not read or write the verdict "
                                           "cache")] = False,
    cache_path: Annotated[Path | None, typer.Option(help="verdict cache file (default "
                                                    "~/.cache/rubrix/verdicts.sqlite)")] = None,
    batch_size: Annotated[int, typer.Option(help="samples per judge call and per "
                                            "flush")] = DEFAULT_BATCH_SIZE,
    limit: Annotated[int | None, typer.Option(help="score only the first N samples")] = None,
    hard: Annotated[bool, typer.Option("--hard", help="threshold verdicts at 0.5 instead of using "
                                       "probabilities")] = default(Scorer, "hard"),
    concurrency: Annotated[int | None, typer.Option(help="requests in flight (openai judge)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
    engine: Annotated[str, typer.Option(help="local, or ray: the same scoring on a Ray cluster, one judge "
                                        "per actor (RAY_ADDRESS or --ray-address; local Ray if "
                                        "none)")] = ENGINES[0],
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (engine ray)")] = None,
    ray_actors: Annotated[int | None, typer.Option(help="judge actors (engine ray; default: one per "
                                                   "GPU, or 1)")] = None,
    length_shaping: LengthShapingOpt = None,
    relative: RelativeOpt = None,
    max_failure_rate: Annotated[str, typer.Option(help="exit 3 when more than this share of samples (0..1) "
                                                  "failed; 1 or 'all': only when every sample failed; 'off': "
                                                  "never")] = "all",
    keep_rationale: Annotated[bool, typer.Option("--keep-rationale", help="keep the judge's reasoning "
                                                 "(--think, reasoning models) in each criterion of the "
                                                 "row")] = default(Scorer, "keep_rationale"),
    judge_flags: dict | None = None,
) -> None:
    """Score every sample against a rubric and write one reward row per sample, plus a manifest."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .._paths import manifest_path
    from ..groupwise import GroupRewards
    from ..records import FieldMap
    from ..runs import failure_reason, make_engine, score_file

    threshold = parse_failure_rate(max_failure_rate)
    groups = GroupRewards.parse(length_shaping, relative)
    fields = FieldMap.parse(field or [])
    cache = False if no_cache else (str(cache_path) if cache_path else True)
    scorer = Scorer(rubric, judge, prompts=str(prompts) if prompts else None, mode=mode, verdict=verdict,
                    cache=cache, hard=hard, keep_rationale=keep_rationale,
                    **judge_options(base_url, concurrency, device, judge_flags))
    options = {"mode": mode, "verdict": verdict, "batch_size": batch_size, "hard": hard, "limit": limit,
               "fields": field or [], "prompts": str(prompts) if prompts else None, "cache": not no_cache,
               "engine": engine, "max_failure_rate": threshold, "keep_rationale": keep_rationale,
               **({"length_shaping": length_shaping} if length_shaping else {}),
               **({"relative": relative} if relative else {}),
               **{k: v for k, v in (judge_flags or {}).items() if k != "headers"}}
    scorer.preflight()  # a bad key or model: one line and exit 2 before anything is read or written
    run_engine = make_engine(engine, scorer, judge_options=judge_options(base_url, concurrency, device,
                                                                         judge_flags),
                             cache=cache, input_path=input, fmt=fmt, fields=fields, actors=ray_actors,
                             address=ray_address)
    progress = Progress(TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=err, transient=False)
    task = None
    state = {"done": 0}

    def on_start(total: int) -> None:
        nonlocal task
        progress.start()
        task = progress.add_task("score", total=total, rate="")

    def on_batch(results) -> None:
        state["done"] += len(results)
        elapsed = progress.tasks[0].elapsed or 1e-9
        progress.update(task, advance=len(results), rate=f"{state['done'] / elapsed:.2f} samples/s")

    try:
        summary = score_file(input, output, scorer=scorer, fields=fields, fmt=fmt, resume=resume,
                             batch_size=batch_size, limit=limit, options=options, on_start=on_start,
                             on_batch=on_batch, engine=run_engine, groups=groups)
    except KeyboardInterrupt:
        if output == "-":
            err.print("[yellow]interrupted[/]: the rows written so far went to standard output")
        else:
            err.print(f"[yellow]interrupted[/]: rows scored so far are in {escape(str(output))} and counted "
                      f"in its manifest. Resume with:\n  {escape(resume_command())}", soft_wrap=True)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        if task is not None:
            progress.stop()
        scorer.close()
    print_summary(summary, Path(output), manifest_path(output), console=err if output == "-" else _stdout)
    reason = failure_reason(summary, threshold)
    if reason is not None:
        err.print(f"[red]error[/]: {escape(reason)}", highlight=False, soft_wrap=True)
        raise typer.Exit(ExitCode.TOO_MANY_FAILURES)


def parse_failure_rate(value: str) -> float | None:
    """``--max-failure-rate``: a share in [0, 1], ``all`` (= 1: every sample failed) or ``off``."""
    text = str(value).strip().lower()
    if text == "all":
        return DEFAULT_MAX_FAILURE_RATE
    if text in ("off", "none", "never"):
        return None
    try:
        rate = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise UserError(f"must be a share from 0 to 1 (or 5%), 'all' or 'off'; got {value!r}",
                        field="--max-failure-rate")
    return rate


def print_summary(summary, output: Path, manifest: Path, console=None) -> None:
    """The end-of-run table: counts, mean reward, failures by type, cost, met rate per criterion.

    ``console``: stdout by default; stderr when the results themselves go to stdout (``-o -``).
    """
    out = console or _stdout
    data = summary.to_dict()
    table = Table(title="rubrix score — summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    mean = data["mean_reward_clipped"]
    std = data["bootstrap_std"]
    table.add_row("samples", f"{data['samples_scored']} scored, "
                             f"{data['samples_skipped_resume']} skipped (resume)")
    table.add_row("status", ", ".join(f"{k} {v}" for k, v in sorted(data["status"].items())) or "-")
    table.add_row("mean reward", "-" if mean is None else f"{mean:.3f}" + (f" ± {std:.3f}" if std else ""))
    failures = ", ".join(f"{k} {v}" for k, v in sorted(data["criterion_errors"].items()))
    table.add_row("failures by type", failures or "none")
    table.add_row("verdicts", f"{data['verdicts']} ({data['verdicts_cached']} from cache)")
    if data.get("checked"):
        table.add_row("checked", f"{data['checked']} (deterministic checks: no judge call)")
    if data.get("skipped_by_gate"):
        table.add_row("skipped", f"{data['skipped_by_gate']} criteria (a failed checked gate decided)")
    if data.get("adjusted"):
        names = {"length_penalty": "length-shaped", "relative": "group-relative"}
        rules = sorted(data["adjusted"].items())
        table.add_row("group rules", ", ".join(f"{names[k]} {v}" for k, v in rules))
    table.add_row("tokens", ", ".join(f"{k} {v}" for k, v in sorted(data["tokens"].items())) or "-")
    table.add_row("time", f"{data['wall_s']:.1f} s" + (f" ({data['samples_per_s']:.2f} samples/s)"
                                                        if data["samples_per_s"] else ""))
    out.print(table)
    na = data.get("not_applicable") or {}
    if data["met_rate"] or na:
        met = Table(title="met rate per criterion")
        met.add_column("criterion")
        met.add_column("met", justify="right")
        if na:
            met.add_column("N/A", justify="right")  # not applicable: neither met nor failed
        for cid in list(dict.fromkeys([*data["met_rate"], *na]))[:40]:
            rate = data["met_rate"].get(cid)
            met.add_row(escape(cid), "-" if rate is None else f"{rate:.0%}",
                        *([str(na.get(cid, 0))] if na else []))
        out.print(met)
    out.print("results: standard output" if str(output) == "-"
              else f"results: {output}\nmanifest: {manifest}")

