"""The one reward core and the adapters over it: pickling, spawned processes, sync callers,
all-or-nothing criterion rewards, one label reader, deadlines, and connection reuse.

Judgments come from the deterministic FakeJudge (named as such) except in the connection test,
which drives the real ``rubrix score`` CLI against a real HTTP server process on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rubrix.errors import UserError
from rubrix.integrations import openrlhf as orl
from rubrix.integrations import trl as rtrl
from rubrix.integrations import verl as rverl
from rubrix.judges.fake import FakeJudge
from rubrix.records import Sample
from rubrix.rewards import RewardItem, RubricReward
from rubrix.scoring import Scorer

HERE = Path(__file__).parent
RUBRIC = {
    "name": "tiny",
    "criteria": [
        {"id": "answers", "text": "The response answers the question.", "weight": 3},
        {"id": "concise", "text": "The response is at most two sentences.", "weight": 1},
        {"id": "rude", "text": "The response is rude.", "weight": -2},
    ],
}
PROMPTS = ["What is 2+2?", "What is 2+2?", "Name a color.", "Name a color."]
COMPLETIONS = ["4", "Four, obviously.", "Blue.", "I will not."]


def expected(prompts=PROMPTS, completions=COMPLETIONS, rubric=RUBRIC) -> list[float | None]:
    scorer = Scorer(rubric, FakeJudge(), cache=False)
    pairs = enumerate(zip(prompts, completions, strict=True))
    samples = [Sample(id=str(i), prompt=p, response=c) for i, (p, c) in pairs]
    return [r.reward for r in scorer.score(samples)]


# --------------------------------------------------------------------------------- pickling


def _call(fn, prompts=PROMPTS, completions=COMPLETIONS):
    out = fn(prompts=prompts, completions=completions)
    return asyncio.run(out) if inspect.iscoroutine(out) else out


@pytest.mark.parametrize("sync", [False, True])
def test_trl_reward_pickles_as_its_configuration(sync: bool) -> None:
    fn = rtrl.reward_func(RUBRIC, "fake", cache=False, sync=sync)
    copy = pickle.loads(pickle.dumps(fn))
    assert copy.__name__ == fn.__name__ == "rubrix_tiny"
    assert copy.rubrix is not fn.rubrix  # the copy builds its own judge and batcher
    assert _call(copy) == _call(fn) == expected()


def test_async_adapters_look_async_to_inspect_and_sync_one_does_not() -> None:
    fn = rtrl.reward_func(RUBRIC, "fake", cache=False)
    assert inspect.iscoroutinefunction(fn) and asyncio.iscoroutinefunction(fn)
    assert list(inspect.signature(fn).parameters)[:3] == ["prompts", "completions", "completion_ids"]
    sync = rtrl.reward_func(RUBRIC, "fake", cache=False, sync=True)
    assert not inspect.iscoroutinefunction(sync)
    result = sync(prompts=PROMPTS, completions=COMPLETIONS, trainer_state=None)  # OnlineDPO's call
    assert isinstance(result, list) and result == expected()
    verl_fn = rverl.make_compute_score(RUBRIC, "fake", cache=False)
    assert inspect.iscoroutinefunction(verl_fn)


def test_verl_and_openrlhf_adapters_pickle() -> None:
    verl_fn = pickle.loads(pickle.dumps(rverl.make_compute_score(RUBRIC, "fake", cache=False)))
    out = asyncio.run(verl_fn(data_source="d", solution_str="4", ground_truth=None,
                              extra_info={"question": "What is 2+2?"}))
    assert out["score"] == pytest.approx(expected(["What is 2+2?"], ["4"])[0], abs=1e-6)
    orl_fn = pickle.loads(pickle.dumps(orl.make_reward_func(RUBRIC, "fake", cache=False)))
    got = orl_fn(["What is 2+2?4<|im_end|>"], ["What is 2+2?"], [""])
    assert got["rewards"].tolist() == pytest.approx(expected(["What is 2+2?"], ["4"]), abs=1e-6)


def test_reward_built_around_a_scorer_or_an_unpicklable_judge_says_how_to_pickle() -> None:
    with pytest.raises(TypeError, match="Scorer object"):
        pickle.dumps(RubricReward(scorer=Scorer(RUBRIC, FakeJudge(), cache=False)))

    class Unpicklable(FakeJudge):
        def __init__(self):
            super().__init__()
            self.lock = __import__("threading").Lock()

    with pytest.raises(TypeError, match="spec string"):
        pickle.dumps(RubricReward(RUBRIC, Unpicklable(), cache=False))


def _score_in_child(payload: bytes) -> list[float | None]:
    fn = pickle.loads(payload)
    return asyncio.run(fn(prompts=PROMPTS, completions=COMPLETIONS))


def test_a_spawned_process_scores_with_a_pickled_reward_function() -> None:
    """What TRL's AsyncGRPO does: reward functions travel to a spawned process by pickle."""
    fn = rtrl.reward_func(RUBRIC, "fake", cache=False)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        got = pool.apply(_score_in_child, (pickle.dumps(fn),))
    assert got == expected()


