"""The prefix-tree engine: the trie and its schedule (pure, fast), and exactness on the real 0.5B judge.

The exactness tests compare every tree verdict with one plain full forward pass per request, on
small versions of the batch shapes the engine exists for (distinct samples, pairs, GRPO groups,
per-row rubrics, a mixed batch), with budgets small enough to split nodes across passes.
"""

from __future__ import annotations

import random

import pytest

from rubrix.judges.hf import new_stats
from rubrix.judges.packing import PrefixTree, group_rows, packed_token_count, schedule


def _distinct_prefixes(seqs) -> int:
    return len({tuple(s[:k]) for s in seqs for k in range(1, len(s) + 1)})


def _path_tokens(tree: PrefixTree, index: int) -> list[int]:
    out: list[int] = []
    for a in tree.ancestors(index) + [index]:
        assert tree.nodes[a].start == len(out)
        out.extend(tree.nodes[a].tokens)
    return out


def _check_tree(seqs) -> PrefixTree:
    tree = PrefixTree.build(seqs)
    assert tree.token_count == _distinct_prefixes(seqs)
    assert tree.request_tokens == sum(len(s) for s in seqs)
    ended = {}
    for node in tree.nodes:
        for r in node.ends:
            ended[r] = node.index
        # radix trie: a node where no request ends branches (else it would be merged with its child)
        assert node.ends or len(node.children) >= 2
    assert sorted(ended) == list(range(len(seqs)))
    for r, node in ended.items():
        assert _path_tokens(tree, node) == list(seqs[r])
    for node in tree.nodes:  # siblings never share a first token (else they would share a node)
        firsts = [tree.nodes[c].tokens[0] for c in node.children]
        assert len(firsts) == len(set(firsts))
    return tree


def test_trie_of_a_grpo_batch_has_one_node_per_level_item():
    instructions, prompt = [1, 2, 3], [10, 11, 12, 13]
    answers = [[20, 21], [30, 31, 32], [40]]
    criteria = [[90, 91], [92], [93, 94, 95]]
    seqs = [instructions + prompt + a + c for a in answers for c in criteria]
    tree = _check_tree(seqs)
    assert len(tree.roots) == 1
    root = tree.nodes[tree.roots[0]]
    assert root.tokens == instructions + prompt and root.start == 0
    assert [len(tree.nodes[c].children) for c in root.children] == [3, 3, 3]
    assert tree.token_count == 7 + (2 + 3 + 1) + 3 * (2 + 1 + 3)


def test_trie_handles_duplicates_prefixes_and_disjoint_roots():
    seqs = [[1, 2, 3], [1, 2, 3], [1, 2], [1, 2, 3, 4], [7, 8], [7], [5]]
    tree = _check_tree(seqs)
    assert sorted(tree.nodes[r].tokens[0] for r in tree.roots) == [1, 5, 7]
    node_of = {r: n.index for n in tree.nodes for r in n.ends}
    assert node_of[0] == node_of[1]  # identical requests read the same position
    assert tree.nodes[node_of[2]].tokens == [1, 2] and tree.nodes[node_of[2]].children


def test_trie_matches_the_distinct_prefix_count_on_random_batches():
    rng = random.Random(7)
    for _ in range(200):
        base = [rng.randrange(4) for _ in range(rng.randrange(1, 6))]
        seqs = []
        for _ in range(rng.randrange(1, 9)):
            tail = [rng.randrange(4) for _ in range(rng.randrange(0, 5))]
            s = base[: rng.randrange(0, len(base) + 1)] + tail
            seqs.append(s or [0])
        _check_tree(seqs)


def test_empty_request_is_rejected():
    with pytest.raises(ValueError):
        PrefixTree.build([[1], []])


