"""HealthBench scoring end to end: per-row rubrics, the formula, per-tag scores, dataset aggregates.

Runs over ``../shared/data/healthbench_30.jsonl`` using each row's ``ideal_completions_data``
completion as the response (24 of 30 rows have one). The fast tests use the deterministic
FakeJudge — its values are meaningless, but every number the scorer reports must be exactly what
the HealthBench formula gives from the verdict values and the row's points. The ``model`` test
scores a few short rows with the real embedded 0.5B judge.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rubrix import aggregate as agg
from rubrix import stats as rubrix_stats
from rubrix.aggregate import CriterionValue
from rubrix.judges.fake import FakeJudge
from rubrix.records import sample_from_dict
from rubrix.scoring import Scorer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "healthbench_30.jsonl"


def rows_with_completions() -> list[dict]:
    if not DATA.is_file():
        pytest.skip(f"{DATA} is absent (shared test data not checked out)")
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for row in rows:
        ideal = (row.get("ideal_completions_data") or {}).get("ideal_completion")
        if ideal:
            out.append({"id": row["id"], "prompt": row["prompt"], "response": ideal,
                        "rubrics": row["rubrics"],
                        "example_tags": row.get("example_tags") or []})
    return out


def hand_score(row: dict, values: dict[str, float], *, hard: bool = False) -> float:
    """Σ points of met items / Σ positive points, written out from the raw HealthBench row."""
    total = 0.0
    for i, item in enumerate(row["rubrics"]):
        v = values[f"c{i + 1}"]
        if hard:
            v = 1.0 if v >= 0.5 else 0.0
        total += item["points"] * v
    return total / sum(item["points"] for item in row["rubrics"] if item["points"] > 0)


def hand_tags(row: dict, values: dict[str, float]) -> dict[str, float]:
    tags: dict[str, list[tuple[float, float]]] = {}
    for i, item in enumerate(row["rubrics"]):
        for tag in item["tags"]:
            tags.setdefault(tag, []).append((item["points"], values[f"c{i + 1}"]))
    out = {}
    for tag, members in tags.items():
        positive = sum(p for p, _ in members if p > 0)
        if positive > 0:
            out[tag] = sum(p * v for p, v in members) / positive
    return out


def test_healthbench_formula_and_tags_over_the_file() -> None:
    rows = rows_with_completions()
    assert len(rows) == 24
    scorer = Scorer(None, FakeJudge(seed=3), cache=False)
    samples = [sample_from_dict(r, line=i + 1) for i, r in enumerate(rows)]
    results = scorer.score(samples)
    per_sample_tags = []
    for row, sample, result in zip(rows, samples, results, strict=True):
        assert result.status == "ok"
        values = {cid: c.p for cid, c in result.criteria.items()}
        assert set(values) == {f"c{i + 1}" for i in range(len(row["rubrics"]))}
        assert result.reward == pytest.approx(hand_score(row, values), abs=1e-9)
        items = [CriterionValue(c, values[c.id]) for c in sample.rubric.criteria]
        assert agg.weighted(items, hard=True) == pytest.approx(hand_score(row, values, hard=True))
        tags = agg.tag_scores(items, example_tags=row["example_tags"], overall=result.reward)
        expected = hand_tags(row, values)
        for tag in row["example_tags"]:
            expected[tag] = result.reward
        assert tags.keys() == expected.keys()
        for tag, value in expected.items():
            assert tags[tag] == pytest.approx(value, abs=1e-9), (row["id"], tag)
        per_sample_tags.append(tags)
    rewards = [r.reward for r in results]
    mean = sum(rewards) / len(rewards)
    assert rubrix_stats.dataset_mean(rewards) == pytest.approx(min(1.0, max(0.0, mean)))
    report = rubrix_stats.dataset_tag_scores(per_sample_tags, n_bootstrap=100)
    assert report["level:example"]["n"] == sum("level:example" in t for t in per_sample_tags)
    assert all(0.0 <= v["mean"] <= 1.0 for v in report.values() if v["mean"] is not None)
    # tags whose items carry no positive points in any row never appear
    assert all(v["n"] > 0 for v in report.values())


@pytest.mark.model
def test_healthbench_real_judge_few_rows(small_judge) -> None:
    """The real 0.5B judge on the two rows with the fewest rubric items (7 verdicts per response).

    The ideal completion must outscore an evasive non-answer on the rows together, and every reported
    number must follow the formula from the verdicts.
    """
    rows = sorted(rows_with_completions(), key=lambda r: len(r["rubrics"]))[:2]
    evasive = "I can't help with medical questions. Please ask a professional."
    samples = []
    for i, row in enumerate(rows):
        samples.append(sample_from_dict(row, line=i + 1))
        bad = {**row, "id": row["id"] + "/evasive", "response": evasive}
        samples.append(sample_from_dict(bad, line=i + 1))
    scorer = Scorer(None, small_judge, cache=False)
    results = scorer.score(samples)
    ideal_total = evasive_total = 0.0
    for k, result in enumerate(results):
        row = rows[k // 2]
        assert result.status == "ok", result.errors
        values = {cid: c.p for cid, c in result.criteria.items()}
        assert result.reward == pytest.approx(hand_score(row, values), abs=1e-6)
        if k % 2 == 0:
            ideal_total += result.reward
        else:
            evasive_total += result.reward
        print(f"{result.id}: reward {result.reward:.3f} ({len(values)} items)")
    assert ideal_total > evasive_total