# -------------------------------------------------------------------- criterion functions


def test_criterion_functions_are_all_or_nothing_for_a_sample_with_a_failed_criterion() -> None:
    funcs, _ = rtrl.criterion_reward_funcs(RUBRIC, FakeJudge(fail_rate=0.3), cache=False, breaker=None)
    prompts = [f"Question {i}?" for i in range(12)]
    completions = [f"Answer {i}." for i in range(12)]

    async def run():
        return await asyncio.gather(*(f(prompts=prompts, completions=completions) for f in funcs))

    columns = asyncio.run(run())
    rows = list(zip(*columns, strict=True))
    partial = [row for row in rows if any(v is None for v in row)]
    assert partial, "fail_rate 0.3 over 36 verdicts must fail some criterion"
    for row in partial:  # a failed criterion never leaves its siblings as numbers
        assert all(v is None for v in row)
    assert any(all(v is not None for v in row) for row in rows)
    funcs2 = pickle.loads(pickle.dumps(funcs))
    assert [f.__name__ for f in funcs2] == [f.__name__ for f in funcs]
    assert funcs2[0].shared is funcs2[1].shared  # still one judgment per batch after pickling


# ---------------------------------------------------------------------------------- labels


def test_openrlhf_label_with_criteria_but_no_name_is_the_rows_rubric() -> None:
    fn = orl.make_reward_func(None, "fake", cache=False)
    label = json.dumps({"criteria": RUBRIC["criteria"]})
    got = fn(["Q?A."], ["Q?"], [label])
    assert got["rewards"].tolist() == pytest.approx(expected(["Q?"], ["A."]), abs=1e-6)
    assert got["extra_logs"]["rubrix_ok"].tolist() == [1.0]


def test_openrlhf_label_rubric_id_and_group_id_are_honoured() -> None:
    fn = orl.make_reward_func(None, "fake", cache=False, failure="group_mean")
    helpful = expected(["Q?"], ["A."], rubric="helpfulness")
    got = fn(["Q?A."], ["Q?"], [json.dumps({"rubric_id": "helpfulness"})])
    assert got["rewards"].tolist() == pytest.approx(helpful, abs=1e-6)
    labels = [json.dumps({"group_id": "g7", "rubric_id": "helpfulness"}), ""]
    items = fn.items(["Q?A.", "Q?B."], ["Q?", "Q?"], labels)
    assert [i.group_id for i in items] == ["g7", "Q?"]


@pytest.mark.parametrize("label, field", [
    ({"reference": True}, "labels[0].reference"),
    ({"rubric_id": 3}, "labels[0].rubric_id"),
    ({"refrence": "x"}, "labels[0].refrence"),
    ({"rubric_id": "no-such-rubric"}, "labels[0].rubric_id"),
])
def test_a_malformed_label_is_an_error_naming_it(label, field) -> None:
    fn = orl.make_reward_func(RUBRIC, "fake", cache=False)
    with pytest.raises(UserError) as info:
        fn(["Q?A."], ["Q?"], [json.dumps(label)])
    assert info.value.field == field


