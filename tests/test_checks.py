"""Deterministic criteria (``check:``): each kind on real text, typed failures, load-time errors.

Checks never call a judge, so these tests need none; where a scorer is involved the judge is
``FakeJudge`` (named as such) and only its call count is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from rubrix.checks import CheckFailure, compile_check, last_boxed, last_number, match_reference, parse_number
from rubrix.errors import RubricError
from rubrix.judges.fake import FakeJudge
from rubrix.rubric import json_schema, load_rubric, rubric_from_data
from rubrix.scoring import Scorer


@pytest.fixture(autouse=True)
def _rubrix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "home"))


def run(spec: dict, response: str, prompt: str = "", reference: str | None = None):
    return compile_check(spec).run(response, prompt, reference)


# -------------------------------------------------------------------------------------- kinds


def test_regex_must_and_must_not_match() -> None:
    assert run({"regex": r"```python\n"}, "```python\nprint(1)\n```") == 1.0
    assert run({"regex": r"```python\n"}, "print(1)") == 0.0
    assert run({"regex": r"as an ai", "match": False, "ignore_case": True}, "As an AI, I cannot") == 0.0
    assert run({"regex": r"as an ai", "match": False, "ignore_case": True}, "Sure: 4") == 1.0
    assert run({"regex": r"\bcode\b", "in": "prompt"}, "anything", prompt="write code please") == 1.0


@pytest.mark.parametrize(("unit", "text", "n"), [("words", "one two  three", 3), ("chars", "abcd", 4),
                                                 ("tokens", "f(x) = 2", 6)])
def test_length_units(unit: str, text: str, n: int) -> None:
    assert run({"length": {"min": n, "max": n, "unit": unit}}, text) == 1.0
    assert run({"length": {"max": n - 1, "unit": unit}}, text) == 0.0
    assert run({"length": {"min": n + 1, "unit": unit}}, text) == 0.0


def test_json_and_json_schema() -> None:
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}
    assert run({"json": True}, '{"a": 1}') == 1.0
    assert run({"json": True}, "not json") == 0.0
    assert run({"json": True}, 'Here:\n```json\n{"a": [1, 2]}\n```\n') == 1.0  # one fenced block
    assert run({"json": {"schema": schema}}, '{"answer": 4}') == 1.0
    assert run({"json": {"schema": schema}}, '{"answer": "four"}') == 0.0


@pytest.mark.parametrize(("mode", "response", "reference", "met"), [
    ("exact", "Paris", "Paris", True),
    ("exact", "paris", "Paris", False),
    ("normalized", "The Paris!", "paris", True),
    ("numeric", "1,000", "1000", True),
    ("numeric", "0.3333334", "1/3", True),
    ("numeric", "0.34", "1/3", False),
    ("boxed", r"so \boxed{\frac{1}{2}}", "0.5", True),
    ("boxed", r"\boxed{x+1} is it", r"the answer is \boxed{x + 1}", True),
    ("boxed", "the answer is 4", "4", False),
    ("last_number", "2 + 2 = 4, so 4.", "4", True),
    ("last_number", "I think 4, no wait: 5", "4", False),
    ("last_number", r"\boxed{12} (checked with 3 cases)", "12", True),
])
def test_reference_modes(mode: str, response: str, reference: str, met: bool) -> None:
    assert match_reference(response, reference, mode) is met
    assert run({"reference": mode}, response, reference=reference) == float(met)


def test_numeric_tolerance() -> None:
    assert run({"reference": "numeric", "tolerance": 0.01}, "3.14", reference="3.14159") == 1.0
    assert run({"reference": "numeric"}, "3.14", reference="3.14159") == 0.0


def test_number_helpers() -> None:
    assert last_boxed(r"a \boxed{\frac{1}{2}} b") == r"\frac{1}{2}"
    assert parse_number("$1,234.50") == 1234.5
    assert parse_number("-3/4") == -0.75
    assert last_number("no numbers") is None


def test_reference_check_without_reference_is_an_input_failure() -> None:
    out = run({"reference": "exact"}, "4", reference=None)
    assert isinstance(out, CheckFailure) and out.error == "input"


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, name: str = "user_checks") -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return name


def test_python_check_values_and_typed_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _module(tmp_path, monkeypatch, """
        def starts_upper(text, *, prompt, reference):
            return text[:1].isupper()
        def half(text, **_):
            return 0.5
        def boom(text, **_):
            raise ValueError("cannot parse")
        def bad(text, **_):
            return 7
    """)
    assert run({"python": f"{mod}:starts_upper"}, "Yes") == 1.0
    assert run({"python": f"{mod}:starts_upper"}, "yes") == 0.0
    assert run({"python": f"{mod}:half"}, "x") == 0.5
    out = run({"python": f"{mod}:boom"}, "x")
    assert isinstance(out, CheckFailure) and out.error == "check" and "ValueError: cannot parse" in out.detail
    out = run({"python": f"{mod}:bad"}, "x")
    assert isinstance(out, CheckFailure) and out.error == "check" and "7" in out.detail


def test_check_is_equal_and_picklable_by_its_spec() -> None:
    import pickle

    a, b = compile_check({"regex": "x+"}), compile_check({"regex": "x+"})
    assert a == b and hash(a) == hash(b) and a != compile_check({"regex": "y"})
    c = pickle.loads(pickle.dumps(a))
    assert c == a and c.run("xx") == 1.0


# ------------------------------------------------------------------------------ in a rubric


HELPFULNESS_HASH = "sha256:62412e3246ff117d"  # computed on main before checks existed

MIXED = {
    "name": "mixed",
    "criteria": [
        {"id": "answer", "check": {"reference": "last_number"}, "category": "essential"},
        {"id": "fenced", "text": "Uses a fence.", "weight": 1, "check": {"regex": "```"}},
        {"id": "short", "check": {"length": {"max": 20}}, "weight": 1},
        {"id": "clear", "text": "The explanation is clear.", "weight": 2},
        {"id": "hedge", "check": {"regex": "(?i)as an ai"}, "weight": -2},
    ],
}


def test_checks_cost_no_judge_call_and_mix_in_one_row() -> None:
    judge = FakeJudge()
    scorer = Scorer(MIXED, judge, cache=False)
    [res] = scorer.score([{"id": "a", "prompt": "2+2?", "response": "As an AI: 2+2 = 4", "reference": "4"}])
    assert judge.calls == 1  # only `clear` went to the judge
    row = res.to_row()
    assert row["status"] == "ok"
    assert row["criteria"]["answer"] == {"p": 1.0, "met": True, "error": None, "source": "check"}
    assert row["criteria"]["fenced"]["p"] == 0.0 and row["criteria"]["hedge"]["met"] is True
    assert "source" not in row["criteria"]["clear"]  # judged rows keep their shape
    clear = row["criteria"]["clear"]["p"]
    assert row["reward"] == pytest.approx((5 * 1 + 0 + 1 * 1 + 2 * clear - 2 * 1) / 9, abs=1e-6)
    assert scorer.counts["checked"] == 4
    assert scorer.meter.total().verdicts == 1


def test_a_check_failure_is_a_typed_failure_never_a_number() -> None:
    scorer = Scorer(MIXED, FakeJudge(), cache=False)
    [res] = scorer.score([{"id": "a", "prompt": "2+2?", "response": "4"}])  # no reference
    assert res.status == "partial" and res.reward is None
    assert res.to_row()["criteria"]["answer"] == {"p": None, "met": None, "error": "input", "source": "check"}
    assert "reference" in res.errors["answer"]


def test_checklist_mode_never_sends_checked_criteria() -> None:
    scorer = Scorer(MIXED, FakeJudge(), cache=False, mode="checklist")
    [req] = scorer.requests_for({"id": "a", "prompt": "p", "response": "r", "reference": "1"})
    assert req.checklist_ids == ("clear",)


def test_text_defaults_to_the_check_and_round_trips() -> None:
    r = rubric_from_data(MIXED)
    assert r.criterion("short").text == "The response is at most 20 words long."
    again = rubric_from_data(json.loads(json.dumps(r.to_dict())))
    assert again == r and again.content_hash() == r.content_hash()


def test_content_hash_covers_checks_and_leaves_old_rubrics_alone() -> None:
    assert load_rubric("helpfulness").content_hash() == HELPFULNESS_HASH  # as before checks existed
    other = json.loads(json.dumps(MIXED))
    other["criteria"][2]["check"]["length"]["max"] = 21
    assert rubric_from_data(other).content_hash() != rubric_from_data(MIXED).content_hash()


def test_schema_accepts_checks() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(json.dumps(rubric_from_data(MIXED).to_dict()))
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(data))


# ------------------------------------------------------------------------- load-time errors


def _rubric_file(tmp_path: Path, criterion: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text("name: bad\ncriteria:\n  - id: ok\n    text: Fine.\n    weight: 1\n" + criterion)
    return path


@pytest.mark.parametrize(("criterion", "line", "field", "match"), [
    ("  - id: c\n    weight: 1\n    check:\n      regex: '(unclosed'\n", 9, "criteria[1].check.regex",
     "invalid regular expression"),
    ("  - id: c\n    weight: 1\n    check: {python: 'no_such_module_xyz:f'}\n", 8, "criteria[1].check.python",
     "cannot import"),
    ("  - id: c\n    weight: 1\n    check: {python: 'json:no_such_function'}\n", 8,
     "criteria[1].check.python",
     "no function"),
    ("  - id: c\n    weight: 1\n    check:\n      json: {schema: {type: 12}}\n", 9,
     "criteria[1].check.json.schema",
     "invalid JSON Schema"),
    ("  - id: c\n    weight: 1\n    check: {length: {max: 5, unit: lines}}\n", 8,
     "criteria[1].check.length.unit",
     "unit"),
    ("  - id: c\n    weight: 1\n    check: {regex: a, length: {max: 3}}\n", 8, "criteria[1].check",
     "exactly one"),
    ("  - id: c\n    weight: 1\n    check: {reference: fuzzy}\n", 8, "criteria[1].check.reference", "exact"),
    ("  - id: c\n    weight: 1\n    check: {regex: a, on: prompt}\n", 8, "criteria[1].check.on",
     "in: prompt"),
])
def test_bad_checks_fail_at_load_with_line_and_field(tmp_path: Path, criterion: str, line: int, field: str,
                                                     match: str) -> None:
    with pytest.raises(RubricError, match=match) as info:
        load_rubric(_rubric_file(tmp_path, criterion))
    assert (info.value.line, info.value.field) == (line, field)


def test_cli_validate_bad_check_is_one_line_exit_2(tmp_path: Path) -> None:
    path = _rubric_file(tmp_path, "  - id: c\n    weight: 1\n    check:\n      regex: '(unclosed'\n")
    proc = subprocess.run([sys.executable, "-m", "rubrix", "rubric", "validate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and f"{path}:9" in lines[0] and "criteria[1].check.regex" in lines[0]
    assert "Traceback" not in proc.stderr


def test_builtin_math_checks_the_reference_and_judges_only_without_one() -> None:
    judge = FakeJudge()
    scorer = Scorer("math", judge, cache=False)
    with_ref, without = scorer.score([
        {"id": "r", "prompt": "What is 6*7?", "response": r"6*7 = \boxed{42}", "reference": "42"},
        {"id": "n", "prompt": "What is 6*7?", "response": r"6*7 = \boxed{42}"}])
    assert with_ref.criteria["final_answer_matches_reference"].p == 1.0
    assert with_ref.criteria["final_answer_correct"].na
    assert without.criteria["final_answer_matches_reference"].na
    assert without.criteria["final_answer_correct"].p is not None
    n = len(scorer.rubric.criteria)
    # the check costs no judge call, nor does the criterion known not to apply: (n - 2) + (n - 1)
    assert judge.calls == 2 * n - 3


def test_builtin_code_checks_the_fence() -> None:
    scorer = Scorer("code", FakeJudge(), cache=False)
    fenced, bare = scorer.score([{"id": "f", "prompt": "p", "response": "```python\nx = 1\n```"},
                                 {"id": "b", "prompt": "p", "response": "x = 1"}])
    assert fenced.criteria["code_in_fenced_block"].p == 1.0 and bare.criteria["code_in_fenced_block"].p == 0.0


def test_export_to_judged_formats_refuses_checks() -> None:
    from rubrix.errors import UserError
    from rubrix.export import openai_grader

    with pytest.raises(UserError, match="checks"):
        openai_grader(MIXED)
