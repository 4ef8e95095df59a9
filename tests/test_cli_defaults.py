"""One source of defaults: every CLI option that has a library equivalent shows the library's default.

The CLI's click commands are built from the real Typer app and their parameters read back, then
compared with the library's own signatures and config classes (read here independently, not
through the helper the CLI uses), so retyping a literal in an option that drifts from the library
fails here. Also: unknown judge options are one line at construction, not a crash at the first score.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer

from rubrix import server
from rubrix.audit import aaudit
from rubrix.cli import app
from rubrix.errors import UserError
from rubrix.evaluate import evaluate_pairs
from rubrix.export import export
from rubrix.extract import ExtractConfig, GeneralizeConfig, TransferConfig
from rubrix.extract import extract as run_extract
from rubrix.judges import check_spec, judge_option_names
from rubrix.judges.embedded import DEFAULT_MODEL
from rubrix.runs import DEFAULT_BATCH_SIZE, score_file
from rubrix.scoring import Scorer


def cli_default(*path: str, param: str):
    """The default of ``param`` of the command ``path`` (e.g. ``("models", "prepare")``) as click sees it."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    by_name = {p.name: p for p in command.params}
    assert param in by_name, f"{' '.join(path)} has no parameter {param!r}"
    return by_name[param].default


def lib_default(owner, param: str):
    value = inspect.signature(owner).parameters[param].default
    assert value is not inspect.Parameter.empty, f"{owner} has no default for {param}"
    return value


def test_score_batch_size_is_the_library_batch_size() -> None:
    assert lib_default(score_file, "batch_size") == DEFAULT_BATCH_SIZE == 16
    assert cli_default("score", param="batch_size") == DEFAULT_BATCH_SIZE


@pytest.mark.parametrize("path, param, expected", [
    (("score",), "mode", lambda: lib_default(Scorer, "mode")),
    (("score",), "verdict", lambda: lib_default(Scorer, "verdict")),
    (("score",), "hard", lambda: lib_default(Scorer, "hard")),
    (("prompts", "render"), "mode", lambda: lib_default(Scorer, "mode")),
    (("export",), "margin", lambda: lib_default(export, "margin")),
    (("export",), "threshold", lambda: lib_default(export, "threshold")),
    (("export",), "grader_model", lambda: lib_default(export, "grader_model")),
    (("export",), "grader_kind", lambda: lib_default(export, "grader_kind")),
    (("eval",), "tie_margin", lambda: lib_default(evaluate_pairs, "tie_margin")),
    (("eval",), "boot", lambda: lib_default(evaluate_pairs, "n_boot")),
    (("eval",), "seed", lambda: lib_default(evaluate_pairs, "seed")),
    (("eval",), "verdict", lambda: lib_default(Scorer, "verdict")),
    (("audit",), "pairwise", lambda: lib_default(aaudit, "pairwise")),
    (("models", "prepare"), "name", lambda: DEFAULT_MODEL),
    (("serve",), "max_batch", lambda: server.DEFAULT_MAX_BATCH),
    (("serve",), "batch_window_ms", lambda: server.DEFAULT_BATCH_WINDOW_MS),
    (("serve",), "deadline_s", lambda: server.DEFAULT_DEADLINE_S),
    (("serve",), "step_samples", lambda: server.DEFAULT_STEP_SAMPLES),
    (("serve",), "step_samples", lambda: server.ServerConfig().step_samples),
    (("serve",), "max_queue", lambda: server.ServerConfig().max_queue),  # None: sized from step_samples
    (("serve",), "max_body_bytes", lambda: server.DEFAULT_MAX_BODY_BYTES),
    (("serve",), "body_timeout_s", lambda: server.DEFAULT_BODY_TIMEOUT_S),
])
def test_cli_default_is_the_library_default(path, param, expected) -> None:
    assert cli_default(*path, param=param) == expected()


EXTRACT_OPTIONS = {  # CLI parameter -> (library owner, its parameter)
    "mode": (ExtractConfig, "mode"), "max_rounds": (ExtractConfig, "max_rounds"),
    "max_criteria": (ExtractConfig, "max_criteria"), "margin": (ExtractConfig, "margin"),
    "batch_size": (ExtractConfig, "batch_size"), "pool": (ExtractConfig, "pool"),
    "holdout": (run_extract, "holdout"), "seed": (run_extract, "seed"),
    "stop_gain": (run_extract, "stop_gain"), "patience": (run_extract, "patience"),
    "max_size": (GeneralizeConfig, "max_size"), "min_gain": (GeneralizeConfig, "min_gain"),
    "alpha": (GeneralizeConfig, "alpha"), "dedup": (GeneralizeConfig, "dedup"),
    "themes": (GeneralizeConfig, "themes"),
    "transfer_min_agreement": (TransferConfig, "min_agreement"), "transfer_tie": (TransferConfig, "tie"),
    "transfer_max_pairs": (TransferConfig, "max_pairs"), "transfer_pitfalls": (TransferConfig, "pitfalls"),
}


