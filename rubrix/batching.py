"""Micro-batching: many small reward calls merged into few judge calls, on one event loop.

RL trainers ask for rewards one sample (OpenRLHF, verl's streaming loop) or one group at a time,
but a judge is fastest when it sees many samples at once: a local judge encodes a shared prompt
once and batches across samples; an API judge fills its concurrency. So callers do not score
directly: they put a *ticket* (their samples) in a bounded queue, and a worker merges whatever is
waiting — up to ``max_batch`` samples, waiting at most ``window_s`` from the oldest ticket's
arrival when the judge is idle — into one call of ``process``. Identical samples in a merged
batch (common in GRPO groups with short answers) are processed once.

Tickets that share a ``group`` key (the answers of one prompt: a GRPO group, a pair) are taken
into the same batch when they wait together, even when other tickets arrived between them, so a
local judge can compute their shared prompt once. A ticket's own order never changes.

The queue is bounded so that load cannot turn into unbounded memory. A caller that finds it
full *waits for room* (:meth:`MicroBatcher.enter`, first come first served) for as long as its
own deadline allows, instead of being refused: a trainer that sends one request per sample
(OpenRLHF: a whole step of them at once) would otherwise see refusals while the judge could still
answer them in time, and a refused sample is one it may never get a reward for. Only
:meth:`MicroBatcher.submit`, the non-waiting form, refuses with :class:`QueueFull` (which carries
a ``Retry-After`` estimate). Tickets are never split, so a batch can exceed
``max_batch`` when one ticket alone does. At most ``concurrency`` calls run at once; while they
run, new tickets accumulate, so batches grow with load on their own. A ticket withdrawn before
dispatch (its caller left or timed out) costs nothing; once dispatched it runs to the end.

This is the one batcher of the project: the reward core uses it for trainer adapters and for the
HTTP server alike, so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("rubrix.batching")

#: seconds a worker waits with nothing queued before it ends (a reward that is dropped without
#: ``aclose`` then leaves nothing running behind it)
IDLE_EXIT_S = 30.0
_WORKERS: set[asyncio.Task] = set()


class QueueFull(Exception):
    """The queue holds too many samples; ``retry_after`` is a whole number of seconds to wait."""

    def __init__(self, queued: int, limit: int, retry_after: int):
        super().__init__(f"{queued} samples already wait for the judge (limit {limit}); "
                         f"retry after {retry_after} s")
        self.queued = queued
        self.limit = limit
        self.retry_after = retry_after


@dataclass(eq=False)
class Ticket(Generic[T]):
    """One caller's samples waiting for the judge; ``future`` gets the results in order."""

    items: list[T]
    future: asyncio.Future
    enqueued: float
    dispatched: bool = False
    cancelled: bool = False


@dataclass
class BatchStats:
    """What one dispatched batch was: for metrics, logs and the throughput estimate."""

    tickets: int
    items: int
    unique: int
    seconds: float
    results: Sequence[Any] = field(default_factory=list)


