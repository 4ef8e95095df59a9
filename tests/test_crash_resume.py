"""Crashes mid-run: ``rubrix score`` killed with SIGKILL at random points, resumed each time.

The judge is ``-j fake`` (deterministic, named "fake" in every row): what is tested is the run
machinery — append + fsync per batch, ``--resume`` skipping written ids and cutting a half-written
last line, the verdict cache surviving a kill — not verdicts. Each test runs the real CLI as a
subprocess (``python -m rubrix.cli``) with RUBRIX_HOME and the cache in a temporary folder.

Kill points are drawn from a seeded RNG: a target row count between what is already written and
the end, plus a random few milliseconds, so the kill lands inside a run (between or during batch
writes), never only before it starts or after it ends.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROWS = 240
BATCH = 3
RUBRIC_YAML = """\
name: crash test
criteria:
  - id: answers
    text: The response answers the question.
    weight: 3
  - id: concise
    text: The response is concise.
    category: optional
  - id: rude
    text: The response insults the user.
    weight: -2
  - id: depth
    text: How thorough is the explanation?
    weight: 2
    scale: {1: none, 2: thin, 3: some, 4: good, 5: complete}
"""


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "RUBRIX_HOME": str(home / "rubrix_home"), "COLUMNS": "200", "NO_COLOR": "1"}


def _cmd(work: Path, output: str, cache: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rubrix.cli", "score", str(work / "in.jsonl"), "-o", str(work / output),
            "-r", str(work / "rubric.yaml"), "-j", "fake:3", "--cache-path", str(work / cache),
            "--batch-size", str(BATCH), *extra]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    rows = [{"id": f"row-{i:04d}", "prompt": f"Question {i}: why is the sky blue?",
             "response": "Because of Rayleigh scattering. " * (i % 5) + f"({i})"} for i in range(ROWS)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "rubric.yaml").write_text(RUBRIC_YAML, encoding="utf-8")
    return tmp_path


def _run(work: Path, output: str, cache: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(work, output, cache, *extra), env=_env(work), capture_output=True, text=True,
                          timeout=120)


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _rows(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), "the output ends in a partial line"
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def _check_damage(path: Path) -> int:
    """After a kill: every line but possibly the last is a complete row. Returns complete rows."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    lines = data.split(b"\n")
    for line in lines[:-1]:
        json.loads(line)  # a complete line is always a whole row
    return len(lines) - 1


@pytest.fixture
def reference(work: Path) -> list[dict]:
    proc = _run(work, "reference.jsonl", "ref-cache.sqlite")
    assert proc.returncode == 0, proc.stderr
    return _rows(work / "reference.jsonl")


