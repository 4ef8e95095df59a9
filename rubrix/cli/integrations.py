"""``rubrix integrations``: where the trainers find rubrix in this installation."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import out

app = typer.Typer(no_args_is_help=True, help="Where RL trainers find rubrix in this installation.")


@app.command("path")
def path_cmd(trainer: Annotated[str, typer.Argument(help="openrlhf or verl (trl and verifiers take no "
                                                    "path; the message says what they take)")]) -> None:
    """Print the installed file a trainer loads by path (OpenRLHF's --reward.remote_url, verl's
    custom_reward_function.path)."""
    from ..integrations.entry_points import path

    out.print(str(path(trainer)), markup=False, highlight=False, soft_wrap=True)
