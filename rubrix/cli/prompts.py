"""``rubrix prompts``: print exactly what a judge will be asked, before any judge runs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..errors import UserError
from ..scoring import Scorer
from ._common import FieldOpt, PromptsOpt, default, out

app = typer.Typer(no_args_is_help=True, help="See exactly what a judge will be asked.")


@app.command("render")
def prompts_render(
    input: Annotated[str, typer.Argument(help="samples: a JSONL/JSON/CSV/Parquet file, "
                                         "hf:PATH_OR_NAME[:split] or - (stdin)")],
    rubric: Annotated[str | None, typer.Option("--rubric", "-r")] = None,
    sample_id: Annotated[str | None, typer.Option("--id", help="which sample (default: the first)")] = None,
    criterion: Annotated[str | None, typer.Option("--criterion", "-c", help="only this criterion id")] = None,
    mode: Annotated[str, typer.Option(help="criteria or checklist")] = default(Scorer, "mode"),
    verdict: Annotated[str, typer.Option(help="token or json")] = "token",
    prompts: PromptsOpt = None,
    field: FieldOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the chat messages as JSON")] = False,
) -> None:
    """Print exactly the messages a judge will see for one sample (weights are never among them)."""
    from ..judges.fake import FakeJudge
    from ..records import FieldMap, read_samples

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
    used = sample.rubric or scorer.rubric
    # checked criteria never reach the judge: say so instead of printing nothing for them
    checked = [c for c in (used.criteria if used is not None else ()) if c.is_checked
               and criterion in (None, c.id)]
    if criterion:
        requests = [r for r in requests if r.meta.get("criterion") in (criterion, f"{criterion}.applies_if")]
        if not requests and not checked:
            raise UserError(f"no criterion {criterion!r} in the rubric", field="--criterion")
    if as_json:
        print(json.dumps([{"meta": r.meta, "kind": r.kind, "options": [o for o, _ in r.options],
                           "messages": list(r.messages)} for r in requests]
                         + [{"meta": {"criterion": c.id}, "kind": "check", "check": c.check.spec,
                             "messages": []} for c in checked], indent=2, ensure_ascii=False))
        return
    for c in checked:
        out.print(f"{c.id}: checked ({c.check.kind}), no judge request: {c.check.canonical()}",
                  markup=False, highlight=False, soft_wrap=True)
    for r in requests:
        label = r.meta.get("criterion", r.kind)
        out.rule(f"[bold]{label}[/] ({r.kind}; answer: {' / '.join(o for o, _ in r.options)})")
        for m in r.messages:
            out.print(f"[bold cyan]<{m['role']}>[/]")
            # exactly the text the judge sees: no wrapping at the console width, no emoji codes
            out.print(m["content"], markup=False, highlight=False, emoji=False, soft_wrap=True)

