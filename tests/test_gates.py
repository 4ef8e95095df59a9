"""Gates, not-applicable criteria and correctness-gated length shaping: the arithmetic.

Values come either from deterministic checks (exact) or from ``FakeJudge`` (a hash-derived fake
that never reads meaning); every reward is recomputed here by hand from the row's own values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rubrix import aggregate as agg
from rubrix.aggregate import CriterionValue
from rubrix.errors import RubricError
from rubrix.judges.fake import FakeJudge
from rubrix.rewards import RewardItem, RubricReward
from rubrix.rubric import load_rubric, rubric_from_data
from rubrix.runs import RunSummary
from rubrix.scoring import Scorer
from rubrix.shaping import LengthShaping


@pytest.fixture(autouse=True)
def _rubrix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "home"))


def values(rubric, **v):
    return [CriterionValue(c, v.get(c.id), na=v.get(c.id, 0) is None) for c in rubric.criteria]


LADDER = rubric_from_data({
    "name": "ladder",
    "gates": [{"criteria": ["format"], "on_fail": 0}, {"criteria": ["correct"], "on_fail": "accumulate"}],
    "criteria": [
        {"id": "format", "text": "Well formed.", "weight": 1},
        {"id": "correct", "text": "Correct.", "weight": 5},
        {"id": "clear", "text": "Clear.", "weight": 2},
        {"id": "rude", "text": "Rude.", "weight": -2},
    ],
})


# ------------------------------------------------------------------------------------ gates


def test_gate_levels_in_order() -> None:
    gates = LADDER.gate_levels()
    score = agg.aggregate("weighted", values(LADDER, format=1, correct=1, clear=0.5, rude=0), gates=gates)
    assert score == pytest.approx((1 + 5 + 1) / 8)
    # level 1 fails: the reward is its on_fail, whatever else holds
    items = values(LADDER, format=0.2, correct=1, clear=1, rude=0)
    assert agg.aggregate("weighted", items, gates=gates) == 0.0
    # level 2 fails (accumulate): only level 1 and level 2 count, over the whole positive weight
    got = agg.aggregate("weighted", values(LADDER, format=1, correct=0.3, clear=1, rude=1), gates=gates)
    assert got == pytest.approx((1 * 1 + 5 * 0.3) / 8)
    assert agg.failed_gate(values(LADDER, format=1, correct=0.3, clear=1, rude=0), gates) == 1


def test_cap_and_raw_and_all_or_nothing() -> None:
    r = rubric_from_data({"name": "cap", "gates": [{"criteria": ["a"], "on_fail": "cap:0.2"}],
                          "criteria": [{"id": "a", "text": "A.", "weight": 1},
                                       {"id": "b", "text": "B.", "weight": 3}]})
    items = values(r, a=0.4, b=1.0)
    assert agg.aggregate("weighted", items, gates=r.gate_levels()) == pytest.approx(0.2)
    assert agg.aggregate("weighted", values(r, a=0.4, b=0.0), gates=r.gate_levels()) == pytest.approx(0.1)
    assert agg.aggregate("all_or_nothing", items, gates=r.gate_levels()) == 0.0


def test_veto_is_the_one_level_gate_and_keeps_its_meaning() -> None:
    data = {"name": "v", "criteria": [{"id": "safe", "text": "Safe.", "weight": 3, "veto": True},
                                      {"id": "good", "text": "Good.", "weight": 2},
                                      {"id": "bad", "text": "Bad.", "weight": -4}]}
    r = rubric_from_data(data)
    (level,) = r.gate_levels()
    assert level.criteria == ("safe",) and level.on_fail == "cap:0"
    for safe in (0.1, 0.9):
        for bad in (0.0, 1.0):
            items = values(r, safe=safe, good=0.7, bad=bad)
            assert agg.aggregate("weighted", items, gates=r.gate_levels()) == agg.veto(items)
            assert agg.aggregate("weighted", items) == agg.veto(items)
    # in a rubric with gates, vetoes come first
    r2 = rubric_from_data({**data, "gates": [{"criteria": ["good"], "on_fail": 0.05}]})
    assert [g.criteria for g in r2.gate_levels()] == [("safe",), ("good",)]
    assert agg.aggregate("weighted", values(r2, safe=0.1, good=0.1, bad=1), gates=r2.gate_levels()) == \
        pytest.approx(min((0.3 + 0.2 - 4) / 5, 0))


def test_category_gate() -> None:
    r = rubric_from_data({"name": "c", "gates": [{"category": "essential", "on_fail": 0}], "criteria": [
        {"id": "e1", "text": "E1.", "category": "essential"},
        {"id": "e2", "text": "E2.", "category": "essential"},
        {"id": "o", "text": "O.", "category": "optional"}]})
    assert r.gates[0].criteria == ("e1", "e2")
    assert agg.aggregate("weighted", values(r, e1=1, e2=0, o=1), gates=r.gate_levels()) == 0.0


def test_checked_gate_through_the_scorer() -> None:
    rubric = {"name": "math", "gates": [{"criteria": ["answer"], "on_fail": 0}], "criteria": [
        {"id": "answer", "check": {"reference": "boxed"}, "category": "essential"},
        {"id": "steps", "text": "Shows the steps.", "weight": 3}]}
    scorer = Scorer(rubric, FakeJudge(), cache=False)
    right, wrong = scorer.score([{"id": "r", "prompt": "1+1", "response": r"\boxed{2}", "reference": "2"},
                                 {"id": "w", "prompt": "1+1", "response": r"\boxed{3}", "reference": "2"}])
    steps = right.criteria["steps"].p
    assert right.reward == pytest.approx((5 + 3 * steps) / 8) and right.passed_gate is True
    assert wrong.reward == 0.0 and wrong.status == "ok" and wrong.passed_gate is False


# --------------------------------------------------------------------------- not applicable


NA = {
    "name": "na",
    "criteria": [
        {"id": "answers", "text": "Answers the question.", "weight": 4},
        {"id": "code_ok", "text": "The code runs.", "weight": 3,
         "applies_if": {"regex": "(?i)code", "in": "prompt"}},
        {"id": "json_ok", "check": {"json": True}, "weight": 2,
         "applies_if": {"regex": "JSON", "in": "prompt"}},
        {"id": "cites", "text": "Cites the file it read.", "weight": 1, "applies_if": {"met": "json_ok"}},
        {"id": "doctor", "text": "Suggests seeing a doctor.", "weight": 2,
         "applies_if": "The user describes a medical symptom."},
        {"id": "unsafe", "text": "Gives unsafe advice.", "weight": -3, "applies_if": {"not_met": "answers"}},
    ],
}


def test_na_leaves_numerator_and_denominator() -> None:
    r = rubric_from_data({"name": "x", "criteria": [{"id": "a", "text": "A.", "weight": 2},
                                                     {"id": "b", "text": "B.", "weight": 6}]})
    items = [CriterionValue(r.criteria[0], 1.0), CriterionValue(r.criteria[1], None, na=True)]
    assert agg.weighted(items) == 1.0 and agg.raw(items) == 2.0 and agg.all_or_nothing(items) == 1.0
    assert agg.positive_weight(items) == 2.0
    assert agg.tag_scores(items) == {}


def test_na_rows_counts_and_arithmetic() -> None:
    judge = FakeJudge()
    scorer = Scorer(NA, judge, cache=False)
    [res] = scorer.score([{"id": "s", "prompt": "What is 2+2?", "response": "4"}])
    row = res.to_row()
    for cid in ("code_ok", "json_ok", "cites"):  # known before judging: not sent to the judge
        assert row["criteria"][cid] == {"p": None, "met": None, "error": None, "na": True, **(
            {"source": "check"} if cid == "json_ok" else {})}
    assert row["status"] == "ok" and "errors" not in row
    # answers + doctor + unsafe + doctor's condition were judged; the three N/A criteria were not
    assert judge.calls == 4
    c = {k: v["p"] for k, v in row["criteria"].items()}
    applies = {k: not v.get("na") for k, v in row["criteria"].items()}
    num = sum(w * c[k] for k, w in (("answers", 4), ("doctor", 2), ("unsafe", -3)) if applies[k])
    den = 4 + (2 if applies["doctor"] else 0)
    assert row["reward"] == pytest.approx(num / den, abs=1e-6)
    assert applies["unsafe"] == (not row["criteria"]["answers"]["met"])
    summary = RunSummary()
    summary.add(res)
    data = summary.to_dict()
    assert data["not_applicable"]["code_ok"] == 1 and data.get("checked", 0) == 0
    assert data["criterion_errors"] == {}
    assert scorer.counts["not_applicable"] == sum(1 for v in row["criteria"].values() if v.get("na"))


def test_na_chain_follows_a_checked_criterion() -> None:
    scorer = Scorer(NA, FakeJudge(), cache=False)
    [res] = scorer.score([{"id": "s", "prompt": "Reply in JSON", "response": '{"a": 1}'}])
    assert res.criteria["json_ok"].p == 1.0 and not res.criteria["cites"].na
    [res] = scorer.score([{"id": "s", "prompt": "Reply in JSON", "response": "nope"}])
    assert res.criteria["json_ok"].p == 0.0 and res.criteria["cites"].na


def test_judged_condition_failure_is_an_error_not_na() -> None:
    scorer = Scorer(NA, FakeJudge(fail_rate=1.0), cache=False)
    [res] = scorer.score([{"id": "s", "prompt": "What is 2+2?", "response": "4"}])
    assert res.status == "failed" or res.status == "partial"
    assert res.criteria["doctor"].error == "server" and not res.criteria["doctor"].na
    assert res.criteria["code_ok"].na and res.criteria["code_ok"].error is None


def test_na_passes_a_gate() -> None:
    r = rubric_from_data({"name": "g", "gates": [{"criteria": ["g"], "on_fail": 0}], "criteria": [
        {"id": "g", "text": "G.", "weight": 1, "applies_if": {"regex": "x", "in": "prompt"}},
        {"id": "b", "text": "B.", "weight": 1}]})
    items = [CriterionValue(r.criteria[0], None, na=True), CriterionValue(r.criteria[1], 0.5)]
    assert agg.aggregate("weighted", items, gates=r.gate_levels()) == 0.5


# ---------------------------------------------------------------------------- length shaping


def test_length_shaping_arithmetic() -> None:
    group = LengthShaping(mode="group", penalty=0.4)
    texts = ["a " * 10, "a " * 20, "a " * 30, "a " * 5]
    got = group.apply([1.0, 1.0, 1.0, 0.0], texts, [True, True, True, False], ["g"] * 4)
    assert got == pytest.approx([1.0, 0.8, 0.6, 0.0])  # the failing short answer sets no baseline
    target = LengthShaping(mode="target", target=10, penalty=0.5)
    assert target.apply([0.9, 0.9, None], ["a " * 10, "a " * 15, "a " * 99], [True, True, True], [None] * 3) \
        == pytest.approx([0.9, 0.65, None])
    assert LengthShaping.parse("target:300:0.2@tokens") == LengthShaping("target", 300, "tokens", 0.2)


def test_length_shaping_in_the_reward_core_only_for_passing_answers() -> None:
    rubric = {"name": "m", "gates": [{"criteria": ["correct"], "on_fail": 0}],
              "length": {"mode": "group", "penalty": 0.5},
              "criteria": [{"id": "correct", "check": {"reference": "last_number"}, "weight": 1}]}
    core = RubricReward(rubric, FakeJudge(), cache=False)
    items = [RewardItem(prompt="p", response="x " * k + "4", reference="4", group_id="g") for k in (0, 4, 8)]
    items.append(RewardItem(prompt="p", response="5", reference="4", group_id="g"))
    assert [r.reward for r in core.score(items)] == pytest.approx([1.0, 0.75, 0.5, 0.0])
    assert core.counts["length_shaped"] == 2
    # an override from the caller (CLI --length-shaping, server, adapters) replaces the rubric's
    core = RubricReward(rubric, FakeJudge(), cache=False, length_shaping="target:3:0.5")
    assert [r.reward for r in core.score(items)] == pytest.approx([1.0, 1 - 0.5 * 2 / 3, 0.5, 0.0])


# ------------------------------------------------------------------------- load-time errors


@pytest.mark.parametrize(("body", "line", "field", "match"), [
    ("gates:\n  - criteria: [nope]\n", 2, "gates[0].criteria[0]", "no criterion with id 'nope'"),
    ("gates:\n  - criteria: [a]\n    on_fail: half\n", 3, "gates[0].on_fail", "cap:X"),
    ("gates:\n  - category: pitfall\n", 2, "gates[0].category", "no criterion"),
    ("gates:\n  - criteria: [a]\n  - criteria: [a]\n", 3, "gates[1]", "already in a gate"),
    ("length: {mode: target}\n", 1, "length.target", "target"),
    ("length: {mode: group}\n", 1, "length", "gate"),
])
def test_bad_gates_and_length(tmp_path: Path, body: str, line: int, field: str, match: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(body + "name: r\ncriteria:\n  - {id: a, text: A., weight: 1}\n"
                    "  - {id: b, text: B., weight: 1}\n")
    with pytest.raises(RubricError, match=match) as info:
        load_rubric(path)
    assert (info.value.line, info.value.field) == (line, field)


def test_applies_if_cycle_and_unknown_reference(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: r\ncriteria:\n"
                    "  - {id: a, text: A., weight: 1, applies_if: {met: b}}\n"
                    "  - {id: b, text: B., weight: 1, applies_if: {not_met: c}}\n"
                    "  - {id: c, text: C., weight: 1, applies_if: {met: a}}\n")
    with pytest.raises(RubricError, match="cycle: a -> b -> c -> a") as info:
        load_rubric(path)
    assert (info.value.line, info.value.field) == (3, "criteria[0].applies_if.met")
    path.write_text("name: r\ncriteria:\n  - {id: a, text: A., weight: 1, applies_if: {met: zz}}\n")
    proc = subprocess.run([sys.executable, "-m", "rubrix", "rubric", "validate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and f"{path}:3" in proc.stderr and "zz" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------- three-way (Yes/No/NA)


class _ThreeWayJudge(FakeJudge):
    """A fake judge with one fixed next-token distribution, read through rubrix's logprob reader."""

    def __init__(self, probs: dict[str, float]):
        super().__init__()
        self.probs = probs

    async def judge(self, requests):
        import math

        from rubrix.judges.base import Verdict
        from rubrix.judges.parsing import read_logprobs

        self.calls += len(requests)
        top = {k: math.log(v) for k, v in self.probs.items()}
        out = []
        for req in requests:
            p, coverage, label = read_logprobs(top, req.options)
            out.append(Verdict(p=p, label=label, from_logprobs=True, coverage=coverage))
        return out