def test_sigkill_ten_times_then_resume(work: Path, reference: list[dict]) -> None:
    rng = random.Random(20240917)
    out = work / "out.jsonl"
    kills = []
    for round_ in range(10):
        done = _check_damage(out)
        remaining = ROWS - done
        if remaining <= 1:
            break
        # leave room for the rounds still to come (and never wait for the last batches), so every
        # round kills a run that is under way
        target = min(done + rng.randint(1, max(1, remaining // (10 - round_))), ROWS - 2 * BATCH)
        proc = subprocess.Popen(_cmd(work, "out.jsonl", "cache.sqlite", "--resume"), env=_env(work),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _lines(out) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.01))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        after = _check_damage(out)
        kills.append((target, after, proc.returncode))
        assert proc.returncode == -signal.SIGKILL, f"round {round_}: the run ended before the kill {kills}"
    assert len(kills) == 10, kills
    assert sum(1 for _, after, _ in kills if 0 < after < ROWS) >= 8, kills

    final = _run(work, "out.jsonl", "cache.sqlite", "--resume")
    assert final.returncode == 0, final.stderr
    rows = _rows(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == ROWS, "every id exactly once"
    assert rows == reference, "rewards and verdicts identical to the uninterrupted run, in input order"

    manifest = json.loads((work / "out.jsonl.manifest.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    assert counts["samples_total"] == ROWS
    assert counts["samples_skipped_resume"] + counts["samples_scored"] == ROWS
    assert sum(counts["status"].values()) == ROWS
    assert not counts["interrupted"]
    ref_manifest = json.loads((work / "reference.jsonl.manifest.json").read_text(encoding="utf-8"))
    assert counts["mean_reward_clipped"] == pytest.approx(ref_manifest["counts"]["mean_reward_clipped"])
    assert counts["met_rate"] == ref_manifest["counts"]["met_rate"]


def test_sigint_stops_cleanly_and_says_how_to_resume(work: Path, reference: list[dict]) -> None:
    out = work / "out.jsonl"
    proc = subprocess.Popen(_cmd(work, "out.jsonl", "cache.sqlite"), env=_env(work), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _lines(out) < ROWS // 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "Traceback" not in stderr + stdout
    assert "interrupted" in stderr
    resume_line = next(line.strip() for line in stderr.splitlines()
                       if line.strip().startswith("rubrix score"))
    assert resume_line.endswith("--resume") and str(out) in resume_line

    rows = _rows(out)  # flushed, no partial line
    assert 0 < len(rows) < ROWS
    assert rows == reference[:len(rows)]
    manifest = json.loads((work / "out.jsonl.manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["interrupted"] is True
    assert manifest["counts"]["samples_scored"] == len(rows), "the manifest counts exactly what is on disk"

    # the printed command, run as is, finishes the job
    argv = resume_line.split()[1:]
    assert argv[0] == "score"
    final = subprocess.run([sys.executable, "-m", "rubrix.cli", *argv], env=_env(work), capture_output=True,
                           text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert _rows(out) == reference


# ----------------------------------------------------------------------------------- rubrix extract

# ``rubrix extract`` cannot be pointed at a scripted proposer, so the child process runs the same
# library call the command runs (:func:`rubrix.extract.extract` with ``resume=True``), with FAKE
# judges that are deterministic: the proposer first offers a criterion both answers meet (a tie,
# so the pair needs a revision), then one only the chosen answer meets; the validator says
# "The response mentions X." is met iff X is in the fenced answer.
EXTRACT_DRIVER = r'''
import json, re, sys, time
import numpy as np
from rubrix.extract import ExtractConfig, GeneralizeConfig, extract
from rubrix._aio import run as run_sync
from rubrix.judges.base import Generation, Verdict
from rubrix.scoring import Scorer


class FakeProposer:
    name = "fake:scripted-proposer"
    reads_logprobs = True

    def identity(self):
        return self.name

    async def judge(self, requests):
        raise AssertionError("the proposer only generates")

    async def generate(self, messages, *, max_tokens=512, stop=None, **kw):
        time.sleep(0.01)
        out = []
        for m in messages:
            user = m[-1]["content"]
            if "Group these criteria" in user:
                out.append(Generation('{"themes": [{"theme": "The response names what was asked.", '
                                      '"tips": [1, 2]}]}'))
                continue
            n = re.search(r"alpha(\d+)", user).group(1)
            word = "alpha" if "did not separate" in user else "beta"
            out.append(Generation(json.dumps({"criteria": [f"The response mentions {word}{n}."]})))
        return out

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    async def aclose(self):
        return None


class FakeKeywordJudge:
    name = "fake:keyword"
    reads_logprobs = True

    def identity(self):
        return self.name

    async def judge(self, requests):
        out = []
        for req in requests:
            text = req.messages[-1]["content"]
            answer = re.search(r"<<<(ANSWER-[0-9a-f]+)>>>\n(.*?)\n<<<END \1>>>", text, re.S)
            stmt = re.search(r"Statement: (.*)$", text, re.S)
            word = stmt.group(1).strip().rstrip(".").split()[-1].lower()
            met = word in answer.group(2).lower()
            out.append(Verdict(p=1.0 if met else 0.0, label="Yes" if met else "No", from_logprobs=True))
        return out

    async def generate(self, messages, *, max_tokens=512, stop=None, **kw):
        return [Generation('{"themes": []}') for _ in messages]

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    async def aclose(self):
        return None


class FakeEmbedder:
    name = "fake:bow"

    def identity(self):
        return self.name

    def embed(self, texts):
        z = np.zeros((len(texts), 64))
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                z[i, sum(map(ord, w)) % 64] += 1.0
        return z / np.linalg.norm(z, axis=1, keepdims=True)


pairs, out = sys.argv[1], sys.argv[2]
scorer = Scorer(None, FakeKeywordJudge(), cache=False)
run_sync(extract(pairs, out, proposer=FakeProposer(), scorer=scorer, embedder=FakeEmbedder(),
                 config=ExtractConfig(batch_size=2), gen_config=GeneralizeConfig(min_gain=0.0, max_size=8),
                 resume=True))
'''
PAIRS = 40


def _events(log: Path) -> list[dict]:
    if not log.exists():
        return []
    data = log.read_bytes()
    return [json.loads(line) for line in data.split(b"\n")[:-1]]  # a partial last line is crash damage


def _done(log: Path) -> list[str]:
    return [e["pair"] for e in _events(log) if e.get("event") == "done"]


def _extract(work: Path, out: str) -> list[str]:
    return [sys.executable, str(work / "driver.py"), str(work / "pairs.jsonl"), str(work / out)]


def test_extract_sigkill_ten_times_then_resume(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    from rubrix.extract import side_paths
    from rubrix.rubric import load_rubric

    work = tmp_path
    (work / "driver.py").write_text(EXTRACT_DRIVER, encoding="utf-8")
    pairs = [{"id": f"p{i:02d}", "prompt": f"Name two things for case {i}.",
              "chosen": f"alpha{i} and beta{i}.", "rejected": f"beta{i} only."} for i in range(PAIRS)]
    (work / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")

    ref = subprocess.run(_extract(work, "ref.yaml"), env=_env(work), capture_output=True, text=True,
                         timeout=120)
    assert ref.returncode == 0, ref.stderr
    ref_log = side_paths(work / "ref.yaml")["log"]
    assert sorted(_done(ref_log)) == sorted(p["id"] for p in pairs)

    rng = random.Random(7)
    log = side_paths(work / "core.yaml")["log"]
    kills = []
    for round_ in range(10):
        done = len(_done(log))
        remaining = PAIRS - done
        target = min(done + rng.randint(1, max(1, remaining // (10 - round_))), PAIRS - 4)
        proc = subprocess.Popen(_extract(work, "core.yaml"), env=_env(work), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(_done(log)) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.01))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills.append((target, len(_done(log)), proc.returncode))
        assert proc.returncode == -signal.SIGKILL, f"round {round_}: the run ended before the kill {kills}"
        assert len(set(_done(log))) == len(_done(log)), f"a finished pair was redone: {kills}"

    final = subprocess.run(_extract(work, "core.yaml"), env=_env(work), capture_output=True, text=True,
                           timeout=120)
    assert final.returncode == 0, final.stderr
    assert log.read_bytes().endswith(b"\n")
    done = _done(log)
    assert sorted(done) == sorted(p["id"] for p in pairs), "every pair finished exactly once: none lost"
    assert len(done) == len(set(done)), "no finished (validated) pair was redone"

    def kept(log_path: Path) -> dict[str, list]:
        return {e["pair"]: e["kept"] for e in _events(log_path) if e.get("event") == "done"}

    assert kept(log) == kept(ref_log), "the same criteria validated for every pair"
    got, want = load_rubric(str(work / "core.yaml")), load_rubric(str(work / "ref.yaml"))
    assert [(c.text, c.weight) for c in got.criteria] == [(c.text, c.weight) for c in want.criteria]
