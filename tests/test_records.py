"""Reading records (JSONL / JSON / CSV / Parquet) into samples and pairs (results files: test_results.py).

Every file here is a real file written to ``tmp_path``; every error test checks that the error names
the file, the line and the field, because that one line is all a user sees.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rubrix import records
from rubrix.errors import InputError, RubricError, UserError
from rubrix.records import (
    FieldMap,
    Pair,
    pair_problem,
    read_pairs,
    read_records,
    read_samples,
    sample_from_dict,
)
from rubrix.rubric import rubric_from_items

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def expect(exc_type: type[Exception], fn, *, file, line, field, match: str | None = None) -> Exception:
    """Run ``fn`` and check the error type, location and (optionally) message."""
    with pytest.raises(exc_type) as info:
        fn()
    err = info.value
    assert err.file == (str(file) if file is not None else None), str(err)
    assert err.line == line, str(err)
    assert err.field == field, str(err)
    if match is not None:
        assert match in err.message, str(err)
    return err


def samples(path, *args, **kwargs) -> list:
    return list(read_samples(path, *args, **kwargs))


# ---------------------------------------------------------------------------------------------
# JSONL: the happy path


def test_jsonl_samples_text_chat_meta_and_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"id": "a", "prompt": "What is 2+2?", "response": "4", "model": "m1", "temp": 0.2}) + "\n"
        "\n"
        "   \n"
        + json.dumps({"id": 7, "prompt": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Hi"}],
                      "response": "", "group_id": 3, "reference": "Hello"}) + "\n",
        encoding="utf-8")
    a, b = samples(path)
    assert (a.id, a.prompt, a.response, a.line) == ("a", "What is 2+2?", "4", 1)
    assert a.meta == {"model": "m1", "temp": 0.2}
    assert a.rubric is None and a.group_id is None and a.reference is None
    assert b.id == "7" and b.line == 4  # ints become strings; blank lines skipped but counted
    assert b.prompt == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert b.response == ""  # an empty response is a real case: judges must see it
    assert (b.group_id, b.reference, b.meta) == ("3", "Hello", {})


def test_field_map_renames_columns(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"qid": "q1", "question": "Why?", "answer": "Because.", "gold": "Ref", "cluster": "g"}])
    fields = FieldMap.parse(["id=qid", "prompt=question", "response=answer", "reference=gold",
                             "group_id=cluster"])
    (s,) = samples(path, fields)
    assert (s.id, s.prompt, s.response, s.reference, s.group_id, s.meta) == ("q1", "Why?", "Because.", "Ref",
                                                                            "g", {})


def test_field_map_parse_errors():
    expect(UserError, lambda: FieldMap.parse(["answer=response"]), file=None, line=None, field="field map",
           match="unknown field 'answer'")
    expect(UserError, lambda: FieldMap.parse(["prompt"]), file=None, line=None, field="field map",
           match="FIELD=COLUMN")
    expect(UserError, lambda: FieldMap.parse(["prompt=a", "prompt=b"]), file=None, line=None,
           field="field map", match="twice")
    assert FieldMap.parse([]) == FieldMap()
    assert FieldMap.parse(["rubrics=items"]).rubric == "items"


def test_default_id_prefix_numbers_rows(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "p", "response": "r"},
                                               {"prompt": "p2", "response": "r"}])
    assert [s.id for s in samples(path, default_id_prefix="row-")] == ["row-1", "row-2"]


def test_gzip_jsonl(tmp_path):
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "z", "prompt": "p", "response": "r"}) + "\n")
    assert [s.id for s in samples(path)] == ["z"]


def test_json_array_file_reports_element_lines(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('[\n  {"id": "a", "prompt": "p", "response": "r"},\n\n  {"id": "b", "prompt": "p",\n'
                    '   "response": "r"}\n]\n', encoding="utf-8")
    assert [(s.id, s.line) for s in samples(path)] == [("a", 2), ("b", 4)]
    bad = tmp_path / "bad.json"
    bad.write_text('[\n {"id": "a", "prompt": "p", "response": "r"},\n {"id": "b" "prompt": 1}\n]',
                   encoding="utf-8")
    expect(InputError, lambda: samples(bad), file=bad, line=3, field=None, match="not valid JSON")
    truncated = tmp_path / "trunc.json"
    truncated.write_text('[{"id": "a", "prompt": "p", "response": "r"},\n', encoding="utf-8")
    expect(InputError, lambda: samples(truncated), file=truncated, line=2, field=None, match="not valid JSON")


def test_json_file_without_bracket_is_read_as_lines(tmp_path):
    path = write_jsonl(tmp_path / "in.json", [{"id": "a", "prompt": "p", "response": "r"}])
    assert [s.id for s in samples(path)] == ["a"]


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "in.jsonl"
    row = json.dumps({"id": "a", "prompt": "p", "response": "r"}).encode()
    path.write_bytes(b"\xef\xbb\xbf" + row + b"\n")
    assert [s.id for s in samples(path)] == ["a"]


# ---------------------------------------------------------------------------------------------
# JSONL: errors name file, line and field


def test_jsonl_invalid_json_names_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "prompt": "p", "response": "r"}\n{"id": "b", "prompt": }\n',
                    encoding="utf-8")
    err = expect(InputError, lambda: samples(path), file=path, line=2, field=None, match="not valid JSON")
    assert str(err).startswith(f"{path}:2: not valid JSON")


def test_jsonl_truncated_last_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "prompt": "p", "response": "r"}\n{"id": "b", "prompt": "p", "resp',
                    encoding="utf-8")
    expect(InputError, lambda: samples(path), file=path, line=2, field=None, match="truncated")


def test_jsonl_line_not_an_object(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "prompt": "p", "response": "r"}\n["b", "p", "r"]\n', encoding="utf-8")
    expect(InputError, lambda: samples(path), file=path, line=2, field=None, match="must be a JSON object")


def test_jsonl_non_utf8_names_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": "a", "prompt": "p", "response": "r"}\n'
                     b'{"id": "b", "prompt": "caf\xe9", "response": "r"}\n')
    expect(InputError, lambda: samples(path), file=path, line=2, field=None, match="not UTF-8")


def test_jsonl_overlong_line_is_refused(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "p", "response": "r"}) + "\n"
                    + json.dumps({"id": "b", "prompt": "x" * 5000, "response": "r"}) + "\n", encoding="utf-8")
    expect(InputError, lambda: samples(path, max_line_bytes=1000), file=path, line=2, field=None,
           match="longer than 1000 bytes")
    assert len(samples(path)) == 2  # the default limit (20 MB) is far above real rows


def test_jsonl_nan_and_duplicate_keys_are_refused(tmp_path):
    nan = tmp_path / "nan.jsonl"
    nan.write_text('{"id": "a", "prompt": "p", "response": "r", "score": NaN}\n', encoding="utf-8")
    expect(InputError, lambda: samples(nan), file=nan, line=1, field=None, match="NaN")
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "prompt": "p", "response": "r", "response": "s"}\n', encoding="utf-8")
    expect(InputError, lambda: samples(dup), file=dup, line=1, field="response", match="twice")


def test_numbers_overflowing_to_infinity_are_refused(tmp_path):
    # Python reads 1e999 as inf, which is not JSON either and must never reach a rubric weight or a reward
    row = '{"id": "a", "prompt": "p", "response": "r", "score": 1e999}\n'
    big = write_jsonl(tmp_path / "ok.jsonl", [])
    big.write_text(row, encoding="utf-8")
    err = expect(InputError, lambda: samples(big), file=big, line=1, field=None, match="out of range")
    assert str(err) == f"{big}:1: not valid JSON: number 1e999 is out of range"
    array = tmp_path / "in.json"
    array.write_text('[\n{"id": "a", "prompt": "p", "response": "r"},\n{"id": "b", "prompt": "p", '
                     '"response": "r", "x": -1E400}\n]\n', encoding="utf-8")
    expect(InputError, lambda: samples(array), file=array, line=3, field=None, match="out of range")
    rubric_cell = write_csv(tmp_path / "in.csv", [["id", "prompt", "response", "rubric"],
                                                 ["a", "p", "r", '[{"text": "Is right.", "weight": 1e999}]']])
    expect(InputError, lambda: samples(rubric_cell), file=rubric_cell, line=2, field="rubric",
           match="out of range")


@pytest.mark.parametrize("row, field, match", [
    ({"id": "a", "prompt": "p", "response": True}, "response", "list of chat messages, got a boolean"),
    ({"id": "a", "prompt": "p", "response": None}, "response", "list of chat messages, got null"),
    ({"id": "a", "prompt": "p", "response": ["r"]}, "response[0]", "chat message must be an object"),
    ({"id": "a", "prompt": "p"}, "response", "missing"),
    ({"id": "a", "response": "r"}, "prompt", "missing"),
    ({"prompt": "p", "response": "r"}, "id", "missing id"),
    ({"id": 1.5, "prompt": "p", "response": "r"}, "id", "string or an integer"),
    ({"id": True, "prompt": "p", "response": "r"}, "id", "string or an integer"),
    ({"id": "a", "prompt": 3, "response": "r"}, "prompt", "string or a list of chat messages"),
    ({"id": "a", "prompt": [], "response": "r"}, "prompt", "no messages"),
    ({"id": "a", "prompt": ["hi"], "response": "r"}, "prompt[0]", "chat message must be an object"),
    ({"id": "a", "prompt": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}],
      "response": "r"}, "prompt[1].role", "role must be one of system, developer, user, assistant, tool"),
    ({"id": "a", "prompt": [{"content": "hi"}], "response": "r"}, "prompt[0].role", "got None"),
    ({"id": "a", "prompt": [{"role": "user", "content": None}], "response": "r"}, "prompt[0].content",
     "content must be a string"),
    ({"id": "a", "prompt": "p", "response": "r", "reference": 5}, "reference", "must be a string"),
    ({"id": "a", "prompt": "p", "response": "r", "group_id": {"g": 1}}, "group_id", "string or an integer"),
])
def test_jsonl_wrong_types_and_missing_fields(tmp_path, row, field, match):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "ok", "prompt": "p", "response": "r"}, row])
    expect(InputError, lambda: samples(path), file=path, line=2, field=field, match=match)


def test_mapped_field_names_appear_in_errors(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "question": "q", "answer": 42}])
    expect(InputError, lambda: samples(path, FieldMap.parse(["prompt=question", "response=answer"])),
           file=path, line=1, field="answer", match="got a number")


def test_duplicate_ids_name_both_lines(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "prompt": "p", "response": "r"},
        {"id": "b", "prompt": "p", "response": "r"},
        {"id": "a", "prompt": "p", "response": "other"}])
    expect(InputError, lambda: samples(path), file=path, line=3, field="id", match="first on line 1")
    # an int id and the same id as a string are the same id once coerced
    path2 = write_jsonl(tmp_path / "in2.jsonl", [{"id": 1, "prompt": "p", "response": "r"},
                                                 {"id": "1", "prompt": "p", "response": "r"}])
    expect(InputError, lambda: samples(path2), file=path2, line=2, field="id", match="duplicate id '1'")


def test_missing_file_and_unknown_suffix(tmp_path):
    missing = tmp_path / "nope.jsonl"
    expect(InputError, lambda: samples(missing), file=missing, line=None, field=None, match="no such file")
    odd = tmp_path / "data.txt"
    odd.write_text("x", encoding="utf-8")
    expect(InputError, lambda: samples(odd), file=odd, line=None, field=None, match="cannot tell the format")
    expect(UserError, lambda: list(read_records(odd, fmt="xml")), file=None, line=None, field="format",
           match="unknown format")
    write_jsonl(odd, [{"id": "a", "prompt": "p", "response": "r"}])
    assert [s.id for s in samples(odd, fmt="jsonl")] == ["a"]


# ---------------------------------------------------------------------------------------------
# per-row rubrics


def test_per_row_rubrics_rubrix_and_healthbench_items(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "prompt": "p", "response": "r",
         "rubric": [{"text": "Names Paris.", "category": "essential"},
                    {"text": "Invents a source.", "weight": -3}]},
        {"id": "b", "prompt": "p", "response": "r",
         "rubrics": [{"criterion": "Advises a doctor visit.", "points": 5, "tags": ["axis:completeness"]},
                     {"criterion": "Recommends a dangerous dose.", "points": -8, "tags": []}]},
        {"id": "c", "prompt": "p", "response": "r", "rubric": None},
    ])
    a, b, c = samples(path)
    assert [(x.id, x.weight) for x in a.rubric.criteria] == [("c1", 5.0), ("c2", -3.0)]
    assert a.rubric.criteria[1].is_pitfall
    assert [(x.id, x.weight, x.tags) for x in b.rubric.criteria] == [
        ("c1", 5.0, ("axis:completeness",)), ("c2", -8.0, ())]
    assert "rubrics" not in b.meta and c.rubric is None


def test_bad_per_row_rubric_is_a_rubric_error_with_location(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "prompt": "p", "response": "r", "rubric": [{"text": "ok", "weight": 1}]},
        {"id": "b", "prompt": "p", "response": "r", "rubric": [{"text": "x", "weight": 0}]}])
    expect(RubricError, lambda: samples(path), file=path, line=2, field="criteria[0].weight",
           match="must not be 0")
    path2 = write_jsonl(tmp_path / "in2.jsonl", [{"id": "a", "prompt": "p", "response": "r", "rubric": 5}])
    expect(RubricError, lambda: samples(path2), file=path2, line=1, field="rubric", match="per-row rubric")


def test_explicit_rubric_column(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "prompt": "p", "response": "r", "checks": [{"text": "Is polite.", "weight": 1}],
         "rubric": "ignored, goes to meta"}])
    (s,) = samples(path, FieldMap.parse(["rubric=checks"]))
    assert [c.text for c in s.rubric.criteria] == ["Is polite."]
    assert s.meta == {"rubric": "ignored, goes to meta"}


def test_healthbench_rows_build_rubrics_and_prompts():
    path = DATA / "healthbench_30.jsonl"
    if not path.exists():
        pytest.skip(f"shared HealthBench sample not present at {path}")
    rows = list(read_records(path))
    assert len(rows) == 30
    for line, row in rows:
        rubric = rubric_from_items(row["rubrics"], filename=str(path), line=line)
        assert len(rubric.criteria) == len(row["rubrics"])
        assert [c.weight for c in rubric.criteria] == [float(i["points"]) for i in row["rubrics"]]
        assert all(c.is_pitfall == (c.weight < 0) for c in rubric.criteria)
        # the file has no response column; with one added every row is a valid chat sample
        sample = sample_from_dict({**row, "response": ""}, file=str(path), line=line)
        assert isinstance(sample.prompt, list) and sample.prompt[-1]["role"] == "user"
        assert sample.rubric is not None and sample.rubric.content_hash() == rubric.content_hash()


# ---------------------------------------------------------------------------------------------
# CSV


def test_csv_samples_multiline_cells_chat_prompts_and_rubrics(tmp_path):
    chat = json.dumps([{"role": "user", "content": "Hi, \"there\""}])
    rubric = json.dumps([{"text": "Greets back.", "weight": 2}])
    path = write_csv(tmp_path / "in.csv", [
        ["id", "prompt", "response", "rubric", "group_id", "reference", "extra"],
        ["a", "Line one\nline two", "resp, with comma", "", "", "", "x"],
        ["b", chat, "Hello!", rubric, "g1", "ref", ""],
        ["c", "[INST] not json [/INST]", "", "", "", "", ""],
    ])
    a, b, c = samples(path)
    assert (a.id, a.prompt, a.response, a.line, a.rubric, a.group_id, a.reference) == (
        "a", "Line one\nline two", "resp, with comma", 2, None, None, None)
    assert a.meta == {"extra": "x"}
    assert b.line == 4  # the quoted newline in row a takes two physical lines
    assert b.prompt == [{"role": "user", "content": 'Hi, "there"'}]
    assert [x.text for x in b.rubric.criteria] == ["Greets back."] and b.group_id == "g1"
    assert (c.prompt, c.response) == ("[INST] not json [/INST]", "")


def test_csv_quote_fault_names_line(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id,prompt,response\na,p,r\nb,"p"oops,r\n', encoding="utf-8")
    expect(InputError, lambda: samples(path), file=path, line=3, field=None, match="CSV quoting fault")


def test_csv_unclosed_quote_names_start_of_record(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id,prompt,response\na,p,r\nb,"never closed,r\nc,p,r\n', encoding="utf-8")
    expect(InputError, lambda: samples(path), file=path, line=4, field=None,
           match="in the record starting on line 3")


def test_csv_missing_column_is_reported_once_at_header(tmp_path):
    path = write_csv(tmp_path / "in.csv", [["id", "question", "response"], ["a", "q", "r"]])
    err = expect(InputError, lambda: samples(path), file=path, line=1, field="prompt", match="no such column")
    assert "question" in err.message and "prompt=COLUMN" in err.message
    assert [s.prompt for s in samples(path, FieldMap.parse(["prompt=question"]))] == ["q"]


def test_csv_cell_count_mismatch_and_duplicate_header(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,prompt,response\na,p,r\nb,p,r,extra\n", encoding="utf-8")
    expect(InputError, lambda: samples(path), file=path, line=3, field=None,
           match="4 cells but the header has 3")
    dup = tmp_path / "dup.csv"
    dup.write_text("id,prompt,response,prompt\na,p,r,q\n", encoding="utf-8")
    expect(InputError, lambda: samples(dup), file=dup, line=1, field="prompt", match="appears twice")


def test_csv_non_utf8_and_duplicate_ids(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,prompt,response\na,p,r\nb,\xff\xfe,r\n")
    expect(InputError, lambda: samples(path), file=path, line=3, field=None, match="not UTF-8")
    dup = write_csv(tmp_path / "dup.csv", [["id", "prompt", "response"], ["a", "p", "r"], ["a", "p", "s"]])
    expect(InputError, lambda: samples(dup), file=dup, line=3, field="id", match="first on line 2")


def test_csv_bad_chat_prompt_and_bad_rubric_json(tmp_path):
    chat = json.dumps([{"role": "robot", "content": "x"}])
    path = write_csv(tmp_path / "in.csv", [["id", "prompt", "response"], ["a", chat, "r"]])
    expect(InputError, lambda: samples(path), file=path, line=2, field="prompt[0].role", match="role must be")
    rub = write_csv(tmp_path / "rub.csv", [["id", "prompt", "response", "rubric"], ["a", "p", "r", "[{oops"]])
    expect(InputError, lambda: samples(rub), file=rub, line=2, field="rubric", match="not valid JSON")


def test_csv_without_id_column_uses_prefix(tmp_path):
    path = write_csv(tmp_path / "in.csv", [["prompt", "response"], ["p", "r"], ["p2", "r2"]])
    expect(InputError, lambda: samples(path), file=path, line=1, field="id", match="no such column")
    assert [s.id for s in samples(path, default_id_prefix="csv-")] == ["csv-2", "csv-3"]


# ---------------------------------------------------------------------------------------------
# Parquet


def write_parquet(path: Path, rows: list[dict], **kwargs) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, **kwargs)
    return path


def test_parquet_samples_with_chat_and_struct_rubrics(tmp_path):
    path = write_parquet(tmp_path / "in.parquet", [
        {"id": "a", "prompt": [{"role": "user", "content": "Hi"}], "response": "Hello", "score": 1.5,
         "rubric": [{"text": "Greets.", "weight": 2.0, "category": None},
                    {"text": "Is rude.", "weight": None, "category": "pitfall"}]},
        {"id": "b", "prompt": [{"role": "user", "content": "Bye"}], "response": "", "score": None,
         "rubric": None},
    ])
    a, b = samples(path)
    assert (a.id, a.line, a.prompt, a.response, a.meta) == ("a", 1, [{"role": "user", "content": "Hi"}],
                                                            "Hello", {"score": 1.5})
    # null struct fields (Parquet keeps the union of keys) are dropped before validation
    assert [(c.weight, c.category) for c in a.rubric.criteria] == [(2.0, None), (-2.0, "pitfall")]
    assert (b.line, b.response, b.rubric) == (2, "", None)


def test_parquet_streams_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "_PARQUET_BATCH_ROWS", 7)
    rows = [{"id": i, "prompt": f"p{i}", "response": f"r{i}"} for i in range(50)]
    path = write_parquet(tmp_path / "in.parquet", rows, row_group_size=16)
    got = samples(path)
    assert [(s.id, s.line) for s in got] == [(str(i), i + 1) for i in range(50)]


def test_parquet_wrong_schema_names_column(tmp_path):
    path = write_parquet(tmp_path / "in.parquet", [{"id": "a", "prompt": "p", "output": "r"}])
    err = expect(InputError, lambda: samples(path), file=path, line=None, field="response",
                 match="no such column")
    assert "output" in err.message
    assert [s.response for s in samples(path, FieldMap.parse(["response=output"]))] == ["r"]


def test_parquet_wrong_type_names_row(tmp_path):
    path = write_parquet(tmp_path / "in.parquet", [{"id": "a", "prompt": "p", "response": 1},
                                                   {"id": "b", "prompt": "p", "response": 2}])
    expect(InputError, lambda: samples(path), file=path, line=1, field="response", match="got a number")


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "in.parquet"
    path.write_text("id,prompt\n", encoding="utf-8")
    expect(InputError, lambda: samples(path), file=path, line=None, field=None,
           match="not a readable Parquet")


# ---------------------------------------------------------------------------------------------
# pairs


def test_read_pairs_and_pair_problem(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": "p1", "prompt": "Q", "chosen": "good", "rejected": "bad", "source": "llmbar", "split": "x"},
        {"id": "p2", "prompt": "Q", "chosen": "  ", "rejected": "bad"},
        {"id": "p3", "prompt": "Q", "chosen": "same", "rejected": "same "},
        {"id": "p4", "prompt": "Q", "chosen": "good", "rejected": "", "rationale": "more complete"},
    ])
    pairs = list(read_pairs(path))
    assert [p.id for p in pairs] == ["p1", "p2", "p3", "p4"]  # problems are not read errors
    assert (pairs[0].source, pairs[0].meta, pairs[3].rationale) == ("llmbar", {"split": "x"}, "more complete")
    assert [pair_problem(p) for p in pairs] == [None, "empty chosen", "identical responses", "empty rejected"]
    assert pair_problem(Pair(id="x", prompt="q", chosen="", rejected="")) == "empty chosen"


def test_pair_errors(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl",
                       [{"id": "p1", "prompt": "Q", "chosen": "a", "rejected": None}])
    expect(InputError, lambda: list(read_pairs(path)), file=path, line=1, field="rejected", match="got null")
    missing = write_csv(tmp_path / "pairs.csv", [["id", "prompt", "chosen"], ["p1", "Q", "a"]])
    expect(InputError, lambda: list(read_pairs(missing)), file=missing, line=1, field="rejected",
           match="no such column")
    dup = write_jsonl(tmp_path / "dup.jsonl",
                      [{"id": "p", "prompt": "Q", "chosen": "a", "rejected": "b"}] * 2)
    expect(InputError, lambda: list(read_pairs(dup)), file=dup, line=2, field="id", match="first on line 1")


def test_llmbar_pairs_read_cleanly():
    path = DATA / "llmbar.jsonl"
    if not path.exists():
        pytest.skip(f"shared LLMBar pairs not present at {path}")
    pairs = list(read_pairs(path))
    assert len(pairs) == 419
    assert all(pair_problem(p) is None for p in pairs)  # the file was built without such rows


def test_sample_from_dict_for_api_bodies():
    s = sample_from_dict({"id": 3, "prompt": "p", "response": "r", "x": [1]})
    assert (s.id, s.meta, s.line) == ("3", {"x": [1]}, None)
    expect(InputError, lambda: sample_from_dict(["not", "a", "dict"]), file="<input>", line=None, field=None,
           match="must be a JSON object")
    expect(InputError, lambda: sample_from_dict({"id": "a", "prompt": "p"}, file="request", line=4),
           file="request", line=4, field="response", match="missing")