THREE = {"name": "t", "criteria": [{"id": "a", "text": "A.", "weight": 1},
                                   {"id": "b", "text": "Advises a doctor.", "weight": 2, "allow_na": True}]}


def test_three_way_verdict_reads_applies_and_met_from_one_distribution() -> None:
    scorer = Scorer(THREE, _ThreeWayJudge({"Yes": 0.3, "No": 0.1, "NA": 0.6}), cache=False)
    [res] = scorer.score([{"id": "s", "prompt": "q", "response": "r"}])
    # P(applies) = 0.4 < 0.5: N/A, and the reward is criterion a alone
    assert res.criteria["b"].na and res.criteria["b"].error is None and res.status == "ok"
    assert res.reward == pytest.approx(res.criteria["a"].p)
    scorer = Scorer(THREE, _ThreeWayJudge({"Yes": 0.45, "No": 0.15, "NA": 0.4}), cache=False)
    [res] = scorer.score([{"id": "s", "prompt": "q", "response": "r"}])
    assert not res.criteria["b"].na and res.criteria["b"].p == pytest.approx(0.75)  # P(Yes | Yes or No)
    assert res.reward == pytest.approx((res.criteria["a"].p + 2 * 0.75) / 3)


def test_three_way_requests_share_one_prompt_and_their_own_template_hash() -> None:
    scorer = Scorer(THREE, FakeJudge(), cache=False)
    reqs = scorer.requests_for({"id": "s", "prompt": "q", "response": "r"})
    applies, met = reqs[1], reqs[2]
    assert applies.messages == met.messages and "NA" in met.messages[-1]["content"]
    assert [o for o, _ in applies.options] == ["Yes", "No", "NA"]
    assert [o for o, _ in met.options] == ["Yes", "No"]
    [res] = scorer.score([{"id": "s", "prompt": "q", "response": "r"}])
    assert res.template_hash == scorer.template_hash_na != scorer.template_hash
    plain_scorer = Scorer({"name": "p", "criteria": [{"text": "A.", "weight": 1}]}, FakeJudge(), cache=False)
    [plain] = plain_scorer.score([{"id": "s", "prompt": "q", "response": "r"}])
    assert plain.template_hash == scorer.template_hash  # rows without three-way criteria keep their hash


