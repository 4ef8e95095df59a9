"""rubrix's reward entry points loaded and called by the trainers' own code (verl, OpenRLHF, verifiers).

The trainers are not in the default environment (verl pins an older transformers, OpenRLHF
needs flash-attn and vLLM, verifiers pins openai < 3), so each runs in a *side environment*:
``.ci/side-envs.sh`` builds one virtual environment per trainer from PyPI — the trainer's own
wheel with ``--no-deps`` plus the few pure-Python packages its reward-loading modules import,
on top of this environment's torch and transformers (a ``.pth`` file), CPU only. The tests of a
trainer run directly where it is importable; otherwise ``test_in_side_environment[<trainer>]``
runs them with that environment's interpreter (a subprocess) and fails if they do not pass
there. CI sets ``RUBRIX_REQUIRE_SIDE_ENVS=1``, so a missing side environment fails instead of
skipping.

They use the trainers' real loaders and call paths — verl's ``get_custom_reward_fn`` (file and
``pkg://`` forms) with its ``naive`` and ``rate_limited`` managers on real ``DataProto`` items,
OpenRLHF's ``SingleTurnAgentExecutor`` (which loads a file by path) with a stub generation engine,
verifiers' judge resolution by id — with the FakeJudge (``RUBRIX_JUDGE=fake``) or
``tests/openai_stub.py`` (an OpenAI-compatible server on 127.0.0.1) standing in for the judge.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rubrix.integrations.entry_points import path as entry_path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SIDE_ENVS = Path(os.environ.get("RUBRIX_SIDE_ENVS", "/tmp/rubrix-side"))
MODULES = {"verl": "verl", "openrlhf": "openrlhf", "verifiers": "verifiers.v1"}
#: the test files and how many of their tests must pass in each side environment
SIDE_TESTS = {"verl": (["tests/test_trainer_loaders.py"], 7),
              "openrlhf": (["tests/test_trainer_loaders.py"], 3),
              "verifiers": (["tests/test_trainer_loaders.py", "tests/test_verifiers_adapter.py"], 4)}


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def needs(trainer: str):
    return pytest.mark.skipif(not importable(MODULES[trainer]),
                              reason=f"{trainer} is not importable here; test_in_side_environment[{trainer}] "
                                     "runs this test in its side environment")


@pytest.mark.parametrize("trainer", sorted(MODULES))
def test_in_side_environment(trainer: str) -> None:
    """This file's tests of ``trainer``, run by the interpreter of its side environment."""
    if importable(MODULES[trainer]):
        pytest.skip(f"{trainer} is importable here: its tests ran directly")
    python = SIDE_ENVS / trainer / "bin" / "python"
    if not python.exists():
        message = (f"no side environment for {trainer} at {python.parent.parent}: "
                   "bash .ci/side-envs.sh builds it")
        if os.environ.get("RUBRIX_REQUIRE_SIDE_ENVS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    files, at_least = SIDE_TESTS[trainer]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *files,
                           "-k", f"{trainer} and not test_in_side_environment"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    passed = re.search(r"(\d+) passed", tail)
    assert passed and int(passed.group(1)) >= at_least, tail

def test_api_judge_on_the_sdk_a_trainer_pins() -> None:
    """verifiers 0.4 pins ``openai<3``: the API judge's tests, run on that SDK in its side environment."""
    python = SIDE_ENVS / "verifiers" / "bin" / "python"
    if not python.exists():
        if os.environ.get("RUBRIX_REQUIRE_SIDE_ENVS") == "1":
            pytest.fail(f"no side environment for verifiers at {python.parent.parent}")
        pytest.skip("no verifiers side environment (bash .ci/side-envs.sh builds it)")
    version = subprocess.run([str(python), "-c", "import openai; print(openai.__version__)"],
                             capture_output=True, text=True, timeout=120).stdout.strip()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert int(version.split(".")[0]) < 3, f"the side environment has openai {version}, not the pinned 2.x"
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
                           "not model and not server", "tests/test_openai_sdk.py",
                           "tests/test_openai_judge.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, f"openai {version}:\n{tail}"
    passed = re.search(r"(\d+) passed", tail)
    assert passed and int(passed.group(1)) >= 100, tail


QUESTION = "What is the capital of Australia? Answer in one sentence."
RESPONSES = ["The capital of Australia is Canberra.", "Sydney.", "Australia has many cities."]


def _tokenizer():
    from transformers import AutoTokenizer

    from rubrix.judges.embedded import checkpoint_dir, resolve_name

    path = checkpoint_dir(resolve_name("0.5b"))
    if not (path / "tokenizer.json").is_file():
        pytest.skip("embedded 0.5B tokenizer not prepared")
    return AutoTokenizer.from_pretrained(path)


@pytest.fixture(autouse=True)
def _fake_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUBRIX_JUDGE", "fake")
    monkeypatch.setenv("RUBRIX_RUBRIC", str(EXAMPLES / "rubric.yaml"))


def _expected(prompt, response: str, reference: str | None = None) -> float:
    from rubrix.judges.fake import FakeJudge
    from rubrix.records import Sample
    from rubrix.scoring import Scorer

    scorer = Scorer(str(EXAMPLES / "rubric.yaml"), FakeJudge(), cache=False)
    return scorer.score([Sample(id="x", prompt=prompt, response=response, reference=reference)])[0].reward


@needs("verl")
def test_verl_loader_and_naive_reward_manager() -> None:
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn

    tokenizer = _tokenizer()
    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": str(EXAMPLES / "verl_reward.py"), "name": "compute_score", "reward_kwargs": {"unused": 1}}}})
    fn = get_custom_reward_fn(config)
    manager = NaiveRewardManager(config, tokenizer, fn)
    assert manager.is_async_reward_score                  # verl awaits it instead of using a thread pool

    def item(response: str) -> DataProto:
        prompt_ids = tokenizer(QUESTION, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        pad = [tokenizer.pad_token_id] * 4
        return DataProto.from_dict(
            tensors={"prompts": torch.tensor([prompt_ids]), "responses": torch.tensor([response_ids + pad]),
                     "attention_mask": torch.tensor([[1] * (len(prompt_ids) + len(response_ids)) + [0] * 4])},
            non_tensors={"data_source": np.array(["demo"], dtype=object),
                         "reward_model": np.array([{"ground_truth": "Canberra", "style": "rubric"}],
                                                  dtype=object),
                         "extra_info": np.array([{"question": QUESTION, "index": 0}], dtype=object)})

    async def worker():  # a reward-loop worker gathers run_single over its chunk
        return await asyncio.gather(*[manager.run_single(item(r)) for r in RESPONSES])

    outs = manager.loop.run_until_complete(worker())  # the worker's own loop, captured by the manager
    infos = [o["reward_extra_info"] for o in outs]
    keys = list(infos[0].keys())                          # what verl's reward loop does next
    columns = {k: np.array([info[k] for info in infos]) for k in keys}
    assert keys[:4] == ["score", "rubrix_ok", "rubrix_imputed", "rubrix_error"] and "c_correct" in keys
    assert all(np.isfinite(v).all() for v in columns.values())
    for response, out in zip(RESPONSES, outs, strict=True):
        # the manager decodes with skip_special_tokens=True, so the EOS is gone
        assert out["reward_score"] == pytest.approx(_expected(QUESTION, response, "Canberra"))


@needs("openrlhf")
def test_openrlhf_single_turn_executor_with_the_python_file() -> None:
    torch = pytest.importorskip("torch")
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    tokenizer = _tokenizer()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], tokenize=False,
                                           add_generation_prompt=True)
    executor = SingleTurnAgentExecutor(remote_rm_url=str(EXAMPLES / "openrlhf_reward.py"))
    assert executor.reward_func is not None

    class StubEngine:  # stands in for vLLM: "generates" a fixed response
        def __init__(self, text: str):
            self.ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

        async def generate(self, prompt_ids, params, multi_modal_data=None):
            return SimpleNamespace(outputs=[SimpleNamespace(token_ids=self.ids, logprobs=None,
                                                            finish_reason="stop")])

    params = SimpleNamespace(max_tokens=64, logprobs=None)
    system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."  # template default
    messages = [{"role": "system", "content": system}, {"role": "user", "content": QUESTION}]
    for response in RESPONSES:
        out = asyncio.run(executor.execute(prompt, "", params, 512, tokenizer, StubEngine(response)))
        assert isinstance(out["reward"], torch.Tensor) and out["reward"].shape == (1,)
        assert math.isfinite(out["reward"].item())
        assert out["reward"].item() == pytest.approx(_expected(messages, response), abs=1e-6)
        assert out["extra_logs"]["rubrix_ok"].tolist() == [1.0]


