"""The ``rubrix`` command line: option parsing and printing only; the work is in the library.

One module per command group (``score``, ``export``, ``rubric``, ``prompts``, ``models``,
``serve``, ``extract`` with ``generalize``, ``generate``, ``evaluate`` for ``eval``, ``audit``,
``report``); what they share is in :mod:`._common`. Option defaults are read from the library
(see :func:`._common.default`), so every command has a Python equivalent with the same defaults.

Errors a user can cause end with one line ``error: FILE:LINE: FIELD: message`` and exit status 2;
the exit codes are :class:`._common.ExitCode`. Global options come before or after the command
(``rubrix -v score ...`` and ``rubrix score ... -v`` alike): ``--version``, ``-v`` / ``-vv`` /
``--log-level`` for structured log lines on stderr (:mod:`rubrix.logs`), and Typer's
``--install-completion`` / ``--show-completion`` for shell completion.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .._version import __version__
from ..errors import UserError
from . import (
    audit,
    cache,
    evaluate,
    export,
    extract,
    generate,
    integrations,
    judges,
    models,
    prompts,
    report,
    rubric,
    score,
    serve,
)
from ._common import ExitCode, err

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="rubrix: rubric- and principle-based evaluation of LLM outputs, turned into rewards.")


def _version(value: bool) -> None:
    if value:
        print(f"rubrix {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="log retries, fallbacks and "
                                         "failures (-v), and cache lookups (-vv), as key=value lines on "
                                         "stderr")] = 0,
    log_level: Annotated[str | None, typer.Option("--log-level", help="debug, info, warning (default) or "
                                                  "error; overrides -v")] = None,
) -> None:
    """rubrix: rubric- and principle-based evaluation of LLM outputs, turned into rewards."""
    from ..logs import configure, level_from

    configure(level_from(verbose, log_level))


app.add_typer(rubric.app, name="rubric")
app.add_typer(cache.app, name="cache")
app.add_typer(prompts.app, name="prompts")
app.add_typer(models.app, name="models")
app.add_typer(judges.app, name="judges")
app.add_typer(integrations.app, name="integrations")
app.command()(score.score)
app.command("export")(export.export_cmd)
app.command()(serve.serve)
app.command()(extract.extract)
app.command()(extract.generalize)
app.command()(generate.generate)
app.command("eval")(evaluate.eval_cmd)
app.command()(audit.audit)
app.command()(report.report)


_GLOBAL_FLAGS = ("-v", "-vv", "-vvv", "--verbose")


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move ``-v``/``-vv``/``--verbose``/``--log-level X`` to the front, wherever they were typed.

    Users put ``-v`` at the end of a command line out of habit; click only takes a group's options
    before the command name. No command defines these names, so moving them changes no meaning.
    Everything after ``--`` is left alone.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in _GLOBAL_FLAGS:
            front.append(arg)
        elif arg == "--log-level" and i + 1 < len(argv):
            front.extend(argv[i:i + 2])
            i += 1
        elif arg.startswith("--log-level="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors become one line and exit status 2 (see :class:`ExitCode`)."""
    try:
        args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
        status = app(args=args, prog_name="rubrix", standalone_mode=False)
        # without standalone mode, click hands a command's ``typer.Exit(code)`` back as the return
        # value instead of exiting: an interrupted run (130) or a failed extraction (1) must not
        # end with status 0
        if isinstance(status, int) and not isinstance(status, bool) and status:
            sys.exit(status)
    except UserError as exc:
        from rich.markup import escape

        err.print(f"[red]error[/]: {escape(str(exc))}", highlight=False, emoji=False, soft_wrap=True)
        sys.exit(ExitCode.USER_ERROR)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(ExitCode.INTERRUPTED)
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
            sys.exit(ExitCode.USER_ERROR)
        if isinstance(exc, click.exceptions.Abort | typer.Abort):
            sys.exit(ExitCode.INTERRUPTED)
        raise


__all__ = ["ExitCode", "app", "hoist_global_options", "main"]
