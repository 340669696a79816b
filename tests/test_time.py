"""Timers, the clock, timeouts and yield_now fairness.

Everything runs on the autojump clock except the tests whose subject is the
real clock itself (never firing early, monotonic agreeing with time.monotonic).
"""

from __future__ import annotations

import math
import random
import time

import pytest

import rio_rt as rio

# The autojump clock wakes a sleeper exactly at its deadline; whether it also
# drifts with real time in between is not part of the contract. A run takes
# milliseconds, so this slack is far below any duration the tests tell apart.
SLACK = 0.05


def test_timers_fire_in_deadline_order(run):
    rng = random.Random(20240611)
    durations = [0.25 * i for i in range(1, 301)]
    rng.shuffle(durations)
    fired = []

    async def sleeper(duration):
        start = rio.monotonic()
        await rio.sleep(duration)
        fired.append((duration, rio.monotonic() - start))

    async def main():
        tasks = [rio.spawn(sleeper(d)) for d in durations]
        for task in tasks:
            await task

    run(main)
    assert [d for d, _ in fired] == sorted(durations)
    for duration, elapsed in fired:
        assert elapsed >= duration
        assert elapsed == pytest.approx(duration, abs=SLACK)


def test_autojump_clock_takes_no_real_time(run):
    async def main():
        start = rio.monotonic()
        await rio.sleep(3600)
        await rio.sleep(0.5)
        return rio.monotonic() - start

    real_start = time.monotonic()
    elapsed = run(main)
    assert time.monotonic() - real_start < 2
    assert 3600.5 <= elapsed < 3600.5 + SLACK


def test_sleep_never_fires_early_on_the_real_clock():
    async def main():
        measured = []
        for duration in (0.001, 0.005, 0.01, 0.01, 0.02):
            start_real = time.perf_counter()  # the finest real clock, on every platform
            start_rio = rio.monotonic()
            await rio.sleep(duration)
            measured.append(
                (duration, time.perf_counter() - start_real, rio.monotonic() - start_rio)
            )
        return measured

    for duration, real, clock in rio.block_on(main()):
        assert real >= duration
        assert clock >= duration


def test_monotonic_is_time_monotonic_without_autojump():
    # exact to the microsecond, except where time.monotonic() reads a coarser tick
    # of the same clock (Windows before CPython 3.13: GetTickCount64, 15.6 ms)
    tick = max(1e-6, time.get_clock_info("monotonic").resolution)
    before = time.monotonic()
    outside = rio.monotonic()
    after = time.monotonic()
    assert before - tick <= outside <= after + tick

    async def main():
        readings = []
        for _ in range(3):
            b = time.monotonic()
            r = rio.monotonic()
            a = time.monotonic()
            readings.append((b, r, a))
            await rio.yield_now()
        return readings

    for b, r, a in rio.block_on(main()):
        # same clock (allowing for a per-tick cached reading)
        assert b - 0.05 - tick <= r <= a + tick


def test_monotonic_never_goes_backwards(run):
    async def main():
        readings = [rio.monotonic()]
        for i in range(50):
            await rio.sleep((i % 3) * 0.1)
            readings.append(rio.monotonic())
        return readings

    readings = run(main)
    assert readings == sorted(readings)


@pytest.mark.parametrize("seconds", [0, -1, -1e9, -math.inf, 0.0])
def test_sleep_non_positive_yields_exactly_once(run, seconds):
    order = []

    async def sleeper():
        for i in range(3):
            order.append(("sleeper", i))
            await rio.sleep(seconds)

    async def other():
        for i in range(3):
            order.append(("other", i))
            await rio.yield_now()

    async def main():
        start = rio.monotonic()
        a, b = rio.spawn(sleeper()), rio.spawn(other())
        await a
        await b
        return rio.monotonic() - start

    elapsed = run(main)
    assert order == [
        ("sleeper", 0), ("other", 0),
        ("sleeper", 1), ("other", 1),
        ("sleeper", 2), ("other", 2),
    ]  # fmt: skip
    assert elapsed < 0.5  # no timer was waited for


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda: rio.sleep(True), "seconds"),
        (lambda: rio.Sleep(False), "seconds"),
        (lambda: rio.sleep_until(True), "deadline"),
        (lambda: rio.sleep("1"), "seconds"),
        (lambda: rio.timeout(True), "seconds"),
    ],
)
def test_a_bool_or_a_string_is_not_a_number_of_seconds(make, what):
    with pytest.raises(TypeError, match=f"^{what} must be a number of seconds"):
        make()