# ------------------------------------------------------------------------- failures, time


class SlowJudge(FakeJudge):
    async def judge(self, requests):
        await asyncio.sleep(2.0)
        return await super().judge(requests)


class RaisingJudge(FakeJudge):
    async def judge(self, requests):
        raise RuntimeError("backend exploded")


def test_a_sample_not_judged_by_the_deadline_is_a_typed_timeout() -> None:
    core = RubricReward(RUBRIC, SlowJudge(), cache=False, failure="constant:0.25", breaker=None,
                        deadline_s=0.2)
    started = time.perf_counter()
    [r] = core.score([RewardItem(prompt="Q?", response="A.")])
    assert time.perf_counter() - started < 1.5
    assert r.score is None and r.reward == 0.25 and r.imputed_by == "constant:0.25"
    assert {c.error for c in r.result.criteria.values()} == {"timeout"}
    assert core.counts["deadline_exceeded"] == 1


def test_a_judge_that_raises_gives_failed_samples_through_the_policy() -> None:
    core = RubricReward(RUBRIC, RaisingJudge(), cache=False, failure="constant:0", breaker=None)
    rewards = core.score([RewardItem(prompt="Q?", response=f"A{i}.") for i in range(3)])
    assert [r.reward for r in rewards] == [0.0, 0.0, 0.0]
    assert all(r.status == "failed" and "backend exploded" in (r.error or "") for r in rewards)


def test_calls_from_many_threads_share_batches() -> None:
    import concurrent.futures

    class Counting(FakeJudge):
        def __init__(self):
            super().__init__()
            self.batches = 0

        async def judge(self, requests):
            self.batches += 1
            await asyncio.sleep(0.05)
            return await super().judge(requests)

    judge = Counting()
    core = RubricReward(RUBRIC, judge, cache=False, window_ms=50)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        outs = list(pool.map(lambda i: core.score([RewardItem(prompt="Q?", response=f"A{i}")])[0].reward,
                             range(16)))
    assert outs == expected(["Q?"] * 16, [f"A{i}" for i in range(16)])
    assert judge.batches < 8  # merged, not one judge call per thread


# ----------------------------------------------------------------------- connection reuse


