"""`rubrix score --engine ray` on a local Ray instance gives the same rows as a single process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install 'rubrix[ray]'")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _score(tmp: Path, out: str, *args: str) -> list[dict]:
    cmd = [sys.executable, "-m", "rubrix.cli", "score", *args, "-o", str(tmp / out),
           "--cache-path", str(tmp / f"{out}.sqlite")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "RUBRIX_HOME": str(tmp / "home")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in (tmp / out).read_text().splitlines()]


def _assert_same_rows(a: list[dict], b: list[dict], tol: float = 1e-4) -> None:
    """Equal rows, probabilities within ``tol`` (batch shapes may differ in the last float bits)."""
    assert [r["id"] for r in a] == [r["id"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert {k: v for k, v in x.items() if k not in ("reward", "reward_raw", "criteria")} == \
            {k: v for k, v in y.items() if k not in ("reward", "reward_raw", "criteria")}
        assert x["reward"] == pytest.approx(y["reward"], abs=tol)
        assert x["criteria"].keys() == y["criteria"].keys()
        for cid in x["criteria"]:
            assert x["criteria"][cid]["p"] == pytest.approx(y["criteria"][cid]["p"], abs=tol)
            assert x["criteria"][cid]["error"] == y["criteria"][cid]["error"]


def test_ray_engine_matches_local_run_with_the_fake_judge(tmp_path):
    args = [str(EXAMPLES / "samples.jsonl"), "-r", "helpfulness", "-j", "fake", "--batch-size", "2"]
    local = _score(tmp_path, "local.jsonl", *args)
    ray_rows = _score(tmp_path, "ray.jsonl", *args, "--engine", "ray")
    assert ray_rows == local  # same judge, same requests: byte-identical rows, same order
    manifest = json.loads((tmp_path / "ray.jsonl.manifest.json").read_text())
    assert manifest["engine"] == "ray" and manifest["counts"]["samples_scored"] == len(local)


def test_ray_engine_resumes_like_a_local_run(tmp_path):
    args = [str(EXAMPLES / "samples.jsonl"), "-r", "helpfulness", "-j", "fake", "--batch-size", "2"]
    full = _score(tmp_path, "full.jsonl", *args)
    out = tmp_path / "part.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in full[:3]))
    rows = _score(tmp_path, "part.jsonl", *args, "--engine", "ray", "--resume")
    assert rows == full


@pytest.mark.model
def test_ray_engine_matches_local_run_with_the_embedded_judge(tmp_path):
    args = [str(EXAMPLES / "samples.jsonl"), "-r", str(EXAMPLES / "rubric.yaml"), "-j", "embedded:0.5b",
            "--batch-size", "3", "--limit", "3"]
    local = _score(tmp_path, "local.jsonl", *args)
    ray_rows = _score(tmp_path, "ray.jsonl", *args, "--engine", "ray")
    _assert_same_rows(ray_rows, local)
