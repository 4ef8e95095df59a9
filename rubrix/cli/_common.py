"""What the command groups share: the consoles, the common options, and reading library defaults.

Defaults are never retyped here: :func:`default` reads them from the library function or config
class that owns them, so ``rubrix X`` and its Python equivalent cannot drift apart.
"""

from __future__ import annotations

import enum
import functools
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
                                              "embedded:0.5b, hf:MODEL_OR_PATH, openai:MODEL, "
                                              "azure:DEPLOYMENT")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint for "
                                                "openai:MODEL (key from RUBRIX_API_KEY or OPENAI_API_KEY); "
                                                "the resource endpoint for azure:DEPLOYMENT")]
PromptsOpt = Annotated[Path | None, typer.Option("--prompts", help="directory whose templates override the "
                                                 "built-in ones (same file names)")]
LengthShapingOpt = Annotated[str | None, typer.Option(
    "--length-shaping", help="correctness-gated length shaping: group[:P] or target:N[:P], optionally "
    "@words|chars|tokens (overrides the rubrics' length:); only answers passing their gate, within "
    "their group_id")]
RelativeOpt = Annotated[str | None, typer.Option(
    "--relative", help="group-relative rewards: pairwise[:BLEND] — each answer judged against the "
    "others of its group_id, both orders; n·(n−1) verdicts per group of n")]
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


#: judge flags every command with ``-j`` takes: CLI name -> (annotation, judge option name)
JUDGE_FLAGS: dict[str, tuple[Any, str]] = {
    "timeout": (Annotated[float | None, typer.Option("--timeout", help="seconds to wait for one API answer "
                                                     "(openai/azure judges)")], "timeout_s"),
    "max_retries": (Annotated[int | None, typer.Option("--max-retries", help="retries of one API request "
                                                       "after 429/5xx/timeouts (openai/azure judges)")],
                    "max_retries"),
    "temperature": (Annotated[float | None, typer.Option("--temperature", help="sampling temperature sent to "
                                                         "API judges (default 0; dropped where a reasoning "
                                                         "model refuses it)")], "temperature"),
    "header": (Annotated[list[str] | None, typer.Option("--header", help="extra HTTP header for API judges, "
                                                        "KEY=VALUE (repeatable)")], "headers"),
    "reasoning_effort": (Annotated[str | None, typer.Option("--reasoning-effort", help="minimal, low, medium "
                                                            "or high: for reasoning models (o-series, gpt-5) "
                                                            "behind openai/azure judges")],
                         "reasoning_effort"),
    "think": (Annotated[bool, typer.Option("--think", help="think-then-verdict: the judge reasons first, "
                                           "then "
                                           "its verdict is read as usual (probabilities where the backend "
                                           "gives them); any judge")], "think"),
}


def with_judge_flags(fn):
    """Add the :data:`JUDGE_FLAGS` options to a command; it receives them as ``judge_flags`` (a dict of
    judge options, unset ones left out so the library's defaults apply)."""
    sig = inspect.signature(fn, eval_str=True)  # typer reads a given __signature__ as it is
    params = [p for p in sig.parameters.values() if p.name != "judge_flags"]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann,
                               default=False if name == "think" else None)
             for name, (ann, _) in JUDGE_FLAGS.items()]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        flags = {name: kwargs.pop(name, None) for name in JUDGE_FLAGS}
        return fn(*args, judge_flags=judge_flag_options(**flags), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params + extra)
    hints = {k: v for k, v in fn.__annotations__.items() if k != "judge_flags"}
    wrapper.__annotations__ = {**hints, **{name: ann for name, (ann, _) in JUDGE_FLAGS.items()}}
    return wrapper


def judge_flag_options(**flags: Any) -> dict:
    """Judge options from the :data:`JUDGE_FLAGS` values; ``--header`` becomes a dict."""
    from ..errors import UserError

    opts: dict = {}
    for name, value in flags.items():
        if value is None or value is False or value == []:
            continue
        if name == "header":
            headers = {}
            for item in value:
                key, sep, val = item.partition("=")
                if not sep or not key.strip():
                    raise UserError(f"expected KEY=VALUE, got {item!r}", field="--header")
                headers[key.strip()] = val.strip()
            value = headers
        opts[JUDGE_FLAGS[name][1]] = value
    return opts


def judge_options(base_url: str | None, concurrency: int | None, device: str | None,
                  flags: dict | None = None) -> dict:
    """The judge options the shared flags set; unset flags are left out, so the judge's own defaults apply."""
    opts: dict = dict(flags or {})
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
                   no_cache: bool, verdict: str = "auto", flags: dict | None = None):
    """The scorer of extract / generalize / eval: no run rubric (each stage brings its criteria).

    An API judge is checked with one cheap request first (:meth:`~rubrix.scoring.Scorer.preflight`),
    so a bad key or model ends the command before any work."""
    from ..scoring import Scorer

    scorer = Scorer(None, judge, prompts=str(prompts) if prompts else None, verdict=verdict,
                    cache=not no_cache, **judge_options(base_url, None, device, flags))
    scorer.preflight()
    return scorer
