"""Data in, data out: TRL conversational rows, ``hf:`` data sets, Parquet / stdout results, exit codes,
logging, the bounded verdict cache and the command-line habits (``--version``, completion, ``-v``).

The judge is ``fake`` (deterministic, named "fake" in every row) except where a test needs failing
verdicts, which come from a real HTTP server on 127.0.0.1 that rejects the API key. The Hugging
Face Hub is never touched: data sets are built with ``Dataset.from_list(...).save_to_disk(tmp)``
and the Hub is switched off in the environment.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rubrix.errors import InputError, UserError
from rubrix.records import FieldMap, read_pairs, read_samples
from rubrix.render import PromptRenderer, SampleView
from rubrix.results import ParquetResultWriter, iter_results
from rubrix.rubric import load_rubric

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

RUBRIC_YAML = """\
name: io test
criteria:
  - id: answers
    text: The response answers the question.
    weight: 2
  - id: polite
    text: The response is polite.
    weight: 1
"""

WEATHER = [
    {"role": "developer", "content": "Use tools when needed."},
    {"role": "user", "content": "Weather in Paris?"},
]
TOOL_TURNS = [
    {"role": "assistant", "content": "",
     "tool_calls": [{"type": "function",
                     "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "name": "get_weather", "content": "{\"temp_c\": 21}"},
    {"role": "assistant", "content": "It is 21 °C in Paris."},
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "rubrix_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def rubrix(*args: str | Path, cwd: Path, stdin: str | None = None, env: dict | None = None
           ) -> subprocess.CompletedProcess:
    full = {**os.environ, "RUBRIX_HOME": str(cwd / "rubrix_home"), "COLUMNS": "200", "NO_COLOR": "1",
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "rubrix", *map(str, args)], cwd=cwd, env=full, input=stdin,
                          capture_output=True, text=True, timeout=120)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


FAKE = ("score", "in.jsonl", "-r", "rubric.yaml", "-j", "fake")


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def plain_rows(n: int = 4) -> list[dict]:
    return [{"id": f"s{i}", "prompt": f"Question {i}?", "response": f"Answer {i}."} for i in range(n)]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "rubric.yaml").write_text(RUBRIC_YAML, encoding="utf-8")
    write_jsonl(tmp_path / "in.jsonl", plain_rows())
    return tmp_path


# ------------------------------------------------------------------------------------------------
# TRL conversational formats


def test_prompt_completion_messages_with_tool_turns_are_rendered_for_the_judge(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "w", "prompt": WEATHER, "completion": TOOL_TURNS}])
    (sample,) = read_samples(path)
    assert [m["role"] for m in sample.prompt] == ["developer", "user"]
    assert '[tool call] get_weather({"city": "Paris"})' in sample.response
    assert 'Tool result (get_weather): {"temp_c": 21}' in sample.response
    assert sample.response.endswith("Assistant: It is 21 °C in Paris.")
    criterion = load_rubric({"name": "t", "criteria": [{"text": "Uses the tool.", "weight": 1}]}).criteria[0]
    request = PromptRenderer().criterion_request(SampleView(sample.prompt, sample.response), criterion)
    user = request.messages[-1]["content"]
    assert "Developer: Use tools when needed." in user and "[tool call] get_weather" in user


def test_plain_assistant_completion_is_graded_as_its_text(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "prompt": [{"role": "user", "content": "Hi"}],
         "completion": [{"role": "assistant", "content": "<think>hmm</think>Hello!"}]}])
    assert next(read_samples(path)).response == "Hello!"


def test_messages_column_is_split_at_the_last_user_turn(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "m", "messages": WEATHER + TOOL_TURNS}])
    (sample,) = read_samples(path)
    assert sample.prompt == WEATHER
    assert "get_weather" in sample.response and "messages" not in sample.meta


@pytest.mark.parametrize("row, field, match", [
    ({"id": "x", "prompt": [{"role": "robot", "content": "hi"}], "response": "r"}, "prompt[0].role",
     "role must be one of system, developer, user, assistant, tool"),
    ({"id": "x", "prompt": WEATHER, "completion": TOOL_TURNS[:1] + TOOL_TURNS[2:]},
     "completion[0].tool_calls[0]", "tool call 'get_weather' has no tool result"),
    ({"id": "x", "prompt": WEATHER, "completion": [{"role": "tool", "content": "42"}]}, "completion",
     "no assistant message"),
    ({"id": "x", "messages": [{"role": "user", "content": "only a question"}]}, "messages", "no assistant"),
    ({"id": "x", "prompt": "p", "completion": [{"role": "assistant", "content": "",
                                                 "tool_calls": [{"function": {"arguments": "{}"}}]},
                                                {"role": "tool", "content": "x"}]},
     "completion[0].tool_calls[0].function.name", "function name"),
])
def test_bad_message_lists_name_the_field(tmp_path: Path, row: dict, field: str, match: str) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "ok", "prompt": "p", "response": "r"}, row])
    with pytest.raises(InputError) as info:
        list(read_samples(path))
    assert (info.value.file, info.value.line, info.value.field) == (str(path), 2, field), str(info.value)
    assert match in info.value.message


def test_tool_call_without_result_is_one_line_and_exit_2(work: Path) -> None:
    write_jsonl(work / "bad.jsonl", [{"id": "x", "prompt": WEATHER, "completion": TOOL_TURNS[:1]}])
    line = one_line_error(rubrix("score", "bad.jsonl", "-r", "rubric.yaml", "-j", "fake", "-o", "out.jsonl",
                                 cwd=work))
    assert "bad.jsonl:1: completion[0].tool_calls[0]: tool call 'get_weather' has no tool result" in line
    assert not (work / "out.jsonl").exists()


def test_tool_results_match_calls_by_id(tmp_path: Path) -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
             {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}}]
    completion = [{"role": "assistant", "content": None, "tool_calls": calls},
                  {"role": "tool", "tool_call_id": "c2", "content": "B"},
                  {"role": "tool", "tool_call_id": "c1", "content": "A"},
                  {"role": "assistant", "content": "done"}]
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "i", "prompt": "p", "completion": completion}])
    assert "[tool call] b({})" in next(read_samples(path)).response


def test_preference_rows_with_implicit_and_explicit_prompts(tmp_path: Path) -> None:
    user = [{"role": "user", "content": "2+2?"}]
    path = write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": "implicit", "chosen": user + [{"role": "assistant", "content": "4"}],
         "rejected": user + [{"role": "assistant", "content": "5"}]},
        {"id": "explicit", "prompt": user, "chosen": [{"role": "assistant", "content": "4"}],
         "rejected": [{"role": "assistant", "content": "5"}]},
    ])
    implicit, explicit = read_pairs(path)
    for pair in (implicit, explicit):
        assert (pair.prompt, pair.chosen, pair.rejected) == (user, "4", "5")


def test_export_outputs_are_inputs_again(work: Path) -> None:
    """What rubrix writes (trl-pairs, kto, results in either format) it reads back."""
    msgs = [{"id": f"g{i}", "group_id": "g", "prompt": [{"role": "user", "content": "Say hi"}],
             "completion": [{"role": "assistant", "content": f"hi {'!' * i}"}]} for i in range(3)]
    write_jsonl(work / "chat.jsonl", msgs)
    assert rubrix("score", "chat.jsonl", "-r", "rubric.yaml", "-j", "fake", "-o", "r.parquet",
                  cwd=work).returncode == 0
    assert rubrix("export", "r.parquet", "--to", "trl-pairs", "-o", "pairs.jsonl", cwd=work).returncode == 0
    assert rubrix("export", "r.parquet", "--to", "kto", "-o", "kto.jsonl", cwd=work).returncode == 0
    (pair,) = read_pairs(work / "pairs.jsonl", default_id_prefix="pair-")
    assert pair.prompt == [{"role": "user", "content": "Say hi"}] and pair.chosen.startswith("hi")
    kto = list(read_samples(work / "kto.jsonl"))
    assert len(kto) == 3 and kto[0].response.startswith("hi") and "label" in kto[0].meta
    proc = rubrix("eval", "pairs.jsonl", "-r", "rubric.yaml", "-j", "fake", "-o", "eval.json", cwd=work)
    assert proc.returncode == 0, proc.stderr


def test_csv_cells_may_hold_message_lists(tmp_path: Path) -> None:
    import csv

    path = tmp_path / "in.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "prompt", "completion"])
        w.writerow(["c", json.dumps(WEATHER), json.dumps(TOOL_TURNS)])
    assert "get_weather" in next(read_samples(path)).response


# ------------------------------------------------------------------------------------------------
# hf: data sets


@pytest.fixture
def saved_dataset(tmp_path: Path) -> Path:
    datasets = pytest.importorskip("datasets")
    rows = [{"id": f"h{i}", "prompt": [{"role": "user", "content": f"q{i}"}],
             "completion": [{"role": "assistant", "content": f"a{i}"}]} for i in range(5)]
    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                          "test": datasets.Dataset.from_list(rows[:2])}).save_to_disk(str(folder))
    return folder


def test_hf_saved_dataset_with_split(saved_dataset: Path) -> None:
    got = list(read_samples(f"hf:{saved_dataset}:test"))
    assert [s.id for s in got] == ["h0", "h1"] and got[1].response == "a1" and got[1].line == 2


@pytest.mark.parametrize("spec, match", [
    ("hf:{d}", "has several splits (train, test)"),
    ("hf:{d}:validation", "no split 'validation' (splits: train, test)"),
    ("hf:{d}/nope", "no such data set folder or data file"),
    ("hf:someone/some-dataset", "Hugging Face Hub is off"),
])
def test_hf_bad_specs_are_user_errors(saved_dataset: Path, spec: str, match: str) -> None:
    spec = spec.format(d=saved_dataset)
    with pytest.raises(InputError) as info:
        list(read_samples(spec))
    assert match in info.value.message and info.value.file == spec


def test_hf_column_mapping_that_misses_names_the_column(saved_dataset: Path) -> None:
    with pytest.raises(InputError) as info:
        list(read_samples(f"hf:{saved_dataset}:train", FieldMap.parse(["response=answer"])))
    assert info.value.field == "answer" and "no such column" in info.value.message


def test_hf_data_files_are_streamed(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    write_jsonl(tmp_path / "a.jsonl", plain_rows(3))
    got = read_samples(f"hf:{tmp_path / 'a.jsonl'}")
    assert not isinstance(got, list)
    assert [s.id for s in got] == ["s0", "s1", "s2"]
    assert not (tmp_path / "hf_cache").exists() or not any((tmp_path / "hf_cache").rglob("*.arrow"))


def test_score_hf_cli_and_errors(work: Path, saved_dataset: Path) -> None:
    proc = rubrix("score", f"hf:{saved_dataset}:train", "-r", "rubric.yaml", "-j", "fake", "-o", "hf.jsonl",
                  cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert len(list(iter_results(work / "hf.jsonl"))) == 5
    manifest = json.loads((work / "hf.jsonl.manifest.json").read_text())
    assert manifest["input"]["path"] == f"hf:{saved_dataset}:train" and manifest["input"]["rows"] == 5
    line = one_line_error(rubrix("score", f"hf:{saved_dataset}:dev", "-r", "rubric.yaml", "-j", "fake",
                                 "-o", "x.jsonl", cwd=work))
    assert "no split 'dev'" in line and not (work / "x.jsonl").exists()
    line = one_line_error(rubrix("score", "hf:/no/such/dir", "-r", "rubric.yaml", "-j", "fake", "-o",
                                 "x.jsonl",
                                 cwd=work))
    assert "hf:/no/such/dir: no such data set" in line


# ------------------------------------------------------------------------------------------------
# results: Parquet, stdout, stdin


def test_parquet_and_jsonl_hold_the_same_rows(work: Path) -> None:
    for out in ("r.jsonl", "r.parquet"):
        assert rubrix(*FAKE, "-o", out, cwd=work).returncode == 0
    assert list(iter_results(work / "r.jsonl")) == list(iter_results(work / "r.parquet"))
    import pyarrow.parquet as pq

    table = pq.read_table(work / "r.parquet")
    assert table.column_names[:5] == ["id", "group_id", "reward", "reward_raw", "status"]
    assert json.loads(table.column("criteria")[0].as_py())["answers"]["met"] in (True, False)
    assert not list(work.glob("*.journal.jsonl"))


def test_parquet_writer_survives_a_kill_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    writer = ParquetResultWriter(out)
    writer.write([{"id": "a", "reward": 0.5, "status": "ok", "criteria": {}}])
    writer._journal.close()  # the process dies here: no Parquet footer is ever written
    with pytest.raises(UserError, match="--resume"):
        ParquetResultWriter(out)
    with ParquetResultWriter(out, resume=True) as again:
        assert again.done_ids == {"a"}
        again.write([{"id": "b", "reward": None, "status": "failed",
                      "criteria": {"x": {"error": "timeout"}}}])
    assert [r["id"] for r in iter_results(out)] == ["a", "b"]
    with ParquetResultWriter(out, resume=True) as third:  # a finished Parquet run continues too
        assert third.done_ids == {"a", "b"}
        third.write([{"id": "c", "reward": 1.0, "status": "ok", "criteria": {}, "group_id": 7, "note": [1]}])
    rows = list(iter_results(out))
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[2]["note"] == [1] and rows[2]["group_id"] == "7"


def test_resume_with_parquet_output_skips_done_ids(work: Path) -> None:
    base = ("score", "in.jsonl", "-r", "rubric.yaml", "-j", "fake", "-o", "r.parquet")
    assert rubrix(*base, "--limit", "2", cwd=work).returncode == 0
    assert one_line_error(rubrix(*base, cwd=work)).endswith("pass --resume to continue it, or choose another "
                                                            "output")
    assert rubrix(*base, "--resume", cwd=work).returncode == 0
    assert [r["id"] for r in iter_results(work / "r.parquet")] == ["s0", "s1", "s2", "s3"]


def test_parquet_output_to_unwritable_place_is_exit_2_and_loses_nothing(work: Path) -> None:
    (work / "afile").write_text("not a folder")
    line = one_line_error(rubrix("score", "in.jsonl", "-r", "rubric.yaml", "-j", "fake", "-o",
                                 "afile/r.parquet", cwd=work))
    assert "afile/r.parquet" in line
    assert (work / "afile").read_text() == "not a folder"
    (work / "done.parquet").write_bytes(b"PAR1 earlier results")
    one_line_error(rubrix(*FAKE, "-o", "done.parquet", cwd=work))
    assert (work / "done.parquet").read_bytes() == b"PAR1 earlier results"


def test_stdin_to_stdout(work: Path) -> None:
    text = (work / "in.jsonl").read_text()
    proc = rubrix("score", "-", "-r", "rubric.yaml", "-j", "fake", "-o", "-", cwd=work, stdin=text)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["s0", "s1", "s2", "s3"]
    assert "summary" in proc.stderr and not list(work.glob("-*"))
    line = one_line_error(rubrix("score", "in.jsonl", "-r", "rubric.yaml", "-j", "fake", "-o", "-",
                                 "--resume", cwd=work))
    assert "standard output cannot be continued" in line


# ------------------------------------------------------------------------------------------------
# exit codes and logging


class _Reject(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``status`` (401: a wrong key)."""

    status = 401

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"error": "bad key"}' if self.status == 401 else b'{"error": "down"}'
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _Down(_Reject):
    status = 500


