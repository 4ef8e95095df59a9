"""Loading, validating, saving and hashing rubrics.

Rubric files are written by people, so every loader error here is checked for the three things a
user needs to fix it: the file, the line and the field. All files are real files in ``tmp_path``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rubrix.errors import RubricError
from rubrix.resources import builtin_rubric_names
from rubrix.rubric import (
    CATEGORY_WEIGHTS,
    Rubric,
    dump_rubric,
    json_schema,
    load_rubric,
    rubric_from_data,
    save_rubric,
)


@pytest.fixture(autouse=True)
def _rubrix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "rubrix_home"))


def write(tmp_path: Path, text: str, name: str = "rubric.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> RubricError:
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    return info.value


def expect_error(path: Path, *, line: int | None, field: str | None, match: str | None = None) -> RubricError:
    err = load_error(path)
    assert err.file == str(path), str(err)
    assert err.line == line, str(err)
    assert err.field == field, str(err)
    if match is not None:
        assert match.lower() in err.message.lower(), str(err)
    # the one line the CLI prints names all three
    text = str(err)
    assert text.startswith(f"{path}:{line}" if line else str(path))
    if field:
        assert f": {field}: " in text
    return err


GOOD = """\
name: good
description: A small rubric for tests.
criteria:
  - id: answers
    text: The response answers the question.
    weight: 5
  - id: rude
    text: The response is rude.
    weight: -2
"""


# --------------------------------------------------------------------------------------- loading


def test_good_rubric_loads(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    rubric = load_rubric(path)
    assert rubric.name == "good"
    assert [c.id for c in rubric.criteria] == ["answers", "rude"]
    assert [c.weight for c in rubric.criteria] == [5.0, -2.0]
    assert rubric.criteria[1].is_pitfall and rubric.criteria[1].category == "pitfall"
    assert rubric.origin == str(path)
    assert rubric.aggregation == "weighted"


def test_duplicate_criterion_ids(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name: dup
criteria:
  - id: clear
    text: The answer is clear.
    weight: 2
  - id: clear
    text: The answer is short.
    weight: 1
""")
    expect_error(path, line=6, field="criteria[1].id", match="duplicate criterion id")


def test_duplicate_ids_derived_from_text(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name: dup
criteria:
  - text: The answer is clear.
    weight: 2
  - text: The answer is clear!
    weight: 1
""")
    expect_error(path, line=5, field="criteria[1].id", match="duplicate")


@pytest.mark.parametrize("body, line", [
    ("name: empty\ncriteria: []\n", 2),
    ("name: empty\ncriteria:\n", 2),
    ("name: empty\n", 1),
])
def test_no_criteria(tmp_path: Path, body: str, line: int) -> None:
    path = write(tmp_path, body)
    expect_error(path, line=line, field="criteria")


def test_only_pitfalls_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ncriteria:\n  - text: The answer is rude.\n    weight: -1\n")
    expect_error(path, line=3, field="criteria", match="positive weight")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nauthor: me\ncriteria:\n  - text: A.\n    weight: 1\n")
    expect_error(path, line=2, field="author", match="unknown key")


def test_unknown_criterion_key(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name: x
criteria:
  - id: a
    text: The answer is clear.
    wieght: 2
""")
    expect_error(path, line=5, field="criteria[0].wieght", match="unknown key")


@pytest.mark.parametrize("weight", ['"3"', "0", "0.0", ".nan", ".NaN", ".inf", "-.inf", "true", "no", "[1]",
                                    "{}"])
def test_bad_weight(tmp_path: Path, weight: str) -> None:
    path = write(tmp_path, f"""\
name: x
criteria:
  - id: a
    text: The answer is clear.
    weight: {weight}
""")
    expect_error(path, line=5, field="criteria[0].weight")


