"""Hostile and broken input: a corpus generated here (no committed binary files), each case run
through the real CLI as a subprocess, plus hypothesis property tests of the parsers underneath.

Every broken input must end with exactly one line ``error: FILE:LINE: FIELD: message``, exit
status 2, no traceback, no output file, and bounded memory. Memory is the child's peak resident
set (``VmHWM`` from ``/proc/self/status``, read by a small wrapper when the CLI exits): unlike
``getrusage(RUSAGE_CHILDREN)`` it does not include the parent's pages the child had before
``exec``, so it measures rubrix and not the test process.

Cases already in tests/test_cli.py (malformed line, wrong response type, missing prompt, duplicate
ids, bad chat role, a truncated middle line, CSV quote fault, CSV missing column, duplicate
criterion ids, empty rubric) are not repeated here.
"""

from __future__ import annotations

import gzip
import itertools
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rubrix.aggregate import CriterionValue, aggregate, all_or_nothing, raw, veto, weighted
from rubrix.errors import InputError, RubricError, UserError
from rubrix.records import MAX_LINE_BYTES, read_pairs, read_records, read_samples
from rubrix.results import ResultWriter
from rubrix.rubric import Criterion, dump_rubric, load_rubric, rubric_from_data
from rubrix.stats import dataset_mean
from rubrix.yamlio import load_text

# ------------------------------------------------------------------------------------ the harness

_CALLS = itertools.count()
_WRAPPER = """
import atexit, runpy, sys
out = sys.argv[1]
def _peak():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                open(out, "w").write(line.split()[1])
    except OSError:
        pass
atexit.register(_peak)
sys.argv = ["rubrix", *sys.argv[2:]]
runpy.run_module("rubrix.cli", run_name="__main__", alter_sys=True)
"""
HAVE_PROC = Path("/proc/self/status").exists()


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str, peak_mb: float | None):
        self.returncode, self.stdout, self.stderr, self.peak_mb = returncode, stdout, stderr, peak_mb