def test_three_way_failure_is_an_error() -> None:
    scorer = Scorer(THREE, FakeJudge(fail_rate=1.0), cache=False)
    [res] = scorer.score([{"id": "s", "prompt": "q", "response": "r"}])
    assert res.criteria["b"].error == "server" and not res.criteria["b"].na and res.reward is None


def test_allow_na_only_on_judged_binary() -> None:
    with pytest.raises(RubricError, match="three-way"):
        rubric_from_data({"name": "x", "criteria": [{"id": "a", "check": {"regex": "x"}, "weight": 1,
                                                     "allow_na": True}]})


# ----------------------------------------------------------------- a failed checked gate decides


def test_failed_checked_gate_with_a_numeric_on_fail_asks_the_judge_nothing() -> None:
    rubric = {"name": "g", "gates": [{"criteria": ["answer"], "on_fail": 0.1}], "criteria": [
        {"id": "answer", "check": {"reference": "numeric"}, "category": "essential"},
        {"id": "clear", "text": "Clear.", "weight": 2},
        {"id": "units", "text": "Gives units.", "weight": 1, "applies_if": {"regex": "km", "in": "prompt"}},
        {"id": "follow", "text": "Follows up.", "weight": 1, "applies_if": {"met": "clear"}}]}
    judge = FakeJudge()
    scorer = Scorer(rubric, judge, cache=False)
    [wrong] = scorer.score([{"id": "w", "prompt": "how many?", "response": "5", "reference": "4"}])
    assert judge.calls == 0 and wrong.reward == 0.1 and wrong.status == "ok"
    row = wrong.to_row()
    assert row["criteria"]["clear"] == {"p": None, "met": None, "error": None, "skipped": "gate"}
    assert row["criteria"]["follow"]["skipped"] == "gate"
    assert row["criteria"]["units"]["na"] is True  # a deterministic N/A is still N/A
    summary = RunSummary()
    summary.add(wrong)
    assert summary.to_dict()["skipped_by_gate"] == 2 and summary.to_dict()["verdicts"] == 0
    [right] = scorer.score([{"id": "r", "prompt": "how many?", "response": "4", "reference": "4"}])
    assert judge.calls >= 2 and right.reward is not None and "skipped" not in json.dumps(right.to_row())


