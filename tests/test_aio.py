"""The background event loop bridge: a Ctrl-C raised inside a coroutine reaches the caller.

asyncio lets KeyboardInterrupt and SystemExit escape the loop, which killed rubrix's loop thread
and left ``_aio.run`` waiting forever (an extraction interrupted inside a judge call hung instead
of stopping); the loop must also keep working afterwards.
"""

from __future__ import annotations

import pytest

from rubrix import _aio


async def _interrupted() -> None:
    raise KeyboardInterrupt


async def _exiting() -> None:
    raise SystemExit(3)


async def _value() -> int:
    return 7


def test_keyboard_interrupt_inside_a_coroutine_reaches_the_caller_and_the_loop_survives() -> None:
    with pytest.raises(KeyboardInterrupt):
        _aio.run(_interrupted(), timeout=10)
    with pytest.raises(SystemExit):
        _aio.run(_exiting(), timeout=10)
    assert _aio.run(_value(), timeout=10) == 7