def _serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def rejecting_server():
    yield from _serve(_Reject)


@pytest.fixture
def down_server():
    yield from _serve(_Down)


class _FlakyOnce(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first request of each conversation, then a real chat completion."""

    seen: set[bytes] = set()

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        from openai_stub import completion

        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        key = json.dumps(json.loads(body)["messages"]).encode()
        first = key not in _FlakyOnce.seen
        _FlakyOnce.seen.add(key)
        payload = b'{"error": "busy"}' if first else json.dumps(completion("m")).encode()
        self.send_response(503 if first else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def test_verbose_shows_judge_retries_while_the_run_goes_on(work: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyOnce)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        write_jsonl(work / "two.jsonl", plain_rows(2))
        proc = rubrix("score", "two.jsonl", "-r", "rubric.yaml", "-j", "openai:m", "--base-url", url, "-o",
                      "r.jsonl", "-v", cwd=work, env={"RUBRIX_API_KEY": "k"})
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr
    retries = [line for line in proc.stderr.splitlines() if "event=judge_retry" in line]
    # two samples x two criteria, and the preflight request that checks the key first
    assert len(retries) == 5 and all("error=server" in line and "level=info" in line for line in retries)
    assert all(r["status"] == "ok" for r in iter_results(work / "r.jsonl"))


def test_wrong_key_is_one_line_and_exit_2_before_scoring(work: Path, rejecting_server: str) -> None:
    """A bad key is bad input: one request finds out, nothing is scored or written (issue 13)."""
    args = ("score", "in.jsonl", "-r", "rubric.yaml", "-j", "openai:m", "--base-url", rejecting_server)
    line = one_line_error(rubrix(*args, "-o", "a.jsonl", cwd=work, env={"RUBRIX_API_KEY": "wrong"}))
    assert "401" in line and rejecting_server in line and "RUBRIX_API_KEY" in line
    assert not (work / "a.jsonl").exists()
    # --resume over earlier rows: they stay as they were
    (work / "b.jsonl").write_text('{"id": "s0", "reward": 0.5}\n', encoding="utf-8")
    one_line_error(rubrix(*args, "-o", "b.jsonl", "--resume", cwd=work, env={"RUBRIX_API_KEY": "wrong"}))
    assert (work / "b.jsonl").read_text(encoding="utf-8") == '{"id": "s0", "reward": 0.5}\n'


def test_all_failed_run_exits_3_with_one_line_reason(work: Path, down_server: str) -> None:
    args = ("score", "in.jsonl", "-r", "rubric.yaml", "-j", "openai:m", "--base-url", down_server,
            "--max-retries", "0")
    proc = rubrix(*args, "-o", "a.jsonl", cwd=work, env={"RUBRIX_API_KEY": "k"})
    assert proc.returncode == 3, proc.stderr
    reasons = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(reasons) == 1 and "4 of 4 samples failed" in reasons[0] and "server 8" in reasons[0]
    assert len(list(iter_results(work / "a.jsonl"))) == 4  # the rows are kept
    assert rubrix(*args, "-o", "b.jsonl", "--max-failure-rate", "off", cwd=work,
                  env={"RUBRIX_API_KEY": "k"}).returncode == 0
    line = one_line_error(rubrix(*args, "-o", "c.jsonl", "--max-failure-rate", "2", cwd=work))
    assert "--max-failure-rate" in line


def test_failure_rate_threshold() -> None:
    from rubrix.runs import RunSummary, failure_reason

    summary = RunSummary()
    summary.status.update({"ok": 8, "partial": 1, "failed": 1})
    assert failure_reason(summary) is None  # default: only when all failed
    assert failure_reason(summary, 0.25) is None
    assert "2 of 10 samples failed" in failure_reason(summary, 0.1)
    assert failure_reason(RunSummary()) is None  # nothing scored is not a failure
    summary.status = summary.status.__class__({"failed": 3})
    assert failure_reason(summary) is not None and failure_reason(summary, None) is None


def test_verbose_logs_sample_failures_as_key_value_lines(work: Path) -> None:
    from rubrix.logs import KeyValueFormatter, event, get_logger

    record = logging.LogRecord("rubrix.x", logging.INFO, __file__, 1, "%s", ("event=e a=1",), None)
    assert KeyValueFormatter().format(record).endswith("level=info logger=rubrix.x event=e a=1")
    log = get_logger("test")
    log.setLevel(logging.INFO)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: seen.append(r.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    event(log, logging.INFO, "judge_retry", error="rate_limit", wait_s=0.25, detail="two words")
    log.removeHandler(handler)
    assert seen == ['event=judge_retry error=rate_limit wait_s=0.25 detail="two words"']
    proc = rubrix("score", "in.jsonl", "-r", "rubric.yaml", "-j", "fake", "-o", "r.jsonl", "-vv", cwd=work)
    assert proc.returncode == 0 and "event=cache_lookup" in proc.stderr and "level=debug" in proc.stderr
    quiet = rubrix("score", "in.jsonl", "-r", "rubric.yaml", "-j", "fake", "-o", "q.jsonl", cwd=work)
    assert "event=" not in quiet.stderr
    one_line_error(rubrix("--log-level", "loud", "rubric", "list", cwd=work))


# ------------------------------------------------------------------------------------------------
# command-line habits


def test_version_completion_and_typed_marker(tmp_path: Path) -> None:
    from rubrix._version import __version__

    proc = rubrix("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"rubrix {__version__}"
    complete = rubrix(cwd=tmp_path, env={"_RUBRIX_COMPLETE": "complete_bash", "COMP_WORDS": "rubrix cac",
                                         "COMP_CWORD": "1"})
    assert complete.stdout.split() == ["cache"]
    assert "--install-completion" in rubrix("--help", cwd=tmp_path).stdout
    import rubrix as pkg

    assert (Path(pkg.__file__).parent / "py.typed").is_file()
    pyproject = (Path(pkg.__file__).parent.parent / "pyproject.toml").read_text()
    assert '"rubrix" = ["py.typed"]' in pyproject


def test_global_options_are_taken_after_the_command_too() -> None:
    from rubrix.cli import hoist_global_options

    assert hoist_global_options(["score", "x", "-v", "--log-level", "debug", "-o", "y", "--", "-v"]) == \
        ["-v", "--log-level", "debug", "score", "x", "-o", "y", "--", "-v"]


# ------------------------------------------------------------------------------------------------
# the verdict cache


def _verdict(p: float = 0.9):
    from rubrix.judges.base import Verdict

    return Verdict(p=p, label="Yes", from_logprobs=True)


def test_cache_cap_evicts_oldest_rows(tmp_path: Path) -> None:
    from rubrix.cache import VerdictCache

    cache = VerdictCache(tmp_path / "c.sqlite", max_rows=10)
    for i in range(15):
        cache.put_many([(f"k{i}", _verdict())])
    kept = cache.rows()
    assert kept <= 10 and cache.evicted >= 5
    found = cache.get_many([f"k{i}" for i in range(15)])
    assert "k14" in found and "k0" not in found
    cache.close()


def test_cache_cap_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rubrix.cache import VerdictCache

    monkeypatch.setenv("RUBRIX_CACHE_MAX_ROWS", "3")
    assert VerdictCache(tmp_path / "a.sqlite").max_rows == 3
    monkeypatch.setenv("RUBRIX_CACHE_MAX_ROWS", "off")
    assert VerdictCache(tmp_path / "b.sqlite").max_rows is None
    monkeypatch.setenv("RUBRIX_CACHE_MAX_ROWS", "lots")
    with pytest.raises(UserError, match="RUBRIX_CACHE_MAX_ROWS"):
        VerdictCache(tmp_path / "c.sqlite")


def test_cache_journal_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rubrix.cache as cache_mod

    assert cache_mod.VerdictCache(tmp_path / "wal.sqlite").journal_mode == "wal"
    monkeypatch.setenv("RUBRIX_CACHE_JOURNAL", "delete")
    assert cache_mod.VerdictCache(tmp_path / "env.sqlite").journal_mode == "delete"
    monkeypatch.setenv("RUBRIX_CACHE_JOURNAL", "auto")
    monkeypatch.setattr(cache_mod, "filesystem_type", lambda path: "nfs4")
    nfs = cache_mod.VerdictCache(tmp_path / "nfs.sqlite")
    assert nfs.journal_mode == "delete"
    nfs.put_many([("k", _verdict())])
    assert "k" in nfs.get_many(["k"]) and not Path(f"{tmp_path / 'nfs.sqlite'}-wal").exists()
    monkeypatch.setenv("RUBRIX_CACHE_JOURNAL", "sideways")
    with pytest.raises(UserError, match="RUBRIX_CACHE_JOURNAL"):
        cache_mod.VerdictCache(tmp_path / "bad.sqlite")


def test_cache_falls_back_when_sqlite_refuses_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    import rubrix.cache as cache_mod

    real_connect = sqlite3.connect

    class NoWal:
        def __init__(self, *a, **k):
            self._db = real_connect(*a, **k)

        def execute(self, sql, *args):
            if sql.upper() == "PRAGMA JOURNAL_MODE=WAL":
                raise sqlite3.OperationalError("disk I/O error")
            return self._db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._db, name)

    monkeypatch.setattr(cache_mod.sqlite3, "connect", NoWal)
    assert cache_mod.VerdictCache(tmp_path / "c.sqlite").journal_mode == "delete"


def test_cache_info_and_clear_cli(work: Path) -> None:
    assert rubrix(*FAKE, "-o", "r.jsonl", cwd=work).returncode == 0
    info = json.loads(rubrix("cache", "info", "--json", cwd=work).stdout)
    assert info["rows"] == 8 and info["exists"] and info["journal_mode"] == "wal"
    assert info["path"] == str(work / "rubrix_home" / "verdicts.sqlite")
    cleared = rubrix("cache", "clear", cwd=work)
    assert cleared.returncode == 0 and "8 verdicts" in cleared.stdout
    assert json.loads(rubrix("cache", "info", "--json", cwd=work).stdout)["exists"] is False
    proc = rubrix(*FAKE, "-o", "n.jsonl", "--no-cache", cwd=work)
    assert proc.returncode == 0 and not (work / "rubrix_home" / "verdicts.sqlite").exists()


def test_trainer_adapters_default_to_an_in_memory_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from rubrix.integrations import verl
    from rubrix.integrations.trl import reward_func
    from rubrix.rewards import RubricReward

    core = RubricReward({"name": "t", "criteria": [{"text": "Is right.", "weight": 1}]}, "fake")
    assert core.scorer.cache is not None and core.scorer.cache.memory
    fn = reward_func({"name": "t", "criteria": [{"text": "Is right.", "weight": 1}]}, "fake")
    assert fn.rubrix.scorer.cache.memory
    monkeypatch.delenv("RUBRIX_CACHE", raising=False)
    assert verl._config({})["cache"] == "memory"
    monkeypatch.setenv("RUBRIX_CACHE", "0")
    assert verl._config({})["cache"] is False
    monkeypatch.setenv("RUBRIX_CACHE", "1")
    assert verl._config({})["cache"] is True
    core.close()
    fn.rubrix.close()


def test_hf_struct_padding_does_not_reach_the_judge(tmp_path: Path) -> None:
    """Arrow gives every struct the union of keys: absent ones come back as None and must vanish."""
    datasets = pytest.importorskip("datasets")
    other = [{"role": "assistant", "content": "",
              "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"unit": "C"}}}]},
             {"role": "tool", "name": "f", "content": "1"}, {"role": "assistant", "content": "one"}]
    rows = [{"id": "a", "prompt": WEATHER, "completion": TOOL_TURNS},
            {"id": "b", "prompt": [{"role": "user", "content": "q"}], "completion": other}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    a, b = read_samples(f"hf:{tmp_path / 'ds'}")
    assert '[tool call] get_weather({"city": "Paris"})' in a.response
    assert '[tool call] f({"unit": "C"})' in b.response and "None" not in a.response + b.response


def test_export_joins_results_with_the_hf_data_set_they_came_from(work: Path, saved_dataset: Path) -> None:
    spec = f"hf:{saved_dataset}:train"
    assert rubrix("score", spec, "-r", "rubric.yaml", "-j", "fake", "-o", "r.jsonl", cwd=work).returncode == 0
    proc = rubrix("export", "r.jsonl", "--to", "kto", "-o", "kto.jsonl", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert [s.response for s in read_samples(work / "kto.jsonl")] == [f"a{i}" for i in range(5)]


def test_score_file_streams_its_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second pass is read as batches are scored, not all at once before the first one."""
    import rubrix.runs as runs
    from rubrix.scoring import Scorer

    path = write_jsonl(tmp_path / "in.jsonl", plain_rows(100))
    reads = {"n": 0}
    real = runs.read_samples

    def counting(*args, **kwargs):
        for sample in real(*args, **kwargs):
            reads["n"] += 1
            yield sample

    monkeypatch.setattr(runs, "read_samples", counting)
    seen_at_batches: list[int] = []
    scorer = Scorer(load_rubric({"name": "t", "criteria": [{"text": "Is right.", "weight": 1}]}), "fake",
                    cache=False)
    runs.score_file(path, tmp_path / "out.jsonl", scorer=scorer, batch_size=10,
                    on_batch=lambda results: seen_at_batches.append(reads["n"]))
    scorer.close()
    assert len(seen_at_batches) == 10
    # pass 1 read everything once; pass 2 only one look-ahead window (batches gathered by prompt)
    assert seen_at_batches[0] <= 100 + 10 * runs.GROUP_LOOKAHEAD + 1
    assert seen_at_batches[-1] == 200


def test_export_to_stdout(work: Path) -> None:
    assert rubrix(*FAKE, "-o", "r.parquet", cwd=work).returncode == 0
    proc = rubrix("export", "r.parquet", "--to", "kto", "-o", "-", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["id"] for line in proc.stdout.splitlines()] == ["s0", "s1", "s2", "s3"]
    assert "wrote standard output" in proc.stderr


def test_csv_response_that_is_a_json_answer_stays_text(tmp_path: Path) -> None:
    import csv

    path = tmp_path / "in.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "prompt", "response"])
        w.writerow(["j", "List two cities as JSON.", '[{"name": "Paris"}, {"name": "Rome"}]'])
    assert next(read_samples(path)).response == '[{"name": "Paris"}, {"name": "Rome"}]'
