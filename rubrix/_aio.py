"""The one background event loop of a process, and the bridge from synchronous code to it.

rubrix is async inside (API judges keep many requests in flight) and is called from synchronous
code everywhere: the CLI, TRL's OnlineDPO, OpenRLHF's python-file reward, Ray actors, notebooks
that already run a loop. Making a new loop per call (``asyncio.run``) would rebuild an API
judge's connection pool for every batch and drop the old connections unclosed, because an HTTP
client belongs to the loop it was made on. So there is exactly one loop per process, on a daemon
thread, started on first use (and again in a forked child, where the thread does not exist);
every synchronous entry point submits its coroutine there and waits, and every async entry point
on a *foreign* loop awaits the result without blocking that loop. Objects that hold connections
register with :func:`close_at_exit` and are closed on this loop when the interpreter exits.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid: int | None = None
_closables: weakref.WeakSet = weakref.WeakSet()


class _Closable(Protocol):
    async def aclose(self) -> None: ...


def get_loop() -> asyncio.AbstractEventLoop:
    """The process's background loop, started on first use (and after a fork)."""
    global _loop, _thread, _pid
    with _lock:
        if _loop is None or _pid != os.getpid() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="rubrix-loop", daemon=True)
            thread.start()
            _loop, _thread, _pid = loop, thread, os.getpid()
            _closables.clear()  # a forked child must not close its parent's connections
        return _loop


def on_loop_thread() -> bool:
    """Whether the caller runs on the background loop itself (where blocking would deadlock)."""
    return _thread is not None and threading.current_thread() is _thread and _pid == os.getpid()


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the background loop and wait for its result (from synchronous code)."""
    if on_loop_thread():
        coro.close()
        raise RuntimeError("a blocking rubrix call was made from rubrix's own event loop; await the "
                           "async variant instead")
    future = asyncio.run_coroutine_threadsafe(_carry(coro), get_loop())
    try:
        result = future.result(timeout)
    except (KeyboardInterrupt, concurrent.futures.TimeoutError):
        future.cancel()
        raise
    if isinstance(result, _Raised):
        raise result.exc
    return result


class _Raised:
    """A KeyboardInterrupt / SystemExit raised inside a coroutine, carried back to the caller."""

    def __init__(self, exc: BaseException):
        self.exc = exc


async def _carry(coro: Coroutine[Any, Any, T]) -> T | _Raised:
    """Await ``coro``, catching KeyboardInterrupt and SystemExit: asyncio lets those escape the loop,
    which would kill the loop thread and leave the caller waiting on a future that never ends."""
    try:
        return await coro
    except (KeyboardInterrupt, SystemExit) as exc:
        return _Raised(exc)


async def arun(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on the background loop from any loop (directly when already on it)."""
    loop = get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover - arun is only ever awaited
        running = None
    if running is loop:
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


def close_at_exit(obj: _Closable) -> None:
    """Close ``obj`` (``await obj.aclose()``) on the background loop when the interpreter exits."""
    _closables.add(obj)


def forget(obj: _Closable) -> None:
    """Take back :func:`close_at_exit` (the object was closed by its owner)."""
    _closables.discard(obj)


def _shutdown() -> None:
    loop, thread = _loop, _thread
    if loop is None or thread is None or not thread.is_alive() or _pid != os.getpid():
        return
    pending = list(_closables)
    _closables.clear()

    async def close_all() -> None:
        closing = [asyncio.ensure_future(obj.aclose()) for obj in pending]
        if closing:  # together and bounded: one dead peer must not hold up the exit
            await asyncio.wait(closing, timeout=3)
        # what is still running (idle batcher workers, unfinished closes) ends quietly, not as
        # "Task was destroyed but it is pending"
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run_coroutine_threadsafe(close_all(), loop).result(10)
    except Exception:  # noqa: BLE001
        pass
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


atexit.register(_shutdown)

__all__ = ["get_loop", "on_loop_thread", "run", "arun", "close_at_exit", "forget"]