@pytest.mark.parametrize("budget", [1, 3, 5, 16, 1000])
def test_schedule_covers_each_node_once_within_budget_after_its_ancestors(budget):
    rng = random.Random(budget)
    seqs = [[1] * 9 + [rng.randrange(3) for _ in range(rng.randrange(1, 12))] for _ in range(20)]
    tree = PrefixTree.build(seqs)
    key_budget = 4 * budget
    passes = schedule(tree, budget, key_budget)
    done = {i: 0 for i in range(len(tree.nodes))}
    for step in passes:
        assert 0 < sum(s.hi - s.lo for s in step) <= budget
        seen = {a for seg in step for a in tree.ancestors(seg.node)}
        keys = sum(len(tree.nodes[a].tokens) for a in seen) + sum(seg.hi for seg in step)
        assert len(step) == 1 or keys <= key_budget
        for seg in step:
            assert all(done[a] == len(tree.nodes[a].tokens) for a in tree.ancestors(seg.node))
            assert seg.lo == done[seg.node] < seg.hi <= len(tree.nodes[seg.node].tokens)
        for seg in step:
            done[seg.node] = seg.hi
    assert all(done[i] == len(n.tokens) for i, n in enumerate(tree.nodes))
    assert sum(s.hi - s.lo for step in passes for s in step) == tree.token_count
    if 4 * budget >= tree.token_count:  # one pass per level of the tree at most
        assert len(passes) <= max(len(tree.ancestors(n.index)) for n in tree.nodes) + 1


def test_key_budget_splits_criteria_of_unrelated_samples_into_passes():
    seqs = [[100 + k] * 50 + [c] for k in range(6) for c in range(3)]  # 6 samples x 3 criteria
    tree = PrefixTree.build(seqs)
    last = schedule(tree, token_budget=1000, key_budget=120)[-1]
    assert all(not tree.nodes[s.node].children for s in last)  # criteria only
    # each pass may see at most two 50-token samples (2 x 50 + 6 criterion tokens <= 120)
    for step in schedule(tree, token_budget=1000, key_budget=120)[1:]:
        assert len({tree.nodes[s.node].parent for s in step}) <= 2
    assert len(schedule(tree, token_budget=1000, key_budget=10_000)) == 2


def test_groups_keep_short_siblings_together_and_split_long_ones():
    root = [1] * 10
    long_samples = [[100 + k] * 300 + [7, c] for k in range(3) for c in range(2)]
    tree = PrefixTree.build([root + s for s in long_samples])
    passes = schedule(tree, token_budget=10_000)
    samples_pass = next(p for p in passes if len(p) == 3)  # the three samples under the root
    assert [len(g) for g in group_rows(tree, samples_pass)] == [1, 1, 1]  # 301 tokens each vs 10 shared
    criteria_pass = passes[-1]
    groups = group_rows(tree, criteria_pass)
    assert sorted(len(g) for g in groups) == [2, 2, 2]  # two criteria per sample, one group each
    assert all(len({tree.nodes[s.node].parent for s in g}) == 1 for g in groups)


def test_packed_cost_repeats_the_answer_per_criterion_where_the_tree_does_not():
    prompt, criteria = list(range(100, 160)), [[1, 2], [3, 4], [5, 6]]
    answers = [list(range(200 + 40 * k, 230 + 40 * k)) for k in range(4)]
    seqs = [prompt + a + c for a in answers for c in criteria]
    one_group = [list(range(len(seqs)))]  # what the old grouping did: shared part >= half a request
    tree = PrefixTree.build(seqs)
    assert tree.token_count == 60 + 4 * 30 + 12 * 2
    assert packed_token_count(seqs, one_group) == 60 + 12 * 32


# -- exactness on the real 0.5B judge ----------------------------------------------------------

PROMPT = ("Explain to a new employee how our team reviews code before it is merged. Mention who approves, "
          "what the automated checks are, and what happens when a reviewer asks for changes. ") * 2


