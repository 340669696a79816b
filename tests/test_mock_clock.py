"""Test time: MockClock, wait_all_tasks_blocked, poll_once and MockWaker.

Real time appears here only where it is the subject: a blocking job or a
thread that takes a few real milliseconds, during which a wrong jump of the
clock would show.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import pytest

import rio_rt as rio
from rio_rt.testing import MockClock, MockWaker, poll_once, wait_all_tasks_blocked


def run_on(clock: MockClock, coro: Any) -> Any:
    return rio.Runtime(clock=clock).block_on(coro)


# ---------------------------------------------------------------- the clock itself


def test_a_frozen_clock_moves_only_by_jumps() -> None:
    clock = MockClock(autojump_threshold=math.inf)

    async def main() -> list[float]:
        start = rio.monotonic()
        seen = [rio.monotonic() - start]
        time.sleep(0.01)  # real time passes; virtual time does not
        seen.append(rio.monotonic() - start)
        clock.jump(2.5)
        seen.append(rio.monotonic() - start)
        return seen

    assert run_on(clock, main()) == [0.0, 0.0, 2.5]
    assert clock.current_time() == pytest.approx(clock.current_time())


def test_autojump_sleeps_take_no_real_time() -> None:
    clock = MockClock()

    async def main() -> float:
        start = rio.monotonic()
        await rio.sleep(3600)
        return rio.monotonic() - start

    real = time.monotonic()
    assert run_on(clock, main()) == pytest.approx(3600, abs=1e-6)
    assert time.monotonic() - real < 1.0


def test_a_jump_from_a_task_fires_due_timers() -> None:
    clock = MockClock(autojump_threshold=math.inf)

    async def main() -> list[str]:
        log = []

        async def sleeper() -> None:
            await rio.sleep(10)
            log.append("woke")

        rio.spawn(sleeper())
        await rio.yield_now()
        clock.jump(9)
        await rio.yield_now()
        log.append("after 9")
        clock.jump(1)
        await rio.yield_now()
        await rio.yield_now()
        return log

    assert run_on(clock, main()) == ["after 9", "woke"]


def test_rate_runs_virtual_time_faster_than_real() -> None:
    clock = MockClock(rate=100.0, autojump_threshold=math.inf)

    async def main() -> float:
        start = rio.monotonic()
        await rio.sleep(5)  # 50 ms of real time
        return rio.monotonic() - start

    real = time.monotonic()
    virtual = run_on(clock, main())
    real = time.monotonic() - real
    assert virtual >= 5 and 0.04 <= real < 2.0


def test_autojump_threshold_waits_in_real_time_first() -> None:
    clock = MockClock(autojump_threshold=0.05)

    async def main() -> float:
        start = rio.monotonic()
        await rio.sleep(100)
        return rio.monotonic() - start

    real = time.monotonic()
    assert run_on(clock, main()) == pytest.approx(100)
    assert 0.045 <= time.monotonic() - real < 2.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        MockClock(rate=-1)
    with pytest.raises(ValueError):
        MockClock(autojump_threshold=-0.5)
    with pytest.raises(TypeError):
        MockClock(rate="fast")  # type: ignore[arg-type]
    clock = MockClock()
    with pytest.raises(ValueError, match="forward"):
        clock.jump(-1)
    with pytest.raises(ValueError):
        clock.jump(math.inf)
    with pytest.raises(TypeError):
        rio.Runtime(clock=clock, autojump_clock=True)
    with pytest.raises(TypeError, match="MockClock"):
        rio.Runtime(clock=time.monotonic)  # type: ignore[arg-type]
    assert rio.Runtime(clock=clock).clock is clock
    assert rio.Runtime().clock is None
    assert isinstance(rio.Runtime(autojump_clock=True).clock, MockClock)


# ---------------------------------------------------------------- when it must not jump


def test_no_jump_while_a_blocking_job_runs() -> None:
    """Finding 1 of the issue: the clock jumped while spawn_blocking ran, so a
    5 s timeout fired around a job of a few real milliseconds."""
    clock = MockClock()
    release = threading.Event()

    async def main() -> tuple[str, float]:
        start = rio.monotonic()
        timer = threading.Timer(0.05, release.set)
        timer.start()
        try:
            async with rio.timeout(5):
                result = await rio.spawn_blocking(release.wait, 10)
        finally:
            timer.cancel()
        return ("done" if result else "lost"), rio.monotonic() - start

    assert run_on(clock, main()) == ("done", 0.0)


def test_jumps_resume_after_the_blocking_job() -> None:
    clock = MockClock()

    async def main() -> float:
        await rio.spawn_blocking(time.sleep, 0.01)
        start = rio.monotonic()
        await rio.sleep(50)
        return rio.monotonic() - start

    real = time.monotonic()
    assert run_on(clock, main()) == pytest.approx(50)
    assert time.monotonic() - real < 1.0


def test_an_idle_registered_fd_does_not_stop_autojump() -> None:
    """Finding 2 of the issue: any registered fd (a listener waiting in
    accept) stopped the autojump, so sleep(0.5) took 0.5 s of real time."""
    clock = MockClock()

    async def main() -> float:
        listener = await rio.net.TcpListener.bind("127.0.0.1", 0)

        async def accept_forever() -> None:
            await listener.accept()

        acceptor = rio.spawn(accept_forever())
        await rio.yield_now()
        start = rio.monotonic()
        await rio.sleep(30)
        elapsed = rio.monotonic() - start
        acceptor.cancel()
        listener.close()
        return elapsed

    real = time.monotonic()
    assert run_on(clock, main()) == pytest.approx(30)
    assert time.monotonic() - real < 1.0


def test_ready_io_runs_before_the_clock_jumps() -> None:
    clock = MockClock()

    async def main() -> tuple[bytes, float]:
        listener = await rio.net.TcpListener.bind("127.0.0.1", 0)
        client = await rio.net.TcpStream.connect(*listener.local_address[:2])
        server, _ = await listener.accept()
        start = rio.monotonic()

        async def late_writer() -> None:
            await rio.sleep(0)
            await client.write_all(b"ping")

        rio.spawn(late_writer())
        with rio.fail_after(1):  # a jump before the read would time it out
            data = await server.read(4)
        elapsed = rio.monotonic() - start
        for resource in (client, server, listener):
            resource.close()
        return data, elapsed

    assert run_on(clock, main()) == (b"ping", 0.0)


def test_no_jump_over_a_wake_from_another_thread_already_made() -> None:
    clock = MockClock()

    async def main() -> tuple[bool, float]:
        event = rio.Event()
        thread = threading.Thread(target=event.set)
        start = rio.monotonic()

        async def waiter() -> bool:
            with rio.move_on_after(5) as scope:
                await event.wait()
            return not scope.cancelled_caught

        task = rio.spawn(waiter())
        await rio.yield_now()
        thread.start()
        thread.join(5)  # the wake is handed over while this step still runs
        return await task, rio.monotonic() - start

    assert run_on(clock, main()) == (True, 0.0)


def test_rio_loop_runs_on_a_mock_clock() -> None:
    clock = MockClock()
    loop = rio.new_event_loop(clock=clock)
    release = threading.Event()

    async def main() -> tuple[float, bool]:
        start = loop.time()
        await asyncio.sleep(1000)
        slept = loop.time() - start
        timer = threading.Timer(0.05, release.set)
        timer.start()
        try:
            async with asyncio.timeout(5):  # must not jump while the executor job runs
                done = await loop.run_in_executor(None, release.wait, 10)
        finally:
            timer.cancel()
        return slept, done

    real = time.monotonic()
    try:
        assert loop.run_until_complete(main()) == (pytest.approx(1000), True)
    finally:
        loop.close()
    assert time.monotonic() - real < 2.0


# ---------------------------------------------------------------- wait_all_tasks_blocked


def test_wait_all_tasks_blocked_lets_everything_else_run(run: Any) -> None:
    async def main() -> list[str]:
        log: list[str] = []
        tx, rx = rio.channel(None)

        async def producer() -> None:
            for i in range(5):
                await tx.send(i)
                await rio.yield_now()
            log.append("producer parked")
            await rio.Event().wait()

        async def consumer() -> None:
            async for item in rx:
                log.append(f"got {item}")

        tasks = [rio.spawn(producer()), rio.spawn(consumer())]
        await wait_all_tasks_blocked()
        log.append("all blocked")
        for task in tasks:
            task.cancel()
        return log

    log = run(main)
    assert log[-1] == "all blocked"
    assert sorted(log[:-1]) == sorted([f"got {i}" for i in range(5)] + ["producer parked"])


def test_wait_all_tasks_blocked_smallest_cushion_first(run: Any) -> None:
    async def main() -> list[str]:
        log: list[str] = []

        async def wait(name: str, cushion: float) -> None:
            await wait_all_tasks_blocked(cushion)
            log.append(name)

        tasks = [rio.spawn(wait("slow", 0.02)), rio.spawn(wait("fast", 0.0))]
        for task in tasks:
            await task
        return log

    assert run(main) == ["fast", "slow"]


def test_wait_all_tasks_blocked_outside_a_runtime() -> None:
    with pytest.raises(RuntimeError, match="runtime"):
        asyncio.run(wait_all_tasks_blocked())


# ---------------------------------------------------------------- poll_once and MockWaker


class Flag(rio.Future):
    """A custom leaf future: ready once set; wakes the last waker it saw."""

    def __init__(self) -> None:
        self.value: Any = None
        self.is_set = False
        self.waker: Any = None

    def poll(self, cx: Any) -> Any:
        if self.is_set:
            return rio.Ready(self.value)
        self.waker = cx.waker
        return rio.PENDING

    def set(self, value: Any) -> None:
        self.value, self.is_set = value, True
        if self.waker is not None:
            self.waker.wake()


def test_poll_once_drives_a_custom_leaf_future() -> None:
    flag = Flag()
    waker = MockWaker()
    assert poll_once(flag, waker) is rio.PENDING
    assert waker.wake_count == 0 and flag.waker is waker
    flag.set("v")
    assert waker.wake_count == 1
    assert poll_once(flag, waker) == rio.Ready("v")
    assert waker.will_wake(waker) and not waker.will_wake(MockWaker())


def test_poll_once_errors() -> None:
    with pytest.raises(TypeError, match="rio Future"):
        poll_once(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rio Context"):
        poll_once(rio.Sleep(1))
