"""Text generation for the embedded judge through llama.cpp, when it is installed.

Why a second engine for the same model: the embedded weights ship as a Q4_K_M GGUF. transformers
dequantizes them to fp32 for verdicts, where one forward pass over shared prefixes is what
counts, and that is fast. Generation is different: every new token re-reads all the weights,
so on a CPU it is bound by memory bandwidth, and llama.cpp reads 4-bit weights (about 1 GB for
the 1.5B model) where fp32 reads 6 GB. Measured on the 2-core development machine:
~11 tokens/s against ~1-2 tokens/s, which decides whether ``rubrix extract`` runs in minutes or
hours. Verdicts keep coming from transformers (exact next-token probabilities, shared prefixes);
only free text (criterion proposals, revisions, themes, JSON-format verdicts) comes from here.

llama.cpp's quantized arithmetic is not bit-identical to the fp32 forward pass, so greedy text
can differ in places; the judge's identity names the generator so caches never mix the two.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path

from ..errors import UserError
from .base import Generation
from .parsing import cut_at_stop

#: environment variable that picks the embedded judge's generator: auto, hf or llama.cpp
GENERATOR_ENV = "RUBRIX_GENERATOR"
GENERATORS = ("auto", "hf", "llama.cpp")


def available() -> bool:
    """Whether llama-cpp-python can be imported (it is an optional, natively built package)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def choose(requested: str | None, device: str, *, gguf_ready: bool = True) -> str:
    """Resolve ``auto`` to a concrete generator: llama.cpp on CPU when installed, else hf.

    On a GPU transformers generates fast enough and in bf16, so ``auto`` keeps it there; without
    the GGUF file (only a converted checkpoint left) ``auto`` falls back to transformers too.
    """
    choice = (requested or os.environ.get(GENERATOR_ENV) or "auto").strip().lower()
    if choice not in GENERATORS:
        raise UserError(f"unknown generator {choice!r} (choose from {', '.join(GENERATORS)})",
                        field="generator")
    if choice == "auto":
        return "llama.cpp" if device == "cpu" and gguf_ready and available() else "hf"
    if choice == "llama.cpp" and not available():
        raise UserError("generator llama.cpp needs llama-cpp-python: bash scripts/setup.sh embedded,llama "
                        "(or pip install 'llama-cpp-python==0.3.36')", field="generator")
    return choice


class LlamaCppGenerator:
    """Greedy chat completions from a GGUF file, one conversation at a time.

    The model loads on first use (about a second from the page cache). Requests are serialized
    with a lock: a llama.cpp context is not safe to share between threads, and on a CPU two
    concurrent generations would only split the same cores.
    """

    name = "llama.cpp"

    def __init__(self, gguf: str | Path, *, n_ctx: int = 8192, threads: int | None = None):
        self.gguf = Path(gguf)
        if not self.gguf.is_file():
            raise UserError("GGUF file not found (run: rubrix models prepare)", file=str(self.gguf),
                            field="judge")
        self.n_ctx = n_ctx
        self.threads = threads or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                      else (os.cpu_count() or 1))
        self._llm = None
        self._lock = threading.Lock()

    def _model(self):
        if self._llm is None:
            from llama_cpp import Llama

            self._llm = Llama(model_path=str(self.gguf), n_ctx=self.n_ctx, n_threads=self.threads,
                              n_threads_batch=self.threads, verbose=False)
            # free the model while the native library is still loaded: left to the garbage
            # collector at interpreter exit, llama-cpp-python prints a traceback from __del__
            atexit.register(self.close)
        return self._llm

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    def generate_sync(self, messages: list[list[dict[str, str]]], *, max_tokens: int = 512,
                      stop: list[str] | None = None, json_mode: bool = False) -> list[Generation]:
        """One greedy answer per conversation; one that cannot be produced is a failed generation.

        ``json_mode`` constrains decoding to a JSON object with llama.cpp's grammar, so a small
        model cannot wander into prose where a structure was asked for. Token counts are
        llama.cpp's own (its tokenizer of the same GGUF).
        """
        extra = {"response_format": {"type": "json_object"}} if json_mode else {}
        out: list[Generation] = []
        with self._lock:
            llm = self._model()
            for convo in messages:
                t0 = time.perf_counter()
                try:
                    resp = llm.create_chat_completion(messages=list(convo), max_tokens=max_tokens,
                                                      temperature=0.0, top_k=1, stop=stop or None, **extra)
                except ValueError as exc:  # e.g. the prompt does not fit the context window
                    out.append(Generation.failed("input", f"llama.cpp: {exc}",
                                                 latency_s=time.perf_counter() - t0))
                    continue
                usage = resp.get("usage") or {}
                choice = resp["choices"][0]
                text = choice["message"].get("content") or ""
                # llama.cpp already stops there; cut defensively all the same
                out.append(Generation(text=cut_at_stop(text, stop),
                                      usage={k: int(usage[k]) for k in ("prompt_tokens", "completion_tokens")
                                             if isinstance(usage.get(k), int)},
                                      latency_s=time.perf_counter() - t0,
                                      truncated=choice.get("finish_reason") == "length"))
        return out