@pytest.mark.parametrize("command", ["extract", "generalize"])
def test_extract_and_generalize_defaults_are_the_config_defaults(command: str) -> None:
    checked = 0
    for param, (owner, name) in EXTRACT_OPTIONS.items():
        if command == "generalize" and owner in (ExtractConfig, run_extract):
            continue
        assert cli_default(command, param=param) == lib_default(owner, name), (command, param)
        checked += 1
    assert checked >= 9
    if command == "generalize":
        assert cli_default("generalize", param="seed") == lib_default(TransferConfig, "seed")


def test_the_pin_catches_a_retyped_literal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard for the guard: a command whose option retypes a different literal is seen as different."""
    drifted = typer.Typer()

    @drifted.command()
    def score(batch_size: Annotated[int, typer.Option()] = 8) -> None:  # the old, retyped default
        pass

    @drifted.command()
    def other() -> None:
        pass

    monkeypatch.setattr(sys.modules[__name__], "app", drifted)
    assert cli_default("score", param="batch_size") != lib_default(score_file, "batch_size")


# --------------------------------------------------------------------------- judge options


def test_unknown_judge_option_fails_at_scorer_construction() -> None:
    with pytest.raises(UserError) as info:
        Scorer("helpfulness", "openai:gpt-x", cache=False, concurency=4)
    message = str(info.value)
    assert message.startswith("judge: unknown option 'concurency' for the openai judge (known: ")
    assert "concurrency" in message and "base_url" in message and "\n" not in message
    with pytest.raises(UserError, match="unknown option 'devcie' for the hf judge"):
        Scorer("helpfulness", "hf:/no/such/model", cache=False, devcie="cpu")
    with pytest.raises(UserError, match=r"unknown option 'device' for the fake judge "
                                        r"\(known: fail_rate, think, think_tokens\)"):
        Scorer("helpfulness", "fake", cache=False, device="cpu")
    with pytest.raises(UserError, match="unknown option 'concurrency' for the embedded judge"):
        Scorer("helpfulness", None, cache=False, concurrency=8)


def test_known_judge_options_pass_without_loading_anything() -> None:
    # nothing here may load a model: the hf path does not exist and the openai server is not running
    Scorer("helpfulness", "openai:gpt-x", cache=False, concurrency=4, base_url="http://127.0.0.1:9",
           timeout_s=1.0).close()
    Scorer("helpfulness", "hf:/no/such/model", cache=False, device="cpu", token_budget=512).close()
    Scorer("helpfulness", "fake:3", cache=False, fail_rate=0.5).close()
    assert check_spec("embedded:0.5b", {"generator": "hf", "log": print, "threads": 2}) == "embedded:0.5b"
    assert check_spec("openai:m", {"concurrency": None, "bogus": None}) == "openai:m"  # None means unset
    assert "name" not in judge_option_names("embedded") and "name" in judge_option_names("hf")
    assert "seed" not in judge_option_names("fake")  # the seed is the spec's (fake:SEED)


def test_checking_options_imports_no_torch() -> None:
    code = ("import sys; from rubrix.judges import check_spec; "
            "check_spec('hf:x', {'device': 'cpu'}); check_spec('embedded', {'log': print}); "
            "check_spec('openai:m', {'concurrency': 2}); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_cli_unknown_judge_option_is_one_line_and_status_2(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a", "prompt": "Q?", "response": "A."}) + "\n",
                                       encoding="utf-8")
    env = {**os.environ, "RUBRIX_HOME": str(tmp_path / "home"), "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "rubrix", "score", "in.jsonl", "-o", "out.jsonl", "-r",
                           "helpfulness", "-j", "fake", "--concurrency", "4"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: judge: unknown option 'concurrency' for the fake judge "
        "(known: fail_rate, think, think_tokens)"]
    assert not (tmp_path / "out.jsonl").exists()


def test_engine_names_are_checked_by_the_library(tmp_path: Path) -> None:
    from rubrix.runs import ENGINES, make_engine

    scorer = Scorer("helpfulness", "fake", cache=False)
    try:
        where = {"judge_options": {}, "cache": False, "input_path": tmp_path / "in.jsonl"}
        assert make_engine("local", scorer, **where) is None
        with pytest.raises(UserError, match="engine must be local or ray"):
            make_engine("dask", scorer, **where)
    finally:
        scorer.close()
    assert cli_default("score", param="engine") == ENGINES[0]
