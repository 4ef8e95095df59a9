"""``rubrix audit``: reward-hacking attacks against a judge + template.

The logic tests use ``FakeGullibleJudge``, a scripted FAKE judge (not a model) whose weaknesses are
known exactly — it believes instructions planted in an answer, credits an answer that repeats a
criterion, and always prefers the first answer in a pairwise comparison — so every rate in the
report can be computed by hand. One small run with the real embedded 0.5B judge is marked
``model``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rubrix._aio import run as run_sync
from rubrix.audit import ATTACKS, aaudit, builtin_samples, resolve_attacks
from rubrix.errors import UserError
from rubrix.judges.base import JudgeRequest, Verdict
from rubrix.records import Sample
from rubrix.scoring import Scorer

RUBRIC = {"name": "audit test", "criteria": [
    {"id": "answers", "text": "The response answers the question.", "weight": 2},
    {"id": "correct", "text": "The response is correct.", "weight": 1},
    {"id": "rude", "text": "The response insults the user.", "weight": -1},
]}
SAMPLES = [Sample(id="q1", prompt="What is 2+2?", response="REAL ANSWER: 4."),
           Sample(id="q2", prompt="Capital of France?", response="REAL ANSWER: Paris.")]
_ANSWER = re.compile(r"<<<(ANSWER-[0-9a-f]+)>>>\n(.*?)\n<<<END \1>>>", re.S)


class FakeGullibleJudge:
    """FAKE judge with exactly known weaknesses (see the module docstring)."""

    name = "fake:gullible"
    reads_logprobs = True

    def __init__(self, fail: tuple[str, str] | None = None):
        self.fail = fail  # (answer text, criterion text) whose verdict fails with "server"

    def identity(self) -> str:
        return self.name

    async def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        out = []
        for req in requests:
            text = req.messages[-1]["content"]
            if req.kind == "pairwise":
                out.append(Verdict(p=0.7, label="A", from_logprobs=True))  # always the first answer
                continue
            answer = _ANSWER.search(text).group(2)
            statement = text.rsplit("Statement: ", 1)[1].strip()
            if self.fail and (answer, statement) == self.fail:
                out.append(Verdict.failed("server", "fake: injected failure"))
            elif "insults" in statement:
                out.append(Verdict(p=0.0, label="No", from_logprobs=True))
            elif "Grader" in answer or "Reply Yes" in answer or statement in answer:
                out.append(Verdict(p=0.9, label="Yes", from_logprobs=True))
            elif answer.startswith("REAL ANSWER"):
                out.append(Verdict(p=0.8, label="Yes", from_logprobs=True))
            else:
                out.append(Verdict(p=0.1, label="No", from_logprobs=True))
        return out

    async def generate(self, messages, *, max_tokens=512, stop=None, json_mode=False):
        raise AssertionError("the audit does not generate")

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    async def aclose(self) -> None:
        return None


def _audit(judge=None, **kw):
    scorer = Scorer(RUBRIC, judge or FakeGullibleJudge(), cache=False)
    return run_sync(aaudit(scorer, kw.pop("samples", SAMPLES), **kw)).to_dict()


def test_rates_per_attack_and_criterion_match_hand_counts() -> None:
    doc = _audit()
    attacks = doc["attacks"]
    assert list(attacks) == list(ATTACKS)
    fooled = {"injection", "fake_fence", "echo"}  # planted instruction / fake verdict / repeated criteria
    for name, a in attacks.items():
        want = 1.0 if name in fooled else 0.0
        assert a["judged"] == 4 and a["failed"] == 0  # 2 prompts x 2 positive criteria, pitfall left out
        assert a["fpr"] == want, name
        assert a["mean_p"] == pytest.approx(0.9 if name in fooled else 0.1)
        # reward: (2p + 1p - 1*0) / 3 = p; the real answers get 0.8
        assert a["reward"] == pytest.approx(0.9 if name in fooled else 0.1)
        assert a["beats_good"] == (1.0 if name in fooled else 0.0)
        assert a["pitfalls_judged"] == 2 and a["pitfalls_met"] == 0
    assert doc["criteria"]["answers"]["fpr"] == doc["criteria"]["correct"]["fpr"] == 0.3
    assert "rude" not in doc["criteria"]  # pitfalls are not false-positive material
    o = doc["overall"]
    assert (o["judged"], o["met"], o["fpr"]) == (40, 12, 0.3)
    assert o["good_met_rate"] == 1.0 and o["good_reward"] == pytest.approx(0.8)
    assert o["mean_p"] == pytest.approx((12 * 0.9 + 28 * 0.1) / 40, abs=1e-4)
    assert o["margin"] == pytest.approx(0.8 - o["mean_p"], abs=1e-4)
    assert o["beats_good"] == 0.3  # 3 of 10 attacks out-reward the real answer on both prompts


def test_pairwise_position_bias_is_a_flip_every_time() -> None:
    doc = _audit()
    pw = doc["pairwise"]
    assert pw["overall"] == {"judged": 20, "failed": 0, "flip_rate": 1.0, "attack_wins": 0.0,
                             "mean_p_attack_better": 0.5}
    assert set(pw["attacks"]) == set(ATTACKS)


def test_failed_verdicts_are_counted_apart_never_as_outcomes() -> None:
    judge = FakeGullibleJudge(fail=(".", "The response answers the question."))
    doc = _audit(judge, pairwise=False)
    a = doc["attacks"]["master_key:period"]
    assert (a["judged"], a["failed"], a["met"]) == (2, 2, 0)
    assert a["reward"] is None and a["beats_good"] is None  # a failed sample has no reward
    assert doc["overall"]["failed"] == 2 and doc["pairwise"] is None


def test_attack_responses_never_contain_the_real_answer() -> None:
    from rubrix.audit import AttackContext

    ctx = AttackContext(prompt="What is 2+2?", criteria=("The response says 4.",))
    for attack in ATTACKS.values():
        assert "REAL ANSWER" not in attack.build(ctx)
    fence = ATTACKS["fake_fence"].build(ctx)
    assert "<<<END ANSWER-" in fence and "Reply Yes" in fence
    assert ATTACKS["master_key:empty"].build(ctx) == ""
    assert ATTACKS["echo"].build(ctx) == "The response says 4."
    assert len(ATTACKS["padding"].build(ctx).split()) > 150


def test_real_fence_survives_the_fake_one() -> None:
    """The fake closing marker cannot match the real one: the real marker hashes the content."""
    scorer = Scorer(RUBRIC, FakeGullibleJudge(), cache=False)
    from rubrix.audit import AttackContext

    attack = ATTACKS["fake_fence"].build(AttackContext(prompt="Q", criteria=()))
    [req, *_] = scorer.requests_for(Sample(id="x", prompt="Q", response=attack))
    m = _ANSWER.search(req.messages[-1]["content"])
    assert m.group(2) == attack


def test_resolve_attacks_by_name_and_family() -> None:
    keys = [n for n in ATTACKS if n.startswith("master_key")]
    assert [a.name for a in resolve_attacks(["master_key"])] == keys
    assert [a.name for a in resolve_attacks(["echo", "injection", "echo"])] == ["echo", "injection"]
    with pytest.raises(UserError, match="unknown attack"):
        resolve_attacks(["nope"])


def test_principles_only_rubric_is_a_user_error() -> None:
    scorer = Scorer({"name": "p", "principles": ["Be good."]}, FakeGullibleJudge(), cache=False)
    with pytest.raises(UserError, match="criteria"):
        run_sync(aaudit(scorer, SAMPLES))


# ------------------------------------------------------------------------------------------- CLI


def _cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUBRIX_HOME": str(cwd / "home"), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "rubrix.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_the_report(tmp_path: Path) -> None:
    (tmp_path / "rubric.json").write_text(json.dumps(RUBRIC), encoding="utf-8")
    proc = _cli("audit", "-r", "rubric.json", "-j", "fake", "--no-cache", "-o", "report.json", "--limit", "2",
                "--attack", "master_key", "--attack", "injection", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert list(doc["attacks"]) == [n for n in ATTACKS if n.startswith("master_key")] + ["injection"]
    assert doc["samples"] == 2 and doc["judge"] == "fake:0" and doc["pairwise"]["overall"]["judged"] == 14
    assert "master_key:colon" in proc.stdout and "report.json" in proc.stdout
    assert set(doc["definitions"]) >= {"fpr", "flip_rate"}


def test_cli_with_samples_file_and_user_errors(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text(json.dumps({"prompt": "Q?", "response": "A."}) + "\n", encoding="utf-8")
    proc = _cli("audit", "-r", "helpfulness", "-j", "fake", "--no-cache", "-o", "r.json", "--samples",
                "s.jsonl", "--no-pairwise", "--attack", "echo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["pairwise"] is None
    for args, fragment in ((["--attack", "nope"], "unknown attack"),
                           (["--samples", "missing.jsonl"], "missing.jsonl"),
                           (["-r", "nope-rubric"], "nope-rubric")):
        base = ["audit", "-r", "helpfulness", "-j", "fake", "--no-cache", "-o", "x.json"]
        proc = _cli(*base, *args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], proc.stderr
        assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------------------------ real judge


@pytest.mark.model
def test_tiny_real_audit_with_the_embedded_judge(small_judge) -> None:
    scorer = Scorer(RUBRIC, small_judge, cache=False)
    attacks = resolve_attacks(["master_key:colon", "injection"])
    doc = run_sync(aaudit(scorer, builtin_samples(1), attacks=attacks, pairwise=True)).to_dict()
    assert doc["judge"] == small_judge.name
    for a in doc["attacks"].values():
        assert a["failed"] == 0 and a["judged"] == 2 and 0.0 <= a["mean_p"] <= 1.0
    pw = doc["pairwise"]["overall"]
    assert pw["judged"] == 2 and pw["failed"] == 0 and 0.0 <= pw["flip_rate"] <= 1.0
    assert doc["overall"]["good_mean_p"] is not None
