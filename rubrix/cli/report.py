"""``rubrix report``: one HTML page for a score run, an eval or an audit (:mod:`rubrix.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import err, out

LARGE = 2000  # rows from which building the page shows a progress bar


def report(
    results: Annotated[
        Path,
        typer.Argument(
            help="rubrix score results (JSONL, manifest beside it), or the JSON of rubrix eval / rubrix audit"
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file (default: RESULTS with .html)")
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare", help="another score run over the same ids (other judge, rubric or templates)"
        ),
    ] = None,
) -> None:
    """Write one self-contained HTML page (works offline from file://) for a run's results."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..report import build_model, write_page

    rows = _count_lines(results)
    progress = Progress(
        TextColumn("[bold]report"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=rows < LARGE,
    )
    with progress:
        task = progress.add_task("report", total=max(1, rows) * 5 // 4)
        model = build_model(results, compare, tick=lambda n: progress.advance(task, n))
        target = write_page(model, results, output)
    for note in model["notes"]:
        err.print(f"[yellow]note[/]: {escape(note)}", highlight=False, emoji=False, soft_wrap=True)
    size = target.stat().st_size
    out.print(f"report: {target} ({model['kind']}, {size / 1024:.0f} KiB)", markup=False, highlight=False)


def _count_lines(path: Path) -> int:
    """Rows in a JSONL file, cheaply, to decide whether a progress bar is worth showing."""
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0
