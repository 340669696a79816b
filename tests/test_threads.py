"""Wakes from other threads, and spawn_blocking.

Time is the subject of the latency test, so it uses the real clock; the
threads themselves never sleep longer than a few tens of milliseconds.
"""

from __future__ import annotations

import threading
import time
import traceback

import pytest

import rio_rt as rio


class ThreadFlag(rio.Future):
    """A leaf future completed by another thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = None
        self.is_set = False
        self.waker = None
        self.polls = 0

    def poll(self, cx):
        with self.lock:
            self.polls += 1
            if self.is_set:
                return rio.Ready(self.value)
            self.waker = cx.waker
            return rio.PENDING

    def set(self, value) -> None:
        with self.lock:
            self.value = value
            self.is_set = True
            waker = self.waker
        if waker is not None:
            waker.wake()


def test_wake_from_another_thread_interrupts_the_os_wait():
    """The runtime sleeps in the OS (a 30 s timer is pending) and a thread wakes it.

    The wake must be seen at once, not at the next timer deadline and not after
    some fixed polling interval.
    """
    flag = ThreadFlag()
    set_at: list[float] = []

    def complete_later() -> None:
        time.sleep(0.05)  # long enough for the runtime to block in the reactor
        set_at.append(time.monotonic())
        flag.set("from thread")

    async def long_sleeper():
        await rio.sleep(30)

    async def main():
        sleeper = rio.spawn(long_sleeper())
        thread = threading.Thread(target=complete_later)
        thread.start()
        try:
            value = await flag
            resumed_at = time.monotonic()
        finally:
            thread.join()
        assert not sleeper.done()
        return value, resumed_at

    started = time.monotonic()
    value, resumed_at = rio.Runtime().block_on(main())
    finished = time.monotonic()
    assert value == "from thread"
    assert resumed_at - set_at[0] < 0.5
    assert flag.polls == 2  # parked once, polled again after the wake: no spinning
    # block_on cancelled the 30 s sleeper instead of waiting for it
    assert finished - started < 5


def test_many_threads_complete_many_futures():
    flags = [ThreadFlag() for _ in range(16)]

    def complete(i: int) -> None:
        time.sleep(0.001 * (i % 4))
        flags[i].set(i * i)

    async def wait_flag(flag):
        return await flag

    async def main():
        tasks = [rio.spawn(wait_flag(f)) for f in flags]
        await rio.yield_now()  # every task parks on its flag first
        threads = [threading.Thread(target=complete, args=(i,)) for i in range(len(flags))]
        for thread in threads:
            thread.start()
        try:
            async with rio.timeout(10):
                return [await t for t in tasks]
        finally:
            for thread in threads:
                thread.join()

    assert rio.Runtime().block_on(main()) == [i * i for i in range(16)]


def test_wake_storm_from_another_thread_is_harmless():
    """Thousands of wakes race with the task's own steps; it still completes once."""
    rt = rio.Runtime()
    flag = ThreadFlag()
    storm_done = threading.Event()

    def storm() -> None:
        while flag.waker is None:
            time.sleep(0.0005)
        for _ in range(5000):
            flag.waker.wake()
        storm_done.set()
        flag.set("calm")

    async def main():
        thread = threading.Thread(target=storm)
        thread.start()
        try:
            async with rio.timeout(10):
                return await flag
        finally:
            thread.join()

    assert rt.block_on(main()) == "calm"
    assert storm_done.is_set()
    assert rt.stats()["tasks_alive"] == 0

    async def again():
        await rio.sleep(0)
        return "reusable"

    assert rt.block_on(again()) == "reusable"


def test_spawn_blocking_returns_the_value_from_a_worker_thread():
    main_thread = threading.get_ident()

    def work(a, b):
        return a**b, threading.get_ident()

    async def main():
        task = rio.spawn_blocking(work, 2, 10)
        assert isinstance(task, rio.Task)
        async with rio.timeout(10):
            return await task

    value, worker_thread = rio.block_on(main())
    assert value == 1024
    assert worker_thread != main_thread


def test_spawn_blocking_propagates_the_exception():
    class WorkerFailed(Exception):
        pass

    def failing_blocking_function(x):
        raise WorkerFailed(f"bad {x}")

    async def main():
        task = rio.spawn_blocking(failing_blocking_function, 7)
        with pytest.raises(WorkerFailed, match="bad 7") as info:
            async with rio.timeout(10):
                await task
        assert task.done()
        assert isinstance(task.exception(), WorkerFailed)
        return info.value

    exc = rio.block_on(main())
    frames = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert "failing_blocking_function" in frames


def test_spawn_blocking_does_not_block_the_runtime():
    """The worker waits for an event that only a native task can set."""
    released = threading.Event()

    def wait_for_release():
        return released.wait(timeout=5)

    async def releaser():
        await rio.sleep(0.001)
        released.set()
        return "released"

    async def main():
        blocking = rio.spawn_blocking(wait_for_release)
        native = rio.spawn(releaser())
        async with rio.timeout(10):
            return await native, await blocking

    assert rio.block_on(main()) == ("released", True)


def test_spawn_blocking_many_calls_complete_in_a_bounded_pool():
    def square(i):
        time.sleep(0.001)
        return i * i

    async def main():
        tasks = [rio.spawn_blocking(square, i) for i in range(64)]
        async with rio.timeout(10):
            return [await t for t in tasks]

    assert rio.block_on(main()) == [i * i for i in range(64)]
