"""``rubrix generate``: per-prompt rubrics, the lint, the degradations and the discrimination check.

The fakes here are for pure logic only and are named as such:

* ``FakeScriptedGenerator`` answers generation calls from a script (a function of the messages);
* ``FakeKeywordJudge`` says a statement "The response mentions X." is met when the word X occurs in
  the fenced answer, so which degradation a criterion catches is predictable.

One ``model`` test runs the real embedded 0.5B judge on one prompt and scores the output with
``rubrix score``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeKeywordJudge as _KeywordJudge
from fakes import FakeScriptedGenerator

from rubrix._aio import run as run_sync
from rubrix.generate import GenerateConfig, check_criteria, degrade, generate, lint, load_prompts, side_paths
from rubrix.generate.degrade import Contrast
from rubrix.generate.draft import read_drafts
from rubrix.judges.base import Generation
from rubrix.rubric import Criterion, Rubric
from rubrix.scoring import CriterionResult, SampleResult, Scorer


class FakeKeywordJudge(_KeywordJudge):
    """FAKE judge (tests/fakes.py) that must never be asked to write text in these tests."""

    async def generate(self, messages, *, max_tokens=512, stop=None, json_mode=False):  # pragma: no cover
        raise AssertionError("the judge is not asked to generate here")


PARIS = "The capital of France is Paris. It lies on the Seine."
RUBRIC_ANSWER = json.dumps({"criteria": [
    {"text": "The response mentions Paris.", "category": "essential"},
    {"text": "The response is clear and helpful.", "category": "important"},        # lint: vague
    {"text": "The response mentions France.", "category": "important"},
    {"text": "The response mentions Seine.", "category": "optional"},
    {"text": "The response mentions Europe.", "category": "important"},             # good answer lacks it
    {"text": "The response mentions Lyon.", "category": "pitfall"},                 # the wrong fact
    {"text": "The response gives a detailed and comprehensive overview.", "category": "optional"},  # length
]})


def script(messages) -> str:
    """Answers by template: the rubric, then one answer per degradation kind."""
    system = messages[0]["content"]
    if messages[0]["role"] != "system":
        return "Paris is the capital of France."                      # a good answer, when asked for one
    if system.startswith("You write grading rubrics"):
        if any("GARBAGE" in m["content"] for m in messages):
            return "I cannot write a rubric for this."
        return RUBRIC_ANSWER
    if '"original"' in system:
        return json.dumps({"original": "The capital of France is Paris.",
                           "wrong": "The capital of France is Lyon."})
    if '"part"' in system:
        return json.dumps({"part": "The capital of France is Paris."})
    return json.dumps({"instruction": "Answer in one sentence.",
                       "answer": "France is a country. Its capital is Paris. It has many museums."})


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD_ROW = {"id": "q1", "prompt": "What is the capital of France? Answer in one sentence.",
            "reference": PARIS, "response": "Paris.", "topic": "geo"}


def _run(tmp_path, rows, *, gen_script=script, judge=None, **kw):
    prompts = _write(tmp_path / "prompts.jsonl", rows)
    generator = FakeScriptedGenerator(gen_script)
    scorer = Scorer(None, judge or FakeKeywordJudge(), cache=False)
    out = tmp_path / "rows.jsonl"
    config = kw.pop("config", GenerateConfig(batch_size=2))
    run = run_sync(generate(prompts, out, generator=generator, scorer=scorer, config=config, **kw))
    return run, generator, scorer, out


# ---------------------------------------------------------------------------------------------
# lint


@pytest.mark.parametrize("text, rule", [
    ("The response names the dose and explains the risks of an overdose.", "compound"),
    ("The response states the dose; it also warns about interactions.", "compound"),
    ("The response gives the capital. It also names the river.", "compound"),
    ("The response is clear and appropriate.", "vague"),
    ("The response is helpful.", "vague"),
    ("The response answers the question.", "restates_prompt"),
    ("The response follows all the instructions.", "restates_prompt"),
    ("The response provides a detailed explanation of the causes.", "rewards_length"),
    ("The response is at least 300 words long.", "rewards_length"),
])
def test_lint_flags_each_rule(text, rule):
    prompt = "Explain the safe dose of ibuprofen for an adult in a short paragraph."
    assert rule in {f.rule for f in lint(text, prompt)}, lint(text, prompt)


@pytest.mark.parametrize("text", [
    "The response names apples and pears.",                          # a list inside one check
    "The response states that the adult dose is at most 1200 mg per day.",
    "The response recommends seeing a doctor if symptoms last more than three days.",
    "The response is clear about the dose, such as stating 200-400 mg every 4-6 hours.",
    "The response writes the answer in French.",
])
def test_lint_leaves_testable_atomic_criteria_alone(text):
    assert lint(text, "Explain the safe dose of ibuprofen for an adult.") == []


def test_lint_restating_a_long_span_of_the_prompt_and_length_the_prompt_asked_for():
    prompt = "Write a haiku about autumn leaves falling on a quiet pond at dawn, in at least 3 lines."
    found = lint("The response writes a haiku about autumn leaves falling on a quiet pond at dawn.", prompt)
    assert [f.rule for f in found] == ["restates_prompt"]
    assert lint("The response has at least 3 lines.", prompt) == []          # the prompt asked for it
    assert lint("The response is unnecessarily long.", prompt, pitfall=True) == []  # a pitfall may


# ---------------------------------------------------------------------------------------------
# degradations


def test_deterministic_degradations():
    pad = degrade.padded(PARIS, "q1")
    assert pad.text.startswith(PARIS) and len(pad.text.split()) >= len(PARIS.split()) + 40
    assert pad.text == degrade.padded(PARIS, "q1").text                      # deterministic
    off = degrade.off_topic("How does the water cycle move water through evaporation and rain?", "q1")
    assert "water" not in off.text.lower()                                  # the least related text
    cut = degrade.truncated("One. Two. Three. Four.")
    assert (cut.kind, cut.text) == ("missing_part", "One. Two.")


def test_generator_edits_are_applied_here_and_refused_when_they_do_not_fit():
    wrong = degrade.read_wrong_fact({"original": "the capital of  France is Paris.", "wrong": "It is Lyon."},
                                    PARIS)
    assert wrong.text == "It is Lyon. It lies on the Seine."                 # one sentence changed, rest kept
    with pytest.raises(ValueError, match="copied exactly"):
        degrade.read_wrong_fact({"original": "Berlin is big.", "wrong": "Berlin is small."}, PARIS)
    with pytest.raises(ValueError, match="same"):
        degrade.read_wrong_fact({"original": "It lies on the Seine.", "wrong": "It lies on the Seine."},
                                PARIS)
    missing = degrade.read_missing_part({"part": "It lies on the Seine."}, PARIS)
    assert missing.text == "The capital of France is Paris."
    with pytest.raises(ValueError, match="not all of it"):
        degrade.read_missing_part({"part": PARIS}, PARIS)


# ---------------------------------------------------------------------------------------------
# drafts and the discrimination rule


def test_drafts_take_weights_from_the_category_never_from_the_model():
    drafts = read_drafts({"criteria": [
        {"text": "The response names Paris as the capital.", "category": "critical", "weight": 100},
        {"text": "The response names Lyon as the capital.", "category": "mistake"},
        "The response mentions the Seine river.",
        {"text": "The response names Paris as the capital.", "category": "essential"},   # duplicate
        {"text": "ok", "category": "essential"},                                           # fragment
        {"text": "The response gives the population of Paris.", "applies_if": "none"},
    ]}, max_criteria=10)
    assert [(d.category, d.weight) for d in drafts] == [("essential", 5.0), ("pitfall", -2.0),
                                                        ("important", 3.0), ("important", 3.0)]
    assert drafts[3].applies_if is None
    with pytest.raises(ValueError, match="repeat one statement"):       # a small model's greedy loop
        read_drafts({"criteria": ["The response names Paris as the capital."] * 5}, max_criteria=5)
    with pytest.raises(ValueError, match="about the response"):         # the reference copied as criteria
        read_drafts({"criteria": ["Paris is the capital of France and its largest city."]}, max_criteria=5)
    verb_first = "Advises the patient to see a doctor within a week."   # HealthBench's style
    assert [d.text for d in read_drafts({"criteria": [verb_first]}, max_criteria=5)] == [verb_first]
    with pytest.raises(ValueError, match="no 'essential'"):
        read_drafts({"rules": []}, max_criteria=5)
    with pytest.raises(ValueError, match="every criterion is a pitfall"):
        read_drafts({"criteria": [{"text": "The response names Lyon as the capital.",
                                   "category": "pitfall"}]}, max_criteria=5)


def test_drafts_in_the_templates_category_lists_with_a_conditional_item():
    drafts = read_drafts({
        "essential": ["The response says that water boils at 100 degrees Celsius."],
        "important": "The response answers in one sentence.",
        "optional": [],
        "pitfalls": ["The response says that water boils at 90 degrees Celsius."],
        "conditional": [{"text": "The response gives the value in Fahrenheit too.",
                         "applies_if": "the user asks for Fahrenheit"}],
    }, max_criteria=10)
    assert [(d.category, d.applies_if) for d in drafts] == [
        ("essential", None), ("important", None), ("pitfall", None),
        ("important", "the user asks for Fahrenheit")]


def _result(values: dict[str, float | str | None]) -> SampleResult:
    crits = {cid: CriterionResult(p=None, met=None, error=v) if isinstance(v, str) else
             CriterionResult(p=v, met=None if v is None else v >= 0.5, na=v is None)
             for cid, v in values.items()}
    return SampleResult(id="s", reward=None, reward_raw=None, status="ok", criteria=crits, judge="fake",
                        rubric_hash="", template_hash="")


def test_discrimination_rule():
    rubric = Rubric(name="r", criteria=(
        Criterion("keeps", "The response mentions Paris.", 5.0),
        Criterion("pads", "The response mentions summary.", 1.0),
        Criterion("flat", "The response mentions capital.", 3.0),
        Criterion("pit", "The response mentions Lyon.", -2.0, category="pitfall"),
        Criterion("badpit", "The response mentions France.", -2.0, category="pitfall"),
        Criterion("err", "The response mentions Seine.", 1.0),
    ))
    contrasts = [Contrast(k, "x", "test") for k in ("good", "wrong_fact", "padded", "off_topic")]
    results = [_result({"keeps": 1.0, "pads": 0.0, "flat": 0.9, "pit": 0.0, "badpit": 0.9, "err": "timeout"}),
               _result({"keeps": 0.1, "pads": 0.0, "flat": 0.9, "pit": 1.0, "badpit": 0.9, "err": 0.0}),
               _result({"keeps": 1.0, "pads": 1.0, "flat": 0.8, "pit": 0.0, "badpit": 0.9, "err": 0.0}),
               _result({"keeps": 0.0, "pads": 0.0, "flat": 0.7, "pit": 0.0, "badpit": 0.0, "err": 0.0})]
    checks = {c.id: c for c in check_criteria(rubric, contrasts, results, margin=0.3)}
    assert checks["keeps"].kept and checks["keeps"].caught == ["wrong_fact", "off_topic"]
    assert not checks["pads"].kept                     # not met by the good answer at all
    assert not checks["flat"].kept and checks["flat"].reason == "catches no degradation"
    assert checks["pit"].kept and checks["pit"].caught == ["wrong_fact"]
    assert not checks["badpit"].kept and "pitfall present in the good answer" in checks["badpit"].reason
    assert not checks["err"].kept and checks["err"].reason.startswith("untested: judge error")
    # a criterion that scores the padded answer above the good one rewards length: dropped
    rubric2 = Rubric(name="r", criteria=(Criterion("long", "The response mentions summary.", 1.0),))
    res2 = [_result({"long": 0.6}), _result({"long": 0.0}), _result({"long": 1.0}), _result({"long": 0.0})]
    [check] = check_criteria(rubric2, contrasts, res2, margin=0.3)
    assert not check.kept and check.preferred == ["padded"]
    assert check_criteria(rubric2, contrasts, res2, margin=0.3, min_caught=3)[0].kept is False


# ---------------------------------------------------------------------------------------------
# the run


def test_generate_keeps_only_discriminating_criteria_with_provenance(tmp_path):
    run, generator, scorer, out = _run(tmp_path, [GOOD_ROW])
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert (row["id"], row["topic"], row["response"]) == ("q1", "geo", "Paris.")  # input columns kept
    rubric = row["rubric"]
    texts = {c["text"]: c for c in rubric["criteria"]}
    assert set(texts) == {"The response mentions Paris.", "The response mentions France.",
                          "The response mentions Seine.", "The response mentions Lyon."}
    assert texts["The response mentions Lyon."]["weight"] == -2.0 and \
        texts["The response mentions Lyon."]["category"] == "pitfall"
    assert texts["The response mentions Lyon."]["source"]["caught"] == ["wrong_fact"]
    assert "wrong_fact" in texts["The response mentions Paris."]["source"]["caught"]
    assert "missing_part" in texts["The response mentions France."]["source"]["caught"]
    prov = rubric["provenance"]
    assert prov["generator"] == "fake:scripted-generator" and prov["judge"] == "fake:keyword"
    assert prov["prompt_id"] == "q1" and prov["template"] == "generate_rubric.j2"
    assert prov["template_hash"].startswith("sha256:") and prov["reference"] == "given"
    assert prov["drafted"] == 7 and prov["linted_out"] == 2 and prov["kept"] == 4
    s = run.summary
    assert s["criteria"] == {"drafted": 7, "linted_out": 2, "checked": 5, "kept": 4,
                             "dropped": {"good answer fails it": 1}}
    assert s["lint"] == {"vague": 2, "rewards_length": 1}
    assert s["caught"]["wrong_fact"] == 2 and s["caught"]["off_topic"] == 3
    assert s["contrasts"] == {k: 1 for k in ("good", "wrong_fact", "missing_part", "broken_instruction",
                                             "padded", "off_topic")}
    by_stage = s["cost"]["by_stage"]
    assert by_stage["draft"]["generations"] == 1 and by_stage["degrade"]["generations"] == 3
    assert by_stage["discriminate"]["verdicts"] == 5 * 6 and s["cost"]["total"]["calls"] == 4 + 30
    summary_file = json.loads(side_paths(out)["summary"].read_text())
    assert summary_file["generated"] == 1
    log = [json.loads(line) for line in side_paths(out)["log"].read_text().splitlines()]
    events = [r["event"] for r in log]
    assert events == ["draft", "lint", "contrasts", "verdicts", "done"]
    verdicts = next(r for r in log if r["event"] == "verdicts")
    europe = next(c for c in verdicts["criteria"] if c["text"] == "The response mentions Europe.")
    assert europe["kept"] is False and europe["p"]["good"] == 0.0


def test_lint_warn_judges_flagged_criteria_and_keeps_the_finding(tmp_path):
    def compound_draft(messages):
        if messages[0]["content"].startswith("You write grading rubrics"):
            return json.dumps({"essential": ["The response names the capital and mentions Seine."]})
        return script(messages)

    run, _, _, out = _run(tmp_path, [GOOD_ROW], gen_script=compound_draft,
                          config=GenerateConfig(lint="warn"))
    [crit] = json.loads(out.read_text())["rubric"]["criteria"]
    assert crit["source"]["lint"] and crit["source"]["lint"][0].startswith("compound")
    assert run.summary["lint"] == {"compound": 1} and run.summary["criteria"]["linted_out"] == 0
    (tmp_path / "drop").mkdir()
    run2, _, _, out2 = _run(tmp_path / "drop", [GOOD_ROW], gen_script=compound_draft)
    assert run2.summary["skipped"] == {"lint removed every criterion": 1} and out2.read_text() == ""


def test_written_rows_are_scored_by_rubrix_score(tmp_path):
    from rubrix.cli import main

    _, _, _, out = _run(tmp_path, [GOOD_ROW, {**GOOD_ROW, "id": "q2", "response": "Lyon is the capital."}])
    scores = tmp_path / "scores.jsonl"
    try:
        main(["score", str(out), "-o", str(scores), "-j", "fake", "--no-cache"])
    except SystemExit as exc:  # main exits only on errors
        assert exc.code in (0, None)
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert set(rows[0]["criteria"]) == {c["id"] for c in json.loads(out.read_text().splitlines()[0])["rubric"]
                                        ["criteria"]}


def test_bad_input_is_counted_skipped_and_logged_never_written(tmp_path):
    rows = [
        GOOD_ROW,
        {"id": "empty", "prompt": "   ", "reference": PARIS},
        {"id": "chat-empty", "prompt": [{"role": "user", "content": ""}], "reference": PARIS},
        {"id": "noref", "prompt": "Name the capital of Italy."},
        {"id": "garbage", "prompt": "GARBAGE prompt that confuses the generator.", "reference": PARIS},
        {"id": "long", "prompt": "word " * 400, "reference": PARIS},
        {"id": "number", "prompt": 42},
        {"id": "q1", "prompt": "A repeated id.", "reference": PARIS},
    ]
    run, _, _, out = _run(tmp_path, rows, reference_field="reference",
                          config=GenerateConfig(batch_size=3, max_input_tokens=300))
    s = run.summary
    assert s["generated"] == 1 and s["records"] == 8
    assert s["skipped"] == {"empty prompt": 2, "record": 1, "duplicate id": 1, "missing reference": 1,
                            "no parseable rubric": 1, "too long": 1}
    written = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert written == ["q1"]
    log = [json.loads(line) for line in side_paths(out)["log"].read_text().splitlines()]
    skips = {r["prompt"]: r for r in log if r["event"] == "skip"}
    assert "parse" in skips["garbage"]["reason"] and skips["garbage"]["raw"]     # the bad answers are kept
    assert "more than --max-input-tokens 300" in skips["long"]["reason"]
    assert skips["noref"]["reason"] == "no reference answer in field 'reference'"
    assert skips["number"]["reason"].startswith("prompt: must be a string or a list")


def test_a_backend_that_refuses_the_input_as_too_long_skips_the_row(tmp_path):
    """Past the token count, a backend's own ``input`` error (llama.cpp: the prompt does not fit its
    context) is a ``too long`` skip, never a crash or a parse failure."""

    class RefusingGenerator(FakeScriptedGenerator):
        async def generate(self, messages, *, max_tokens=512, stop=None, json_mode=False):
            return [Generation.failed("input", "llama.cpp: Requested tokens exceed context window")
                    for _ in messages]

    prompts = _write(tmp_path / "prompts.jsonl", [GOOD_ROW, {"id": "n", "prompt": "No reference here."}])
    run = run_sync(generate(prompts, tmp_path / "rows.jsonl", generator=RefusingGenerator(script),
                            scorer=Scorer(None, FakeKeywordJudge(), cache=False)))
    assert run.summary["skipped"] == {"too long": 2} and run.summary["generated"] == 0
    assert (tmp_path / "rows.jsonl").read_text() == ""


def test_without_a_reference_the_generator_writes_the_good_answer(tmp_path):
    run, generator, _, out = _run(tmp_path, [{"id": "n1", "prompt": "What is the capital of France?"}])
    assert run.summary["references"] == {"generated": 1}
    assert generator.calls[0] == [{"role": "user", "content": "What is the capital of France?"}]
    assert run.summary["cost"]["by_stage"]["answer"]["generations"] == 1
    # the generated good answer ("Paris is the capital of France.") has no Seine: that criterion fails it
    if out.read_text().strip():
        [row] = [json.loads(line) for line in out.read_text().splitlines()]
        assert row["rubric"]["provenance"]["reference"] == "generated"
        assert "The response mentions Seine." not in {c["text"] for c in row["rubric"]["criteria"]}


def test_a_rubric_whose_criteria_all_fail_the_check_is_never_written(tmp_path):
    def nothing_separates(messages):
        if messages[0]["content"].startswith("You write grading rubrics"):
            return json.dumps({"criteria": [{"text": "The response mentions Berlin.",
                                             "category": "essential"}]})
        return script(messages)

    run, _, _, out = _run(tmp_path, [GOOD_ROW], gen_script=nothing_separates)
    assert out.read_text() == ""
    assert run.summary["skipped"] == {"none kept": 1} and run.summary["generated"] == 0


def test_judge_errors_are_untested_not_no(tmp_path):
    run, _, _, out = _run(tmp_path, [GOOD_ROW], judge=FakeKeywordJudge(fail_word="seine"))
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert "The response mentions Seine." not in {c["text"] for c in row["rubric"]["criteria"]}
    assert run.summary["criteria"]["dropped"]["untested"] == 1


def test_resume_skips_finished_prompts(tmp_path):
    rows = [GOOD_ROW, {**GOOD_ROW, "id": "q2"}]
    _run(tmp_path, rows[:1])
    prompts = _write(tmp_path / "prompts.jsonl", rows)
    generator = FakeScriptedGenerator(script)
    run = run_sync(generate(prompts, tmp_path / "rows.jsonl", generator=generator,
                            scorer=Scorer(None, FakeKeywordJudge(), cache=False), resume=True))
    assert run.summary["resumed"] == 1 and run.summary["processed"] == 1
    assert len(generator.calls) == 4                           # one draft + three degradations: q2 only
    ids = [json.loads(line)["id"] for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert ids == ["q1", "q2"]
    with pytest.raises(Exception, match="already has results"):  # never overwritten without --resume
        run_sync(generate(prompts, tmp_path / "rows.jsonl", generator=generator,
                          scorer=Scorer(None, FakeKeywordJudge(), cache=False)))


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    class Crash(Exception):
        pass

    rows = [GOOD_ROW, {**GOOD_ROW, "id": "q2", "prompt": "CRASH here"}]
    prompts = _write(tmp_path / "prompts.jsonl", rows)

    def dying(messages):
        if "CRASH" in messages[-1]["content"]:
            raise Crash()
        return script(messages)

    with pytest.raises(Crash):
        run_sync(generate(prompts, tmp_path / "rows.jsonl", generator=FakeScriptedGenerator(dying),
                          scorer=Scorer(None, FakeKeywordJudge(), cache=False),
                          config=GenerateConfig(batch_size=1)))
    assert [json.loads(x)["id"] for x in (tmp_path / "rows.jsonl").read_text().splitlines()] == ["q1"]
    run = run_sync(generate(prompts, tmp_path / "rows.jsonl", generator=FakeScriptedGenerator(script),
                            scorer=Scorer(None, FakeKeywordJudge(), cache=False), resume=True))
    assert run.summary["resumed"] == 1 and run.summary["generated"] == 1


def test_load_prompts_reads_chat_and_trl_messages(tmp_path):
    path = _write(tmp_path / "p.jsonl", [
        {"id": "c", "prompt": [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Hi?"}]},
        {"id": "m", "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
        {"prompt": "No id here."},
    ])
    rows, skipped = load_prompts(path)
    assert [r.id for r in rows] == ["c", "m", "prompt-3"] and not skipped
    assert rows[1].prompt == [{"role": "user", "content": "2+2?"}] and rows[1].reference == "4"


def test_cli_generate_with_a_judge_that_writes_no_rubric(tmp_path, capsys):
    """``rubrix generate -j fake``: the fake judge's generations are "{}", so every prompt is skipped with
    its reason, a summary is printed, nothing is written as if valid, exit status 1, no traceback."""
    from rubrix.cli import main

    prompts = _write(tmp_path / "prompts.jsonl", [GOOD_ROW, {"id": "e", "prompt": ""}])
    out = tmp_path / "rows.jsonl"
    with pytest.raises(SystemExit) as info:
        main(["generate", str(prompts), "-o", str(out), "-j", "fake", "--no-cache"])
    assert info.value.code == 1
    assert out.read_text() == ""
    summary = json.loads(side_paths(out)["summary"].read_text())
    assert summary["skipped"] == {"empty prompt": 1, "no parseable rubric": 1}
    captured = capsys.readouterr()
    assert "0 rubrics written" in captured.out and "Traceback" not in captured.err
    for bad in (["-o", str(tmp_path / "x.jsonl"), "--lint", "maybe"], ["-o", "-"],
                ["-o", str(tmp_path / "y.jsonl"), "--degradations", "wrong_fact,typo"]):
        with pytest.raises(SystemExit) as info:
            main(["generate", str(prompts), "-j", "fake", *bad])
        assert info.value.code == 2, bad


@pytest.mark.model
def test_real_generate_one_prompt_then_score(tmp_path, small_judge):
    """The embedded 0.5B writes, degrades and checks a rubric for one prompt; ``rubrix score`` reads it."""
    from rubrix.cli import main

    prompts = _write(tmp_path / "prompts.jsonl", [{
        "id": "boil", "prompt": "At what temperature does water boil at sea level, in degrees Celsius? "
                                "Answer in one sentence.",
        "reference": "At sea level, water boils at 100 degrees Celsius.",
        "response": "Water boils at 100 °C at sea level."}])
    out = tmp_path / "rows.jsonl"
    scorer = Scorer(None, small_judge, cache=False)
    run = run_sync(generate(prompts, out, generator=small_judge, scorer=scorer,
                            config=GenerateConfig(max_criteria=5, max_tokens=256, edit_tokens=96, reasks=1,
                                                  degradations=("wrong_fact", "padded", "off_topic"))))
    s = run.summary
    assert s["generated"] + sum(s["skipped"].values()) == 1
    assert s["cost"]["total"]["generations"] >= 1 and s["cost"]["total"]["completion_tokens"] > 0
    if s["generated"]:
        scores = tmp_path / "scores.jsonl"
        try:
            main(["score", str(out), "-o", str(scores), "-j", "embedded:0.5b", "--no-cache"])
        except SystemExit as exc:
            assert exc.code in (0, None)
        [row] = [json.loads(line) for line in scores.read_text().splitlines()]
        assert row["status"] == "ok" and row["reward"] is not None
    else:  # a skip must carry its reason in the log
        log = [json.loads(line) for line in side_paths(out)["log"].read_text().splitlines()]
        assert any(r["event"] == "skip" and r["reason"] for r in log)
