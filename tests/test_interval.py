"""Sleep.reset / Sleep.is_elapsed and rio.interval (tokio's Interval).

Everything runs on the autojump clock (no real time passes) except the one
asyncio-door test. Deadlines on an interval's grid are exact: they are computed
in integer nanoseconds from the first tick. A deadline computed from "now" (a
reset, a late tick in "delay" mode) is exact up to the autojump clock's drift
with real time between a jump and the reading (SLACK).
"""

from __future__ import annotations

import asyncio
import math

import pytest

import rio_rt as rio

SLACK = 0.005  # far below every period and lateness these tests tell apart
# Deadlines are whole nanoseconds, rounded up from seconds (never early): a float
# deadline and the one read back differ by up to 1 ns, plus float rounding.
EXACT = 2e-9


def exact(value: float) -> object:
    return pytest.approx(value, abs=EXACT)


def near(value: float) -> object:
    return pytest.approx(value, abs=SLACK)


def at_least(value: float, bound: float) -> bool:
    """``value >= bound`` for seconds measured from another reading: on a
    frozen test clock the two can be exactly equal in nanoseconds, and their
    float difference then rounds either way by ~1e-12 s."""
    return value >= bound - EXACT


def runtime() -> rio.Runtime:
    return rio.Runtime(autojump_clock=True)


# --------------------------------------------------------------------------- Sleep


def test_sleep_reset_before_it_is_awaited():
    rt = runtime()

    async def main():
        start = rio.monotonic()
        s = rio.sleep(10)
        s.reset(start + 1)
        assert s.deadline == exact(start + 1)
        assert rt.stats()["timers"] == 0  # nothing armed before the first poll
        await s
        return rio.monotonic() - start

    assert rt.block_on(main()) == near(1)


@pytest.mark.parametrize(("new", "woke"), [(3.0, 3.0), (0.7, 0.7), (0.2, 0.5)])
def test_sleep_reset_while_a_task_waits_moves_its_wake(new, woke):
    """Later, earlier, and already past (the waiter wakes at once)."""
    rt = runtime()
    events = []

    async def main():
        start = rio.monotonic()
        s = rio.sleep(2)

        async def waiter():
            events.append("waiting")
            await s
            events.append(("woke", rio.monotonic() - start))

        task = rio.spawn(waiter())
        await rio.sleep(0.5)
        assert rt.stats()["timers"] == 1
        events.append("reset")
        s.reset(start + new)
        assert rt.stats()["timers"] == 1  # the old timer is cancelled, one new armed
        await task
        assert rt.stats()["timers"] == 0

    rt.block_on(main())
    assert events[:2] == ["waiting", "reset"]
    assert events[2][0] == "woke"
    assert events[2][1] == near(woke)
    assert at_least(events[2][1], woke)


def test_many_resets_leave_one_timer_armed():
    rt = runtime()

    async def main():
        start = rio.monotonic()
        s = rio.sleep(1)
        task = rio.spawn(_await(s))
        await rio.yield_now()
        await rio.yield_now()
        for i in range(100):
            s.reset(start + 5 + (i % 7))
            assert rt.stats()["timers"] == 1
        s.reset(start + 2)
        assert rt.stats()["timers"] == 1
        await task
        return rio.monotonic() - start

    assert rt.block_on(main()) == near(2)
    assert rt.stats()["timers"] == 0


async def _await(awaitable):
    return await awaitable


def test_sleep_reset_after_it_elapsed_makes_it_pending_again():
    async def main():
        start = rio.monotonic()
        s = rio.sleep(1)
        assert not s.is_elapsed()
        await s
        assert s.is_elapsed()
        s.reset(start + 3)
        assert not s.is_elapsed()
        assert s.deadline == exact(start + 3)
        await s
        assert s.is_elapsed()
        return rio.monotonic() - start

    assert runtime().block_on(main()) == near(3)


def test_sleep_is_elapsed_follows_the_runtime_clock():
    async def main():
        start = rio.monotonic()
        s = rio.sleep_until(start + 1)
        readings = [s.is_elapsed()]
        await rio.sleep_until(start + 0.999)
        readings.append(s.is_elapsed())
        await rio.sleep_until(start + 1)
        readings.append(s.is_elapsed())
        s.reset(start)  # into the past: elapsed without being awaited
        readings.append(s.is_elapsed())
        return readings

    assert runtime().block_on(main()) == [False, False, True, True]


@pytest.mark.parametrize(
    ("bad", "error"),
    [("1", TypeError), (True, TypeError), (None, TypeError), (math.nan, ValueError)],
)
def test_sleep_reset_checks_its_deadline(bad, error):
    s = rio.Sleep(1)
    with pytest.raises(error, match="^deadline must"):
        s.reset(bad)


# --------------------------------------------------------------------------- interval