def test_sleep_nan_raises_value_error(run):
    async def main():
        with pytest.raises(ValueError):
            await rio.sleep(math.nan)
        return "after"

    assert run(main) == "after"


@pytest.mark.parametrize("bad", ["1", None, b"1", [1], object()])
def test_sleep_non_number_raises_type_error(run, bad):
    async def main():
        with pytest.raises(TypeError) as info:
            await rio.sleep(bad)
        return str(info.value)

    message = run(main)
    # the message says what it got
    assert type(bad).__name__ in message or repr(bad) in message, message


def test_sleep_accepts_int_and_float(run):
    async def main():
        start = rio.monotonic()
        await rio.sleep(2)
        await rio.sleep(0.5)
        return rio.monotonic() - start

    assert run(main) == pytest.approx(2.5, abs=SLACK)


def test_sleep_until(run):
    async def main():
        deadline = rio.monotonic() + 7.25
        await rio.sleep_until(deadline)
        woke = rio.monotonic()
        past = woke - 100
        await rio.sleep_until(past)  # a past deadline just yields
        return deadline, woke, rio.monotonic()

    deadline, woke, later = run(main)
    assert woke >= deadline
    assert woke == pytest.approx(deadline, abs=SLACK)
    assert later - woke < 0.5


def test_sleep_is_a_future(run):
    async def main():
        sleep = rio.Sleep(3)
        assert isinstance(sleep, rio.Future)
        start = rio.monotonic()
        await sleep
        return rio.monotonic() - start

    assert run(main) == pytest.approx(3, abs=SLACK)


def test_sleep_deadline_is_fixed_at_construction(run):
    async def main():
        start = rio.monotonic()
        sleep = rio.Sleep(5)
        await rio.sleep(3)
        await sleep
        return rio.monotonic() - start

    assert run(main) == pytest.approx(5, abs=SLACK)


class FirstReady(rio.Future):
    """A combinator: polls several leaf futures, returns the index of the first ready one."""

    def __init__(self, *futures):
        self.futures = futures

    def poll(self, cx):
        for index, future in enumerate(self.futures):
            if future.poll(cx) is not rio.PENDING:
                return rio.Ready(index)
        return rio.PENDING


def test_sleep_polled_by_a_python_combinator_registers_the_waker(run):
    async def main():
        start = rio.monotonic()
        index = await FirstReady(rio.Sleep(9), rio.Sleep(2), rio.Sleep(4))
        return index, rio.monotonic() - start

    index, elapsed = run(main)
    assert index == 1
    assert elapsed == pytest.approx(2, abs=SLACK)


def test_timeout_raises_builtin_timeout_error(run):
    log = []

    async def main():
        start = rio.monotonic()
        with pytest.raises(TimeoutError) as info:
            async with rio.timeout(1.5):
                try:
                    await rio.sleep(10)
                except rio.CancelledError:
                    log.append("body cancelled")
                    raise
        log.append(("elapsed", rio.monotonic() - start))
        assert info.type is TimeoutError
        # the task itself is not cancelled afterwards
        await rio.sleep(1)
        log.append("still running")
        return rio.current_task().cancelling()

    assert run(main) == 0
    assert log[0] == "body cancelled"
    assert log[1][0] == "elapsed"
    assert log[1][1] == pytest.approx(1.5, abs=SLACK)
    assert log[2] == "still running"


def test_timeout_not_firing_when_body_is_quick(run):
    async def main():
        start = rio.monotonic()
        async with rio.timeout(5):
            await rio.sleep(1)
        # the expired deadline must not hit the task later
        await rio.sleep(10)
        return rio.monotonic() - start

    assert run(main) == pytest.approx(11, abs=SLACK)


def test_timeout_none_means_no_timeout(run):
    async def main():
        async with rio.timeout(None):
            await rio.sleep(10_000)
        return "done"

    assert run(main) == "done"


def test_timeout_at(run):
    async def main():
        start = rio.monotonic()
        with pytest.raises(TimeoutError):
            async with rio.timeout_at(start + 4):
                await rio.sleep(100)
        return rio.monotonic() - start

    assert run(main) == pytest.approx(4, abs=SLACK)


def test_nested_timeouts_inner_fires_first(run):
    async def main():
        start = rio.monotonic()
        inner_fired = False
        async with rio.timeout(10):
            try:
                async with rio.timeout(1):
                    await rio.sleep(100)
            except TimeoutError:
                inner_fired = True
            await rio.sleep(2)  # the outer deadline is still 7 s away
        return inner_fired, rio.monotonic() - start

    inner_fired, elapsed = run(main)
    assert inner_fired
    assert elapsed == pytest.approx(3, abs=SLACK)


