"""docs/rewards.md's TRL configuration, run as written (the judge's address aside).

The other trainers' blocks need the trainers and run in their side environments
(tests/test_trainer_loaders.py); this one needs only rubrix. The judge is
``tests/openai_stub.py`` listening where the page's judge would (only the address is changed).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doc_configs import DOC_JUDGE_URL, block, commands

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def stub_url(tmp_path: Path):
    port_file = tmp_path / "stub.port"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_stub.py"), str(port_file), "0.0"])
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
    proc.terminate()
    proc.wait(timeout=10)


def test_trl_block_builds_the_reward_function_trl_calls(stub_url: str) -> None:
    text = block("trl")
    assert DOC_JUDGE_URL in text
    scope: dict = {}
    exec(compile(text.replace(DOC_JUDGE_URL, stub_url), "docs/rewards.md[trl]", "exec"), scope)
    reward = scope["reward"]
    assert inspect.iscoroutinefunction(reward) and reward.__name__ == "rubrix_helpfulness"
    prompts = [[{"role": "user", "content": "Capital of France?"}]] * 2
    completions = [[{"role": "assistant", "content": "Paris."}], [{"role": "assistant", "content": "Lyon."}]]
    values = asyncio.run(reward(prompts=prompts, completions=completions, completion_ids=None))
    assert len(values) == 2 and all(isinstance(v, float) and math.isfinite(v) for v in values)


def test_the_doc_blocks_are_commands_we_can_read() -> None:
    """Every bash block parses into commands (the side-environment tests run them)."""
    for name in ("verl", "verl-shared", "openrlhf", "openrlhf-http"):
        cmds = commands(block(name))
        assert cmds and all(argv for _, argv in cmds), name
    [(env, argv)] = commands(block("openrlhf"))
    assert env["RUBRIX_BASE_URL"] == DOC_JUDGE_URL
    path = argv[argv.index("--reward.remote_url") + 1]
    assert path.endswith("openrlhf_reward_func.py") and Path(path).is_file()


def test_the_entry_points_ship_in_the_wheel() -> None:
    """The files and the module the trainers load are in packages the wheel includes."""
    import tomllib

    from rubrix.integrations.entry_points import path

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert "rubrix_judge" in packages and "rubrix.integrations" in packages
    for trainer in ("openrlhf", "verl"):
        file = path(trainer)
        assert file.parent == ROOT / "rubrix" / "integrations"
        assert "from rubrix." in file.read_text() and "from ." not in file.read_text()  # absolute imports
