"""Which engine the embedded judge generates text with (pure logic; no model is loaded)."""

from __future__ import annotations

import pytest

from rubrix.errors import UserError
from rubrix.judges import llamacpp


def test_auto_uses_llama_cpp_on_cpu_only_when_installed_and_the_gguf_is_there(monkeypatch):
    monkeypatch.delenv(llamacpp.GENERATOR_ENV, raising=False)
    monkeypatch.setattr(llamacpp, "available", lambda: True)
    assert llamacpp.choose(None, "cpu") == "llama.cpp"
    assert llamacpp.choose("auto", "cuda") == "hf"          # GPUs generate fast in bf16
    assert llamacpp.choose(None, "cpu", gguf_ready=False) == "hf"
    monkeypatch.setattr(llamacpp, "available", lambda: False)
    assert llamacpp.choose(None, "cpu") == "hf"


def test_explicit_choices_and_environment(monkeypatch):
    monkeypatch.setattr(llamacpp, "available", lambda: True)
    monkeypatch.setenv(llamacpp.GENERATOR_ENV, "hf")
    assert llamacpp.choose(None, "cpu") == "hf"
    assert llamacpp.choose("llama.cpp", "cuda") == "llama.cpp"  # an explicit choice wins over the env
    with pytest.raises(UserError, match="unknown generator"):
        llamacpp.choose("vllm", "cpu")
    monkeypatch.setattr(llamacpp, "available", lambda: False)
    with pytest.raises(UserError, match="llama-cpp-python"):
        llamacpp.choose("llama.cpp", "cpu")


def test_judge_identity_names_the_generator_so_caches_never_mix():
    from types import SimpleNamespace

    from rubrix.judges.hf import HFJudge

    judge = SimpleNamespace(name="embedded:qwen-coder-0.5b", dtype="torch.float32", device="cpu",
                            generator=None)
    plain = HFJudge.identity(judge)
    judge.generator = SimpleNamespace(name="llama.cpp")
    assert HFJudge.identity(judge) == plain + "|gen=llama.cpp"
