"""``rubrix judges``: what a judge endpoint supports, before a long job (:mod:`rubrix.judges.probe`)."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from ._common import BaseUrlOpt, ExitCode, JudgeOpt, judge_options, out, with_judge_flags

app = typer.Typer(no_args_is_help=True, help="Judge backends: check what an endpoint supports.")


@app.command("check")
@with_judge_flags
def judges_check(judge: JudgeOpt = None, base_url: BaseUrlOpt = None,
                 judge_flags: dict | None = None) -> None:
    """One table: reachable, auth ok, model, logprobs, JSON mode, reasoning (exit 2 when unusable)."""
    from .. import _aio
    from ..judges import check_spec
    from ..judges.probe import check, usable

    opts = judge_options(base_url, None, None, judge_flags)
    spec = check_spec(judge, opts)
    findings = _aio.run(check(spec, **opts))
    table = Table(title=f"rubrix judges check — {spec}")
    for col in ("capability", "", "detail"):
        table.add_column(col)
    colour = {"yes": "green", "no": "red", "-": "dim"}
    for f in findings:
        table.add_row(f.capability, f"[{colour[f.mark]}]{f.mark}[/]", escape(f.detail[:200]))
    out.print(table)
    if not usable(findings):
        raise typer.Exit(ExitCode.USER_ERROR)
