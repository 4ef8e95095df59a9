"""``rubrix score`` applies the group rules (length shaping, group-relative rewards) as the core does.

The reference is the reward core (:class:`~rubrix.rewards.RubricReward`) on the same groups with the
same judge: ``FakeJudge`` (hash-derived values, named as a fake), so both paths must agree exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rubrix.errors import UserError
from rubrix.groupwise import GroupRewards
from rubrix.records import read_samples
from rubrix.results import read_manifest, read_results
from rubrix.rewards import RewardItem, RubricReward
from rubrix.runs import score_file
from rubrix.scoring import Scorer

RUBRIC = """\
name: shaped
gates:
  - criteria: [answer]
    on_fail: 0
length:
  mode: group
  unit: words
  penalty: 0.4
criteria:
  - id: answer
    check: {reference: last_number}
    weight: 2
  - id: explains
    text: The response explains how it reached the answer.
    weight: 1
"""

# two groups, interleaved on purpose: the run must still shape each against its whole group
ROWS = [
    ("g1-a", "g1", "It is 4.", "4"),
    ("g2-a", "g2", "Seven, since 3 plus 4 is 7. So 7.", "7"),
    ("g1-b", "g1", "Two plus two makes four, as counting two and two more gives 4.", "4"),
    ("g2-b", "g2", "8", "7"),
    ("g1-c", "g1", "5", "4"),
    ("g2-c", "g2", "The answer is 7.", "7"),
    ("solo", None, "Some words and then 3", "3"),
]


@pytest.fixture(autouse=True)
def _rubrix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "home"))


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    rubric = tmp_path / "shaped.yaml"
    rubric.write_text(RUBRIC)
    samples = tmp_path / "samples.jsonl"
    with samples.open("w") as f:
        for rid, group, response, ref in ROWS:
            row = {"id": rid, "prompt": "What is the sum?", "response": response, "reference": ref}
            if group is not None:
                row["group_id"] = group
            f.write(json.dumps(row) + "\n")
    return rubric, samples


def core_rewards(rubric: Path, **options) -> dict[str, float | None]:
    core = RubricReward(str(rubric), "fake", cache=False, **options)
    items = [RewardItem(prompt="What is the sum?", response=resp, reference=ref, group_id=group, id=rid)
             for rid, group, resp, ref in ROWS]
    return {r.id: r.score for r in core.score(items)}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rubrix", *args], capture_output=True, text=True,
                          timeout=120)


def test_rubric_length_section_shapes_rubrix_score_like_the_core(files, tmp_path: Path) -> None:
    rubric, samples = files
    out = tmp_path / "out.jsonl"
    proc = cli("score", str(samples), "-r", str(rubric), "-j", "fake", "-o", str(out), "--no-cache")
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in read_results(out)}
    assert set(rows) == {r[0] for r in ROWS}
    expected = core_rewards(rubric)
    for rid, value in expected.items():
        assert rows[rid]["reward"] == pytest.approx(value, abs=1e-6), rid
    # the longest correct answer of g1 paid the whole penalty; the wrong one was not shaped
    assert rows["g1-b"]["adjustments"]["length_penalty"] == pytest.approx(0.4, abs=1e-6)
    assert "adjustments" not in rows["g1-a"]  # the shortest passing answer pays nothing
    assert "adjustments" not in rows["g1-c"] and rows["g1-c"]["reward"] == 0.0  # gate failed
    assert "adjustments" not in rows["solo"]  # alone: nothing to be relative to
    shaped = rows["g1-b"]
    assert shaped["reward"] == pytest.approx(shaped["adjustments"]["pointwise"] - 0.4, abs=1e-6)
    # rows come out a group at a time, groups in order of first appearance
    assert [r["id"] for r in read_results(out)] == ["g1-a", "g1-b", "g1-c", "g2-a", "g2-b", "g2-c", "solo"]
    rules = read_manifest(out)["counts"]["group_rules"]
    assert rules["length_shaping"] == "from the rubric" and rules["length_shaped"] >= 2


def test_relative_and_override_from_the_cli_match_the_core(files, tmp_path: Path) -> None:
    rubric, samples = files
    out = tmp_path / "rel.jsonl"
    proc = cli("score", str(samples), "-r", str(rubric), "-j", "fake", "-o", str(out), "--no-cache",
               "--relative", "pairwise:0.5", "--length-shaping", "target:3:0.2", "--batch-size", "2")
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in read_results(out)}
    expected = core_rewards(rubric, relative="pairwise:0.5", length_shaping="target:3:0.2")
    for rid, value in expected.items():
        assert rows[rid]["reward"] == pytest.approx(value, abs=1e-6), rid
    assert "relative" in rows["g2-a"]["adjustments"]
    rules = read_manifest(out)["counts"]["group_rules"]
    # every judged answer of a group is compared (a failed gate is a judged 0): 3 pairs per group,
    # both orders; the solo answer costs nothing
    assert rules["relative_verdicts"] == 2 * 3 * 2
    assert rules["relative"] == "pairwise:0.5"
    assert rules["length_shaping"] == {"mode": "target", "target": 3, "unit": "words", "penalty": 0.2}


def test_bad_group_rule_is_one_line_and_exit_2(files, tmp_path: Path) -> None:
    rubric, samples = files
    out = tmp_path / "bad.jsonl"
    proc = cli("score", str(samples), "-r", str(rubric), "-j", "fake", "-o", str(out), "--relative", "best")
    assert proc.returncode == 2
    assert "pairwise" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_group_rules_refuse_another_engine(files, tmp_path: Path) -> None:
    rubric, samples = files
    scorer = Scorer(str(rubric), "fake", cache=False)

    def elsewhere(scorer, todo, batch_size):  # stands for the Ray engine: never reached
        raise AssertionError("must not run")

    with pytest.raises(UserError, match="whole groups"):
        score_file(samples, tmp_path / "o.jsonl", scorer=scorer, engine=elsewhere,
                   groups=GroupRewards.parse(relative="pairwise"))


def test_interrupted_run_resumes_with_whole_groups(files, tmp_path: Path) -> None:
    rubric, samples = files
    whole = tmp_path / "whole.jsonl"
    score_file(samples, whole, scorer=Scorer(str(rubric), "fake", cache=False), batch_size=1)
    out = tmp_path / "resume.jsonl"

    def stop(results):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_file(samples, out, scorer=Scorer(str(rubric), "fake", cache=False), batch_size=1, on_batch=stop)
    assert [r["id"] for r in read_results(out)] == ["g1-a", "g1-b", "g1-c"]  # one batch: one whole group
    again = score_file(samples, out, scorer=Scorer(str(rubric), "fake", cache=False), batch_size=1,
                       resume=True)
    assert again.skipped == 3
    assert {r["id"]: r["reward"] for r in read_results(out)} == \
        {r["id"]: r["reward"] for r in read_results(whole)}
    assert {s.id for s in read_samples(samples)} == {r["id"] for r in read_results(out)}
