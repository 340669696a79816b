"""Helpers for testing code on rio-rt (and on stdlib asyncio beside it).

- ``run_with_timeout(coro_fn, seconds=...)``: run on a fresh native runtime with a
  deadline, so a lost wake fails instead of hanging.
- ``runtime_stats()``: the running runtime's counters.
- ``LOOP_FACTORIES`` and ``run_on_loop(factory, coro, ...)``: run the same asyncio
  program on stdlib asyncio and on rio's loop, with the stdlib as the oracle.
- ``MockClock(rate=0.0, autojump_threshold=0.0)``: test time, for
  ``Runtime(clock=...)`` and ``new_event_loop(clock=...)``.
- ``wait_all_tasks_blocked(cushion=0.0)``: returns once every other task is blocked.
- ``poll_once(future, waker=None)`` and ``MockWaker``: poll a custom leaf future by
  hand and see whether (and how often) it woke its task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import rio_core
from rio_core import MockClock

from rio_rt._loop import new_event_loop
from rio_rt._timeout import timeout

__all__ = [
    "LOOP_FACTORIES",
    "MockClock",
    "MockWaker",
    "poll_once",
    "run_on_loop",
    "run_with_timeout",
    "runtime_stats",
    "wait_all_tasks_blocked",
]

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.SelectorEventLoop,
    "rio": new_event_loop,
}


def run_with_timeout(coro_fn: Callable[[], Awaitable[Any]], *, seconds: float = 10.0) -> Any:
    """Run ``coro_fn()`` on a fresh real-clock native runtime, bounded by ``seconds``."""

    async def bounded() -> Any:
        async with timeout(seconds):
            return await coro_fn()

    return rio_core.Runtime().block_on(bounded())


def runtime_stats() -> dict[str, int]:
    """``Runtime.stats()`` of the runtime running on this thread."""
    runtime = rio_core.current_runtime()
    if runtime is None:
        raise RuntimeError("runtime_stats() needs a running rio runtime")
    return cast("dict[str, int]", dict(runtime.stats()))  # every counter is an int


def run_on_loop(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    coro: Coroutine[Any, Any, Any],
    *,
    seconds: float = 20.0,
    debug: bool | None = None,
) -> Any:
    """Run ``coro`` as the main task of a fresh loop (``asyncio.Runner``), bounded in time."""

    async def bounded() -> Any:
        async with asyncio.timeout(seconds):
            return await coro

    with asyncio.Runner(loop_factory=loop_factory, debug=debug) as runner:
        return runner.run(bounded())


async def wait_all_tasks_blocked(cushion: float = 0.0) -> None:
    """Return once every other task of this runtime has been blocked (nothing
    ready to run, nothing arriving from other threads) for ``cushion`` seconds
    of real time. Among several callers, those with the smallest cushion wake
    first. For tests: "let everything else run as far as it can"."""
    runtime = rio_core.current_runtime()
    if runtime is None:
        raise RuntimeError("wait_all_tasks_blocked() needs a running rio runtime or rio loop")
    woken: rio_core.Oneshot[None] = rio_core.Oneshot()
    runtime._add_idle_waiter(cushion, woken)
    await woken


class MockWaker:
    """A waker that records its wakes, for ``poll_once``: ``wake_count``."""

    __slots__ = ("wake_count",)

    def __init__(self) -> None:
        self.wake_count = 0

    def wake(self) -> None:
        self.wake_count += 1

    def will_wake(self, other: object) -> bool:
        return other is self

    def __repr__(self) -> str:
        return f"<MockWaker wake_count={self.wake_count}>"


class _MockContext:
    __slots__ = ("waker",)

    def __init__(self, waker: MockWaker) -> None:
        self.waker = waker


def poll_once(future: rio_core.Future, waker: MockWaker | None = None) -> Any:
    """Call ``future.poll(cx)`` once, outside any runtime, with ``cx.waker`` a
    ``MockWaker`` (``waker``, or a new one): returns ``rio.Ready(value)`` or
    ``rio.PENDING``. For unit tests of a custom leaf future's ``poll``."""
    if not isinstance(future, rio_core.Future):
        raise TypeError(f"poll_once() expects a rio Future, got {type(future).__name__}")
    context: Any = _MockContext(waker if waker is not None else MockWaker())
    return future.poll(context)