@needs("verl")
def test_verl_loads_the_module_itself_with_reward_kwargs() -> None:
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": "pkg://rubrix.integrations.verl", "name": "compute_score",
        "reward_kwargs": {"rubric": "harmlessness", "judge": "fake", "cache": "0"}}}})
    fn = get_custom_reward_fn(config)
    out = asyncio.run(fn(data_source="d", solution_str="Paris.", ground_truth="Paris",
                         extra_info={"question": "Capital of France?"}))
    assert list(out)[:3] == ["score", "rubrix_ok", "rubrix_imputed"]
    assert "c_no_serious_harm_uplift" in out and all(math.isfinite(v) for v in out.values())


# ---------------------------------------------------------------------------------------------
# the entry points that ship in the wheel, through the trainers' own loaders


@pytest.fixture
def stub_judge(tmp_path: Path):
    """``tests/openai_stub.py`` on 127.0.0.1: every verdict P(yes) = 0.8; ``/stats``: the last request."""
    port_file = tmp_path / "stub.port"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_stub.py"), str(port_file), "0.0"])
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline, "stub judge did not start"
        time.sleep(0.05)
    yield f"127.0.0.1:{port_file.read_text().strip()}"
    proc.terminate()
    proc.wait(timeout=10)


BINARY_RUBRIC = {"name": "short_answer", "criteria": [  # yes/no criteria only: what the stub judge answers
    {"id": "correct", "text": "The response's main answer is factually correct.", "weight": 3},
    {"id": "direct", "text": "The response gives its answer in the first sentence.", "weight": 1},
    {"id": "padding", "text": "The response has sentences that add nothing to the answer.", "weight": -1}]}