def test_missing_weight_and_category(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ncriteria:\n  - id: a\n    text: The answer is clear.\n")
    expect_error(path, line=3, field="criteria[0].weight", match="missing")


def test_pitfall_category_with_positive_weight(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name: x
criteria:
  - id: good
    text: The answer is clear.
    weight: 1
  - id: rude
    text: The answer is rude.
    category: pitfall
    weight: 2
""")
    expect_error(path, line=9, field="criteria[1].weight", match="pitfall")


def test_negative_weight_with_category_essential(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name: x
criteria:
  - id: good
    text: The answer is clear.
    weight: 1
  - id: rude
    text: The answer is rude.
    category: essential
    weight: -3
""")
    expect_error(path, line=9, field="criteria[1].weight", match="essential")


def test_unknown_category(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ncriteria:\n  - text: A.\n    category: crucial\n")
    expect_error(path, line=4, field="criteria[0].category")


SCALE = """\
name: x
criteria:
  - id: depth
    text: The answer explains its reasoning.
    weight: 2
    scale:
      1: No reasoning.
      2: Little reasoning.
      3: Some reasoning.
      4: Most steps explained.
{extra}"""


def test_scale_missing_a_level(tmp_path: Path) -> None:
    path = write(tmp_path, SCALE.format(extra=""))
    expect_error(path, line=7, field="criteria[0].scale", match="missing [5]")


def test_scale_level_7(tmp_path: Path) -> None:
    path = write(tmp_path, SCALE.format(extra="      5: All.\n      7: Beyond.\n"))
    expect_error(path, line=12, field="criteria[0].scale[7]", match="1..5")


def test_scale_empty_descriptor(tmp_path: Path) -> None:
    path = write(tmp_path, SCALE.format(extra='      5: ""\n'))
    expect_error(path, line=11, field="criteria[0].scale[5]", match="descriptor")


def test_scale_level_given_twice(tmp_path: Path) -> None:
    path = write(tmp_path, SCALE.format(extra='      5: All.\n      "4": Again.\n'))
    expect_error(path, line=12, field="criteria[0].scale.4", match="twice")


@pytest.mark.parametrize("key", ["1.5", "true", "one"])
def test_scale_level_not_an_integer(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, SCALE.format(extra=f"      5: All.\n      {key}: Odd.\n"))
    err = load_error(path)
    assert err.file == str(path) and err.line == 12
    assert err.field.startswith("criteria[0]")


def test_scale_loads(tmp_path: Path) -> None:
    rubric = load_rubric(write(tmp_path, SCALE.format(extra="      5: All steps explained.\n")))
    (c,) = rubric.criteria
    assert c.is_scale and sorted(c.scale) == [1, 2, 3, 4, 5]
    assert c.scale[5] == "All steps explained."


def test_duplicate_yaml_keys(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name: x
criteria:
  - id: a
    text: The answer is clear.
    weight: 1
    weight: 2
""")
    expect_error(path, line=6, field="criteria[0].weight", match="duplicate key")


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ncriteria:\n  - text: A.\n    weight: 1\nname: y\n")
    expect_error(path, line=5, field="name", match="duplicate key")


def test_tab_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ncriteria:\n\t- text: A.\n\t  weight: 1\n")
    expect_error(path, line=3, field=None, match="tab")


def test_tab_inside_a_block_scalar_is_content(tmp_path: Path) -> None:
    """A tab after the indentation of a literal block is text (code in a criterion), not indentation."""
    path = write(tmp_path, "name: x\ncriteria:\n  - text: |\n      The answer defines f:\n      \treturn 1\n"
                           "    weight: 1\n")
    (c,) = load_rubric(path).criteria
    assert "\treturn 1" in c.text


def test_anchor_and_alias_refused(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name: x
criteria:
  - &first
    text: The answer is clear.
    weight: 1
  - *first
""")
    expect_error(path, line=3, field=None, match="anchors and aliases")


def test_billion_laughs_fails_fast(tmp_path: Path) -> None:
    levels = ["a: &a [" + ",".join(['"lol"'] * 9) + "]"]
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = write(tmp_path, "\n".join(levels) + "\nname: bomb\ncriteria: *i\n")
    start = time.perf_counter()
    err = expect_error(path, line=1, field=None, match="anchors and aliases")
    assert time.perf_counter() - start < 1.0
    assert "not allowed" in err.message


def test_alias_only_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ncriteria:\n  - text: A.\n    weight: *w\n")
    err = load_error(path)
    assert err.file == str(path) and err.line == 4


@pytest.mark.parametrize("tagged", [
    "!!python/object:builtins.dict {}",
    '!!python/object/apply:os.system ["echo pwned"]',
    "!!python/name:os.system",
])
def test_python_tags_refused(tmp_path: Path, tagged: str) -> None:
    path = write(tmp_path, f"name: x\ncriteria:\n  - text: A.\n    weight: {tagged}\n")
    expect_error(path, line=4, field="criteria[0].weight", match="tag")


def test_custom_tag_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: !secret x\ncriteria:\n  - text: A.\n    weight: 1\n")
    expect_error(path, line=1, field="name", match="tag")


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    expect_error(write(tmp_path, text), line=1, field=None, match="empty")


def test_invalid_yaml_syntax_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name: x
criteria:
  - text: A.
    weight: 1
  - text: "unclosed
    weight: 2
""")
    err = expect_error(path, line=7, field=None, match="not valid YAML")
    assert "\n" not in str(err)


def test_invalid_yaml_bad_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ncriteria:\n  - text: A.\n     weight: 1\n")
    err = load_error(path)
    assert err.file == str(path) and err.line == 4 and err.field is None


def test_not_a_mapping(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "- a\n- b\n"), line=1, field="<root>", match="mapping")


def test_missing_name(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "criteria:\n  - text: A.\n    weight: 1\n"), line=1, field="name")


def test_bad_aggregation(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\naggregation: median\ncriteria:\n  - text: A.\n    weight: 1\n")
    expect_error(path, line=2, field="aggregation")


def test_bad_id(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ncriteria:\n  - id: Not A Slug\n    text: A.\n    weight: 1\n")
    expect_error(path, line=3, field="criteria[0].id", match="slug")


def test_unknown_rubric_name() -> None:
    with pytest.raises(RubricError) as info:
        load_rubric("no_such_rubric_anywhere")
    assert info.value.file == "no_such_rubric_anywhere"
    assert "helpfulness" in info.value.message  # lists the built-ins


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\ncriteria: [{text: A., weight: 1}]\n".encode("latin-1"))
    err = load_error(path)
    assert err.file == str(path) and "UTF-8" in err.message


# ------------------------------------------------------------------------------------------ JSON


JSON_RUBRIC = {
    "name": "json rubric",
    "criteria": [
        {"id": "answers", "text": "The response answers the question.", "weight": 3},
        {"id": "rude", "text": "The response is rude.", "category": "pitfall"},
    ],
}


@pytest.mark.parametrize("indent", [None, 2, "\t"])
def test_json_rubric_loads(tmp_path: Path, indent) -> None:
    path = write(tmp_path, json.dumps(JSON_RUBRIC, indent=indent), name="rubric.json")
    rubric = load_rubric(path)
    assert rubric.name == "json rubric"
    assert [(c.id, c.weight) for c in rubric.criteria] == [("answers", 3.0), ("rude", -2.0)]
    assert rubric == rubric_from_data(JSON_RUBRIC)


def test_json_string_with_escaped_tab(tmp_path: Path) -> None:
    data = {"name": "x", "criteria": [{"text": "Has a\ttab.", "weight": 1}]}
    path = write(tmp_path, json.dumps(data, indent="\t"), name="rubric.json")
    assert load_rubric(path).criteria[0].text == "Has a\ttab."


def test_json_trailing_comma(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "name": "x",\n  "criteria": [\n    {"text": "A.", "weight": 1},\n  ],,\n}\n',
                 name="rubric.json")
    expect_error(path, line=5, field=None, match="not valid YAML/JSON")


def test_json_unclosed(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "name": "x",\n  "criteria": [\n    {"text": "A.", "weight": 1}\n',
                 name="rubric.json")
    err = load_error(path)
    assert err.file == str(path) and err.line == 5 and err.field is None


def test_json_duplicate_key(tmp_path: Path) -> None:
    path = write(tmp_path, '{"name": "x",\n "name": "y",\n "criteria": [{"text": "A.", "weight": 1}]}',
                 name="rubric.json")
    expect_error(path, line=2, field="name", match="duplicate key")


def test_json_bad_weight_names_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "name": "x",\n  "criteria": [\n    {"text": "A.",\n     "weight": "heavy"}\n'
                           '  ]\n}', name="rubric.json")
    expect_error(path, line=5, field="criteria[0].weight")


# ------------------------------------------------------------------------------ defaults and ids


@pytest.mark.parametrize("category, weight", sorted(CATEGORY_WEIGHTS.items()))
def test_category_default_weights(category: str, weight: float) -> None:
    criteria = [{"id": "c", "text": "The statement.", "category": category}]
    if weight < 0:
        criteria.insert(0, {"id": "base", "text": "The answer exists.", "weight": 1})
    rubric = rubric_from_data({"name": "x", "criteria": criteria})
    c = rubric.criterion("c")
    assert c.weight == weight
    assert c.category == category


def test_category_default_weight_values() -> None:
    assert CATEGORY_WEIGHTS == {"essential": 5.0, "important": 3.0, "optional": 1.0, "pitfall": -2.0}


def test_explicit_weight_overrides_category() -> None:
    rubric = rubric_from_data({"name": "x",
                               "criteria": [{"text": "A.", "category": "essential", "weight": 8}]})
    assert rubric.criteria[0].weight == 8.0


def test_negative_weight_makes_a_pitfall() -> None:
    rubric = rubric_from_data({"name": "x", "criteria": [{"text": "A.", "weight": 1},
                                                         {"text": "B.", "weight": -4}]})
    assert rubric.criteria[1].category == "pitfall"
    assert rubric.criteria[1].is_pitfall


def test_id_derived_from_text() -> None:
    rubric = rubric_from_data({"name": "x", "criteria": [
        {"text": "  The answer cites a source (e.g. a URL)!  ", "weight": 1},
        {"text": "Criteria given by category get an id too.", "category": "optional"},
    ]})
    first, second = rubric.criteria
    assert first.id == "the_answer_cites_a_source_e_g_a_url"
    assert first.text == "The answer cites a source (e.g. a URL)!"
    assert second.id == "criteria_given_by_category_get_an_id_too"
    long = rubric_from_data({"name": "x", "criteria": [{"text": "word " * 40, "weight": 1}]})
    assert len(long.criteria[0].id) <= 48 and not long.criteria[0].id.endswith("_")


# -------------------------------------------------------------------------------------- hashing


def test_content_hash_stable_across_key_order_and_float_format(tmp_path: Path) -> None:
    a = write(tmp_path, """\
name: h
criteria:
  - id: a
    text: The answer is clear.
    weight: 1
  - id: b
    text: The answer is rude.
    weight: -2
""", name="a.yaml")
    b = write(tmp_path, """\
criteria:
  - weight: 1.0
    text: The answer is clear.
    id: a
  - text: The answer is rude.
    weight: -2.00
    id: b
name: h
""", name="b.yaml")
    ra, rb = load_rubric(a), load_rubric(b)
    assert ra == rb
    assert ra.content_hash() == rb.content_hash()
    assert ra.content_hash().startswith("sha256:")


def test_content_hash_changes_with_weight_not_with_description() -> None:
    base = {"name": "h", "description": "first", "criteria": [{"id": "a", "text": "A.", "weight": 1},
                                                               {"id": "b", "text": "B.", "weight": 2}]}
    h = rubric_from_data(base).content_hash()
    reweighted = json.loads(json.dumps(base))
    reweighted["criteria"][1]["weight"] = 3
    assert rubric_from_data(reweighted).content_hash() != h
    described = {**base, "description": "something else entirely", "name": "renamed",
                 "provenance": {"run": "r1"}}
    assert rubric_from_data(described).content_hash() == h
    retexted = json.loads(json.dumps(base))
    retexted["criteria"][0]["text"] = "A changed."
    assert rubric_from_data(retexted).content_hash() != h
    reordered = {**base, "criteria": list(reversed(base["criteria"]))}
    assert rubric_from_data(reordered).content_hash() != h  # order is what the results list follows


def test_content_hash_covers_scale_veto_principles_aggregation() -> None:
    base = {"name": "h", "criteria": [{"id": "a", "text": "A.", "weight": 1}]}
    h = rubric_from_data(base).content_hash()
    variants = [
        {**base, "criteria": [{"id": "a", "text": "A.", "weight": 1, "veto": True}]},
        {**base, "criteria": [{"id": "a", "text": "A.", "weight": 1,
                               "scale": {i: f"level {i}" for i in range(1, 6)}}]},
        {**base, "principles": ["Be kind."]},
        {**base, "aggregation": "all_or_nothing"},
    ]
    hashes = {rubric_from_data(v).content_hash() for v in variants}
    assert h not in hashes and len(hashes) == len(variants)


# --------------------------------------------------------------------------------- save and dump


FULL = {
    "name": "full",
    "version": "2.1",
    "description": "Everything a rubric can hold.",
    "principles": ["Be correct.", "Be brief."],
    "aggregation": "veto",
    "provenance": {"run": "r-1", "pairs": ["p1", "p2"]},
    "criteria": [
        {"id": "correct", "text": "The answer is correct.", "category": "essential", "veto": True,
         "tags": ["axis:accuracy"], "theme": "Correctness", "source": {"pairs": ["p1"]}},
        {"id": "depth", "text": "The answer explains why.", "weight": 2.5,
         "scale": {1: "none", 2: "little", 3: "some", 4: "most", 5: "all"}},
        {"id": "rude", "text": "The answer is rude: \"yes\", no or null.", "weight": -1.5},
    ],
}


def test_save_and_reload_round_trip(tmp_path: Path) -> None:
    rubric = rubric_from_data(FULL)
    path = tmp_path / "out" / "full.yaml"
    path.parent.mkdir()
    save_rubric(rubric, path)
    assert not list(path.parent.glob("*.tmp"))
    again = load_rubric(path)
    assert again == rubric
    assert again.content_hash() == rubric.content_hash()
    assert again.origin == str(path)
    assert dump_rubric(again) == dump_rubric(rubric) == path.read_text(encoding="utf-8")


def test_dump_reads_in_human_order() -> None:
    text = dump_rubric(rubric_from_data(FULL))
    assert text.index("name:") < text.index("description:") < text.index("criteria:")
    assert "&" not in text and "*" not in text  # no anchors for the loader to refuse


def test_dump_of_each_builtin_reloads(tmp_path: Path) -> None:
    for name in builtin_rubric_names():
        rubric = load_rubric(name)
        path = tmp_path / f"{name}.yaml"
        save_rubric(rubric, path)
        assert load_rubric(path) == rubric


# ---------------------------------------------------------------------------------------- schema


def _validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _as_json(data: dict) -> dict:
    """What a JSON tool sees: mapping keys become strings (scale levels 1..5 -> "1".."5")."""
    return json.loads(json.dumps(data))


@pytest.mark.parametrize("name", builtin_rubric_names())
def test_schema_accepts_every_builtin(name: str) -> None:
    validator = _validator()
    data = _as_json(load_rubric(name).to_dict())
    errors = [e.message for e in validator.iter_errors(data)]
    assert not errors, errors
    # and the JSON form loads back to the same rubric
    assert rubric_from_data(data) == load_rubric(name)


def test_schema_accepts_what_dump_writes_and_the_loader_reads(tmp_path: Path) -> None:
    validator = _validator()
    rubric = rubric_from_data(FULL)
    data = _as_json(rubric.to_dict())
    assert not list(validator.iter_errors(data))
    path = write(tmp_path, json.dumps(data), name="full.json")
    assert load_rubric(path) == rubric


@pytest.mark.parametrize("bad", [
    {"criteria": [{"text": "A.", "weight": 1}]},                                   # no name
    {"name": "x", "author": "me", "criteria": [{"text": "A.", "weight": 1}]},      # unknown key
    {"name": "x", "criteria": [{"text": "A.", "weight": 1, "wieght": 2}]},         # unknown criterion key
    {"name": "x", "criteria": [{"text": "A."}]},                                   # no weight, no category
    {"name": "x", "criteria": [{"text": "A.", "weight": 0}]},                      # zero weight
    {"name": "x", "criteria": [{"text": "A.", "weight": "3"}]},                    # string weight
    {"name": "x", "criteria": [{"text": "A.", "weight": 2, "category": "pitfall"}]},
    {"name": "x", "criteria": [{"text": "A.", "weight": -2, "category": "essential"}]},
    {"name": "x", "criteria": [{"text": "A.", "weight": 1,
                                "scale": {"1": "a", "2": "b", "3": "c", "4": "d"}}]},
    {"name": "x", "criteria": [{"text": "A.", "weight": 1,
                                "scale": {"1": "a", "2": "b", "3": "c", "4": "d", "5": "e", "7": "f"}}]},
    {"name": "x", "criteria": [{"text": "A.", "weight": 1,
                                "scale": {"1": "a", "2": "b", "3": "c", "4": "d", "5": ""}}]},
    {"name": "x", "criteria": [{"id": "Not A Slug", "text": "A.", "weight": 1}]},
    {"name": "x", "aggregation": "median", "criteria": [{"text": "A.", "weight": 1}]},
])
def test_schema_and_loader_both_refuse(bad: dict) -> None:
    assert list(_validator().iter_errors(bad)), "schema accepted a rubric the loader refuses"
    with pytest.raises(RubricError):
        rubric_from_data(bad)


# ------------------------------------------------------------------------------ property test


_ID = st.from_regex(r"[a-z0-9][a-z0-9_\-.]{0,20}", fullmatch=True)
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"),
    min_size=1, max_size=60,
).map(str.strip).filter(bool)
_WEIGHT = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False).filter(
    lambda w: w != 0)


@st.composite
def rubric_dicts(draw) -> dict:
    ids = draw(st.lists(_ID, min_size=1, max_size=6, unique=True))
    criteria = []
    for cid in ids:
        item: dict = {"id": cid, "text": draw(_TEXT)}
        mode = draw(st.sampled_from(["weight", "category", "both"]))
        if mode == "category":
            item["category"] = draw(st.sampled_from(sorted(CATEGORY_WEIGHTS)))
        else:
            weight = draw(_WEIGHT)
            item["weight"] = draw(st.sampled_from([weight, int(weight) or 1]))
            if mode == "both":
                item["category"] = "pitfall" if item["weight"] < 0 else draw(
                    st.sampled_from(["essential", "important", "optional"]))
        if draw(st.booleans()):
            item["tags"] = draw(st.lists(_TEXT, max_size=3))
        if draw(st.booleans()):
            item["veto"] = True
        if draw(st.integers(0, 4)) == 0:
            item["scale"] = {level: draw(_TEXT) for level in range(1, 6)}
        criteria.append(item)
    if not any((c.get("weight") or CATEGORY_WEIGHTS.get(c.get("category"), -1)) > 0 for c in criteria):
        criteria[0] = {"id": criteria[0]["id"], "text": criteria[0]["text"], "weight": 1}
    data: dict = {"name": draw(_TEXT), "criteria": criteria}
    if draw(st.booleans()):
        data["description"] = draw(_TEXT)
    if draw(st.booleans()):
        data["principles"] = draw(st.lists(_TEXT, min_size=1, max_size=3))
    data["aggregation"] = draw(st.sampled_from(["weighted", "raw", "all_or_nothing", "veto"]))
    return data


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=rubric_dicts())
def test_random_rubrics_round_trip(data: dict, tmp_path: Path) -> None:
    rubric = rubric_from_data(data)
    assert all(math.isfinite(c.weight) and c.weight != 0 for c in rubric.criteria)
    path = tmp_path / "random.yaml"
    save_rubric(rubric, path)
    again = load_rubric(path)
    assert again == rubric
    assert again.content_hash() == rubric.content_hash()
    assert rubric_from_data(_as_json(rubric.to_dict())) == rubric
    assert not list(_validator().iter_errors(_as_json(rubric.to_dict())))


def test_json_form_equals_python_form() -> None:
    a, b = rubric_from_data(FULL), rubric_from_data(json.loads(json.dumps(FULL)))
    assert isinstance(a, Rubric) and a == b
