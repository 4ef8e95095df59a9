"""Callable objects that ``inspect`` treats as functions, so trainers can tell they are async.

Trainer adapters must be picklable (TRL's AsyncGRPO spawns a process for rewards), so they are
callable objects, not closures. But several trainers decide whether to await a reward function
with ``inspect.iscoroutinefunction(fn)``, which on Python 3.11 is ``False`` for an instance with
``async def __call__`` — the trainer would then receive an un-awaited coroutine. ``inspect``
accepts any object that looks like a function (a ``__name__``, a ``__code__`` and the default
attributes, the protocol Cython functions use); :class:`FunctionLike` provides those from the
class's ``__call__``, as properties, so nothing unpicklable is stored on the instance.
"""

from __future__ import annotations

import inspect
from typing import Any


class FunctionLike:
    """Attributes ``inspect`` reads to treat an object as a function (name, code, defaults)."""

    # subclasses set ``self.__name__`` (a plain instance attribute, so it pickles)

    @property
    def __signature__(self) -> inspect.Signature:
        """The call's parameters without ``self`` (``inspect`` reads this before ``__code__``)."""
        return inspect.signature(self.__call__)  # type: ignore[operator]

    @property
    def __code__(self) -> Any:
        return type(self).__call__.__code__

    @property
    def __defaults__(self) -> Any:
        return type(self).__call__.__defaults__

    @property
    def __kwdefaults__(self) -> Any:
        return type(self).__call__.__kwdefaults__


__all__ = ["FunctionLike"]
