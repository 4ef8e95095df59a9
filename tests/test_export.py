"""``rubrix export``: TRL pairs, KTO rows, the OpenAI grader and the verifiers criteria file.

Result rows are written by the test (hand-picked rewards) or by a real ``rubrix score`` run with
the FakeJudge; samples are real files on disk.
"""

from __future__ import annotations

import json
import math
import random
import re
import tomllib
from pathlib import Path

import pytest

from rubrix import aggregate as agg
from rubrix import stats as rubrix_stats
from rubrix.aggregate import CriterionValue
from rubrix.cli import main
from rubrix.errors import UserError
from rubrix.export import export, openai_grader
from rubrix.integrations.verifiers import criteria_file
from rubrix.rubric import load_rubric

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def _rubrix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "rubrix_home"))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def scored(tmp_path: Path) -> tuple[Path, Path]:
    chat = [{"role": "user", "content": "Name a color."}]
    samples = [
        {"id": "a1", "prompt": "2+2?", "response": "4", "group_id": "g1"},
        {"id": "a2", "prompt": "2+2?", "response": "5", "group_id": "g1"},
        {"id": "a3", "prompt": "2+2?", "response": "four", "group_id": "g1"},
        {"id": "b1", "prompt": "Capital of France?", "response": "Paris"},          # grouped by prompt
        {"id": "b2", "prompt": "Capital of France?", "response": "Lyon"},
        {"id": "c1", "prompt": "Tie?", "response": "x", "group_id": "g3"},
        {"id": "c2", "prompt": "Tie?", "response": "y", "group_id": "g3"},
        {"id": "d1", "prompt": "Alone?", "response": "z", "group_id": "g4"},
        {"id": "e1", "prompt": chat, "response": "Blue.", "group_id": "g5"},
        {"id": "e2", "prompt": chat, "response": "Dunno", "group_id": "g5"},
        {"id": "e3", "prompt": chat, "response": "err", "group_id": "g5"},
    ]
    results = [
        {"id": "a1", "group_id": "g1", "reward": 0.9, "status": "ok"},
        {"id": "a2", "group_id": "g1", "reward": 0.1, "status": "ok"},
        {"id": "a3", "group_id": "g1", "reward": 0.9, "status": "ok"},
        {"id": "b1", "reward": 0.8, "status": "ok"},
        {"id": "b2", "reward": 0.3, "status": "ok"},
        {"id": "c1", "group_id": "g3", "reward": 0.5, "status": "ok"},
        {"id": "c2", "group_id": "g3", "reward": 0.5, "status": "ok"},
        {"id": "d1", "group_id": "g4", "reward": 0.7, "status": "ok"},
        {"id": "e1", "group_id": "g5", "reward": 0.6, "status": "ok"},
        {"id": "e2", "group_id": "g5", "reward": 0.2, "status": "ok"},
        {"id": "e3", "group_id": "g5", "reward": None, "status": "failed"},
    ]
    return write_jsonl(tmp_path / "results.jsonl", results), write_jsonl(tmp_path / "samples.jsonl", samples)


def test_trl_pairs(scored, tmp_path: Path) -> None:
    results, samples = scored
    stats = export(results, "trl-pairs", tmp_path / "pairs.jsonl", samples_path=samples)
    pairs = read_jsonl(tmp_path / "pairs.jsonl")
    chosen_rejected = [(p["chosen_id"], p["rejected_id"]) for p in pairs]
    assert chosen_rejected == [("a1", "a2"), ("b1", "b2"), ("e1", "e2")]
    assert pairs[0] == {"prompt": "2+2?", "chosen": "4", "rejected": "5", "chosen_id": "a1",
                        "rejected_id": "a2", "chosen_reward": 0.9, "rejected_reward": 0.1, "group_id": "g1"}
    # conversational prompt -> conversational chosen / rejected (TRL's format)
    assert pairs[2]["chosen"] == [{"role": "assistant", "content": "Blue."}]
    assert pairs[2]["prompt"] == [{"role": "user", "content": "Name a color."}]
    assert stats.to_dict() == {"rows": 11, "written": 3, "failed_rows": 1, "groups": 5, "groups_too_small": 1,
                               "groups_tied": 1}
    stats = export(results, "trl-pairs", tmp_path / "pairs2.jsonl", samples_path=samples, margin=0.5)
    assert [p["chosen_id"] for p in read_jsonl(tmp_path / "pairs2.jsonl")] == ["a1"]
    assert stats.groups_tied == 3