def test_first_tick_is_immediate_then_one_per_period():
    rt = runtime()

    async def main():
        created = rio.monotonic()
        iv = rio.interval(1.5)
        ticks_before = rt.stats()["ticks"]
        first = await iv.tick()
        assert rt.stats()["ticks"] == ticks_before  # did not suspend
        assert first == near(created) and first <= rio.monotonic()
        seen = []
        for _ in range(3):
            deadline = await iv.tick()
            seen.append((deadline - first, rio.monotonic() - first))
        return seen

    seen = rt.block_on(main())
    assert [d for d, _ in seen] == [exact(1.5), exact(3.0), exact(4.5)]
    for deadline, woke in seen:
        assert woke >= deadline and woke == near(deadline)


def test_async_for_yields_the_deadlines():
    async def main():
        iv = rio.interval(0.25)
        assert iv.period == 0.25 and iv.missed_tick == "burst"
        deadlines = []
        async for deadline in iv:
            deadlines.append(deadline)
            if len(deadlines) == 5:
                break
        return [d - deadlines[0] for d in deadlines]

    assert runtime().block_on(main()) == [exact(0.25 * i) for i in range(5)]


def late_consumer(missed_tick, late_until, ticks=5):
    """Tick once, sleep until ``late_until`` (relative to the first tick), then
    take ``ticks`` more: [(deadline, clock when taken, runtime ticks)] relative
    to the first tick."""
    rt = runtime()

    async def main():
        iv = rio.interval(1, missed_tick=missed_tick)
        first = await iv.tick()
        await rio.sleep_until(first + late_until)
        taken = []
        for _ in range(ticks):
            deadline = await iv.tick()
            taken.append((deadline - first, rio.monotonic() - first, rt.stats()["ticks"]))
        return taken

    return rt.block_on(main())


def test_missed_ticks_burst_fire_back_to_back_on_the_grid():
    taken = late_consumer("burst", 3.5)
    assert [d for d, _, _ in taken] == [exact(1), exact(2), exact(3), exact(4), exact(5)]
    # the three missed ticks come at once, in one runtime tick, with no time passing
    assert [c for _, c, _ in taken[:3]] == [near(3.5)] * 3
    assert taken[0][2] == taken[1][2] == taken[2][2]
    # then back on the original grid
    assert taken[3][1] == near(4) and at_least(taken[3][1], 4)
    assert taken[4][1] == near(5) and at_least(taken[4][1], 5)


def test_missed_ticks_delay_restart_one_period_after_the_late_tick():
    taken = late_consumer("delay", 3.5, ticks=3)
    deadlines = [d for d, _, _ in taken]
    assert deadlines[0] == exact(1)  # the late tick still reports when it was due
    assert deadlines[1] == near(4.5)  # one period after it was taken (at 3.5)
    assert at_least(deadlines[1], 4.5)
    assert deadlines[2] - deadlines[1] == exact(1)  # a new grid from there
    for deadline, clock, _ in taken[1:]:
        assert clock >= deadline and clock == near(deadline)


def test_missed_ticks_skip_to_the_next_grid_point_after_now():
    taken = late_consumer("skip", 3.5, ticks=3)
    assert [d for d, _, _ in taken] == [exact(1), exact(4), exact(5)]
    assert [c for _, c, _ in taken] == [near(3.5), near(4), near(5)]


@pytest.mark.parametrize("missed_tick", ["burst", "delay", "skip"])
def test_a_tick_late_by_less_than_5_ms_is_on_time(missed_tick):
    """tokio's tolerance: a tick taken up to 5 ms late keeps the grid."""
    taken = late_consumer(missed_tick, 1.003, ticks=3)
    assert [d for d, _, _ in taken] == [exact(1), exact(2), exact(3)]


def test_delay_mode_when_late_by_more_than_5_ms():
    taken = late_consumer("delay", 1.01, ticks=2)
    assert taken[0][0] == exact(1)
    assert taken[1][0] == near(2.01) and at_least(taken[1][0], 2.01)


def test_reset_puts_the_next_tick_one_period_from_now():
    rt = runtime()

    async def main():
        iv = rio.interval(1)
        first = await iv.tick()

        async def ticker():
            return await iv.tick()

        task = rio.spawn(ticker())  # waits for the tick due at first + 1
        await rio.sleep_until(first + 0.4)
        iv.reset()
        assert rt.stats()["timers"] == 1
        assert iv.deadline == near(first + 1.4)
        reset_tick = await task
        woke = rio.monotonic()
        following = await iv.tick()
        return first, reset_tick, woke, following

    first, reset_tick, woke, following = rt.block_on(main())
    assert reset_tick - first == near(1.4) and at_least(reset_tick - first, 1.4)
    assert woke >= reset_tick
    assert following - reset_tick == exact(1)


