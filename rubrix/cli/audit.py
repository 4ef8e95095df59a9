"""``rubrix audit``: reward-hacking attacks against a judge and rubric (:mod:`rubrix.audit`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .._json import write_json_atomic
from ..audit import aaudit
from ..scoring import Scorer
from ._common import BaseUrlOpt, JudgeOpt, PromptsOpt, default, judge_options, out, say, with_judge_flags


@with_judge_flags
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
                                           "answer in both orders")] = default(aaudit, "pairwise"),
    limit: Annotated[int | None, typer.Option(help="use only the first N prompts")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not use the verdict cache")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
    judge_flags: dict | None = None,
) -> None:
    """Run reward-hacking attacks (master keys, injections, fake fences, padding, echo) against the judge."""
    from .. import _aio
    from ..audit import builtin_samples, load_samples, resolve_attacks

    chosen = resolve_attacks(attacks)
    items = load_samples(samples, limit) if samples is not None else builtin_samples(limit)
    scorer = Scorer(rubric, judge, prompts=str(prompts) if prompts else None, cache=not no_cache,
                    **judge_options(base_url, None, device, judge_flags))
    scorer.preflight()
    done: dict[str, int] = {}

    def on_progress(stage: str, n: int) -> None:
        done[stage] = done.get(stage, 0) + n
        say(f"{stage}: {done[stage]} samples")

    try:
        report = _aio.run(aaudit(scorer, items, attacks=chosen, pairwise=pairwise, on_progress=on_progress))
    finally:
        scorer.close()
    doc = report.to_dict()
    write_json_atomic(output, doc)

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