def test_nested_timeouts_outer_fires_first(run):
    async def main():
        start = rio.monotonic()
        inner_saw = []
        with pytest.raises(TimeoutError):
            async with rio.timeout(1):
                try:
                    async with rio.timeout(10):
                        await rio.sleep(100)
                except TimeoutError:
                    inner_saw.append("TimeoutError")  # wrong: it is the outer's deadline
                except rio.CancelledError:
                    inner_saw.append("CancelledError")
                    raise
        return inner_saw, rio.monotonic() - start

    inner_saw, elapsed = run(main)
    assert inner_saw == ["CancelledError"]
    assert elapsed == pytest.approx(1, abs=SLACK)


def test_wait_for_success(run):
    async def compute():
        await rio.sleep(1)
        return "computed"

    async def main():
        return await rio.wait_for(compute(), 5)

    assert run(main) == "computed"


def test_wait_for_timeout_cancels_the_awaitable(run):
    log = []

    async def slow():
        try:
            await rio.sleep(100)
        finally:
            log.append("slow finally")

    async def main():
        start = rio.monotonic()
        with pytest.raises(TimeoutError):
            await rio.wait_for(slow(), 2)
        return rio.monotonic() - start

    assert run(main) == pytest.approx(2, abs=SLACK)
    assert log == ["slow finally"]


def test_wait_for_none_means_no_timeout(run):
    async def slow():
        await rio.sleep(500)
        return "patient"

    async def main():
        return await rio.wait_for(slow(), None)

    assert run(main) == "patient"


def test_yield_now_round_robin(run):
    order = []

    async def worker(name):
        for i in range(4):
            order.append(f"{name}{i}")
            await rio.yield_now()

    async def main():
        tasks = [rio.spawn(worker(name)) for name in "ABC"]
        for task in tasks:
            await task

    run(main)
    assert order == [f"{name}{i}" for i in range(4) for name in "ABC"]


def test_a_tick_runs_only_the_tasks_ready_when_it_began():
    """A task re-queued by yield_now runs in the next tick, never twice in one tick."""
    rt = rio.Runtime(autojump_clock=True)
    steps = []

    async def spinner(name, rounds):
        for _ in range(rounds):
            steps.append((rt.stats()["ticks"], name))
            await rio.yield_now()

    async def main():
        tasks = [
            rio.spawn(spinner("greedy", 6)),
            rio.spawn(spinner("a", 3)),
            rio.spawn(spinner("b", 3)),
        ]
        for task in tasks:
            await task

    rt.block_on(main())
    by_tick: dict[int, list[str]] = {}
    for tick, name in steps:
        by_tick.setdefault(tick, []).append(name)
    for tick, names in by_tick.items():
        assert len(names) == len(set(names)), f"a task ran twice in tick {tick}: {names}"
    greedy_ticks = [tick for tick, name in steps if name == "greedy"]
    assert greedy_ticks == list(range(greedy_ticks[0], greedy_ticks[0] + 6))
    first_three = sorted(by_tick)[:3]
    assert [sorted(by_tick[t]) for t in first_three] == [["a", "b", "greedy"]] * 3


def test_task_spawned_during_a_tick_runs_in_a_later_tick():
    rt = rio.Runtime(autojump_clock=True)
    steps = []

    async def child():
        steps.append(("child", rt.stats()["ticks"]))

    async def parent():
        steps.append(("parent", rt.stats()["ticks"]))
        await rio.spawn(child())

    rt.block_on(parent())
    (_, parent_tick), (_, child_tick) = steps
    assert child_tick > parent_tick


@pytest.mark.parametrize("when", [-math.inf, -1.0, 0.0])
def test_deadlines_in_the_past_are_due_at_once_even_minus_infinity(when):
    """sleep_until and call_at with a deadline at or before the clock's zero (-inf
    included) are due at once; +inf is never (the -inf case used to mean never)."""

    async def main():
        ran: list[str] = []
        never = rio.lowlevel.call_at(math.inf, ran.append, "never")
        rio.lowlevel.call_at(when, ran.append, "call_at")
        async with rio.timeout(5):  # real clock: a lost deadline fails, not hangs
            await rio.sleep_until(when)
            ran.append("slept")
            await rio.sleep(0.001)
        never.cancel()
        return ran

    assert sorted(rio.Runtime().block_on(main())) == ["call_at", "slept"]