def test_reset_while_nobody_waits():
    async def main():
        iv = rio.interval(2, missed_tick="skip")
        first = await iv.tick()
        await rio.sleep_until(first + 0.5)
        iv.reset()
        return first, [await iv.tick() for _ in range(2)]

    first, ticks = runtime().block_on(main())
    assert [t - first for t in ticks] == [near(2.5), near(4.5)]
    assert ticks[1] - ticks[0] == exact(2)


def test_a_cancelled_tick_loses_no_tick():
    rt = runtime()
    events = []

    async def main():
        iv = rio.interval(1)
        first = await iv.tick()

        async def ticker():
            events.append("waiting")
            await iv.tick()
            events.append("ticked")  # never

        task = rio.spawn(ticker())
        await rio.sleep_until(first + 0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert rt.stats()["timers"] == 0  # the cancelled tick left no timer
        events.append("cancelled")
        with pytest.raises(TimeoutError):
            async with rio.timeout(0.25):
                await iv.tick()
        events.append("timed out")
        assert rt.stats()["timers"] == 0
        events.append(await iv.tick() - first)
        events.append(rio.monotonic() - first)
        events.append(await iv.tick() - first)

    rt.block_on(main())
    assert events[:3] == ["waiting", "cancelled", "timed out"]
    assert events[3] == exact(1)
    assert at_least(events[4], 1) and events[4] == near(1)
    assert events[5] == exact(2)


def test_a_tick_woken_but_cancelled_before_it_ran_is_not_lost():
    """The tick's timer fired and woke the task, which is cancelled before it
    polls again: the tick is still there for the next tick() call."""
    clock = rio.testing.MockClock()
    rt = rio.Runtime(clock=clock)
    events = []

    async def main():
        iv = rio.interval(1)
        first = await iv.tick()

        async def ticker():
            events.append("waiting")
            await iv.tick()
            events.append("ticked")  # never

        task = rio.spawn(ticker())
        await rio.sleep_until(first + 1 - 1e-4)
        # Move the clock onto the tick (by hand: this task stays ready) and let
        # the tick's timer fire: this task was queued before the timer woke the
        # ticker, so it runs first in that tick.
        assert rt.stats()["timers"] == 1
        clock.jump(1e-4)
        while rt.stats()["timers"]:
            await rio.yield_now()
        task.cancel()
        events.append(await iv.tick() - first)
        with pytest.raises(asyncio.CancelledError):
            await task
        events.append(await iv.tick() - first)

    rt.block_on(main())
    assert events == ["waiting", exact(1), exact(2)]


@pytest.mark.parametrize(
    ("period", "error", "match"),
    [
        (0, ValueError, "^period must be a positive number of seconds"),
        (-1, ValueError, "^period must be a positive number of seconds"),
        (-math.inf, ValueError, "^period must be a positive number of seconds"),
        (math.nan, ValueError, "^period must not be NaN"),
        (True, TypeError, "^period must be a number of seconds"),
        ("1", TypeError, "^period must be a number of seconds"),
        (None, TypeError, "^period must be a number of seconds"),
    ],
)
def test_interval_checks_its_period(period, error, match):
    with pytest.raises(error, match=match):
        rio.interval(period)


@pytest.mark.parametrize("missed_tick", ["Burst", "", None, 0, "catch_up"])
def test_interval_checks_missed_tick(missed_tick):
    with pytest.raises(ValueError, match="'burst', 'delay' or 'skip'"):
        rio.interval(1, missed_tick=missed_tick)


def test_missed_tick_is_keyword_only():
    with pytest.raises(TypeError):
        rio.interval(1, "skip")  # type: ignore[misc]


def test_interval_class_and_repr():
    iv = rio.Interval(0.5, missed_tick="skip")
    assert isinstance(iv, rio.Interval)
    assert (iv.period, iv.missed_tick) == (0.5, "skip")
    assert "period=0.5" in repr(iv) and "skip" in repr(iv)


# --------------------------------------------------------------------------- asyncio door


def test_interval_in_an_asyncio_task_on_rios_loop():
    async def ticker(iv, events):
        for _ in range(4):
            deadline = await iv.tick()
            events.append(("tick", deadline, rio.monotonic()))

    async def main():
        events = []
        iv = rio.interval(0.01)
        task = asyncio.create_task(ticker(iv, events))
        events.append(("spawned", None, None))
        await task
        return events

    events = rio.run(main())
    assert events[0][0] == "spawned"  # create_task ran nothing yet
    ticks = events[1:]
    assert [e[0] for e in ticks] == ["tick"] * 4
    deadlines = [d for _, d, _ in ticks]
    assert [d - deadlines[0] for d in deadlines] == [exact(0.01 * i) for i in range(4)]
    for _, deadline, clock in ticks:
        assert clock >= deadline
    assert [c for _, _, c in ticks] == sorted(c for _, _, c in ticks)