def test_kto(scored, tmp_path: Path) -> None:
    results, samples = scored
    stats = export(results, "kto", tmp_path / "kto.jsonl", samples_path=samples, threshold=0.6)
    rows = read_jsonl(tmp_path / "kto.jsonl")
    assert len(rows) == 10 and stats.failed_rows == 1
    by_id = {r["id"]: r for r in rows}
    assert by_id["a1"]["label"] is True and by_id["a2"]["label"] is False
    assert by_id["e1"]["label"] is True                               # 0.6 >= 0.6
    assert by_id["e1"]["completion"] == [{"role": "assistant", "content": "Blue."}]
    assert by_id["b1"] == {"prompt": "Capital of France?", "completion": "Paris", "label": True, "id": "b1",
                           "reward": 0.8}
    assert stats.labels == {"true": 5, "false": 5}


def test_pairs_need_samples_and_count_missing(scored, tmp_path: Path) -> None:
    results, samples = scored
    with pytest.raises(UserError, match="--samples"):
        export(results, "trl-pairs", tmp_path / "p.jsonl")
    partial = write_jsonl(tmp_path / "few.jsonl", [json.loads(line) for line in
                                                    samples.read_text().splitlines()[:2]])
    stats = export(results, "kto", tmp_path / "k.jsonl", samples_path=partial)
    assert stats.missing_samples == 8 and stats.written == 2
    with pytest.raises(UserError, match="unknown export target"):
        export(results, "dpo", tmp_path / "x")


def test_export_after_a_real_score_run_uses_the_manifest(tmp_path: Path, capsys) -> None:
    results = tmp_path / "res.jsonl"
    main(["score", str(EXAMPLES / "samples.jsonl"), "-r", str(EXAMPLES / "rubric.yaml"), "-j", "fake",
          "-o", str(results), "--no-cache"])
    rows = read_jsonl(results)
    keys = {tuple(r["criteria"]) for r in rows}
    assert len(keys) == 1                                    # the same criterion keys on every row
    capsys.readouterr()
    # samples and rubric come from the manifest
    main(["export", str(results), "--to", "kto", "-o", str(tmp_path / "kto.jsonl")])
    assert "written 6" in capsys.readouterr().out
    main(["export", str(results), "--to", "verifiers", "-o", str(tmp_path / "criteria.toml")])
    data = tomllib.loads((tmp_path / "criteria.toml").read_text())
    rubric = load_rubric(EXAMPLES / "rubric.yaml")
    assert [c["name"] for c in data["criteria"]] == [c.id for c in rubric.criteria]
    main(["export", str(results), "--to", "openai-grader", "-o", str(tmp_path / "grader.json")])
    assert json.loads((tmp_path / "grader.json").read_text())["type"] == "multi"
    main(["export", str(results), "--to", "verifiers", "-o", str(tmp_path / "criteria.json"),
          "-r", "helpfulness"])
    assert len(json.loads((tmp_path / "criteria.json").read_text())["criteria"]) == 12


def test_export_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path / "missing.jsonl"), "--to", "kto", "-o", str(tmp_path / "o.jsonl"),
              "--samples", str(EXAMPLES / "samples.jsonl")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "results file does not exist" in err and "Traceback" not in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "reward": 0.5}\n{"id": "b", "reward": "high"}\n')
    with pytest.raises(SystemExit):
        main(["export", str(bad), "--to", "kto", "-o", str(tmp_path / "o.jsonl"),
              "--samples", str(EXAMPLES / "samples.jsonl")])
    assert "bad.jsonl:2: reward" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(bad), "--to", "verifiers", "-o", str(tmp_path / "c.toml")])
    assert "--rubric" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- OpenAI grader


def evaluate_formula(formula: str, values: dict[str, float]) -> float:
    """The RFT formula language is arithmetic plus min/max/floor/...: Python evaluates it the same."""
    assert re.fullmatch(r"[\w\s.+\-*/(),]+", formula)
    return eval(formula, {"__builtins__": {}}, {"min": min, "max": max, "floor": math.floor, **values})


