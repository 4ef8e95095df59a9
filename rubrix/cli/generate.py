"""``rubrix generate``: a checked rubric for every prompt (:mod:`rubrix.generate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..generate import KINDS, GenerateConfig
from ..generate import generate as run_generate
from ._common import (
    BaseUrlOpt,
    FieldOpt,
    JudgeOpt,
    PromptsOpt,
    err,
    extract_scorer,
    judge_options,
    out,
    resume_command,
    say,
    with_judge_flags,
)

DEFAULTS = GenerateConfig()


@with_judge_flags
def generate(
    prompts_file: Annotated[
        str,
        typer.Argument(
            metavar="PROMPTS",
            help="prompts: JSONL/JSON/CSV/Parquet with "
            "id and prompt (text or chat messages); optional reference "
            "answers; every other column is kept",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="rows to write (JSONL): each input row plus "
            "its 'rubric', ready for rubrix score; the log and summary go "
            "beside it",
        ),
    ],
    reference_field: Annotated[
        str | None,
        typer.Option(
            help="column with reference answers; rows without one "
            "follow --missing-reference (default: use a "
            "'reference' column where present)"
        ),
    ] = None,
    generator: Annotated[
        str | None, typer.Option(help="model that writes rubrics and degraded answers (default: the --judge)")
    ] = None,
    judge: JudgeOpt = None,
    base_url: BaseUrlOpt = None,
    min_criteria: Annotated[
        int, typer.Option(help="criteria asked of the generator, at least")
    ] = DEFAULTS.min_criteria,
    max_criteria: Annotated[
        int, typer.Option(help="criteria asked of the generator, at most")
    ] = DEFAULTS.max_criteria,
    margin: Annotated[
        float,
        typer.Option(help="P(met) gap between the good answer and a degraded one that counts as catching it"),
    ] = DEFAULTS.margin,
    min_caught: Annotated[
        int, typer.Option(help="degradations a criterion must catch to be kept")
    ] = DEFAULTS.min_caught,
    degradations: Annotated[
        str, typer.Option(help="comma-separated contrast answers to build: " + ", ".join(KINDS))
    ] = ",".join(DEFAULTS.degradations),
    lint: Annotated[
        str,
        typer.Option(
            help="drop: criteria the lint flags are not kept; warn: judged anyway, finding recorded; off"
        ),
    ] = DEFAULTS.lint,
    missing_reference: Annotated[
        str,
        typer.Option(
            help="with --reference-field, a row without a reference: generate (a good answer) or skip"
        ),
    ] = DEFAULTS.missing_reference,
    max_input_tokens: Annotated[
        int,
        typer.Option(
            help="skip prompts whose prompt + reference is longer (the judge's own context limit applies too)"
        ),
    ] = DEFAULTS.max_input_tokens,
    batch_size: Annotated[
        int, typer.Option(help="prompts whose contrast answers go to the judge in one call")
    ] = DEFAULTS.batch_size,
    limit: Annotated[int | None, typer.Option(help="only the first N prompts")] = None,
    field: FieldOpt = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="input format (default: from the suffix)")
    ] = None,
    prompts: PromptsOpt = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="continue a stopped run: prompts already written or skipped are not redone"
        ),
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not use the verdict cache")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
    judge_flags: dict | None = None,
) -> None:
    """Write a rubric for every prompt and keep only criteria that tell good answers from degraded ones."""
    from .. import _aio
    from ..judges import get_judge
    from ..records import FieldMap

    fields = FieldMap.parse(field or [])
    cfg = GenerateConfig(
        min_criteria=min_criteria,
        max_criteria=max_criteria,
        margin=margin,
        min_caught=min_caught,
        lint=lint,
        max_input_tokens=max_input_tokens,
        degradations=tuple(k.strip() for k in degradations.split(",") if k.strip()),
        batch_size=batch_size,
        missing_reference=missing_reference,
    )
    cfg.check()
    scorer = extract_scorer(judge, base_url, device, prompts, no_cache, flags=judge_flags)
    gen = (
        scorer.judge
        if generator is None or generator == judge
        else get_judge(generator, **judge_options(base_url, None, device, judge_flags))
    )
    try:
        run = _aio.run(
            run_generate(
                prompts_file,
                output,
                generator=gen,
                scorer=scorer,
                config=cfg,
                fields=fields,
                reference_field=reference_field,
                fmt=fmt,
                limit=limit,
                resume=resume,
                progress=say,
            )
        )
    except KeyboardInterrupt:
        err.print(
            "[yellow]interrupted[/]: finished prompts are written and logged. "
            f"Resume with:\n  {escape(resume_command())}",
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    finally:
        scorer.close()
    s = run.summary
    table = Table(title="rubrix generate — summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    skipped = sum(s["skipped"].values())
    table.add_row(
        "prompts",
        f"{s['prompts']} read, {s['resumed']} resumed, {s['generated']} rubrics written, "
        f"{skipped} skipped" + (f" {s['skipped']}" if skipped else ""),
    )
    c = s["criteria"]
    table.add_row(
        "criteria",
        f"{c['drafted']} drafted, {c['linted_out']} removed by the lint, {c['checked']} "
        f"checked, {c['kept']} kept" + (f"; dropped: {c['dropped']}" if c["dropped"] else ""),
    )
    table.add_row("lint findings", ", ".join(f"{k} {v}" for k, v in s["lint"].items()) or "none")
    table.add_row("caught", ", ".join(f"{k} {v}" for k, v in s["caught"].items()) or "-")
    cost = s["cost"]["total"]
    table.add_row(
        "cost",
        f"{cost['calls']} judge calls ({cost['generations']} generations, {cost['verdicts']} "
        f"verdicts, {cost['cache_hits']} cached), {cost['prompt_tokens']} prompt + "
        f"{cost['completion_tokens']} generated tokens, {s['cost']['wall_s']} s",
    )
    out.print(table)
    out.print(
        f"rows: {output}\nprovenance log: {run.paths['log']}\nsummary: {run.paths['summary']}", markup=False
    )
    if s["prompts"] and not s["generated"] and not s["resumed"]:
        raise typer.Exit(1)
