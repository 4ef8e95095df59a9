"""The ``rubrix`` command line: option parsing and printing only; the work is in the library.

One module per command group (``score``, ``export``, ``rubric``, ``prompts``, ``models``,
``serve``, ``extract`` with ``generalize``, ``evaluate`` for ``eval``, ``audit``, ``report``); what they share
is in :mod:`._common`. Option defaults are read from the library (see :func:`._common.default`),
so every command has a Python equivalent with the same defaults.

Errors a user can cause end with one line ``error: FILE:LINE: FIELD: message`` and exit status 2.
"""

from __future__ import annotations

import sys

import typer

from ..errors import UserError
from . import audit, evaluate, export, extract, models, prompts, report, rubric, score, serve
from ._common import err

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="rubrix: rubric- and principle-based evaluation of LLM outputs, turned into rewards.")
app.add_typer(rubric.app, name="rubric")
app.add_typer(prompts.app, name="prompts")
app.add_typer(models.app, name="models")
app.command()(score.score)
app.command("export")(export.export_cmd)
app.command()(serve.serve)
app.command()(extract.extract)
app.command()(extract.generalize)
app.command("eval")(evaluate.eval_cmd)
app.command()(audit.audit)
app.command()(report.report)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit status 2."""
    try:
        status = app(args=argv, standalone_mode=False)
        # without standalone mode, click hands a command's ``typer.Exit(code)`` back as the return
        # value instead of exiting: an interrupted run (130) or a failed extraction (1) must not
        # end with status 0
        if isinstance(status, int) and not isinstance(status, bool) and status:
            sys.exit(status)
    except UserError as exc:
        from rich.markup import escape

        err.print(f"[red]error[/]: {escape(str(exc))}", highlight=False, emoji=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        usage_errors: tuple[type[Exception], ...] = (click.exceptions.ClickException,)
        try:  # typer >= 0.2x ships its own copy of click, whose exceptions are not click's
            from typer._click.exceptions import ClickException as TyperClickException

            usage_errors += (TyperClickException,)
        except ImportError:  # pragma: no cover - older typer uses click itself
            pass
        if isinstance(exc, usage_errors):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Abort | typer.Abort):
            sys.exit(130)
        raise


__all__ = ["app", "main"]