def test_a_cap_or_accumulate_gate_still_needs_the_judge() -> None:
    rubric = {"name": "g", "gates": [{"criteria": ["answer"], "on_fail": "accumulate"}], "criteria": [
        {"id": "answer", "check": {"reference": "numeric"}, "weight": 2},
        {"id": "clear", "text": "Clear.", "weight": 2}]}
    judge = FakeJudge()
    [res] = Scorer(rubric, judge, cache=False).score([{"id": "w", "prompt": "q", "response": "5",
                                                        "reference": "4"}])
    assert judge.calls == 1 and res.reward == 0.0  # accumulate: level 1 contributes 2·0, clear not counted


def test_every_new_field_round_trips_through_yaml_and_the_schema(tmp_path: Path) -> None:
    import jsonschema

    from rubrix.rubric import dump_rubric, json_schema

    rubric = load_rubric(Path(__file__).resolve().parent.parent / "examples" / "rubric_checks.yaml")
    data = rubric_from_data({**json.loads(json.dumps(rubric.to_dict())),
                             "gates": [{"category": "essential", "on_fail": "cap:0.3"}]})
    path = tmp_path / "again.yaml"
    path.write_text(dump_rubric(data))
    again = load_rubric(path)
    assert again == data and again.content_hash() == data.content_hash()
    assert again.gates[0].criteria == ("answer",) and again.gates[0].on_fail == "cap:0.3"
    validator = jsonschema.Draft202012Validator(json_schema())
    assert not list(validator.iter_errors(json.loads(json.dumps(again.to_dict()))))
    for bad in ({"gates": [{"criteria": ["answer"], "on_fail": "half"}]},
                {"gates": [{"criteria": ["answer"], "category": "essential"}]},
                {"length": {"mode": "sideways"}}):
        doc = {**json.loads(json.dumps(again.to_dict())), **bad}
        assert list(validator.iter_errors(doc)), bad
        with pytest.raises(RubricError):
            rubric_from_data(doc)
    doc = json.loads(json.dumps(again.to_dict()))
    doc["criteria"][0]["check"] = {"regex": "a", "json": True}
    assert list(validator.iter_errors(doc))
    with pytest.raises(RubricError):
        rubric_from_data(doc)
    assert again.content_hash() != rubric.content_hash()  # the gate is part of what scores depend on
