"""``rubrix eval``: agreement of a judge (with rubrics, pairwise, or a principle) with preference labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .._json import write_json_atomic
from ..errors import UserError
from ..evaluate import evaluate_pairs
from ..scoring import Scorer
from ._common import (
    BaseUrlOpt,
    FieldOpt,
    JudgeOpt,
    PromptsOpt,
    default,
    extract_scorer,
    out,
    say,
    with_judge_flags,
)


@with_judge_flags
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
    tie_margin: Annotated[float, typer.Option(help="score gaps at most this large are "
                                              "ties")] = default(evaluate_pairs, "tie_margin"),
    boot: Annotated[int, typer.Option(help="bootstrap resamples")] = default(evaluate_pairs, "n_boot"),
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = default(evaluate_pairs, "seed"),
    verdict: Annotated[str, typer.Option(help="auto, token or json")] = default(Scorer, "verdict"),
    field: FieldOpt = None,
    prompts: PromptsOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
    judge_flags: dict | None = None,
) -> None:
    """Agreement with preference labels: how often the judge scores chosen above rejected."""
    from rich.text import Text

    from .. import _aio
    from ..evaluate import DEFAULT_PRINCIPLE, report_json
    from ..extract import load_pairs
    from ..records import FieldMap
    from ..rubric import load_rubric

    fields = FieldMap.parse(field or [])
    modes = list(mode or [])
    if rubric and "rubric" not in modes:  # a rubric given is a rubric to evaluate, first in the table
        modes.insert(0, "rubric")
    if not modes:
        raise UserError("nothing to evaluate: give a rubric (-r) or a --mode", field="--mode")
    rubrics = [load_rubric(r) for r in rubric or []]
    usable, skipped = load_pairs(pairs, fields)
    for s in skipped:
        say(f"skip line {s.line} ({s.id or 'no id'}): {s.reason}")
    excluded: set[str] = set()
    for path in exclude or []:
        excluded |= {p.id for p in load_pairs(path, fields)[0]}
    usable = [p for p in usable if p.id not in excluded]
    if limit is not None:
        usable = usable[:limit]
    if not usable:
        raise UserError("no usable pairs to evaluate", file=str(pairs))
    say(f"{len(usable)} pairs ({len(excluded)} ids excluded, {len(skipped)} skipped); methods: "
         f"{', '.join(modes)}")
    scorer = extract_scorer(judge, base_url, device, prompts, no_cache, verdict=verdict, flags=judge_flags)
    done: dict[str, int] = {}

    def on_progress(name: str, n: int) -> None:
        done[name] = done.get(name, 0) + n
        say(f"{name}: {done[name]}/{len(usable)} pairs")

    text = principle or DEFAULT_PRINCIPLE
    try:
        reports = _aio.run(evaluate_pairs(usable, scorer=scorer, modes=modes, rubrics=rubrics, principle=text,
                                          tie_margin=tie_margin, n_boot=boot, seed=seed,
                                          on_progress=on_progress))
        judge_name = scorer.judge.name
    finally:
        scorer.close()
    doc = report_json(reports, pairs_file=str(pairs), judge=judge_name, skipped=skipped, n_boot=boot,
                      seed=seed, tie_margin=tie_margin, principle=text if "principle" in modes else None)
    target = output or Path(pairs.name.split(".")[0] + ".eval.json")
    write_json_atomic(target, doc)
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

