"""``rubrix export``: results into trainer and fine-tuning formats (:func:`rubrix.export.export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..export import export
from ._common import FieldOpt, default, err, out


def export_cmd(
    results: Annotated[Path, typer.Argument(help="results (JSONL or Parquet) written by rubrix score")],
    to: Annotated[str, typer.Option("--to", help="trl-pairs, kto, openai-grader, verifiers or tags")],
    output: Annotated[Path, typer.Option("--output", "-o", help="output file (JSONL, or - for stdout; JSON "
                                         "for openai-grader; TOML, or JSON by suffix, for verifiers)")],
    samples: Annotated[Path | None, typer.Option("--samples", help="the scored samples file, for prompts "
                                                 "and responses (default: the input named in the "
                                                 "manifest)")] = None,
    rubric: Annotated[str | None, typer.Option("--rubric", "-r", help="rubric for openai-grader / verifiers "
                                               "(default: the run rubric named in the manifest)")] = None,
    field: FieldOpt = None,
    margin: Annotated[float, typer.Option(help="trl-pairs: best must beat worst by more "
                                          "than this")] = default(export, "margin"),
    threshold: Annotated[float, typer.Option(help="kto: label = reward >= "
                                             "threshold")] = default(export, "threshold"),
    grader_model: Annotated[str, typer.Option(help="openai-grader: the grader "
                                              "model")] = default(export, "grader_model"),
    grader_kind: Annotated[str, typer.Option(help="openai-grader: multi (one grader per criterion) or "
                                             "score_model (one grader for the "
                                             "rubric)")] = default(export, "grader_kind"),
) -> None:
    """Convert results into preference pairs, KTO rows, an OpenAI grader, a verifiers criteria file or
    a per-tag score report."""
    from ..records import FieldMap

    stats = export(results, to, output, samples_path=samples, rubric=rubric,
                   fields=FieldMap.parse(field or []), margin=margin, threshold=threshold,
                   grader_model=grader_model, grader_kind=grader_kind)
    counts = ", ".join(f"{k} {v}" for k, v in stats.to_dict().items())
    (err if str(output) == "-" else out).print(f"wrote {'standard output' if str(output) == '-' else output} "
                                               f"({counts})", soft_wrap=True, highlight=False)

