"""Where rubrix keeps data and caches, where a run's side files go, and how ``RUBRIX_*`` is read.

One home for paths and environment parsing, so that the verdict cache, the embedded weights and
every trainer adapter agree on them (``RUBRIX_HOME`` moves everything; ``XDG_CACHE_HOME`` is
honoured as other tools do).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError

_FALSE = ("0", "false", "no", "off", "none")
_TRUE = ("1", "true", "yes", "on")


def home_dir() -> Path:
    """The root of rubrix's caches: ``RUBRIX_HOME``, else ``$XDG_CACHE_HOME/rubrix`` (``~/.cache/rubrix``)."""
    home = os.environ.get("RUBRIX_HOME")
    if home:
        return Path(home)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rubrix"


def models_dir() -> Path:
    """Joined GGUF files and converted checkpoints of the embedded judges."""
    return home_dir() / "models"


def verdict_cache_path() -> Path:
    """The default on-disk verdict cache."""
    return home_dir() / "verdicts.sqlite"


def manifest_path(output: str | Path) -> Path:
    """The manifest written beside a results file: ``OUT.manifest.json``."""
    output = Path(output)
    return output.with_name(output.name + ".manifest.json")


def side_path(output: str | Path, suffix: str) -> Path:
    """Another side file of ``output`` (``OUT.<suffix>``), named the way manifests are."""
    output = Path(output)
    return output.with_name(f"{output.name}.{suffix}")


# -- RUBRIX_* environment variables -----------------------------------------------------------------


def env_str(name: str) -> str | None:
    """The variable's value, ``None`` when unset or blank."""
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def env_float(name: str, default: float | None) -> float | None:
    """A number; ``none``/``off`` gives ``None`` (a threshold switched off); a typo is a user error."""
    value = env_str(name)
    if value is None:
        return default
    if value.lower() in _FALSE:
        return None
    try:
        return float(value)
    except ValueError:
        raise UserError(f"must be a number or 'off', got {value!r}", field=name) from None


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise UserError(f"must be one of {', '.join(_TRUE + _FALSE)}, got {value!r}", field=name)


def env_cache(name: str = "RUBRIX_CACHE", default: bool | str = False) -> bool | str:
    """A cache setting: ``0``/``off`` → no cache, ``1``/``on`` → the default file, ``memory`` → in this
    process only, anything else a path."""
    value = env_str(name)
    if value is None:
        return default
    if value.lower() in ("memory", ":memory:"):
        return "memory"
    if value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    return value


__all__ = ["home_dir", "models_dir", "verdict_cache_path", "manifest_path", "side_path", "env_str",
           "env_float", "env_bool", "env_cache"]