class MicroBatcher(Generic[T, R]):
    """A bounded queue of tickets and the worker that merges them into calls of ``process``.

    ``process(items) -> results`` (one per item, in order) is awaited on the loop that first
    submits. ``key(item)`` says which items are identical (``None``: no de-duplication).
    ``group(item)`` names the group an item belongs to (``None``: arrival order only); a batch
    that takes one ticket of a group takes the other waiting tickets of that group first.
    ``on_batch(stats)`` is called after every successful batch. A ``process`` that raises fails
    every ticket of its batch alone: the batch is retried ticket by ticket, so one caller's bad
    input answers only that caller.
    """

    def __init__(self, process: Callable[[list[T]], Awaitable[list[R]]], *, max_batch: int = 64,
                 window_s: float = 0.005, max_queue: int = 1024, concurrency: int = 1,
                 key: Callable[[T], Hashable] | None = None,
                 group: Callable[[T], Hashable] | None = None,
                 on_batch: Callable[[BatchStats], None] | None = None):
        self.process = process
        self.max_batch = max(1, int(max_batch))
        self.window_s = max(0.0, float(window_s))
        self.max_queue = max(1, int(max_queue))
        self.concurrency = max(1, int(concurrency))
        self.key = key
        self.group = group
        self.on_batch = on_batch
        self.queued_samples = 0
        self.queued_tickets = 0
        self.inflight = 0
        self.batches = 0
        self._queue: deque[Ticket[T]] = deque()
        self._waiting: deque[tuple[list[T], asyncio.Future]] = deque()  # callers waiting for room
        self.waiting_samples = 0
        self.waited_samples = 0  # samples that had to wait for room, ever (a sign the queue is too small)
        self._wake: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._worker: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()  # strong references: running batches are not collected
        self._rate: float | None = None  # samples per second of recent batches (EWMA)

    # -- admission ---------------------------------------------------------------------------------

    def fits(self, n: int) -> bool:
        """Whether ``n`` more samples fit in the queue now (a ticket alone in it always fits)."""
        return self.queued_samples == 0 or self.queued_samples + n <= self.max_queue

    def submit(self, items: list[T]) -> Ticket[T]:
        """Queue ``items`` as one ticket, or raise :class:`QueueFull`. Starts the worker on first use."""
        if self._waiting or not self.fits(len(items)):
            raise QueueFull(self.queued_samples, self.max_queue, self.retry_after())
        return self._enqueue(items)

    async def enter(self, items: list[T], timeout: float | None = None) -> Ticket[T]:
        """Queue ``items`` as one ticket, waiting (in arrival order) for room up to ``timeout`` seconds.

        Raises :class:`TimeoutError` when no room came in time; nothing of the caller's is queued
        then. A caller cancelled while waiting leaves the line (or withdraws the ticket it was
        just given), so room is never lost.
        """
        if not self._waiting and self.fits(len(items)):
            return self._enqueue(items)
        loop = asyncio.get_running_loop()
        self._start(loop)
        waiter: asyncio.Future = loop.create_future()
        entry = (list(items), waiter)
        self._waiting.append(entry)
        self.waiting_samples += len(items)
        self.waited_samples += len(items)
        timer = None
        if timeout is not None:
            timer = loop.call_later(max(0.0, timeout), self._expire, entry)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.withdraw(waiter.result())  # admitted just as the caller left
            else:
                self._leave(entry)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, entry: tuple[list[T], asyncio.Future]) -> None:
        if not entry[1].done():
            self._leave(entry)
            entry[1].set_exception(TimeoutError())

    def _leave(self, entry: tuple[list[T], asyncio.Future]) -> None:
        try:
            self._waiting.remove(entry)
        except ValueError:
            return
        self.waiting_samples -= len(entry[0])
        self._admit()  # a large caller that left may have blocked smaller ones behind it

    def _admit(self) -> None:
        """Give the room that freed up to waiting callers, first come first served."""
        while self._waiting:
            items, waiter = self._waiting[0]
            if waiter.done():  # cancelled; its caller's _leave will find it gone
                self._waiting.popleft()
                self.waiting_samples -= len(items)
                continue
            if not self.fits(len(items)):
                return
            self._waiting.popleft()
            self.waiting_samples -= len(items)
            waiter.set_result(self._enqueue(items))

    def _enqueue(self, items: list[T]) -> Ticket[T]:
        loop = asyncio.get_running_loop()
        self._start(loop)
        ticket: Ticket[T] = Ticket(list(items), loop.create_future(), loop.time())
        ticket.future.add_done_callback(_consume_exception)
        self._queue.append(ticket)
        self.queued_samples += len(items)
        self.queued_tickets += 1
        assert self._wake is not None
        self._wake.set()
        return ticket

    def withdraw(self, ticket: Ticket[T]) -> bool:
        """Drop a ticket whose caller left; ``False`` when it is already with the judge."""
        if ticket.dispatched or ticket.cancelled:
            return False
        ticket.cancelled = True
        self.queued_samples -= len(ticket.items)
        self.queued_tickets -= 1
        if self._wake is not None:
            self._wake.set()  # the batch window may now run from a later ticket
        self._admit()
        return True

    def retry_after(self) -> int:
        """Seconds until the queue has probably drained, from the recent throughput (1..60)."""
        if not self._rate:
            return 1
        return max(1, min(60, math.ceil(self.queued_samples / self._rate)))

    async def aclose(self) -> None:
        """Stop the worker; queued tickets are cancelled, running batches are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for task in list(self._tasks):
            task.cancel()
        for ticket in self._queue:
            if not ticket.future.done():
                ticket.future.cancel()
        self._queue.clear()
        for _, waiter in self._waiting:
            if not waiter.done():
                waiter.cancel()
        self._waiting.clear()
        self.queued_samples = self.queued_tickets = self.waiting_samples = 0

    # -- the worker --------------------------------------------------------------------------------

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._worker is not None and not self._worker.done():
            return
        if self._wake is None:
            self._wake = asyncio.Event()
            self._slots = asyncio.Semaphore(self.concurrency)
        self._worker = loop.create_task(self._run(), name="rubrix-batcher")
        _WORKERS.add(self._worker)  # a pending task must not be garbage-collected with a dropped batcher
        self._worker.add_done_callback(_WORKERS.discard)

    def _head(self) -> Ticket[T] | None:
        while self._queue and self._queue[0].cancelled:
            self._queue.popleft()
        return self._queue[0] if self._queue else None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None and self._slots is not None
        while True:
            await self._slots.acquire()
            try:
                while True:  # the window runs from the arrival of the oldest ticket still waiting
                    first = self._head()
                    if first is None:
                        self._wake.clear()
                        try:  # an idle worker ends; the next submit starts it again
                            await asyncio.wait_for(self._wake.wait(), IDLE_EXIT_S)
                        except TimeoutError:
                            if self._head() is None:
                                self._slots.release()
                                return
                        continue
                    remaining = first.enqueued + self.window_s - loop.time()
                    if self.queued_samples >= self.max_batch or remaining <= 0:
                        break
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), remaining)
                tickets = self._take()
            except BaseException:
                self._slots.release()
                raise
            if not tickets:
                self._slots.release()
                continue
            task = loop.create_task(self._dispatch(tickets))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        assert self._slots is not None
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:  # pragma: no cover - a bug
            log.error("batch dispatch failed", exc_info=task.exception())

    def _take(self) -> list[Ticket[T]]:
        tickets: list[Ticket[T]] = []
        count = 0
        while (ticket := self._head()) is not None:
            if tickets and count + len(ticket.items) > self.max_batch:
                break
            self._queue.popleft()
            count += self._mark(ticket, tickets)
            if self.group is not None:
                count += self._take_group(ticket, tickets, count)
        self._admit()
        return tickets

    def _mark(self, ticket: Ticket[T], taken: list[Ticket[T]]) -> int:
        ticket.dispatched = True
        self.queued_samples -= len(ticket.items)
        self.queued_tickets -= 1
        taken.append(ticket)
        return len(ticket.items)

    def _take_group(self, first: Ticket[T], taken: list[Ticket[T]], count: int) -> int:
        """Pull the waiting tickets of ``first``'s groups forward into this batch (while it has room)."""
        assert self.group is not None
        groups = {self.group(item) for item in first.items}
        added = 0
        kept: deque[Ticket[T]] = deque()
        while self._queue:
            ticket = self._queue.popleft()
            if (not ticket.cancelled and count + added + len(ticket.items) <= self.max_batch
                    and any(self.group(item) in groups for item in ticket.items)):
                added += self._mark(ticket, taken)
            else:
                kept.append(ticket)
        self._queue = kept
        return added

    async def _dispatch(self, tickets: list[Ticket[T]]) -> None:
        loop = asyncio.get_running_loop()
        items = [item for t in tickets for item in t.items]
        unique, where = deduplicate(items, self.key)
        self.inflight += 1
        start = loop.time()
        try:
            results = await self.process(unique)
            if len(results) != len(unique):
                raise RuntimeError(f"process returned {len(results)} results for {len(unique)} items")
        except Exception as exc:
            self.inflight -= 1
            if len(tickets) == 1:
                _settle(tickets[0].future, exc=exc)
            else:  # each ticket alone, so one caller's problem answers only that caller
                for ticket in tickets:
                    await self._dispatch([ticket])
            return
        self.inflight -= 1
        elapsed = loop.time() - start
        self.batches += 1
        if elapsed > 0:
            rate = len(unique) / elapsed
            self._rate = rate if self._rate is None else 0.7 * self._rate + 0.3 * rate
        if self.on_batch is not None:
            self.on_batch(BatchStats(tickets=len(tickets), items=len(items), unique=len(unique),
                                     seconds=elapsed, results=results))
        pos = 0
        for ticket in tickets:
            n = len(ticket.items)
            _settle(ticket.future, result=[results[w] for w in where[pos:pos + n]])
            pos += n


def deduplicate(items: Sequence[T], key: Callable[[T], Hashable] | None) -> tuple[list[T], list[int]]:
    """The distinct items (first occurrence kept, in order) and, per input, its index among them."""
    if key is None:
        return list(items), list(range(len(items)))
    index: dict[Hashable, int] = {}
    unique: list[T] = []
    where: list[int] = []
    for item in items:
        k = key(item)
        pos = index.get(k)
        if pos is None:
            pos = index[k] = len(unique)
            unique.append(item)
        where.append(pos)
    return unique, where


def _consume_exception(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()  # marks it retrieved: a caller that already left must not cause a warning


def _settle(future: asyncio.Future, *, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


__all__ = ["BatchStats", "MicroBatcher", "QueueFull", "Ticket", "deduplicate"]