@pytest.fixture
def binary_rubric(tmp_path: Path) -> Path:
    path = tmp_path / "short_answer.json"
    path.write_text(json.dumps(BINARY_RUBRIC))
    return path


def stub_last(address: str) -> dict:
    import httpx

    return httpx.get(f"http://{address}/stats", timeout=10).json()["last"]


def _stub_expected(address: str, prompt, response: str, rubric: Path, reference: str | None = None) -> float:
    from rubrix.judges.openai import OpenAIJudge
    from rubrix.records import Sample
    from rubrix.scoring import Scorer

    scorer = Scorer(str(rubric), OpenAIJudge("stub-judge", base_url=f"http://{address}/v1"), cache=False)
    return scorer.score([Sample(id="x", prompt=prompt, response=response, reference=reference)])[0].reward


def _verl_item(tokenizer, response: str, ground_truth: str = "Canberra", extra: dict | None = None):
    import numpy as np
    import torch
    from verl import DataProto

    prompt_ids = tokenizer(QUESTION, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    pad = [tokenizer.pad_token_id] * 4
    return DataProto.from_dict(
        tensors={"prompts": torch.tensor([prompt_ids]), "responses": torch.tensor([response_ids + pad]),
                 "attention_mask": torch.tensor([[1] * (len(prompt_ids) + len(response_ids)) + [0] * 4])},
        non_tensors={"data_source": np.array(["demo"], dtype=object),
                     "reward_model": np.array([{"ground_truth": ground_truth, "style": "rubric"}],
                                              dtype=object),
                     "extra_info": np.array([{"question": QUESTION, "index": 0, **(extra or {})}],
                                            dtype=object)})


def _verl_config(path: str, **reward_kwargs):
    from omegaconf import OmegaConf

    return OmegaConf.create({"reward": {"max_concurrent": 4, "custom_reward_function": {
        "path": path, "name": "compute_score", "reward_kwargs": reward_kwargs}}})


@needs("verl")
def test_verl_file_and_pkg_forms_load_the_same_entry_point() -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cli = subprocess.run([sys.executable, "-m", "rubrix.cli", "integrations", "path", "verl"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert cli.returncode == 0 and cli.stdout.strip() == str(entry_path("verl"))
    kwargs = {"rubric": "harmlessness", "judge": "fake", "cache": "0"}
    by_file = get_custom_reward_fn(_verl_config(cli.stdout.strip(), **kwargs))     # every verl
    by_pkg = get_custom_reward_fn(_verl_config("pkg://rubrix.integrations.verl", **kwargs))  # verl >= 0.7
    call = {"data_source": "d", "solution_str": "Paris.", "ground_truth": "Paris",
            "extra_info": {"question": "Capital of France?"}}
    a, b = asyncio.run(by_file(**call)), asyncio.run(by_pkg(**call))
    assert a == b and a["rubrix_ok"] == 1.0 and all(math.isfinite(v) for v in a.values())


@needs("verl")
def test_verl_rate_limited_manager_keeps_keys_and_stops_on_the_breaker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """verl's rate_limited manager turns an exception into other keys; rubrix never gives it one."""
    import numpy as np
    from verl.experimental.reward_loop.reward_manager.limited import RateLimitedRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from rubrix.integrations.verl import RewardRunStopped

    monkeypatch.delenv("RUBRIX_RUBRIC")  # per-row rubrics only: one row's is malformed
    tokenizer = _tokenizer()
    config = _verl_config(str(entry_path("verl")), judge="fake", cache="0", breaker="0.5")
    fn = get_custom_reward_fn(config)
    RateLimitedRewardManager.init_class(config, tokenizer)
    manager = RateLimitedRewardManager(config, tokenizer, fn)
    good = json.dumps([{"criterion": "Names Canberra.", "points": 5}])
    rows = [_verl_item(tokenizer, r, extra={"rubric": good}) for r in RESPONSES]
    rows.insert(1, _verl_item(tokenizer, "Canberra.", extra={"rubric": '[{"criterion": 3}]'}))

    async def worker(items):
        return await asyncio.gather(*[manager.run_single(i) for i in items])

    infos = [o["reward_extra_info"] for o in manager.loop.run_until_complete(worker(rows))]
    keys = list(infos[0].keys())                                   # what verl's reward loop does next
    columns = {k: np.array([info[k] for info in infos]) for k in keys}   # a KeyError here is the bug
    assert "error" not in keys and "timeout" not in keys
    assert columns["rubrix_error"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert columns["rubrix_ok"].tolist() == [1.0, 0.0, 1.0, 1.0]
    # rows that keep failing (no rubric at all) stop the run through the manager, not as 0.0
    with pytest.raises(RewardRunStopped, match="circuit breaker"):
        for _ in range(12):
            manager.loop.run_until_complete(worker([_verl_item(tokenizer, "x", ground_truth="")]))


@needs("verl")
def test_verl_reward_router_address_makes_verls_judge_model_the_judge(
        stub_judge: str, binary_rubric: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a GenRM, verl passes its router's address; rubrix judges through it (model from /v1/models)."""
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn

    monkeypatch.delenv("RUBRIX_JUDGE")  # verl manages the judge: no judge of rubrix's own
    tokenizer = _tokenizer()
    config = _verl_config(str(entry_path("verl")), rubric=str(binary_rubric), cache="0")
    manager = NaiveRewardManager(config, tokenizer, get_custom_reward_fn(config),
                                 reward_router_address=stub_judge, reward_model_tokenizer=tokenizer)
    out = manager.loop.run_until_complete(manager.run_single(_verl_item(tokenizer, RESPONSES[0])))
    assert stub_last(stub_judge)["params"]["model"] == "stub-judge"  # discovered at /v1/models
    assert out["reward_extra_info"]["rubrix_ok"] == 1.0, out
    expected = _stub_expected(stub_judge, QUESTION, RESPONSES[0], binary_rubric, reference="Canberra")
    assert out["reward_score"] == pytest.approx(expected)


@needs("openrlhf")
def test_openrlhf_loads_the_shipped_file_by_path() -> None:
    """The wheel's file, found by ``rubrix integrations path openrlhf``, loaded by OpenRLHF's executor."""
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    cli = subprocess.run([sys.executable, "-m", "rubrix.cli", "integrations", "path", "openrlhf"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert cli.returncode == 0, cli.stderr
    executor = SingleTurnAgentExecutor(remote_rm_url=cli.stdout.strip())
    prompt = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    query = prompt + RESPONSES[0] + "<|im_end|>"
    [out] = asyncio.run(executor._fetch_rewards_via_func([query], [prompt], [""]))
    messages = [{"role": "user", "content": QUESTION}]
    assert out["rewards"].tolist() == [pytest.approx(_expected(messages, RESPONSES[0]), abs=1e-6)]
    assert out["extra_logs"]["rubrix_ok"].tolist() == [1.0]


class _Trace:
    """What a verifiers v1 judge reads of a Trace: the last reply, the transcript, a metrics sink."""

    def __init__(self, reply: str):
        self.last_reply = reply
        self.transcript = f"[assistant]\n{reply}"
        self.metrics: dict[str, float] = {}

    def record_metric(self, name: str, value: float) -> None:
        self.metrics[name] = float(value)


@needs("verifiers")
def test_verifiers_finds_the_rubrix_judge_by_id_and_uses_its_endpoint(
        stub_judge: str, binary_rubric: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No module of the user's own; model, base_url, api_key_var, headers, sampling all reach the judge."""
    import verifiers.v1 as vf
    from pydantic import ValidationError
    from verifiers.v1.configs.judge import resolve_judges
    from verifiers.v1.utils.loaders import load_judge

    monkeypatch.setenv("STUB_JUDGE_KEY", "k-123")
    entry = {"id": "rubrix-judge", "rubric": str(binary_rubric), "model": "stub-judge",
             "base_url": f"http://{stub_judge}/v1", "api_key_var": "STUB_JUDGE_KEY",
             "headers": {"X-Team": "t1"}, "sampling": {"temperature": 0.0, "top_p": 0.5}}
    [config] = resolve_judges([entry])
    judge = load_judge(config)
    trace = _Trace(RESPONSES[0])
    score = asyncio.run(judge.score(vf.TaskData(prompt=QUESTION), trace))
    last = stub_last(stub_judge)  # before the reference judge below asks the stub too
    assert score == pytest.approx(_stub_expected(stub_judge, QUESTION, RESPONSES[0], binary_rubric))
    assert set(trace.metrics) == {"rubrix-judge/correct", "rubrix-judge/direct", "rubrix-judge/padding"}
    assert last["headers"]["authorization"] == "Bearer k-123" and last["headers"]["x-team"] == "t1"
    assert last["params"]["model"] == "stub-judge" and last["params"]["top_p"] == 0.5
    for bad, needle in (({"modle": "x"}, "Extra inputs"), ({"rubrix_judge": "embedded"}, "judges locally"),
                        ({"sampling": {"max_tokens": 4}}, "sampling.max_tokens is not supported")):
        with pytest.raises(ValidationError, match=needle):
            resolve_judges([{**entry, **bad}])


# ---------------------------------------------------------------------------------------------
# docs/rewards.md: each trainer's configuration, read from the page and run through the trainer


def _serve_from_doc(argv: list[str], replace: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """Start the page's ``rubrix serve ...`` command (``replace``: words changed for the test machine)."""
    assert argv[:2] == ["rubrix", "serve"], argv
    args = [replace.get(w, w) for w in argv[2:]]
    args[args.index("--port") + 1] = "0"
    log = tmp_path / f"serve-{time.monotonic_ns()}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "rubrix.cli", "serve", *args], stdout=fh,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT),
                                     "RUBRIX_HOME": str(tmp_path / "h")})
    deadline = time.monotonic() + 60
    while not (m := re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return proc, m.group(1)


@needs("verl")
def test_verl_config_from_the_docs(stub_judge: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from doc_configs import DOC_JUDGE_URL, block, commands, hydra_overrides
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    monkeypatch.delenv("RUBRIX_JUDGE")
    monkeypatch.delenv("RUBRIX_RUBRIC")
    [(_, argv)] = commands(block("verl"))
    assert argv[:3] == ["python", "-m", "verl.trainer.main_ppo"]
    dotlist = [w.replace(DOC_JUDGE_URL, f"http://{stub_judge}/v1") for w in hydra_overrides(argv)]
    fn = get_custom_reward_fn(OmegaConf.from_dotlist(dotlist))
    out = asyncio.run(fn(data_source="d", solution_str="Paris.", ground_truth="Paris",
                         extra_info={"question": "Capital of France?"}))
    assert out["rubrix_ok"] == 1.0 and out["rubrix_error"] == 0.0 and len(out) == 4 + 12
    assert stub_last(stub_judge)["params"]["model"] == "gpt-4.1-mini"


@needs("verl")
def test_verl_shared_server_config_from_the_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's ``rubrix serve`` (its embedded judge swapped for the fake one: seconds, not minutes)."""
    from doc_configs import block, commands, hydra_overrides
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    monkeypatch.delenv("RUBRIX_JUDGE")
    [(_, serve), (_, train)] = commands(block("verl-shared"))
    proc, url = _serve_from_doc(serve, {"embedded": "fake"}, tmp_path)
    try:
        dotlist = hydra_overrides(train)
        assert "reward.custom_reward_function.reward_kwargs.server=http://127.0.0.1:8100" in dotlist
        assert "--port" in serve and serve[serve.index("--port") + 1] == "8100"
        dotlist = [w.replace("http://127.0.0.1:8100", url) for w in dotlist]
        fn = get_custom_reward_fn(OmegaConf.from_dotlist(dotlist))
        outs = [asyncio.run(fn(data_source="d", solution_str=f"Paris {i}.", ground_truth="",
                               extra_info={"question": "Capital of France?"})) for i in range(3)]
        assert all(o["rubrix_ok"] == 1.0 for o in outs) and {tuple(o) for o in outs} == {tuple(outs[0])}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@needs("openrlhf")
def test_openrlhf_configs_from_the_docs(stub_judge: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from doc_configs import DOC_JUDGE_URL, block, commands
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    from rubrix.integrations import openrlhf as orl

    judge_url = f"http://{stub_judge}/v1"
    prompt = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    query = prompt + RESPONSES[0] + "<|im_end|>"
    # the python file
    [(env, argv)] = commands(block("openrlhf"))
    for key, value in env.items():
        monkeypatch.setenv(key, value.replace(DOC_JUDGE_URL, judge_url))
    monkeypatch.setattr(orl, "_DEFAULT", {})  # configured from the environment on first use
    executor = SingleTurnAgentExecutor(remote_rm_url=argv[argv.index("--reward.remote_url") + 1])
    [out] = asyncio.run(executor._fetch_rewards_via_func([query], [prompt], [""]))
    assert out["extra_logs"]["rubrix_ok"].tolist() == [1.0] and math.isfinite(out["rewards"].item())
    # the HTTP server, sized for the step, at the URL given to OpenRLHF
    [(_, serve), (_, train)] = commands(block("openrlhf-http"))
    url = train[train.index("--reward.remote_url") + 1]
    assert url == f"http://127.0.0.1:{serve[serve.index('--port') + 1]}/get_reward"
    proc, base = _serve_from_doc(serve, {DOC_JUDGE_URL: judge_url}, tmp_path)
    try:
        executor = SingleTurnAgentExecutor(remote_rm_url=url.replace("http://127.0.0.1:5000", base))
        [body] = asyncio.run(executor._fetch_rewards_via_http([query], [prompt], [""]))
        assert body["extra_logs"]["rubrix_ok"] == [1.0] and math.isfinite(body["rewards"][0])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@needs("verifiers")
def test_verifiers_config_from_the_docs(stub_judge: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    import verifiers.v1 as vf
    from doc_configs import DOC_JUDGE_URL, block
    from verifiers.v1.configs.judge import resolve_judges
    from verifiers.v1.utils.loaders import load_judge

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    [entry] = tomllib.loads(block("verifiers"))["taskset"]["task"]["judges"]
    assert entry["base_url"] == DOC_JUDGE_URL
    [config] = resolve_judges([{**entry, "base_url": f"http://{stub_judge}/v1"}])
    score = asyncio.run(load_judge(config).score(vf.TaskData(prompt=QUESTION), _Trace(RESPONSES[0])))
    last = stub_last(stub_judge)
    assert 0.0 <= score <= 1.0
    assert last["headers"]["x-team"] == "rl" and last["headers"]["authorization"] == "Bearer sk-test"
    assert last["params"]["model"] == "gpt-4.1-mini" and last["params"]["temperature"] == 0.0
