"""Result files: the append-only writer's crash rules, reading results back, manifests, side files.

Every file here is a real file written to ``tmp_path``; every error test checks that the error names
the file, the line and the field, because that one line is all a user sees.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rubrix._json import write_jsonl_atomic
from rubrix._paths import manifest_path
from rubrix.errors import InputError, UserError
from rubrix.records import read_records
from rubrix.results import (
    ResultWriter,
    read_manifest,
    read_results,
    samples_path_from_manifest,
    write_manifest,
)


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


# ---------------------------------------------------------------------------------------------
# ResultWriter


def test_writer_appends_and_records_ids(tmp_path):
    out = tmp_path / "sub" / "results.jsonl"
    with ResultWriter(out) as w:
        w.write([{"id": "a", "reward": 0.5, "note": "héllo"}, {"id": "b", "reward": None}])
        w.write([])
        w.write([{"id": "c", "reward": 1.0}])
        assert w.done_ids == {"a", "b", "c"}
    text = out.read_text(encoding="utf-8")
    assert "héllo" in text and text.endswith("\n") and text.count("\n") == 3
    assert [r["id"] for _, r in read_records(out)] == ["a", "b", "c"]


def test_writer_refuses_to_overwrite(tmp_path):
    out = tmp_path / "results.jsonl"
    out.write_text('{"id": "a"}\n', encoding="utf-8")
    err = expect(UserError, lambda: ResultWriter(out), file=out, line=None, field=None, match="--resume")
    assert "another output" in err.message
    assert out.read_text(encoding="utf-8") == '{"id": "a"}\n'  # untouched
    out.write_text("", encoding="utf-8")
    with ResultWriter(out) as w:  # an existing empty file is fine
        w.write([{"id": "x"}])


def test_writer_resume_truncates_partial_last_line(tmp_path):
    out = tmp_path / "results.jsonl"
    good = '{"id": "a", "reward": 1.0}\n{"id": "b", "reward": 0.0}\n'
    out.write_text(good + '{"id": "c", "rew', encoding="utf-8")
    with ResultWriter(out, resume=True) as w:
        assert w.done_ids == {"a", "b"} and w.rows_read == 2
        assert w.truncated_bytes == len('{"id": "c", "rew')
        w.write([{"id": "c", "reward": 0.5}])
    assert out.read_text(encoding="utf-8") == good + '{"id": "c", "reward": 0.5}\n'


def test_writer_resume_drops_complete_json_without_newline(tmp_path):
    # a write cut just before its newline: not trusted, redone (the row is cheap to redo, a bad resume is not)
    out = tmp_path / "results.jsonl"
    out.write_text('{"id": "a"}\n{"id": "b"}', encoding="utf-8")
    with ResultWriter(out, resume=True) as w:
        assert w.done_ids == {"a"}
    assert out.read_text(encoding="utf-8") == '{"id": "a"}\n'


def test_writer_resume_truncates_invalid_last_line_with_newline(tmp_path):
    out = tmp_path / "results.jsonl"
    out.write_text('{"id": "a"}\n{"id": "b", \n\n', encoding="utf-8")
    with ResultWriter(out, resume=True) as w:
        assert w.done_ids == {"a"}
    assert out.read_text(encoding="utf-8") == '{"id": "a"}\n'


def test_writer_resume_refuses_earlier_corruption(tmp_path):
    out = tmp_path / "results.jsonl"
    body = '{"id": "a"}\n{"id": "b", oops}\n{"id": "c"}\n'
    out.write_text(body, encoding="utf-8")
    expect(InputError, lambda: ResultWriter(out, resume=True), file=out, line=2, field=None,
           match="damaged before its last line")
    assert out.read_text(encoding="utf-8") == body  # never "repaired" behind the user's back
    bad_bytes = tmp_path / "bytes.jsonl"
    bad_bytes.write_bytes(b'{"id": "a"}\n{"id": "\xff"}\n{"id": "c"}\n')
    expect(InputError, lambda: ResultWriter(bad_bytes, resume=True), file=bad_bytes, line=2, field=None,
           match="not UTF-8")
    no_id = tmp_path / "noid.jsonl"
    no_id.write_text('{"id": "a"}\n{"reward": 1}\n', encoding="utf-8")
    expect(InputError, lambda: ResultWriter(no_id, resume=True), file=no_id, line=2, field="id")


def test_writer_resume_on_missing_file_starts_fresh(tmp_path):
    out = tmp_path / "results.jsonl"
    with ResultWriter(out, resume=True) as w:
        assert w.done_ids == set() and w.truncated_bytes == 0
        w.write([{"id": 1}])
        assert w.done_ids == {"1"}


def test_writer_refuses_second_concurrent_writer(tmp_path):
    out = tmp_path / "results.jsonl"
    with ResultWriter(out):
        expect(UserError, lambda: ResultWriter(out, resume=True), file=out, line=None, field=None,
               match="another process")
    with ResultWriter(out, resume=True):  # the lock goes with the writer
        pass


def test_writer_bad_rows_write_nothing(tmp_path):
    out = tmp_path / "results.jsonl"
    w = ResultWriter(out)
    w.write([{"id": "a", "reward": 1.0}])
    with pytest.raises(ValueError):
        w.write([{"id": "b", "reward": 0.5}, {"id": "c", "reward": math.nan}])  # a failure is never a number
    with pytest.raises(ValueError):
        w.write([{"reward": 1.0}])
    assert w.done_ids == {"a"}
    w.close()
    w.close()
    with pytest.raises(ValueError):
        w.write([{"id": "d"}])
    assert out.read_text(encoding="utf-8") == '{"id": "a", "reward": 1.0}\n'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=())),  # includes lone surrogates, U+2028, NUL
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "id"), json_values, max_size=5),
                  max_size=12),
    batch=st.integers(min_value=1, max_value=5),
)
def test_writer_round_trip_property(rows, batch):
    rows = [{"id": f"row{i}", **r} for i, r in enumerate(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.jsonl"
        with ResultWriter(out) as w:
            for i in range(0, len(rows), batch):
                w.write(rows[i:i + batch])
        assert [r for _, r in read_records(out)] == rows
        with ResultWriter(out, resume=True) as w:
            assert w.done_ids == {r["id"] for r in rows} and w.truncated_bytes == 0


# ---------------------------------------------------------------------------------------------
# atomic side files


def test_write_jsonl_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "manifest.jsonl"
    write_jsonl_atomic(path, [{"run": 1}])
    write_jsonl_atomic(path, [{"run": 2, "counts": {"ok": 3}}, {"note": "ü"}])
    assert [r for _, r in read_records(path)] == [{"run": 2, "counts": {"ok": 3}}, {"note": "ü"}]
    with pytest.raises(ValueError):
        write_jsonl_atomic(path, [{"run": 3}, {"bad": float("inf")}])
    assert [r for _, r in read_records(path)][0] == {"run": 2, "counts": {"ok": 3}}  # old file intact
    assert sorted(os.listdir(tmp_path)) == ["manifest.jsonl"]  # no temporary file left behind


# ---------------------------------------------------------------------------------------------
# reading results back, manifests


def test_read_results_checks_ids_and_rewards(tmp_path):
    out = tmp_path / "results.jsonl"
    with ResultWriter(out) as w:
        w.write([{"id": "a", "reward": 0.25}, {"id": 7, "reward": None}])
    assert read_results(out) == [{"id": "a", "reward": 0.25}, {"id": 7, "reward": None}]
    no_id = tmp_path / "noid.jsonl"
    no_id.write_text('{"id": "a", "reward": 1}\n{"reward": 1}\n', encoding="utf-8")
    expect(InputError, lambda: read_results(no_id), file=no_id, line=2, field="id", match="no id")
    text_reward = tmp_path / "text.jsonl"
    text_reward.write_text('{"id": "a", "reward": "high"}\n', encoding="utf-8")
    expect(InputError, lambda: read_results(text_reward), file=text_reward, line=1, field="reward",
           match="number or null")
    overflow = tmp_path / "overflow.jsonl"
    overflow.write_text('{"id": "a", "reward": 1e999}\n', encoding="utf-8")
    expect(InputError, lambda: read_results(overflow), file=overflow, line=1, field=None,
           match="out of range")


def test_manifest_round_trip_beside_the_output(tmp_path):
    out = tmp_path / "run" / "results.jsonl"
    assert read_manifest(out) is None
    samples = tmp_path / "in.jsonl"
    samples.write_text("", encoding="utf-8")
    path = write_manifest(out, {"input": {"path": str(samples)}, "counts": {"ok": 2}, "note": "ü"})
    assert path == manifest_path(out) == tmp_path / "run" / "results.jsonl.manifest.json"
    assert read_manifest(out) == {"input": {"path": str(samples)}, "counts": {"ok": 2}, "note": "ü"}
    assert samples_path_from_manifest(out) == samples
    write_manifest(out, {"input": {"path": str(tmp_path / "gone.jsonl")}})  # replaced whole
    assert samples_path_from_manifest(out) is None
    assert sorted(os.listdir(path.parent)) == ["results.jsonl.manifest.json"]  # no temporary file left
    path.write_text("[1, 2]", encoding="utf-8")  # not an object: no manifest, not a crash
    assert read_manifest(out) is None
    path.write_text('{"a": NaN}', encoding="utf-8")
    assert read_manifest(out) is None