def _answers(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = ("review approve merge test branch ticket owner change request comment style lint build "
             "deploy rollback pair senior junior checklist coverage").split()
    return [f"Answer {k}: " + " ".join(rng.choice(words) for _ in range(12 + 5 * k)) + "." for k in range(n)]


def _shapes():
    from rubrix.render import SampleView
    from rubrix.rubric import Criterion, load_rubric

    crits = list(load_rubric("helpfulness").criteria)[:3]
    scale = Criterion(id="clarity", text="How clear the answer is.", weight=1.0,
                      scale={1: "unclear", 2: "vague", 3: "ok", 4: "clear", 5: "very clear"})
    other = [Criterion(id=f"r{i}", text=t, weight=1.0) for i, t in enumerate(
        ["The answer names an approver.", "The answer mentions automated tests."])]
    distinct = [SampleView(f"Question {k}: name one use of {w}.", a)
                for k, (w, a) in enumerate(zip(["salt", "iron", "sand"], _answers(3, 1), strict=True))]
    grpo = [SampleView(PROMPT, a) for a in _answers(4, 2)]
    two = [SampleView(p, a) for p in (PROMPT, "Name a fruit.") for a in _answers(3, 3)]
    return {
        "distinct": [(s, c) for s in distinct for c in crits],
        "pairs": [(s, c) for s in [SampleView(PROMPT, a) for a in _answers(2, 4)] for c in crits],
        "grpo_1_prompt": [(s, c) for s in grpo for c in crits],
        "grpo_2_prompts": [(s, c) for s in two for c in crits[:2]],
        "per_row_rubrics": [(s, c) for k, s in enumerate(grpo) for c in (crits if k % 2 else other)],
        "mixed": [(s, c) for s in distinct[:1] + grpo[:2] for c in crits[:1] + [scale]],
    }


def _full_forward_p(judge, request) -> float:
    import torch

    with torch.inference_mode():
        ids = torch.tensor([judge.encode(request.messages)])
        return judge._read(request, judge.model(input_ids=ids).logits[0, -1].float()).p


@pytest.fixture(scope="module")
def shapes(small_judge):
    from rubrix.render import PromptRenderer

    renderer = PromptRenderer()
    out = {}
    for name, items in _shapes().items():
        requests = [renderer.criterion_request(s, c) for s, c in items]
        out[name] = (requests, [_full_forward_p(small_judge, r) for r in requests])
    return out


@pytest.mark.model
@pytest.mark.parametrize("attention", ["sdpa", "flex"])
@pytest.mark.parametrize("budget", [4096, 97])
def test_tree_verdicts_equal_one_full_forward_per_request(small_judge, shapes, budget, attention,
                                                          monkeypatch):
    if attention == "flex" and budget != 4096:
        pytest.skip("flex is checked once per shape; budgets are the scheduler's business")
    monkeypatch.setattr(small_judge, "engine", "tree")
    monkeypatch.setattr(small_judge, "attention", attention)
    monkeypatch.setattr(small_judge, "token_budget", budget)
    worst = {}
    for name, (requests, full) in shapes.items():
        verdicts = small_judge.judge_sync(requests)
        worst[name] = max(abs(v.p - f) for v, f in zip(verdicts, full, strict=True))
        assert all(v.from_logprobs and v.error is None for v in verdicts)
    print(f"max |P_tree - P_full| budget={budget} attention={attention}: {worst}")
    # exact in fp32 (the CPU default); bf16 on a GPU rounds differently per kernel
    assert max(worst.values()) <= (1e-4 if str(small_judge.dtype) == "torch.float32" else 2e-2), worst


@pytest.mark.model
def test_tree_computes_each_trie_token_once(small_judge, shapes, monkeypatch):
    monkeypatch.setattr(small_judge, "engine", "tree")
    monkeypatch.setattr(small_judge, "token_budget", 256)
    monkeypatch.setattr(small_judge, "stats", new_stats())
    for name, (requests, _) in shapes.items():
        tree = PrefixTree.build([small_judge.encode(r.messages) for r in requests])
        before = small_judge.stats["computed_tokens"]
        small_judge.judge_sync(requests)
        computed = small_judge.stats["computed_tokens"] - before
        assert computed == tree.token_count, name
        assert small_judge.stats["max_forward_tokens"] <= 256
    assert small_judge.stats["max_attention_scores"] > 0


@pytest.mark.model
def test_packed_and_naive_engines_stay_selectable_and_agree(small_judge, shapes, monkeypatch):
    requests, full = shapes["grpo_1_prompt"]
    for engine in ("packed", "naive"):
        monkeypatch.setattr(small_judge, "engine", engine)
        verdicts = small_judge.judge_sync(requests)
        assert max(abs(v.p - f) for v, f in zip(verdicts, full, strict=True)) <= 1e-4, engine
