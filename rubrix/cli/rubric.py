"""``rubrix rubric``: validate, show and list rubrics, and print the rubric file's JSON Schema."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ._common import out

app = typer.Typer(no_args_is_help=True,
                  help="Validate, show, list rubrics and print their JSON Schema.")


def criterion_kind(c) -> str:
    """How ``rubric show`` names a criterion's answer: judged (binary, scale) or checked (no judge call)."""
    kind = f"check:{c.check.kind}" if c.is_checked else ("scale 1-5" if c.is_scale else "binary")
    if c.applies_if is not None:
        kind += " (N/A unless " + ("judged" if c.applies_if.kind == "judged" else
                                   f"{'' if c.applies_if.met else 'not '}{c.applies_if.ref}"
                                   if c.applies_if.kind == "criterion" else c.applies_if.check.kind) + ")"
    return kind


@app.command("validate")
def rubric_validate(paths: Annotated[list[str], typer.Argument(help="rubric files or built-in names")]
                    ) -> None:
    """Check rubric files; print one line per rubric, or the first error with file, line and field."""
    from ..rubric import load_rubric

    for p in paths:
        r = load_rubric(p)
        out.print(f"ok  {p}: {r.name} v{r.version}, {len(r.criteria)} criteria, "
                  f"{len(r.principles)} principles, hash {r.content_hash()}", soft_wrap=True)


@app.command("show")
def rubric_show(rubric: Annotated[str, typer.Argument(help="rubric file or built-in name")],
                as_yaml: Annotated[bool, typer.Option("--yaml", help="print normalized YAML instead")] = False
                ) -> None:
    """Print a rubric as a readable table (or normalized YAML)."""
    from ..rubric import dump_rubric, load_rubric

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
        table.add_row(escape(c.id), f"{c.weight:g}", escape((c.category or "") + flags), criterion_kind(c),
                      escape(c.text))
    out.print(table)
    for k, gate in enumerate(r.gate_levels()):
        out.print(f"gate {k + 1}: {', '.join(gate.criteria)} must pass; else {gate.on_fail}", markup=False)
    if r.length is not None:
        out.print(f"length shaping (passing answers only): {r.length.to_data()}", markup=False)
    if r.principles:
        out.print("[bold]principles[/]")
        for p in r.principles:
            out.print(f"- {p}", markup=False)


@app.command("list")
def rubric_list() -> None:
    """List the built-in rubrics."""
    from ..resources import builtin_rubric_names
    from ..rubric import load_rubric

    table = Table()
    for col in ("name", "criteria", "pitfalls", "description"):
        table.add_column(col)
    for name in builtin_rubric_names():
        r = load_rubric(name)
        first = r.description.split(": ")[0].split(". ")[0].rstrip(".")
        first = first if len(first) <= 90 else first[:89] + "…"
        table.add_row(name, str(len(r.criteria)), str(sum(c.is_pitfall for c in r.criteria)), escape(first))
    out.print(table)


@app.command("schema")
def rubric_schema() -> None:
    """Print the JSON Schema of a rubric file."""
    from ..rubric import json_schema

    print(json.dumps(json_schema(), indent=2))