@pytest.fixture
def stub_server(tmp_path: Path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, str(HERE / "openai_stub.py"), str(port_file)])
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("stub server did not start")
        yield f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_ten_batch_score_run_keeps_its_connections(stub_server: str, tmp_path: Path) -> None:
    """One event loop per process: the API judge's pool lives across batches (at most
    ``--concurrency`` connections for the whole run, not a new pool per batch)."""
    samples = tmp_path / "samples.jsonl"
    rows = ({"id": f"s{i}", "prompt": f"Question {i}?", "response": f"Answer {i}."} for i in range(20))
    samples.write_text("".join(json.dumps(row) + "\n" for row in rows))
    env = {**os.environ, "OPENAI_API_KEY": "test", "RUBRIX_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "rubrix.cli", "score", str(samples), "-r", "helpfulness",
                           "-j", "openai:stub", "--base-url", stub_server, "--concurrency", "8",
                           "--batch-size", "2", "--no-cache", "-o", str(tmp_path / "out.jsonl")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and all(r["status"] == "ok" for r in rows)
    stats = httpx.get(f"{stub_server}/stats", timeout=10).json()
    assert stats["requests"] == 20 * 12 + 1  # ten batches of two samples × twelve criteria, and the preflight
    assert stats["connections"] - 1 <= 8, stats  # minus this /stats query's own connection
    assert stats["open"] <= 1  # the run closed its connections when it ended (this query's own is open)


# ------------------------------------------------------------------------------- batching


def test_waiting_answers_of_one_prompt_are_batched_together() -> None:
    """GRPO groups arrive interleaved (one HTTP request per sample); batches gather each group."""
    from rubrix.batching import MicroBatcher

    seen: list[list[str]] = []
    gate = asyncio.Event()

    async def process(items: list[str]) -> list[str]:
        seen.append(items)
        if len(seen) == 1:
            await gate.wait()  # hold the first batch so the rest queue up behind it
        return [i.upper() for i in items]

    async def run() -> list[list[str]]:
        batcher = MicroBatcher(process, max_batch=3, window_s=0.0, group=lambda item: item[0])
        first = batcher.submit(["x0"])
        await asyncio.sleep(0.01)
        tickets = [batcher.submit([name]) for name in ("a1", "b1", "a2", "b2", "a3", "b3")]
        gate.set()
        results = await asyncio.gather(first.future, *(t.future for t in tickets))
        await batcher.aclose()
        return results

    results = asyncio.run(run())
    assert [r[0] for r in results] == ["X0", "A1", "B1", "A2", "B2", "A3", "B3"]  # each caller's own answer
    assert seen == [["x0"], ["a1", "a2", "a3"], ["b1", "b2", "b3"]]


def test_rubrix_score_batches_by_prompt_and_keeps_file_order(tmp_path: Path) -> None:
    """Answers of one prompt scattered through a file are judged in one batch; rows keep file order."""
    from rubrix.runs import score_file

    class Recording(FakeJudge):
        def __init__(self):
            super().__init__()
            self.batches: list[set[str]] = []

        async def judge(self, requests):
            self.batches.append({r.messages[-1]["content"].split("Question ")[1][:1] for r in requests})
            return await super().judge(requests)

    rows = [{"id": f"s{i}", "prompt": f"Question {'ABCD'[i % 4]}?", "response": f"Answer {i}."}
            for i in range(16)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    judge = Recording()
    scorer = Scorer(RUBRIC, judge, cache=False)
    score_file(path, tmp_path / "out.jsonl", scorer=scorer, batch_size=4)
    out = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert out == [r["id"] for r in rows]
    assert judge.batches == [{"A"}, {"B"}, {"C"}, {"D"}]  # file order would mix all four in every batch


def test_a_full_queue_is_waited_out_in_order_and_leaves_nothing_behind() -> None:
    """``enter`` waits for room first come first served; a caller that times out or is cancelled
    while waiting leaves the line without losing anyone's room; ``submit`` still refuses."""
    from rubrix.batching import MicroBatcher, QueueFull

    gate = asyncio.Event()
    seen: list[list[str]] = []

    async def process(items: list[str]) -> list[str]:
        seen.append(items)
        await gate.wait()
        return [i.upper() for i in items]

    async def run() -> None:
        batcher = MicroBatcher(process, max_batch=2, window_s=0.0, max_queue=2)
        first = await batcher.enter(["a", "b"])          # fits; dispatched, held at the gate
        await asyncio.sleep(0.01)
        second = await batcher.enter(["c", "d"])         # the queue is empty again: fits
        with pytest.raises(QueueFull):
            batcher.submit(["x"])                        # the non-waiting form refuses
        late = asyncio.ensure_future(batcher.enter(["e"], timeout=0.05))
        gone = asyncio.ensure_future(batcher.enter(["f"]))
        waits = [asyncio.ensure_future(batcher.enter([n])) for n in ("g", "h")]
        await asyncio.sleep(0.01)
        assert batcher.waiting_samples == 4
        gone.cancel()
        with pytest.raises(TimeoutError):
            await late
        assert batcher.waiting_samples == 2 and batcher.waited_samples == 4
        gate.set()
        tickets = await asyncio.gather(*waits)
        results = await asyncio.gather(first.future, second.future, *(t.future for t in tickets))
        assert results == [["A", "B"], ["C", "D"], ["G"], ["H"]]
        assert batcher.waiting_samples == 0 and batcher.queued_samples == 0
        await batcher.aclose()

    asyncio.run(run())
    assert [s for s in seen if "e" in s or "f" in s] == []  # the ones that left were never judged