@pytest.mark.parametrize("rubric", ["helpfulness", "harmlessness", str(EXAMPLES / "rubric.yaml")])
def test_multi_grader_formula_matches_rubrix(rubric: str) -> None:
    r = load_rubric(rubric)
    grader = openai_grader(r)
    assert grader["type"] == "multi" and len(grader["graders"]) == len(r.criteria)
    for sub in grader["graders"].values():
        assert sub["type"] == "score_model"
        assert "{{ sample.output_text }}" in sub["input"][1]["content"]
        assert "{{ item.prompt }}" in sub["input"][1]["content"]
        assert sub["sampling_params"]["temperature"] == 0.0
    names = list(grader["graders"])
    rng = random.Random(0)
    for _ in range(200):
        answers = {}
        items = []
        for name, c in zip(names, r.criteria, strict=True):
            if c.is_scale:
                level = rng.randint(1, 5)
                answers[name] = level
                items.append(CriterionValue(c, agg.scale_to_unit(level)))
            else:
                met = rng.random() < 0.5
                answers[name] = 1 if met else 0
                items.append(CriterionValue(c, 1.0 if met else 0.0))
        expected = agg.aggregate(r.aggregation, items)  # binary values are 0/1 already; scales stay graded
        expected = min(1.0, max(0.0, expected))
        assert evaluate_formula(grader["calculate_output"], answers) == pytest.approx(expected)


def test_score_model_grader() -> None:
    grader = openai_grader("helpfulness", kind="score_model", model="o4-mini", prompt_field="question")
    assert grader["type"] == "score_model" and grader["model"] == "o4-mini" and grader["range"] == [0, 1]
    system = grader["input"][0]["content"]
    assert "[5 points]" in system and "[-4 points]" in system and "divided by 25" in system
    assert "{{ item.question }}" in grader["input"][1]["content"]
    with pytest.raises(UserError):
        openai_grader("helpfulness", kind="python")


# ---------------------------------------------------------------------------- verifiers criteria


def test_verifiers_criteria_file_mapping() -> None:
    r = load_rubric(EXAMPLES / "rubric.yaml")
    data = criteria_file(r)
    by_name = {c["name"]: c for c in data["criteria"]}
    for c in r.criteria:
        item = by_name[c.id]
        assert item["weight"] == abs(c.weight) and item["weight"] >= 0  # RubricJudge refuses negatives
        if c.is_scale:
            assert item["choices"] == ["1", "2", "3", "4", "5"]
        elif c.weight < 0:
            assert item["choices"] == ["yes", "no"]                       # fault present is the worst answer
        else:
            assert item["choices"] == ["no", "yes"]
    # RubricJudge's score for an ideal answer is 1, for the worst answer 0
    def judge_score(pos: dict[str, int]) -> float:
        total = sum(c["weight"] for c in data["criteria"])
        return sum(c["weight"] * pos[c["name"]] / (len(c["choices"]) - 1) for c in data["criteria"]) / total
    assert judge_score({c["name"]: len(c["choices"]) - 1 for c in data["criteria"]}) == 1.0
    assert judge_score({c["name"]: 0 for c in data["criteria"]}) == 0.0


# ------------------------------------------------------------------------------------ tag report


def test_tag_report_matches_per_sample_tag_scores(tmp_path: Path) -> None:
    from rubrix.records import read_samples

    results = tmp_path / "res.jsonl"
    main(["score", str(EXAMPLES / "per_row_rubrics.jsonl"), "-j", "fake", "-o", str(results), "--no-cache"])
    main(["export", str(results), "--to", "tags", "-o", str(tmp_path / "tags.json")])
    report = json.loads((tmp_path / "tags.json").read_text())
    rows = {r["id"]: r for r in read_jsonl(results)}
    per_tag: dict[str, list[float]] = {}
    for sample in read_samples(EXAMPLES / "per_row_rubrics.jsonl"):
        values = {cid: c["p"] for cid, c in rows[sample.id]["criteria"].items()}
        items = [CriterionValue(c, values[c.id]) for c in sample.rubric.criteria]
        for tag, value in agg.tag_scores(items).items():
            per_tag.setdefault(tag, []).append(value)
    assert set(report) == set(per_tag) | {"overall"}
    for tag, values in per_tag.items():
        assert report[tag]["n"] == len(values)
        assert report[tag]["mean"] == pytest.approx(min(1.0, max(0.0, sum(values) / len(values))), abs=1e-5)
    assert report["overall"]["mean"] == pytest.approx(
        rubrix_stats.dataset_mean([r["reward"] for r in rows.values()]), abs=1e-6)
