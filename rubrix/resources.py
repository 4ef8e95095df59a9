"""Where the built-in rubrics and prompt templates live, installed or in a checkout.

In a source checkout they are the top-level ``rubrics/`` and ``prompts/`` folders; in a wheel
they are packaged as ``rubrix.data.rubrics`` and ``rubrix.data.prompts``. Both layouts resolve
to a real directory so Jinja's file loader and plain ``open`` work unchanged.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


@cache
def _data_dir(name: str) -> Path:
    checkout = _CHECKOUT_ROOT / name
    if checkout.is_dir() and (_CHECKOUT_ROOT / "pyproject.toml").exists():
        return checkout
    packaged = resources.files(f"rubrix.data.{name}")
    return Path(str(packaged))


def rubrics_dir() -> Path:
    """Directory of the built-in rubric library."""
    return _data_dir("rubrics")


def prompts_dir() -> Path:
    """Directory of the built-in Jinja judge templates."""
    return _data_dir("prompts")


def builtin_rubric_names() -> list[str]:
    return sorted(p.stem for p in rubrics_dir().glob("*.yaml"))


def builtin_rubric_path(name: str) -> Path | None:
    """The file of a built-in rubric by name (``helpfulness``), or None."""
    candidate = rubrics_dir() / f"{name}.yaml"
    return candidate if candidate.is_file() else None
