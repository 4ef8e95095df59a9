"""The ``rubrix`` command line, run as a real process (``python -m rubrix.cli``) on real files.

The judge is ``-j fake`` (a deterministic stand-in named "fake" in every row), so these tests check
what the CLI promises: rows and manifest on disk, safe resume, and user errors that end in exactly
one line ``error: FILE:LINE: FIELD: message`` with exit status 2 and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rubrix.rubric import load_rubric

RUBRIC_YAML = """\
name: cli test
criteria:
  - id: answers
    text: The response answers the question.
    weight: 7.25
  - id: polite
    text: The response is polite.
    category: optional
  - id: rude
    text: The response insults the user.
    weight: -3.5
"""
N = 6


@pytest.fixture(autouse=True)
def _rubrix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "rubrix_home"))


def rubrix(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUBRIX_HOME": str(cwd / "rubrix_home"), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "rubrix.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rows(n: int = N) -> list[dict]:
    return [{"id": f"s{i}", "prompt": f"Question {i}?", "response": f"Answer {i}."} for i in range(n)]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "in.jsonl", rows())
    (tmp_path / "rubric.yaml").write_text(RUBRIC_YAML, encoding="utf-8")
    return tmp_path


def score(work: Path, *extra: str | Path, input: str = "in.jsonl", output: str = "out.jsonl",
          rubric: str = "rubric.yaml") -> subprocess.CompletedProcess:
    args: list[str | Path] = ["score", input, "-o", output, "-j", "fake",
                              "--cache-path", work / "cache.sqlite"]
    if rubric:
        args += ["-r", rubric]
    return rubrix(*args, *extra, cwd=work)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------------------- score


def test_score_writes_rows_and_manifest(work: Path) -> None:
    proc = score(work)
    assert proc.returncode == 0, proc.stderr
    out = read_rows(work / "out.jsonl")
    assert [r["id"] for r in out] == [f"s{i}" for i in range(N)]
    rubric_hash = load_rubric(work / "rubric.yaml").content_hash()
    for r in out:
        assert {"id", "reward", "reward_raw", "status", "criteria", "judge", "rubric_hash", "template_hash",
                "rubrix_version"} <= set(r)
        assert r["judge"] == "fake:0" and r["status"] == "ok"
        assert r["rubric_hash"] == rubric_hash
        assert set(r["criteria"]) == {"answers", "polite", "rude"}
        assert isinstance(r["reward"], float)
    manifest = json.loads((work / "out.jsonl.manifest.json").read_text(encoding="utf-8"))
    assert manifest["judge"] == "fake:0"
    assert manifest["rubric"]["hash"] == rubric_hash
    assert manifest["rubric"]["name"] == "cli test"
    counts = manifest["counts"]
    assert counts["samples_total"] == N and counts["samples_scored"] == N
    assert counts["samples_skipped_resume"] == 0
    assert counts["status"] == {"ok": N}
    assert counts["verdicts"] == 3 * N
    assert counts["interrupted"] is False
    assert manifest["input"]["sha256"] and manifest["template_hash"].startswith("sha256:")
    assert "summary" in proc.stdout and f"{N} scored" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert not list(work.glob("*.tmp"))


def test_rerun_without_resume_is_refused_and_changes_nothing(work: Path) -> None:
    assert score(work).returncode == 0
    before = (work / "out.jsonl").read_bytes()
    manifest_before = (work / "out.jsonl.manifest.json").read_bytes()
    proc = score(work)
    assert proc.returncode == 2
    assert_one_error_line(proc, "out.jsonl")
    assert "--resume" in proc.stderr
    assert (work / "out.jsonl").read_bytes() == before
    assert (work / "out.jsonl.manifest.json").read_bytes() == manifest_before


def test_resume_rescores_only_missing_rows(work: Path) -> None:
    assert score(work).returncode == 0
    first = read_rows(work / "out.jsonl")
    lines = (work / "out.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (work / "out.jsonl").write_text("".join(lines[:-2]), encoding="utf-8")
    proc = score(work, "--resume", "--no-cache")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((work / "out.jsonl.manifest.json").read_text(encoding="utf-8"))
    assert manifest["resume"] is True
    assert manifest["counts"]["samples_skipped_resume"] == N - 2
    assert manifest["counts"]["samples_scored"] == 2
    assert manifest["counts"]["verdicts"] == 2 * 3
    final = read_rows(work / "out.jsonl")
    assert [r["id"] for r in final] == [r["id"] for r in first]
    assert {r["id"]: r["reward"] for r in final} == {r["id"]: r["reward"] for r in first}


def test_resume_after_crash_cuts_half_line(work: Path) -> None:
    assert score(work).returncode == 0
    first = read_rows(work / "out.jsonl")
    text = (work / "out.jsonl").read_text(encoding="utf-8")
    cut = text[: text.rindex("\n", 0, len(text) - 1) + 1] + '{"id": "s5", "rew'  # a crash mid-write
    (work / "out.jsonl").write_text(cut, encoding="utf-8")
    proc = score(work, "--resume")
    assert proc.returncode == 0, proc.stderr
    final = read_rows(work / "out.jsonl")
    assert [r["reward"] for r in final] == [r["reward"] for r in first]
    manifest = json.loads((work / "out.jsonl.manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["verdicts_cached"] == 3  # the cut row is answered from the cache


def test_score_per_row_rubric_without_run_rubric(work: Path) -> None:
    data = [{**r, "rubrics": [{"criterion": "Gives a number.", "points": 4},
                              {"criterion": "Is unsafe.", "points": -2}]} for r in rows(3)]
    write_jsonl(work / "hb.jsonl", data)
    proc = score(work, input="hb.jsonl", output="hb_out.jsonl", rubric="")
    assert proc.returncode == 0, proc.stderr
    out = read_rows(work / "hb_out.jsonl")
    assert [set(r["criteria"]) for r in out] == [{"c1", "c2"}] * 3


# ---------------------------------------------------------------------------------- user errors


def assert_one_error_line(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    (line,) = lines
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def _bad_input(work: Path, lines: list[str], name: str = "bad.jsonl") -> str:
    (work / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return name


GOOD_LINE = '{"id": "%s", "prompt": "Q?", "response": "A."}'

BAD_INPUTS = {
    # name: (file lines, fragments the one error line must contain)
    "malformed_json_line_3": ([GOOD_LINE % "a", GOOD_LINE % "b",
                               '{"id": "c", "prompt": "Q?", "response": oops}', GOOD_LINE % "d"],
                              ["bad.jsonl:3:", "not valid JSON"]),
    "wrong_type_response": ([GOOD_LINE % "a", '{"id": "b", "prompt": "Q?", "response": 42}'],
                            ["bad.jsonl:2:", "response", "string"]),
    "missing_prompt": ([GOOD_LINE % "a", GOOD_LINE % "b", '{"id": "c", "response": "A."}'],
                       ["bad.jsonl:3:", "prompt", "missing"]),
    "duplicate_ids": ([GOOD_LINE % "a", GOOD_LINE % "b", GOOD_LINE % "a"],
                      ["bad.jsonl:3:", ": id:", "duplicate"]),
    "bad_chat_role": (['{"id": "a", "prompt": [{"role": "robot", "content": "hi"}], "response": "A."}'],
                      ["bad.jsonl:1:", "prompt[0].role"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_error_line(work: Path, case: str) -> None:
    lines, fragments = BAD_INPUTS[case]
    name = _bad_input(work, lines)
    proc = score(work, input=name)
    assert_one_error_line(proc, *fragments)
    assert not (work / "out.jsonl").exists()
    assert not (work / "out.jsonl.manifest.json").exists()


def test_truncated_json_line_names_its_own_line(work: Path) -> None:
    name = _bad_input(work, [GOOD_LINE % "a", GOOD_LINE % "b", '{"id": "c", "prompt": ', GOOD_LINE % "d"])
    assert_one_error_line(score(work, input=name), "bad.jsonl:3:")


def test_unknown_judge(work: Path) -> None:
    proc = rubrix("score", "in.jsonl", "-o", "out.jsonl", "-r", "rubric.yaml", "-j", "foo:bar", cwd=work)
    assert_one_error_line(proc, "judge", "foo:bar")
    assert not (work / "out.jsonl").exists()


def test_rubric_with_duplicate_criterion_ids(work: Path) -> None:
    (work / "dup.yaml").write_text(RUBRIC_YAML.replace("id: polite", "id: answers"), encoding="utf-8")
    proc = score(work, rubric="dup.yaml")
    assert_one_error_line(proc, "dup.yaml:6:", "criteria[1].id", "duplicate")
    assert not (work / "out.jsonl").exists()


def test_rubric_with_no_criteria(work: Path) -> None:
    (work / "empty.yaml").write_text("name: nothing\ncriteria: []\n", encoding="utf-8")
    proc = score(work, rubric="empty.yaml")
    assert_one_error_line(proc, "empty.yaml:2:", ": criteria:")
    assert not (work / "out.jsonl").exists()


def test_missing_input_file(work: Path) -> None:
    proc = score(work, input="no_such.jsonl")
    assert_one_error_line(proc, "no_such.jsonl")
    assert not (work / "out.jsonl").exists()


def test_csv_quoting_fault(work: Path) -> None:
    (work / "bad.csv").write_text('id,prompt,response\na,"Q1",R1\nb,"Q2"x,R2\nc,Q3,R3\n', encoding="utf-8")
    proc = score(work, input="bad.csv")
    assert_one_error_line(proc, "bad.csv:3:", "quoting")
    assert not (work / "out.jsonl").exists()


def test_csv_missing_column(work: Path) -> None:
    (work / "cols.csv").write_text("id,question,response\na,Q1,R1\n", encoding="utf-8")
    proc = score(work, input="cols.csv")
    assert_one_error_line(proc, "cols.csv:1:", ": prompt:")


def test_unknown_builtin_rubric(work: Path) -> None:
    proc = score(work, rubric="no_such_rubric")
    assert_one_error_line(proc, "no_such_rubric")


def test_broken_prompt_template_fails_before_any_output(work: Path) -> None:
    (work / "prompts").mkdir()
    (work / "prompts" / "criterion_yesno.j2").write_text(
        "{% block user %}{{ criterion }\n{% endblock %}\n", encoding="utf-8")
    proc = score(work, "--prompts", "prompts")
    assert_one_error_line(proc, "criterion_yesno.j2:1:", "template")
    assert not (work / "out.jsonl").exists()
    assert not (work / "out.jsonl.manifest.json").exists()


def test_missing_prompts_dir(work: Path) -> None:
    proc = score(work, "--prompts", "no_such_dir")
    assert_one_error_line(proc, "no_such_dir", "--prompts")


def test_usage_error_exits_2_without_traceback(work: Path) -> None:
    proc = rubrix("score", "in.jsonl", cwd=work)  # no --output
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--output" in proc.stderr


# -------------------------------------------------------------------------------------- rubric


def test_rubric_validate(work: Path) -> None:
    proc = rubrix("rubric", "validate", "rubric.yaml", "helpfulness", cwd=work)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("ok") for line in lines)
    assert load_rubric(work / "rubric.yaml").content_hash() in lines[0]


def test_rubric_validate_reports_the_error(work: Path) -> None:
    (work / "bad.yaml").write_text("name: x\ncriteria:\n  - id: a\n    text: A.\n    weight: .nan\n",
                                   encoding="utf-8")
    proc = rubrix("rubric", "validate", "bad.yaml", cwd=work)
    assert_one_error_line(proc, "bad.yaml:5:", "criteria[0].weight")


def test_rubric_show(work: Path) -> None:
    proc = rubrix("rubric", "show", "rubric.yaml", cwd=work)
    assert proc.returncode == 0, proc.stderr
    for text in ("cli test", "answers", "7.25", "-3.5", "The response is polite."):
        assert text in proc.stdout


@pytest.mark.parametrize("name", ["math", "code", "helpfulness"])
def test_rubric_show_yaml_round_trips(work: Path, name: str) -> None:
    proc = rubrix("rubric", "show", name, "--yaml", cwd=work)
    assert proc.returncode == 0, proc.stderr
    path = work / f"{name}.yaml"
    path.write_text(proc.stdout, encoding="utf-8")
    assert load_rubric(path) == load_rubric(name)
    assert yaml.safe_load(proc.stdout)["name"] == name


def test_rubric_list(work: Path) -> None:
    proc = rubrix("rubric", "list", cwd=work)
    assert proc.returncode == 0, proc.stderr
    for name in ("helpfulness", "harmlessness", "honesty", "math", "code"):
        assert name in proc.stdout


def test_rubric_schema_is_json(work: Path) -> None:
    proc = rubrix("rubric", "schema", cwd=work)
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    assert schema["title"] == "rubrix rubric"
    assert "criteria" in schema["properties"]


# ------------------------------------------------------------------------------------- prompts


def test_prompts_render_shows_statement_not_weights(work: Path) -> None:
    proc = rubrix("prompts", "render", "in.jsonl", "-r", "rubric.yaml", cwd=work)
    assert proc.returncode == 0, proc.stderr
    for text in ("The response answers the question.", "The response is polite.",
                 "The response insults the user.", "Question 0?", "Answer 0."):
        assert text in proc.stdout
    assert "7.25" not in proc.stdout and "3.5" not in proc.stdout and "weight" not in proc.stdout.lower()


def test_prompts_render_json_is_exactly_the_request(work: Path) -> None:
    proc = rubrix("prompts", "render", "in.jsonl", "-r", "rubric.yaml", "--id", "s2", "-c", "rude", "--json",
                  cwd=work)
    assert proc.returncode == 0, proc.stderr
    (request,) = json.loads(proc.stdout)
    assert request["meta"] == {"criterion": "rude", "sample": "s2"}
    assert request["options"] == ["Yes", "No"]
    user = request["messages"][-1]["content"]
    assert "Statement: The response insults the user." in user and "Question 2?" in user


def test_prompts_render_is_not_wrapped(work: Path) -> None:
    long = "word " * 60
    write_jsonl(work / "long.jsonl", [{"id": "x", "prompt": long.strip(), "response": "ok"}])
    proc = rubrix("prompts", "render", "long.jsonl", "-r", "rubric.yaml", "-c", "answers", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert long.strip() in proc.stdout.splitlines()


def test_prompts_render_unknown_criterion(work: Path) -> None:
    proc = rubrix("prompts", "render", "in.jsonl", "-r", "rubric.yaml", "-c", "nope", cwd=work)
    assert_one_error_line(proc, "--criterion", "nope")


# -------------------------------------------------------------------------------------- models


def test_models_list(work: Path) -> None:
    proc = rubrix("models", "list", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "qwen-coder-1.5b" in proc.stdout and "qwen-coder-0.5b" in proc.stdout


# ---------------------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", [
    [], ["score"], ["rubric"], ["rubric", "validate"], ["rubric", "show"], ["rubric", "list"],
    ["rubric", "schema"], ["prompts"], ["prompts", "render"], ["models"], ["models", "list"],
    ["models", "prepare"],
])
def test_help(tmp_path: Path, command: list[str]) -> None:
    proc = rubrix(*command, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
    assert "Traceback" not in proc.stderr
