"""``rubrix report``: the page model's numbers, the compact judge prompts, bad input. No browser here
(tests/test_report_browser.py opens the pages); every run is scored with the **fake** judge, since
these tests are about the report, not about verdicts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rubrix.judges.fake import FakeJudge
from rubrix.report import build_model, build_report
from rubrix.report.prompts import expand, sample_texts
from rubrix.runs import score_file
from rubrix.scoring import Scorer
from rubrix.stats import dataset_mean

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def make_run(
    tmp: Path,
    name: str = "run",
    *,
    rubric: str | Path = EXAMPLES / "rubric.yaml",
    seed: int = 0,
    samples: Path = EXAMPLES / "samples.jsonl",
    fail_rate: float = 0.0,
    prompts: str | None = None,
    mode: str = "criteria",
) -> Path:
    """Score ``samples`` with the fake judge into ``tmp/name.jsonl`` (+ manifest), like ``rubrix score``."""
    out = tmp / f"{name}.jsonl"
    scorer = Scorer(
        str(rubric), FakeJudge(seed=seed, fail_rate=fail_rate), prompts=prompts, mode=mode, cache=False
    )
    score_file(samples, out, scorer=scorer, options={"mode": mode, "verdict": "auto", "prompts": prompts})
    return out


def rubrix(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUBRIX_HOME": str(cwd / "rubrix_home"), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rubrix.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "rubrix_home"))


def test_score_model_holds_the_runs_numbers(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    m = build_model(out)
    assert m["kind"] == "score" and m["notes"] == []
    run = m["run"]
    assert run["samples"] == 6 and run["status"] == {"ok": 6}
    assert run["mean_reward"] == round(dataset_mean([r["reward"] for r in rows]), 4)
    lo, hi = run["interval95"]
    assert lo <= run["mean_reward"] <= hi
    assert run["judge"] == "fake:0" and run["template_hash"] == manifest["template_hash"]
    assert run["verdicts"] == 30 and run["tokens"] == manifest["counts"]["tokens"]
    assert sum(m["histogram"]["counts"]) == 6
    assert {c["id"]: c["met_rate"] for c in m["criteria"]} == manifest["counts"]["met_rate"]
    for c in m["criteria"]:
        q = c["p_quartiles"]
        assert q == sorted(q) and 0 <= q[0] and q[-1] <= 1
    assert m["samples"]["id"] == [r["id"] for r in rows]
    assert m["prompts"]["available"] and all(k is not None for k in m["prompts"]["keys"])


def test_compact_prompts_equal_the_rendered_requests(tmp_path: Path) -> None:
    """What the page's expand() rebuilds is, message for message, what the scorer sends."""
    out = make_run(tmp_path)
    m = build_model(out)
    p = m["prompts"]
    scorer = Scorer(str(EXAMPLES / "rubric.yaml"), FakeJudge(), verdict="token", cache=False)
    from rubrix.records import read_samples

    for i, sample in enumerate(read_samples(EXAMPLES / "samples.jsonl")):
        texts, digests = sample_texts(sample)
        skeleton = p["skeletons"][p["keys"][i]]
        real = scorer.requests_for(sample)
        assert [r["c"] for r in skeleton] == [r.meta["criterion"] for r in real]
        for sk, req in zip(skeleton, real, strict=True):
            ctext = next(c["text"] for c in m["rubrics"][0]["criteria"] if c["id"] == sk["c"])
            joined = [
                [role, "".join(ctext if k < 0 else p["strings"][k] for k in segs)] for role, segs in sk["m"]
            ]
            assert [[role, expand(text, texts, digests)] for role, text in joined] == [
                [msg["role"], msg["content"]] for msg in req.messages
            ]
    # the text around the sentinels is stored once, not once per criterion
    full = sum(len(p["strings"][k]) for r in skeleton for _, segs in r["m"] for k in segs if k >= 0)
    assert sum(map(len, p["strings"])) < 0.6 * full


