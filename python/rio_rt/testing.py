"""Helpers for testing code on rio-rt (and on stdlib asyncio beside it).

- ``run_with_timeout(coro_fn, seconds=...)``: run on a fresh native runtime with a
  deadline, so a lost wake fails instead of hanging.
- ``runtime_stats()``: the running runtime's counters.
- ``LOOP_FACTORIES`` and ``run_on_loop(factory, coro, ...)``: run the same asyncio
  program on stdlib asyncio and on rio's loop, with the stdlib as the oracle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import rio_core

from rio_rt._loop import new_event_loop
from rio_rt._timeout import timeout

__all__ = ["LOOP_FACTORIES", "run_on_loop", "run_with_timeout", "runtime_stats"]

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
