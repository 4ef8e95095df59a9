"""Agreement evaluation: outcomes, ties, bootstrap intervals, per-source, pairwise both orders."""

from __future__ import annotations

import json

import pytest

from rubrix._aio import run as run_sync
from rubrix.evaluate import (
    PairOutcome,
    agreement,
    evaluate_pairs,
    paired_difference,
    report_json,
)
from rubrix.judges.base import Generation, JudgeRequest, Verdict
from rubrix.records import Pair
from rubrix.rubric import load_rubric
from rubrix.scoring import Scorer
from rubrix.stats import bootstrap_ci


def _o(i, outcome, source="s", consistent=None):
    return PairOutcome(str(i), source, outcome, consistent=consistent)


def test_agreement_counts_ties_and_failures_separately():
    outs = [_o(1, "win"), _o(2, "win"), _o(3, "tie"), _o(4, "loss"), _o(5, "failed")]
    a = agreement(outs, n_boot=500)
    assert (a["pairs"], a["judged"], a["wins"], a["ties"], a["losses"], a["failed"]) == (5, 4, 2, 1, 1, 1)
    assert a["agreement"] == 0.5 and a["agreement_ties_half"] == 0.625 and a["tie_rate"] == 0.25
    lo, hi = a["ci95"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
    assert agreement([_o(1, "failed")])["agreement"] is None


def test_bootstrap_ci_is_seeded_and_sane():
    values = [1.0] * 70 + [0.0] * 30
    a = bootstrap_ci(values, n_boot=2000, seed=3)
    assert a == bootstrap_ci(values, n_boot=2000, seed=3)
    lo, hi = a
    # normal approximation: 0.7 +- 1.96 * sqrt(0.21 / 100) = [0.61, 0.79]
    assert lo == pytest.approx(0.61, abs=0.03) and hi == pytest.approx(0.79, abs=0.03)
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert bootstrap_ci([]) is None


def test_paired_difference_uses_common_pairs():
    a = [_o(i, "win") for i in range(20)]
    b = [_o(i, "win" if i < 10 else "loss") for i in range(20)] + [_o(99, "win")]
    d = paired_difference(a, b, n_boot=1000)
    assert d["pairs"] == 20 and d["difference"] == 0.5 and d["outside_interval"]
    same = paired_difference(a, a, n_boot=100)
    assert same["difference"] == 0 and not same["outside_interval"]


def test_order_consistency_reported():
    outs = [_o(1, "win", consistent=True), _o(2, "loss", consistent=False), _o(3, "win", consistent=True)]
    assert agreement(outs, n_boot=100)["order_consistency"] == pytest.approx(2 / 3, abs=1e-6)


class FakeLengthJudge:
    """FAKE judge for pure logic: binary criteria met iff the answer is longer than 10 characters;
    pairwise prefers answer A always (a maximally position-biased judge); principles 1..5 by length."""

    name = "fake:length"
    reads_logprobs = True

    def identity(self):
        return self.name

    async def judge(self, requests: list[JudgeRequest]):
        out = []
        for r in requests:
            text = r.messages[-1]["content"]
            if r.kind == "pairwise":
                out.append(Verdict(p=0.9, label="A", from_logprobs=True, usage={"prompt_tokens": 5}))
                continue
            start = text.index(">>>\n", text.index("<<<ANSWER")) + 4
            answer = text[start:text.index("\n<<<END ANSWER", start)]
            if r.kind == "scale":
                out.append(Verdict(p=float(min(5, 1 + len(answer) // 10)), from_logprobs=True))
            else:
                out.append(Verdict(p=1.0 if len(answer) > 10 else 0.0, from_logprobs=True))
        return out

    async def generate(self, messages, **kw):
        return [Generation("{}") for _ in messages]

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    async def aclose(self):
        return None


PAIRS = [Pair("a", "q", "a long good answer", "short", source="x"),
         Pair("b", "q", "tiny", "a long bad answer", source="y"),
         Pair("c", "q", "also short", "brief", source="y")]


def test_evaluate_pairs_all_modes_and_report(tmp_path):
    rubric = load_rubric({"name": "len", "criteria": [{"id": "long", "text": "The answer is long.",
                                                       "weight": 1}]})
    scorer = Scorer(None, FakeLengthJudge(), cache=False)
    reports = run_sync(evaluate_pairs(PAIRS, scorer=scorer, modes=["rubric", "pairwise", "principle"],
                                      rubrics=[rubric], n_boot=200))
    by = {r.name: r for r in reports}
    assert [o.outcome for o in by["rubric:len"].outcomes] == ["win", "loss", "tie"]
    assert by["rubric:len"].by_source["y"]["ties"] == 1
    # a judge that always says "A" ties every pair once both orders are averaged, consistency 0
    pw = by["pairwise"]
    assert [o.outcome for o in pw.outcomes] == ["tie", "tie", "tie"]
    assert pw.summary["order_consistency"] == 0.0
    assert pw.calls == 6  # both orders asked
    doc = report_json(reports, pairs_file="p.jsonl", judge="fake:length", skipped=[], n_boot=200, seed=0,
                      tie_margin=0.0)
    json.dumps(doc)
    assert doc["differences"][0]["a"] == "rubric:len" and len(doc["methods"]) == 3


def test_eval_cli_on_written_rubric(tmp_path, monkeypatch):
    """``rubrix eval`` end to end through the CLI with the fake judge spec."""
    from rubrix.cli import main

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": p.id, "prompt": p.prompt, "chosen": p.chosen,
                                         "rejected": p.rejected, "source": p.source}) + "\n" for p in PAIRS)
                     + json.dumps({"id": "bad", "prompt": "q", "chosen": "", "rejected": "x"}) + "\n")
    rubric = tmp_path / "r.yaml"
    rubric.write_text("name: r\ncriteria:\n  - {id: c1, text: The answer is good., weight: 1}\n")
    out = tmp_path / "eval.json"
    try:
        main(["eval", str(pairs), "-r", str(rubric), "--mode", "pairwise", "-j", "fake", "--no-cache",
              "-o", str(out), "--boot", "100"])
    except SystemExit as exc:  # main exits only on errors
        assert exc.code in (0, None)
    doc = json.loads(out.read_text())
    assert [m["name"] for m in doc["methods"]] == ["rubric:r", "pairwise"]
    assert doc["pairs_evaluated"] == 3 and doc["pairs_skipped"][0]["reason"] == "empty chosen"
