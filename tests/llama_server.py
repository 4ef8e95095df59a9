"""Start and stop a real OpenAI-compatible server (``llama_cpp.server``) for the API-path tests.

The tests of :class:`rubrix.judges.openai.OpenAIJudge` talk to a real server process on
127.0.0.1 serving the embedded 0.5B GGUF, so they exercise the same wire format (logprobs,
``response_format``, usage) a user's vLLM or llama.cpp server produces.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

MODEL_ALIAS = "qwen-0.5b"


def free_port() -> int:
    """A port the OS just handed out (bind to port 0), free unless someone races us for it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def llama_server(gguf_path: str | os.PathLike[str], *, port: int | None = None, n_threads: int = 2,
                 n_ctx: int = 2048, startup_timeout_s: float = 120.0) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on ``gguf_path``; yield its base URL (``.../v1``).

    ``--logits_all true`` is needed for ``logprobs`` (llama-cpp-python refuses them otherwise).
    The server's output goes to a temporary log whose tail is shown if it does not come up
    within ``startup_timeout_s``. On exit the process is terminated, then killed.
    """
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log = Path(tempfile.mkstemp(prefix="llama_server_", suffix=".log")[1])
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path), "--model_alias", MODEL_ALIAS,
           "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(n_threads), "--n_ctx", str(n_ctx),
           "--logits_all", "true"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with status {proc.returncode} during startup; "
                                   f"log {log}:\n{_tail(log)}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not answer GET /v1/models within "
                                   f"{startup_timeout_s:g}s; log {log}:\n{_tail(log)}")
            time.sleep(0.25)
        yield base_url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            log.unlink()