def test_a_template_that_transforms_the_text_gets_its_prompts_embedded_whole(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    src = (Path(__file__).resolve().parent.parent / "prompts" / "_sample.j2").read_text()
    (prompts / "_sample.j2").write_text(
        src.replace('{{ response | fence("ANSWER") }}', '{{ response | upper | fence("ANSWER") }}')
    )
    out = make_run(tmp_path, prompts=str(prompts))
    m = build_model(out)
    p = m["prompts"]
    assert p["available"] and all(k is None for k in p["keys"])
    assert len(p["full"]) == 6
    first = p["full"]["0"][0]["m"][1][1]
    assert "THE CAPITAL OF AUSTRALIA IS CANBERRA." in first


def test_checklist_mode_prompts(tmp_path: Path) -> None:
    out = make_run(tmp_path, mode="checklist")
    p = build_model(out)["prompts"]
    assert p["available"] and p["keys"][0] is not None
    assert p["skeletons"][p["keys"][0]][0]["kind"] == "checklist"


def test_no_manifest_gives_a_page_that_says_so(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    Path(str(out) + ".manifest.json").unlink()
    m = build_model(out)
    assert any("no manifest" in n for n in m["notes"])
    assert m["prompts"]["available"] is False and m["run"]["judge"] == "fake:0"
    assert m["samples"]["text"] == [None] * 6
    page = build_report(out).read_text()
    assert "no manifest" in page and "What is missing" in page


def test_moved_or_changed_samples_file_is_named(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    shutil.copy(EXAMPLES / "samples.jsonl", samples)
    out = make_run(tmp_path, samples=samples)
    samples.write_text(samples.read_text().replace("Canberra", "Canbera"))
    m = build_model(out)
    assert any("changed since the run" in n for n in m["notes"]) and not m["prompts"]["available"]
    samples.unlink()
    assert any("is not there" in n for n in build_model(out)["notes"])


def test_mixed_rubric_hashes_without_a_manifest_are_said(tmp_path: Path) -> None:
    out, other = make_run(tmp_path), make_run(tmp_path, "other", rubric="helpfulness")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(out.read_text() + other.read_text().replace('"id": "', '"id": "h-'))
    m = build_model(mixed)
    assert any("2 rubric hashes" in n for n in m["notes"]) and m["run"]["samples"] == 12
    assert "2 rubric hashes" in build_report(mixed).read_text() and len(m["criteria"]) == 5 + 12


def test_truncated_last_line_is_left_out_and_said(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    data = out.read_bytes()
    out.write_bytes(data[:-40])
    m = build_model(out)
    assert m["run"]["samples"] == 5
    assert any("cut off" in n for n in m["notes"])


def test_failures_show_by_type(tmp_path: Path) -> None:
    out = make_run(tmp_path, fail_rate=0.3)
    m = build_model(out)
    assert m["run"]["errors"].get("server", 0) > 0
    assert (
        sum(m["histogram"]["counts"])
        == m["run"]["scored"]
        == sum(1 for r in m["samples"]["reward"] if r is not None)
    )


def test_compare_two_judges(tmp_path: Path) -> None:
    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b", seed=1)
    m = build_model(a, compare=b)
    c = m["compare"]
    assert c["common"] == 6 and c["only_a_count"] == c["only_b_count"] == 0
    assert -1 <= c["spearman"] <= 1
    ra = {r["id"]: r["reward"] for r in map(json.loads, a.read_text().splitlines())}
    rb = {r["id"]: r["reward"] for r in map(json.loads, b.read_text().splitlines())}
    top = max(ra, key=lambda i: abs(rb[i] - ra[i]))
    assert c["disagree"][0]["id"] == top
    assert {x["id"] for x in c["criteria"]} == {
        "correct",
        "direct",
        "follows_constraints",
        "clarity",
        "filler",
    }


def test_spearman() -> None:
    from rubrix.report.compare import spearman

    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_eval_and_audit_documents(tmp_path: Path) -> None:
    e = tmp_path / "e.json"
    proc = rubrix(
        "eval",
        EXAMPLES / "pairs.jsonl",
        "-r",
        EXAMPLES / "rubric.yaml",
        "-m",
        "pairwise",
        "-j",
        "fake",
        "--no-cache",
        "--limit",
        "8",
        "-o",
        e,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(e.read_text())
    m = build_model(e)
    assert m["kind"] == "eval" and [x["name"] for x in m["methods"]] == [x["name"] for x in doc["methods"]]
    assert len(m["pairs"]["id"]) == 8 and len(m["pairs"]["cells"][0]) == len(doc["methods"]) + 1
    a = tmp_path / "a.json"
    proc = rubrix(
        "audit",
        "-r",
        EXAMPLES / "rubric.yaml",
        "-j",
        "fake",
        "--no-cache",
        "--limit",
        "2",
        "-o",
        a,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    m = build_model(a)
    assert m["kind"] == "audit" and [x["name"] for x in m["attacks"]] == list(
        json.loads(a.read_text())["attacks"]
    )


def test_cli_writes_the_page_and_names_it(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    proc = rubrix("report", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = tmp_path / "run.html"
    assert page.is_file() and f"report: {page}" in proc.stdout
    html = page.read_text()
    assert (
        "<script src" not in html
        and "<link" not in html
        and "http://" not in html.replace("http://www.w3.org", "")
    )


@pytest.mark.parametrize(
    "case",
    ["empty", "different_rubrics", "no_overlap", "not_a_report", "missing", "damaged_middle", "compare_eval"],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, case: str) -> None:
    out = make_run(tmp_path)
    args: list = [out]
    expect = []
    if case == "empty":
        out.write_text("")
        expect = ["no result rows"]
    elif case == "different_rubrics":
        other = make_run(tmp_path, "other", rubric="helpfulness")
        out.write_text(out.read_text() + other.read_text())
        expect = ["different rubrics"]
    elif case == "no_overlap":
        other = make_run(tmp_path, "other", samples=_renamed(tmp_path))
        args += ["--compare", other]
        expect = ["no sample id in common"]
    elif case == "not_a_report":
        (tmp_path / "x.json").write_text('{"a": 1}')
        args = [tmp_path / "x.json"]
        expect = ["not a rubrix eval or audit report"]
    elif case == "missing":
        args = [tmp_path / "nope.jsonl"]
        expect = ["nope.jsonl"]
    elif case == "damaged_middle":
        lines = out.read_text().splitlines(keepends=True)
        lines[2] = lines[2][:20] + "\n"
        out.write_text("".join(lines))
        expect = [":3:"]
    elif case == "compare_eval":
        (tmp_path / "e.json").write_text('{"methods": [], "pairs_evaluated": 0}')
        args = [tmp_path / "e.json", "--compare", out]
        expect = ["--compare"]
    one_error_line(rubrix("report", *args, cwd=tmp_path), *expect)


def _renamed(tmp: Path) -> Path:
    rows = [json.loads(line) for line in (EXAMPLES / "samples.jsonl").read_text().splitlines()]
    path = tmp / "renamed.jsonl"
    path.write_text("".join(json.dumps({**r, "id": "x-" + r["id"]}) + "\n" for r in rows))
    return path


def test_partial_overlap_is_compared_on_the_common_ids(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a")
    lines = (EXAMPLES / "samples.jsonl").read_text().splitlines(keepends=True)
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("".join(lines[:4]))
    b = make_run(tmp_path, "b", samples=fewer, seed=2)
    c = build_model(a, compare=b)["compare"]
    assert c["common"] == 4 and c["only_a_count"] == 2
    assert any("only in a.jsonl" in n for n in c["notes"])


def test_relative_paths_in_the_manifest_are_found_from_another_directory(tmp_path: Path, monkeypatch) -> None:
    """``rubrix score examples/samples.jsonl -o out/r.jsonl`` records paths relative to where it ran;
    the report, run from elsewhere, looks beside and above the results for them."""
    root = tmp_path / "project"
    (root / "examples").mkdir(parents=True)
    for name in ("samples.jsonl", "rubric.yaml"):
        shutil.copy(EXAMPLES / name, root / "examples" / name)
    (root / "out").mkdir()
    monkeypatch.chdir(root)
    scorer = Scorer("examples/rubric.yaml", FakeJudge(), cache=False)
    score_file("examples/samples.jsonl", "out/r.jsonl", scorer=scorer, options={"mode": "criteria"})
    monkeypatch.chdir(tmp_path)
    m = build_model(root / "out" / "r.jsonl")
    assert m["notes"] == [] and m["prompts"]["available"]


def test_per_row_rubrics_give_tags_and_prompts(tmp_path: Path) -> None:
    out = tmp_path / "hb.jsonl"
    scorer = Scorer(None, FakeJudge(), cache=False)
    score_file(EXAMPLES / "per_row_rubrics.jsonl", out, scorer=scorer, options={"mode": "criteria"})
    m = build_model(out)
    assert m["notes"] == [] and m["run"]["rubric"] is None
    assert set(m["tags"]) >= {"axis:accuracy", "axis:completeness"}
    assert m["prompts"]["available"] and None not in m["prompts"]["keys"]
    assert len(m["prompts"]["skeletons"]) == 1  # rubrics of one shape share a skeleton
    assert "tags-chart" in build_report(out).read_text()


def test_cli_prints_what_is_missing_and_still_writes_the_page(tmp_path: Path) -> None:
    out = make_run(tmp_path, fail_rate=0.1)
    out.write_bytes(out.read_bytes()[:-30])
    proc = rubrix("report", out, "-o", tmp_path / "page.html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "note: the last line (6) is cut off" in proc.stderr and "Traceback" not in proc.stderr
    page = (tmp_path / "page.html").read_text()
    assert "cut off" in page and "hist-missing" in page


def test_cli_defaults_are_the_librarys() -> None:
    import inspect

    import typer

    from rubrix.cli import app

    params = {p.name: p.default for p in typer.main.get_command(app).commands["report"].params}
    lib = inspect.signature(build_report).parameters
    assert params["output"] is lib["output"].default is None
    assert params["compare"] is lib["compare"].default is None


def test_auto_verdict_with_an_api_judge_is_flagged(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    mpath = Path(str(out) + ".manifest.json")
    manifest = json.loads(mpath.read_text())
    mpath.write_text(json.dumps({**manifest, "judge": "openai:some-model"}))
    m = build_model(out)
    assert m["prompts"]["available"] and any("json template" in n for n in m["notes"])