def cli(*args: str | Path, cwd: Path) -> Ran:
    """``rubrix ARGS`` in a child process; also its peak RSS in MB (None without /proc)."""
    # one file per call: cases run two at a time (``_run_all``), and a shared name let one child's
    # peak be read as another's
    peak = cwd / f".peak-{os.getpid()}-{threading.get_ident()}-{next(_CALLS)}"
    peak.unlink(missing_ok=True)
    env = {**os.environ, "RUBRIX_HOME": str(cwd / "rubrix_home"), "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, str(peak), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    mb = int(peak.read_text()) / 1024 if peak.exists() else None
    return Ran(proc.returncode, proc.stdout, proc.stderr, mb)


def assert_one_error_line(ran: Ran, *fragments: str) -> str:
    assert ran.returncode == 2, (ran.returncode, ran.stderr[-2000:])
    assert "Traceback" not in ran.stderr + ran.stdout
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr[-2000:]
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def baseline_mb(work: Path) -> float | None:
    """Peak RSS of a successful tiny ``rubrix score`` run: the yardstick for "bounded"."""
    (work / "ok.jsonl").write_text('{"id": "a", "prompt": "Q?", "response": "A."}\n', encoding="utf-8")
    ran = cli("score", "ok.jsonl", "-o", "ok.out.jsonl", "-r", "helpfulness", "-j", "fake", "--no-cache",
              cwd=work)
    assert ran.returncode == 0, ran.stderr
    return ran.peak_mb


def _assert_bounded(ran: Ran, baseline: float | None, extra_mb: float) -> None:
    if ran.peak_mb is None or baseline is None:
        return
    assert ran.peak_mb < baseline + extra_mb, f"peak {ran.peak_mb:.0f} MB vs {baseline:.0f} MB for a tiny run"


# --------------------------------------------------------------------------------- records corpus

GOOD = '{"id": "%s", "prompt": "Q?", "response": "A."}\n'
BIG = 50_000_000  # a 50 MB line: 2.5x MAX_LINE_BYTES
PARQUET_MB = 90  # importing pyarrow alone adds about 50 MB


def _parquet(table: dict) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(table), path)
    return write


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _truncated_parquet(path: Path) -> None:
    _parquet({"id": ["a", "b"], "prompt": ["Q", "Q"], "response": ["A", "B"]})(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _big_jsonl(path: Path) -> None:
    with open(path, "wb") as f:
        f.write((GOOD % "a").encode())
        f.write(b'{"id": "b", "prompt": "Q?", "response": "')
        f.write(b"x" * BIG)
        f.write(b'"}\n')


def _big_csv(path: Path) -> None:
    with open(path, "wb") as f:
        f.write(b"id,prompt,response\na,Q,A\nb,Q,")
        f.write(b"y" * BIG)
        f.write(b"\n")


def _gzip_bomb(path: Path) -> None:
    """200 MB of 'x' without a newline, about 200 KB compressed."""
    chunk = b"x" * (1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as f:
        for _ in range(200):
            f.write(chunk)


RECORDS: dict[str, tuple[str, Callable[[Path], None], list[str], float]] = {
    # name: (file name, writer, fragments of the one error line, memory allowance over baseline MB)
    "truncated_last_line": ("trunc.jsonl", _bytes(((GOOD % "a") + '{"id": "b", "prompt": "Q').encode()),
                            ["trunc.jsonl:2:", "not valid JSON", "truncated"], 30),
    "non_utf8_jsonl": ("latin1.jsonl", _bytes((GOOD % "a").encode()
                                              + b'{"id": "b", "prompt": "caf\xe9", "response": "x"}\n'),
                       ["latin1.jsonl:2:", "not UTF-8"], 30),
    "record_is_a_list": ("list.jsonl", _bytes(((GOOD % "a") + "[1, 2]\n").encode()),
                         ["list.jsonl:2:", "JSON object", "a list"], 30),
    "id_is_a_float": ("idf.jsonl", _bytes(b'{"id": 1.5, "prompt": "Q?", "response": "A."}\n'),
                      ["idf.jsonl:1:", ": id:", "a number"], 30),
    "id_is_an_object": ("ido.jsonl", _bytes(b'{"id": {"x": 1}, "prompt": "Q?", "response": "A."}\n'),
                        ["ido.jsonl:1:", ": id:", "an object"], 30),
    "response_null": ("rnull.jsonl", _bytes(b'{"id": "a", "prompt": "Q?", "response": null}\n'),
                      ["rnull.jsonl:1:", ": response:", "null"], 30),
    "missing_response": ("miss.jsonl", _bytes(((GOOD % "a") + '{"id": "b", "prompt": "Q?"}\n').encode()),
                         ["miss.jsonl:2:", ": response:", "missing"], 30),
    "chat_content_number": ("chat.jsonl", _bytes(b'{"id": "a", "prompt": [{"role": "user", "content": 5}], '
                                                 b'"response": "x"}\n'),
                            ["chat.jsonl:1:", "prompt[0].content"], 30),
    "int_and_string_id_collide": ("dupid.jsonl", _bytes(b'{"id": 1, "prompt": "Q?", "response": "A."}\n'
                                                        b'{"id": "1", "prompt": "Q?", "response": "A."}\n'),
                                  ["dupid.jsonl:2:", ": id:", "duplicate", "line 1"], 30),
    "nan_value": ("nan.jsonl", _bytes(b'{"id": "a", "prompt": "Q?", "response": "A.", "score": NaN}\n'),
                  ["nan.jsonl:1:", "NaN"], 30),
    "duplicate_key": ("dupkey.jsonl", _bytes(b'{"id": "a", "prompt": "Q?", "response": "A.", '
                                             b'"response": "B"}\n'),
                      ["dupkey.jsonl:1:", ": response:", "twice"], 30),
    "nested_100k_deep": ("deep.jsonl", _bytes(b'{"id": "a", "prompt": "Q?", "response": "A.", "x": '
                                              + b"[" * 100_000 + b"]" * 100_000 + b"}\n"),
                         ["deep.jsonl:1:", "nested too deeply"], 30),
    "nul_bytes_line": ("nul.jsonl", _bytes(((GOOD % "a") + "\x00\x00\x00\n").encode()),
                       ["nul.jsonl:2:", "not valid JSON"], 30),
    "row_rubric_bad_weight": ("rowrub.jsonl", _bytes(b'{"id": "a", "prompt": "Q?", "response": "A.", '
                                                     b'"rubric": [{"text": "x", "weight": "heavy"}]}\n'),
                              ["rowrub.jsonl:1:", "weight", "heavy"], 30),
    "line_of_50_mb": ("big.jsonl", _big_jsonl, ["big.jsonl:2:", f"longer than {MAX_LINE_BYTES} bytes"], 70),
    "gzip_bomb": ("bomb.jsonl.gz", _gzip_bomb, ["bomb.jsonl.gz:1:", "longer than"], 70),
    "csv_line_of_50_mb": ("big.csv", _big_csv, ["big.csv:3:", "longer than"], 70),
    "csv_unclosed_quote_at_eof": ("unclosed.csv", _bytes(b'id,prompt,response\na,"Q?,A.\nb,Q,A\n'),
                                  ["unclosed.csv:3:", "quoting", "starting on line 2"], 30),
    "csv_extra_cell": ("cells.csv", _bytes(b"id,prompt,response\na,Q?,A.,extra\n"),
                       ["cells.csv:2:", "4 cells", "header has 3"], 30),
    "csv_duplicate_column": ("dupcol.csv", _bytes(b"id,prompt,response,prompt\na,Q,A,B\n"),
                             ["dupcol.csv:1:", ": prompt:", "twice"], 30),
    "csv_non_utf8": ("latin1.csv", _bytes(b"id,prompt,response\na,caf\xe9,A.\n"),
                     ["latin1.csv:2:", "not UTF-8"], 30),
    "parquet_missing_column": ("miss.parquet", _parquet({"id": ["a"], "prompt": ["Q"], "answer": ["A"]}),
                               ["miss.parquet: response: no such column", "response=COLUMN"], PARQUET_MB),
    "parquet_int_response": ("int.parquet", _parquet({"id": ["a", "b"], "prompt": ["Q", "Q"],
                                                      "response": [1, 2]}),
                             ["int.parquet:1:", ": response:", "a number"], PARQUET_MB),
    "parquet_float_id": ("fid.parquet", _parquet({"id": [1.5], "prompt": ["Q"], "response": ["A"]}),
                         ["fid.parquet:1:", ": id:"], PARQUET_MB),
    "parquet_struct_prompt": ("struct.parquet", _parquet({"id": ["a"], "prompt": [{"x": 1}],
                                                          "response": ["A"]}),
                              ["struct.parquet:1:", ": prompt:", "an object"], PARQUET_MB),
    "parquet_bad_row_rubric": ("rub.parquet", _parquet({"id": ["a"], "prompt": ["Q"], "response": ["A"],
                                                        "rubric": [[{"text": "t", "weight": "w"}]]}),
                               ["rub.parquet:1:", "weight"], PARQUET_MB),
    "parquet_garbage": ("garbage.parquet", _bytes(random.Random(1).randbytes(5000)),
                        ["garbage.parquet:", "not a readable Parquet file"], PARQUET_MB),
    "parquet_truncated": ("cut.parquet", _truncated_parquet, ["cut.parquet:", "not a readable Parquet file"],
                          PARQUET_MB),
}


def _run_all(cases, run_one: Callable[[str], Ran]) -> dict[str, Ran]:
    """Run every case's child process, two at a time (the children are independent)."""
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(cases, pool.map(run_one, cases), strict=True))


@pytest.fixture(scope="module")
def record_runs(work: Path) -> dict[str, Ran]:
    def one(case: str) -> Ran:
        name, write, _, _ = RECORDS[case]
        write(work / name)
        try:
            return cli("score", name, "-o", f"{case}.out.jsonl", "-r", "helpfulness", "-j", "fake",
                       "--no-cache", cwd=work)
        finally:
            (work / name).unlink()
    return _run_all(list(RECORDS), one)


@pytest.mark.parametrize("case", list(RECORDS))
def test_broken_records_are_one_line_errors(work: Path, baseline_mb, record_runs, case: str) -> None:
    _, _, fragments, extra_mb = RECORDS[case]
    ran = record_runs[case]
    assert_one_error_line(ran, *fragments)
    out = work / f"{case}.out.jsonl"
    assert not out.exists() and not Path(str(out) + ".manifest.json").exists()
    _assert_bounded(ran, baseline_mb, extra_mb)


def test_extra_fields_are_carried_not_refused(work: Path) -> None:
    """Unknown record fields are data (kept as meta), unlike unknown rubric keys, which are typos."""
    (work / "extra.jsonl").write_text('{"id": "a", "prompt": "Q?", "response": "A.", "model": "x", '
                                      '"tags": [1, {"b": null}]}\n', encoding="utf-8")
    ran = cli("score", "extra.jsonl", "-o", "extra.out.jsonl", "-r", "helpfulness", "-j", "fake",
              "--no-cache", cwd=work)
    assert ran.returncode == 0, ran.stderr


# ---------------------------------------------------------------------------------- rubric corpus

R = "name: r\ncriteria:\n  - id: a\n    text: The response is good.\n    weight: 1\n"


def _laughs() -> str:
    """The billion-laughs shape: each anchor nine aliases of the previous one (9^9 leaves)."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join(["*" + prev] * 9) + "]")
    return "\n".join(lines) + "\nname: bomb\ncriteria: []\n"


RUBRICS: dict[str, tuple[str | bytes | Callable[[Path], None], list[str]]] = {
    "unknown_top_key": (R + "colour: blue\n", [":6: colour: unknown key"]),
    "unknown_criterion_key": (R + "    colour: blue\n", [":6: criteria[0].colour: unknown key"]),
    "weight_word": (R.replace("weight: 1", "weight: heavy"), [":5: criteria[0].weight:", "heavy"]),
    "weight_zero": (R.replace("weight: 1", "weight: 0"), [":5: criteria[0].weight:", "not be 0"]),
    "weight_nan": (R.replace("weight: 1", "weight: .nan"), [":5: criteria[0].weight:", "finite"]),
    "weight_inf": (R.replace("weight: 1", "weight: -.inf"), [":5: criteria[0].weight:", "finite"]),
    "weight_bool": (R.replace("weight: 1", "weight: true"), [":5: criteria[0].weight:"]),
    "pitfall_with_positive_weight": (R + "  - id: b\n    text: Rude.\n    weight: 2\n    category: pitfall\n",
                                     [":8: criteria[1].weight:", "negative"]),
    "no_positive_weight": (R.replace("weight: 1", "weight: -1"), [":3: criteria:", "positive weight"]),
    "tab_indent": (R.replace("    text", "\ttext"), [":4:", "tab"]),
    "anchor_and_alias": ("name: r\ncriteria:\n  - &c\n    id: a\n    text: T.\n    weight: 1\n  - *c\n",
                         [":3:", "anchors and aliases"]),
    "billion_laughs": (_laughs(), [":1:", "anchors and aliases"]),
    "python_tag": ('name: !!python/object/apply:os.system ["echo pwned"]\ncriteria: []\n',
                   [":1: name:", "tag", "not allowed"]),
    "duplicate_key": (R + "name: again\n", [":6: name: duplicate key"]),
    "empty_file": ("", [":1:", "empty"]),
    "a_list_not_a_mapping": ("- a\n- b\n", [":1: <root>:", "mapping"]),
    "unclosed_flow": ("name: r\ncriteria: [\n", [":3:", "not valid YAML"]),
    "scale_level_7": (R + "  - id: s\n    text: Depth.\n    weight: 1\n    scale: {1: a, 2: b, 7: c}\n",
                      [":9: criteria[1].scale[7]:", "1..5"]),
    "id_not_a_slug": (R.replace("id: a", "id: 'Has Spaces!'"), [":3: criteria[0].id:", "slug"]),
    "flow_nested_50k_deep": ("name: r\ncriteria: " + "[" * 50_000 + "]" * 50_000 + "\n", [":2:", "nested"]),
    "block_nested_3k_deep": ("name: r\nx:\n" + "".join(" " * i + "- \n" for i in range(1, 3000)), ["nested"]),
    "non_utf8": (b"name: caf\xe9\ncriteria: []\n", ["not UTF-8"]),
    "binary_garbage": (random.Random(2).randbytes(4096), ["r_binary_garbage.yaml"]),
    "file_of_60_mb": (lambda p: p.write_bytes(b"name: r\ndescription: '" + b"z" * 60_000_000 + b"'\n"),
                      ["larger than"]),
}


@pytest.fixture(scope="module")
def rubric_runs(work: Path) -> dict[str, Ran]:
    def one(case: str) -> Ran:
        content = RUBRICS[case][0]
        path = work / f"r_{case}.yaml"
        if callable(content):
            content(path)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        try:
            return cli("rubric", "validate", path.name, cwd=work)
        finally:
            path.unlink()
    return _run_all(list(RUBRICS), one)


@pytest.mark.parametrize("case", list(RUBRICS))
def test_broken_rubrics_are_one_line_errors(baseline_mb, rubric_runs, case: str) -> None:
    assert_one_error_line(rubric_runs[case], f"error: r_{case}.yaml", *RUBRICS[case][1])
    _assert_bounded(rubric_runs[case], baseline_mb, 30)


def test_broken_rubric_through_score_fails_before_any_output(work: Path) -> None:
    (work / "rs.yaml").write_text(_laughs(), encoding="utf-8")
    (work / "rs.jsonl").write_text(GOOD % "a", encoding="utf-8")
    ran = cli("score", "rs.jsonl", "-o", "rs.out.jsonl", "-r", "rs.yaml", "-j", "fake", "--no-cache",
              cwd=work)
    assert_one_error_line(ran, "rs.yaml:1:", "anchors")
    assert not (work / "rs.out.jsonl").exists()


# ------------------------------------------------------------------------- property: rubric loading

VALID = """\
name: fuzz
version: "2"
description: A rubric to mutate.
principles:
  - Be correct.
aggregation: weighted
criteria:
  - id: correct
    text: The response is correct.
    weight: 5
    tags: [axis:accuracy]
  - id: polite
    text: "The response is polite: no insults."
    category: optional
  - id: rude
    text: The response insults the user.
    weight: -2
    veto: true
  - id: depth
    text: How thorough is it?
    weight: 2
    scale: {1: none, 2: thin, 3: some, 4: good, 5: complete}
"""
_NASTY = ["\t", "&a ", "*a", "!!python/name:os.system", "{", "}", "[", "]", ":", "- ", "'", '"', "#", "|",
          ">", "%YAML 1.1\n", "---\n", "...\n", "? ", "\\", "\x00", "\ud800", "\u2028", "\ufeff", ".nan",
          "-.inf", "1e999", "0x1F", "~", "null", "yes", "<<: ", "\n  ", "\n- ", "weight: ", "id: ",
          "criteria:"]

mutation = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.sampled_from(_NASTY) | st.text(max_size=5)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 40)),
    st.tuples(st.just("dup_line"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("swap_lines"), st.integers(0, 10_000), st.integers(0, 10_000)),
)


def _mutate(text: str, ops) -> str:
    for op, a, b in ops:
        if op == "insert":
            i = a % (len(text) + 1)
            text = text[:i] + b + text[i:]
        elif op == "delete" and text:
            i = a % len(text)
            text = text[:i] + text[i + b:]
        else:
            lines = text.split("\n")
            i = a % len(lines)
            if op == "dup_line":
                lines.insert(i, lines[i])
            else:
                j = b % len(lines)
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_rubric_yaml_only_ever_raises_rubric_error(ops) -> None:
    text = _mutate(VALID, ops)
    try:
        data, lines = load_text(text, "fuzz.yaml")
        rubric = rubric_from_data(data, filename="fuzz.yaml", lines=lines)
    except RubricError as exc:
        assert str(exc).startswith("fuzz.yaml")
        return
    # what loads is a real rubric: it survives its own round trip
    again = rubric_from_data(yaml.safe_load(dump_rubric(rubric)))
    assert again.content_hash() == rubric.content_hash()
    assert all(math.isfinite(c.weight) and c.weight != 0 for c in rubric.criteria)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_random_bytes_as_rubric_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "random.yaml"
    path.write_bytes(data)
    try:
        load_rubric(str(path))
    except RubricError:
        pass


# ----------------------------------------------------------------------- property: records reading

_JSONLISH = st.lists(st.sampled_from([b'{"id": "a", "prompt": "Q", "response": "R"}', b"{", b"}", b"[", b"]",
                                      b'"', b",", b":", b"\n", b"\r\n", b"\\", b"\\u00", b"null", b"NaN",
                                      b"1e999", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\x00", b'"id"',
                                      b'"prompt"', b'"response"', b'"rubric"', b"true", b"-0"]),
                     max_size=40).map(b"".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | _JSONLISH, kind=st.sampled_from(["jsonl", "csv", "json"]))
def test_reading_random_bytes_only_ever_raises_input_error(tmp_path: Path, data: bytes, kind: str) -> None:
    path = tmp_path / f"random.{kind}"
    path.write_bytes(data)
    for reader in (read_samples, read_pairs):
        try:
            for _ in reader(path, max_line_bytes=200):
                pass
        except UserError as exc:  # InputError, or a RubricError for a per-row rubric
            assert isinstance(exc, InputError | RubricError), type(exc)
            assert str(exc).startswith(str(path))


# ----------------------------------------------------------------------- property: result writing


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 12), cut=st.floats(0, 1, exclude_max=True))
def test_resume_after_a_cut_at_any_byte_keeps_exactly_the_complete_rows(n: int, cut: float) -> None:
    """A crash can stop a write at any byte: resume keeps every complete row and nothing else."""
    rows = [{"id": f"r{i}", "reward": i / 7, "criteria": {"x": {"p": None, "met": None, "error": "parse"}},
             "note": "ünï\u2028"} for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        with ResultWriter(out) as w:
            w.write(rows)
        data = out.read_bytes()
        keep = int(len(data) * cut)
        out.write_bytes(data[:keep])
        complete = data[:keep].count(b"\n")
        with ResultWriter(out, resume=True) as w:
            assert w.done_ids == {f"r{i}" for i in range(complete)}
            w.write(rows[complete:])
        assert [r for _, r in read_records(out)] == rows


@pytest.mark.parametrize("tail", [b"\x0b", b"   ", b"\t\x0c"])
def test_resume_cuts_a_whitespace_tail_without_newline(tmp_path: Path, tail: bytes) -> None:
    """Found by the property test below: whitespace after the last newline was kept, and the next
    row was glued onto it (``\\x0b{"id": ...}`` is not JSON), damaging the file on resume."""
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": "a"}\n' + tail)
    with ResultWriter(out, resume=True) as w:
        assert w.done_ids == {"a"} and w.truncated_bytes == len(tail)
        w.write([{"id": "b"}])
    assert [r["id"] for _, r in read_records(out)] == ["a", "b"]


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300) | _JSONLISH)
def test_resume_on_random_bytes_refuses_or_recovers(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        out.write_bytes(data)
        try:
            with ResultWriter(out, resume=True) as w:
                w.write([{"id": "new"}])
        except UserError:
            assert out.read_bytes() == data or data.startswith(out.read_bytes())  # at most a cut tail
            return
        rows = [r for _, r in read_records(out)]
        assert rows[-1] == {"id": "new"}


# ----------------------------------------------------------------------------- property: aggregation

_weights = st.floats(-10, 10, allow_nan=False).filter(lambda w: abs(w) > 1e-3)
_values = st.floats(0, 1, allow_nan=False)


@st.composite
def scored_items(draw, allow_failures: bool = False):
    n = draw(st.integers(1, 8))
    items = []
    for i in range(n):
        w = draw(_weights)
        if i == 0:
            w = abs(w)  # a rubric has at least one positive criterion
        c = Criterion(id=f"c{i}", text=f"criterion {i}", weight=w, veto=draw(st.booleans()))
        v = draw(st.none() | _values) if allow_failures else draw(_values)
        items.append(CriterionValue(c, v))
    return items


@settings(max_examples=300, deadline=None)
@given(items=scored_items(allow_failures=True), hard=st.booleans())
def test_a_failed_judgment_never_becomes_a_number(items, hard) -> None:
    failed = any(i.value is None for i in items)
    for method in ("weighted", "raw", "all_or_nothing", "veto"):
        reward = aggregate(method, items, hard=hard)
        assert (reward is None) == failed, (method, items)
        if reward is not None:
            assert math.isfinite(reward)


@settings(max_examples=300, deadline=None)
@given(items=scored_items(), hard=st.booleans(), which=st.integers(0, 7), bump=st.floats(0, 1))
def test_weighted_bounds_and_monotonicity(items, hard, which, bump) -> None:
    pos = sum(i.criterion.weight for i in items if i.criterion.weight > 0)
    neg = sum(i.criterion.weight for i in items if i.criterion.weight < 0)
    score = weighted(items, hard=hard)
    assert neg / pos - 1e-9 <= score <= 1 + 1e-9
    assert score == pytest.approx(raw(items, hard=hard) / pos)
    assert all_or_nothing(items) in (0.0, 1.0)
    assert veto(items, hard=hard) <= score + 1e-12
    # meeting a positive criterion more never lowers the reward; a pitfall more never raises it
    k = which % len(items)
    item = items[k]
    more = list(items)
    more[k] = CriterionValue(item.criterion, min(1.0, item.value + bump))
    after = weighted(more, hard=hard)
    if item.criterion.weight > 0:
        assert after >= score - 1e-12
    else:
        assert after <= score + 1e-12
    # hard mode is soft mode on thresholded values
    thresholded = [CriterionValue(i.criterion, 1.0 if i.value >= 0.5 else 0.0) for i in items]
    assert weighted(items, hard=True) == pytest.approx(weighted(thresholded))


@settings(max_examples=200, deadline=None)
@given(rewards=st.lists(st.none() | st.floats(-5, 5, allow_nan=False), max_size=30))
def test_dataset_mean_skips_failures_and_clips(rewards) -> None:
    mean = dataset_mean(rewards)
    scored = [r for r in rewards if r is not None]
    if not scored:
        assert mean is None
    else:
        assert 0.0 <= mean <= 1.0
        assert mean == pytest.approx(min(1.0, max(0.0, sum(scored) / len(scored))))
