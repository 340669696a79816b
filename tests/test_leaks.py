"""Leaks are bugs: memory, object counts and refcounts stay flat across runs."""

from __future__ import annotations

import contextvars
import gc
import sys
import tracemalloc
import weakref

import pytest
import rio_core

import rio_rt as rio

TASKS = 100_000


async def trivial():
    return None


async def many_trivial_tasks():
    tasks = [rio.spawn(trivial()) for _ in range(TASKS)]
    for task in tasks:
        await task
    await rio.sleep(0.001)  # a timer too


def measure() -> dict[str, int]:
    gc.collect()
    sample = {"gc_objects": len(gc.get_objects())}
    if hasattr(sys, "gettotalrefcount"):
        sample["total_refcount"] = sys.gettotalrefcount()
    if tracemalloc.is_tracing():
        sample["traced_bytes"] = tracemalloc.get_traced_memory()[0]
    return sample


# Bounds for growth over three runs of 100,000 tasks: a leak of one object (or
# one refcount) per task would be 300,000; a few bytes per task would be >1 MB.
BOUNDS = {"gc_objects": 200, "total_refcount": 2_000, "traced_bytes": 256 * 1024}


def assert_flat(samples: list[dict[str, int]]) -> None:
    baseline = samples[0]
    for key, bound in BOUNDS.items():
        if key in baseline:
            growth = samples[-1][key] - baseline[key]
            assert growth < bound, f"{key} grew by {growth} over 3 runs: {samples}"


@pytest.mark.parametrize("fresh_runtime", [False, True], ids=["same-runtime", "fresh-runtime"])
def test_repeated_block_on_is_flat(fresh_runtime):
    rt = rio.Runtime(autojump_clock=True)

    def one_run():
        runtime = rio.Runtime(autojump_clock=True) if fresh_runtime else rt
        runtime.block_on(many_trivial_tasks())

    use_tracemalloc = not hasattr(sys, "gettotalrefcount")
    if use_tracemalloc:
        tracemalloc.start()
    try:
        one_run()  # warm up: caches, free lists, queue capacity
        samples = [measure()]
        for _ in range(3):
            one_run()
            samples.append(measure())
    finally:
        if use_tracemalloc:
            tracemalloc.stop()
    assert_flat(samples)


def test_values_exceptions_and_context_are_released(run):
    """Refcounts of objects passed through tasks return to their start value."""
    var = contextvars.ContextVar("leak_var")
    payload = object()
    error_arg = object()

    async def returns(obj):
        await rio.sleep(0.1)
        return obj

    async def raises(obj):
        await rio.yield_now()
        raise ValueError(obj)

    async def cancelled(obj):
        var.set(obj)
        await rio.sleep(100)

    async def main():
        var.set(payload)
        tasks = [rio.spawn(returns(payload)) for _ in range(100)]
        failing = [rio.spawn(raises(error_arg)) for _ in range(100)]
        doomed = [rio.spawn(cancelled(payload)) for _ in range(100)]
        await rio.yield_now()
        for task in doomed:
            task.cancel()
        for task in tasks:
            assert await task is payload
        for task in failing:
            with pytest.raises(ValueError):
                await task
        for task in doomed:
            with pytest.raises(rio.CancelledError):
                await task

    gc.collect()
    payload_refs = sys.getrefcount(payload)
    error_refs = sys.getrefcount(error_arg)
    run(main)
    gc.collect()
    assert sys.getrefcount(payload) == payload_refs
    assert sys.getrefcount(error_arg) == error_refs


def test_coroutines_are_freed_after_block_on(run):
    refs = []

    async def child():
        await rio.sleep(1)

    async def main():
        for _ in range(20):
            coro = child()
            refs.append(weakref.ref(coro))
            rio.spawn(coro)
        leftover = child()
        refs.append(weakref.ref(leftover))
        rio.spawn(leftover)  # still running at shutdown: cancelled, then freed
        await rio.sleep(1.5)

    run(main)
    gc.collect()
    assert [r for r in refs if r() is not None] == []


class Marker:
    """A weakly referenceable object to put in a task's context."""


class FirstReady(rio.Future):
    """Polls several leaf futures itself; the ones not ready are dropped while armed."""

    def __init__(self, *futures):
        self.futures = futures

    def poll(self, cx):
        for index, future in enumerate(self.futures):
            if future.poll(cx) is not rio.PENDING:
                return rio.Ready(index)
        return rio.PENDING


def test_sleeps_dropped_while_armed_release_their_task(run):
    """Timer entries of Sleeps dropped before their deadline must not keep the task alive.

    The task is observed through its contextvars context, which only the task holds.
    """
    var = contextvars.ContextVar("marker")
    refs = []

    async def main():
        marker = Marker()
        refs.append(weakref.ref(marker))
        var.set(marker)
        del marker
        return await FirstReady(rio.Sleep(9), rio.Sleep(2), rio.Sleep(4))

    assert run(main) == 1
    gc.collect()
    assert refs[0]() is None, "the main task (and its context) outlived its runtime"


def test_tasks_parked_forever_are_released_after_shutdown(run):
    var = contextvars.ContextVar("marker")
    refs = []

    class Never(rio.Future):
        def poll(self, cx):
            self.waker = cx.waker  # a cycle: future -> waker -> task -> coroutine -> future
            return rio.PENDING

    async def parked():
        marker = Marker()
        refs.append(weakref.ref(marker))
        var.set(marker)
        del marker
        await Never()

    async def main():
        for _ in range(5):
            rio.spawn(parked())
        await rio.sleep(1)

    run(main)
    gc.collect()
    assert [r for r in refs if r() is not None] == []
    assert len(refs) == 5


def test_debug_counters():
    counters = rio_core.debug_counters()
    if not rio_core.debug_build():
        assert counters == {}
        return
    assert {"tasks", "sleeps", "handles", "waiters"} <= set(counters)
    gc.collect()
    before = rio_core.debug_counters()

    async def sleeper():
        await rio.sleep(5)

    async def main():
        tasks = [rio.spawn(sleeper()) for _ in range(10)]
        await rio.yield_now()
        during = rio_core.debug_counters()
        for task in tasks:
            await task
        return during

    during = rio.Runtime(autojump_clock=True).block_on(main())
    assert during["tasks"] - before["tasks"] >= 11  # main + 10 sleepers
    assert during["sleeps"] - before["sleeps"] >= 10
    gc.collect()
    after = rio_core.debug_counters()
    assert after == before
    assert all(count == 0 for count in after.values()), after
