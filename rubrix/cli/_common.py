"""What the command groups share: the consoles, the common options, and reading library defaults.

Defaults are never retyped here: :func:`default` reads them from the library function or config
class that owns them, so ``rubrix X`` and its Python equivalent cannot drift apart.
"""

from __future__ import annotations

import enum
import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


class ExitCode(enum.IntEnum):
    """What ``rubrix`` exits with, so a pipeline can tell outcomes apart (the README has the table).

    ``1`` is left to Python itself (an uncaught exception: a bug, with its traceback).
    """

    OK = 0
    """The command did what it was asked."""
    BUG = 1
    """An unexpected error (a traceback was printed), or an extraction that produced no rubric."""
    USER_ERROR = 2
    """Bad input, options, files or environment: one line ``error: FILE:LINE: FIELD: message``."""
    TOO_MANY_FAILURES = 3
    """The run finished and its rows are written, but more samples failed than ``--max-failure-rate``."""
    INTERRUPTED = 130
    """Ctrl-C / SIGINT; what was written is kept and ``--resume`` continues."""


def default(owner: Any, name: str) -> Any:
    """The default of parameter ``name`` of a library function or config class (a dataclass).

    Raises at import time when the library has no such defaulted parameter, so a renamed option
    fails every CLI test instead of silently keeping an old value.
    """
    value = inspect.signature(owner).parameters[name].default
    if value is inspect.Parameter.empty:
        raise TypeError(f"{getattr(owner, '__qualname__', owner)}({name}) has no default")
    return value


JudgeOpt = Annotated[str | None, typer.Option("--judge", "-j", help="embedded (default, Qwen2.5-Coder-1.5B), "
                                              "embedded:0.5b, hf:MODEL_OR_PATH, openai:MODEL")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint for "
                                                "openai:MODEL (key from RUBRIX_API_KEY or OPENAI_API_KEY)")]
PromptsOpt = Annotated[Path | None, typer.Option("--prompts", help="directory whose templates override the "
                                                 "built-in ones (same file names)")]
FieldOpt = Annotated[list[str] | None, typer.Option("--field", "-f", help="map a field: KEY=COLUMN, e.g. "
                                                    "-f response=completion (keys: id prompt response rubric "
                                                    "group reference)")]
TransferOpt = Annotated[bool, typer.Option("--transfer/--no-transfer", help="transfer check: score every "
                                           "candidate criterion on all training pairs and keep only those "
                                           "that agree with the labels across them")]
TransferAgreementOpt = Annotated[float, typer.Option(help="transfer check: share of decided pairs on which a "
                                                     "criterion must favour the chosen response")]
TransferTieOpt = Annotated[float, typer.Option(help="transfer check: a P(met) gap at most this large is a "
                                               "tie")]
TransferPitfallsOpt = Annotated[bool, typer.Option("--transfer-pitfalls/--no-transfer-pitfalls",
                                                   help="transfer check: keep criteria that favour the "
                                                   "rejected response as consistently as pitfalls "
                                                   "(negative weight)")]
TransferMaxPairsOpt = Annotated[int | None, typer.Option(help="transfer check: score at most N training "
                                                         "pairs (seeded sample)")]


def resume_command() -> str:
    """The command line that continues an interrupted run: this one plus ``--resume``."""
    import shlex

    args = sys.argv[1:]
    if "--resume" not in args:
        args = [*args, "--resume"]
    return shlex.join(["rubrix", *args])


def judge_options(base_url: str | None, concurrency: int | None, device: str | None) -> dict:
    """The judge options the shared flags set; unset flags are left out, so the judge's own defaults apply."""
    opts: dict = {}
    if base_url:
        opts["base_url"] = base_url
    if concurrency:
        opts["concurrency"] = concurrency
    if device:
        opts["device"] = device
    return opts


def say(message: str) -> None:
    """A progress line on stderr, printed as given (no markup, no emoji codes, no wrapping)."""
    err.print(message, markup=False, highlight=False, emoji=False, soft_wrap=True)


def transfer_config(on: bool, min_agreement: float, tie: float, max_pairs: int | None, seed: int,
                     pitfalls: bool):
    """The transfer check's options, checked; ``None`` when it is off."""
    from ..extract import TransferConfig

    if not on:
        return None
    cfg = TransferConfig(tie=tie, min_agreement=min_agreement, max_pairs=max_pairs, seed=seed,
                         pitfalls=pitfalls)
    cfg.check()
    return cfg


def extract_scorer(judge: str | None, base_url: str | None, device: str | None, prompts: Path | None,
                   no_cache: bool, verdict: str = "auto"):
    """The scorer of extract / generalize / eval: no run rubric (each stage brings its criteria)."""
    from ..scoring import Scorer

    return Scorer(None, judge, prompts=str(prompts) if prompts else None, verdict=verdict,
                  cache=not no_cache, **judge_options(base_url, None, device))
