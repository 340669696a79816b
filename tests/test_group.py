"""Task groups of rio_core._group: JoinSet and TaskGroup.

The contract under test (docs/native-api.md, "Task groups"): a JoinSet joins
its tasks in completion order, cancel-safely (a finished task handed to a
cancelled ``join_next`` goes to the next call); ``join_all`` gives results in
spawn order or the first failure (after cancelling and awaiting the rest);
leaving its block cancels what is left and raises the unjoined failures in an
ExceptionGroup. A TaskGroup is asyncio.TaskGroup's contract on rio tasks
(tests/test_taskgroup_oracle.py compares it with the stdlib), plus
``cancel()`` and trio's ``start()``.

Ordering is made with ``steps(n)`` (n bare yields: a rio task and an asyncio
task both give the loop one turn per yield) and rio.Event; no test sleeps in
real time. Every door: a bare ``rio.Runtime`` (autojump clock), a native task
under ``rio.block_on`` (a rio Loop), and an asyncio task on rio's loop.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time

import pytest

import rio_rt as rio
from rio_rt.testing import run_on_loop


async def steps(n: int) -> None:
    """Give the loop ``n`` turns (a bare yield each, in rio and asyncio tasks alike)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def after(n: int, value):
    await steps(n)
    return value


async def fail_after(n: int, exc: BaseException):
    await steps(n)
    raise exc


async def forever(event: rio.Event | None = None):
    await (event or rio.Event()).wait()


def state(task) -> str:
    if not task.done():
        return "running"
    if task.cancelled():
        return "cancelled"
    return "failed" if task.exception() is not None else "done"


def in_runtime(fn):
    return rio.Runtime(autojump_clock=True).block_on(fn())


def in_block_on(fn):
    return rio.block_on(fn())


def in_asyncio_task(fn):
    return run_on_loop(rio.new_event_loop, fn(), seconds=20.0)


DOORS = {"runtime": in_runtime, "block_on": in_block_on, "asyncio": in_asyncio_task}


@pytest.fixture(params=sorted(DOORS))
def door(request):
    """Run ``fn()`` as the main task of each door; returns its value."""
    return DOORS[request.param]


# --------------------------------------------------------------------------- JoinSet


def test_join_next_returns_tasks_in_completion_order(door):
    async def main():
        js = rio.JoinSet()
        spawned = [js.spawn(after(n, n)) for n in (5, 1, 3)]
        assert len(js) == 3
        order = []
        for _ in range(3):
            task = await js.join_next()
            assert task.done()
            order.append(task.result())
        assert await js.join_next() is None
        assert len(js) == 0
        return order, [t.result() for t in spawned]

    assert door(main) == ([1, 3, 5], [5, 1, 3])


def test_join_next_on_an_empty_set_is_none_at_once(door):
    async def main():
        js = rio.JoinSet()
        return await js.join_next(), js.try_join_next(), len(js)

    assert door(main) == (None, None, 0)


def test_try_join_next_never_waits(door):
    async def main():
        js = rio.JoinSet()
        gate = rio.Event()
        js.spawn(forever(gate))
        quick = js.spawn(after(0, "quick"))
        first = js.try_join_next()  # nothing has run yet
        await steps(2)
        second = js.try_join_next()
        third = js.try_join_next()  # the other one still waits
        gate.set()
        await steps(2)
        fourth = js.try_join_next()
        return first, second is quick, third, fourth is not None, len(js)

    assert door(main) == (None, True, None, True, 0)


def test_async_for_joins_until_empty(door):
    async def main():
        js = rio.JoinSet()
        for n in (4, 2, 6, 0):
            js.spawn(after(n, n))
        return [task.result() async for task in js]

    assert door(main) == [0, 2, 4, 6]


def test_join_all_returns_results_in_spawn_order(door):
    async def main():
        js = rio.JoinSet()
        for n in (6, 2, 4):
            js.spawn(after(n, n * 10))
        results = await js.join_all()
        return results, len(js), await js.join_all()

    assert door(main) == ([60, 20, 40], 0, [])


def test_join_all_first_failure_cancels_the_rest_and_is_raised(door):
    async def main():
        js = rio.JoinSet()
        finished = js.spawn(after(0, "done early"))
        slow = js.spawn(forever())
        first = js.spawn(fail_after(2, ValueError("first")))
        second = js.spawn(fail_after(5, KeyError("second")))
        try:
            await js.join_all()
        except ValueError as exc:
            error = str(exc)
        return (
            error,
            [state(t) for t in (finished, slow, first, second)],
            len(js),
        )

    assert door(main) == ("first", ["done", "cancelled", "failed", "cancelled"], 0)


def test_join_all_counts_a_cancelled_child_as_a_failure(run):
    async def main():
        js = rio.JoinSet()
        victim = js.spawn(forever())
        other = js.spawn(forever())
        await steps(1)
        victim.cancel()
        with pytest.raises(rio.CancelledError):
            await js.join_all()
        return state(other), rio.current_task().cancelling()

    assert run(main) == ("cancelled", 0)


def test_a_cancelled_join_all_leaves_every_task_in_the_set(run):
    async def main():
        js = rio.JoinSet()
        gate = rio.Event()
        done = js.spawn(after(0, 1))
        waiting = js.spawn(forever(gate))
        joiner = rio.spawn(js.join_all())
        await steps(3)
        joiner.cancel()
        await steps(2)
        assert joiner.cancelled()
        assert len(js) == 2 and not waiting.done()
        gate.set()
        return await js.join_all(), done.result()

    assert run(main) == ([1, None], 1)


def test_a_cancelled_join_next_loses_no_task(run):
    """The finished task is handed to the parked join_next, which is then
    cancelled before it runs: the next call gets the task."""

    async def main():
        js = rio.JoinSet()
        gate = rio.Event()
        child = js.spawn(after_event(gate, "value"))
        joiner = rio.spawn(js.join_next())
        await steps(3)  # the joiner is parked
        gate.set()  # the child runs next tick, then the killer, then the joiner
        rio.spawn(cancel_soon(joiner))
        await steps(3)
        assert joiner.cancelled()
        assert len(js) == 1
        task = await js.join_next()
        return task is child, task.result(), len(js)

    assert run(main) == (True, "value", 0)


async def after_event(event, value):
    await event.wait()
    return value


async def cancel_soon(task):
    task.cancel()


def test_a_join_next_cancelled_while_parked_takes_nothing(run):
    async def main():
        js = rio.JoinSet()
        gate = rio.Event()
        child = js.spawn(after_event(gate, 7))
        first = rio.spawn(js.join_next())
        second = rio.spawn(js.join_next())
        await steps(2)
        first.cancel()
        await steps(2)
        gate.set()
        got = await second
        return first.cancelled(), got is child, len(js)

    assert run(main) == (True, True, 0)


def test_parked_join_next_calls_get_none_when_the_set_empties(run):
    async def main():
        js = rio.JoinSet()
        gate = rio.Event()
        js.spawn(after_event(gate, 1))
        first = rio.spawn(js.join_next())
        second = rio.spawn(js.join_next())
        await steps(2)
        gate.set()
        a, b = await first, await second
        return a.result(), b

    assert run(main) == (1, None)


def test_abort_all_cancels_without_waiting(door):
    async def main():
        js = rio.JoinSet()
        tasks = [js.spawn(forever()) for _ in range(3)]
        await steps(1)
        js.abort_all()
        before = [t.done() for t in tasks]
        joined = [(await js.join_next()).cancelled() for _ in range(3)]
        return before, joined, len(js)

    assert door(main) == ([False] * 3, [True] * 3, 0)


def test_shutdown_cancels_and_waits_for_all(door):
    async def main():
        js = rio.JoinSet()
        finished = js.spawn(fail_after(0, ValueError("dropped")))
        tasks = [js.spawn(forever()) for _ in range(3)]
        await steps(2)
        await js.shutdown()
        return [state(t) for t in tasks], state(finished), len(js)

    assert door(main) == (["cancelled"] * 3, "failed", 0)


def test_detach_all_forgets_tasks_that_keep_running(door):
    async def main():
        js = rio.JoinSet()
        gate = rio.Event()
        tasks = [js.spawn(after_event(gate, n)) for n in range(3)]
        await steps(1)
        js.detach_all()
        assert len(js) == 0
        assert await js.join_next() is None
        gate.set()
        return [await t for t in tasks], len(js)

    assert door(main) == ([0, 1, 2], 0)


def test_leaving_the_block_cancels_what_is_left(door):
    async def main():
        async with rio.JoinSet() as js:
            tasks = [js.spawn(forever()) for _ in range(3)]
            joined = js.spawn(after(0, "joined"))
            assert (await js.join_next()) is joined
        return [state(t) for t in tasks], len(js)

    assert door(main) == (["cancelled"] * 3, 0)


def test_leaving_the_block_raises_unjoined_failures_in_a_group(door):
    async def main():
        try:
            async with rio.JoinSet() as js:
                js.spawn(fail_after(1, ValueError("a")))
                js.spawn(fail_after(2, KeyError("b")))
                js.spawn(fail_after(0, OSError("joined")))
                js.spawn(forever())  # cancelled at exit: not a failure
                await steps(4)
                joined = js.try_join_next()
                assert isinstance(joined.exception(), OSError)
        except ExceptionGroup as group:
            return sorted(repr(e) for e in group.exceptions)
        return None

    assert door(main) == ["KeyError('b')", "ValueError('a')"]


def test_the_body_exception_propagates_unchanged(run, unraisable):
    async def main():
        with pytest.raises(ZeroDivisionError):
            async with rio.JoinSet() as js:
                slow = js.spawn(forever())
                js.spawn(fail_after(0, ValueError("unjoined")))
                await steps(2)
                1 / 0  # noqa: B018
        return state(slow)

    assert run(main) == "cancelled"
    gc.collect()
    assert any("never retrieved" in r.err_msg for r in unraisable)


def test_joined_failures_are_not_reported_as_never_retrieved(run, unraisable):
    async def main():
        js = rio.JoinSet()
        for n in range(3):
            js.spawn(fail_after(n, ValueError(n)))
        errors = []
        async for task in js:
            errors.append(task.exception().args[0])
        return errors

    assert run(main) == [0, 1, 2]
    gc.collect()
    assert unraisable == []


def test_spawn_blocking_joins_like_a_task(run):
    def work(x):
        time.sleep(0.001)
        return x * 2

    async def main():
        js = rio.JoinSet()
        js.spawn_blocking(work, 21)
        return (await js.join_next()).result()

    assert rio.Runtime().block_on(main()) == 42


# ---- JoinSet misuse


def test_spawn_into_a_closed_joinset_raises(run):
    async def main():
        async with rio.JoinSet() as js:
            pass
        coro = after(0, 1)
        with pytest.raises(RuntimeError, match="closed"):
            js.spawn(coro)
        assert coro.cr_frame is None  # closed: no "never awaited" warning
        with pytest.raises(RuntimeError, match="closed"):
            js.spawn_blocking(print)
        with pytest.raises(RuntimeError, match="once"):
            async with js:
                pass
        return "ok"

    assert run(main) == "ok"


def test_spawn_needs_a_coroutine(run):
    async def main():
        js = rio.JoinSet()
        with pytest.raises(TypeError, match="coroutine"):
            js.spawn(after)
        with pytest.raises(TypeError, match="callable"):
            js.spawn_blocking(42)
        return len(js)

    assert run(main) == 0


def test_a_set_its_finished_task_refers_to_is_collected(run):
    def live_sets():
        return sum(isinstance(o, rio.JoinSet) for o in gc.get_objects())

    gc.collect()
    before = live_sets()

    async def main():
        js = rio.JoinSet()

        async def returns_its_set():
            return js

        js.spawn(returns_its_set())
        await steps(2)
        assert len(js) == 1  # finished, unjoined: the set holds the task, the task the set

    run(main)
    gc.collect()
    assert live_sets() == before


def test_spawn_outside_a_runtime_raises():
    js = rio.JoinSet()
    coro = after(0, 1)
    with pytest.raises(RuntimeError, match="running rio runtime"):
        js.spawn(coro)
    assert coro.cr_frame is None


def test_a_joinset_is_bound_to_the_runtime_of_its_tasks(run, unraisable):
    js = rio.JoinSet()

    async def first():
        js.spawn(forever())  # cancelled when this runtime shuts down: stays unjoined

    run(first)
    assert len(js) == 1

    async def second():
        with pytest.raises(RuntimeError, match="another runtime"):
            js.spawn(after(0, 1))
        with pytest.raises(RuntimeError, match="another runtime"):
            await js.join_next()
        with pytest.raises(RuntimeError, match="another runtime"):
            js.try_join_next()
        js.detach_all()  # forgotten: the set is free again
        js.spawn(after(0, 2))
        return (await js.join_next()).result()

    assert run(second) == 2


def test_a_joinset_keeps_no_joined_task_alive():
    """1,000,000 spawn/join_next cycles on one JoinSet: memory is flat
    (sys.getallocatedblocks sampled after 100k and after 1M cycles)."""
    total, sample_at = 1_000_000, 100_000

    async def main():
        js = rio.JoinSet()

        async def nop():
            return None

        samples = {}
        for i in range(1, total + 1):
            js.spawn(nop())
            task = await js.join_next()
            if i == sample_at or i == total:
                del task
                gc.collect()
                samples[i] = sys.getallocatedblocks()
        return samples, len(js)

    started = time.perf_counter()
    samples, left = rio.Runtime().block_on(main())
    elapsed = time.perf_counter() - started
    assert left == 0
    growth = samples[total] - samples[sample_at]
    assert growth < 2_000, f"{growth} blocks more after {total} cycles than after {sample_at}"
    assert elapsed < 25, elapsed


# --------------------------------------------------------------------------- TaskGroup


def test_taskgroup_waits_for_its_children(door):
    async def main():
        async with rio.TaskGroup() as tg:
            a = tg.spawn(after(3, "a"))
            b = tg.create_task(after(1, "b"), name="bee")
        return a.result(), b.result(), b.name

    assert door(main) == ("a", "b", "bee")


def test_a_child_failure_cancels_siblings_and_body(door):
    async def main():
        log = []
        parent = rio.current_task() or asyncio.current_task()
        try:
            async with rio.TaskGroup() as tg:
                slow = tg.spawn(forever())
                tg.spawn(fail_after(2, ValueError("boom")))
                try:
                    await steps(100)
                    log.append("body finished")
                except rio.CancelledError:
                    log.append("body cancelled")
                    raise
        except ExceptionGroup as group:
            log.append([repr(e) for e in group.exceptions])
        return log, state(slow), parent.cancelling()

    assert door(main) == (["body cancelled", ["ValueError('boom')"]], "cancelled", 0)


def test_cancel_stops_children_and_body_without_error(door):
    async def main():
        parent = rio.current_task() or asyncio.current_task()
        log = []
        async with rio.TaskGroup() as tg:
            children = [tg.spawn(forever()) for _ in range(2)]
            await steps(1)
            tg.cancel()
            try:
                await steps(10)
                log.append("not cancelled")
            except rio.CancelledError:
                log.append("body cancelled")
                raise
        tg.cancel()  # after the exit: nothing to do
        await steps(2)  # the parent is not cancelled again
        return log, [state(t) for t in children], parent.cancelling()

    assert door(main) == (["body cancelled"], ["cancelled", "cancelled"], 0)


def test_cancel_from_a_child_exits_quietly(run):
    async def main():
        async with rio.TaskGroup() as tg:

            async def canceller():
                await steps(2)
                tg.cancel()

            tg.spawn(canceller())
            other = tg.spawn(forever())
            await forever()
        return state(other), rio.current_task().cancelling()

    assert run(main) == ("cancelled", 0)


def test_start_returns_the_started_value(door):
    async def server(greeting, *, task_status):
        await steps(2)
        task_status.started(f"{greeting}, ready")
        await steps(2)
        return "served"

    async def main():
        async with rio.TaskGroup() as tg:
            value = await tg.start(server, "hello")
            running = len(tg)
        return value, running

    assert door(main) == ("hello, ready", 1)


def test_start_raises_what_the_child_raised_before_started(run):
    async def broken(*, task_status):
        await steps(1)
        raise ValueError("no start")

    async def main():
        async with rio.TaskGroup() as tg:
            sibling = tg.spawn(after(5, "sibling"))
            with pytest.raises(ValueError, match="no start"):
                await tg.start(broken)
        return sibling.result(), rio.current_task().cancelling()

    assert run(main) == ("sibling", 0)


def test_start_raises_when_the_child_returns_without_started(run):
    async def lazy(*, task_status):
        await steps(1)

    async def main():
        async with rio.TaskGroup() as tg:
            with pytest.raises(RuntimeError, match="without calling task_status.started"):
                await tg.start(lazy)
        return "ok"

    assert run(main) == "ok"


def test_started_twice_raises(run):
    async def twice(*, task_status):
        task_status.started(1)
        with pytest.raises(RuntimeError, match="already"):
            task_status.started(2)
        return "checked"

    async def main():
        async with rio.TaskGroup() as tg:
            assert await tg.start(twice) == 1
        return "ok"

    assert run(main) == "ok"


def test_a_cancelled_start_cancels_the_child(run):
    children = []

    async def never_ready(*, task_status):
        children.append(rio.current_task())
        await forever()

    async def main():
        async with rio.TaskGroup() as tg:
            starter = tg.spawn(tg.start(never_ready))
            await steps(3)
            starter.cancel()
        return starter.cancelled(), state(children[0])

    assert run(main) == (True, "cancelled")


def test_a_child_failing_after_started_fails_the_group(run):
    async def flaky(*, task_status):
        task_status.started()
        await steps(1)
        raise KeyError("later")

    async def main():
        with pytest.raises(ExceptionGroup) as info:
            async with rio.TaskGroup() as tg:
                await tg.start(flaky)
                await forever()
        return [repr(e) for e in info.value.exceptions]

    assert run(main) == ["KeyError('later')"]


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_keyboardinterrupt_and_systemexit_in_a_child_propagate_as_themselves(kind, unraisable):
    async def main():
        async with rio.TaskGroup() as tg:
            tg.spawn(fail_after(1, kind()))
            await forever()

    with pytest.raises(kind):
        rio.Runtime(autojump_clock=True).block_on(main())


def test_exit_waits_for_children_even_when_cancelled_again(run):
    async def main():
        log = []

        async def stubborn():
            try:
                await forever()
            except rio.CancelledError:
                await steps(5)  # cleanup that takes a while
                log.append("cleaned up")
                raise

        parent = rio.current_task()

        async def canceller():
            await steps(2)
            parent.cancel()
            await steps(2)
            parent.cancel()  # during the exit's wait

        rio.spawn(canceller())
        with pytest.raises(rio.CancelledError):
            async with rio.TaskGroup() as tg:
                tg.spawn(stubborn())
                await forever()
        return log, parent.cancelling()

    assert run(main) == (["cleaned up"], 2)


# ---- TaskGroup misuse


def test_spawn_before_enter_and_after_exit_raise(run):
    async def main():
        tg = rio.TaskGroup()
        with pytest.raises(RuntimeError, match="not been entered"):
            tg.spawn(after(0, 1))
        with pytest.raises(RuntimeError, match="not been entered"):
            tg.cancel()
        async with tg:
            pass
        coro = after(0, 1)
        with pytest.raises(RuntimeError, match="finished"):
            tg.spawn(coro)
        assert coro.cr_frame is None
        with pytest.raises(RuntimeError, match="already entered"):
            async with tg:
                pass
        return "ok"

    assert run(main) == "ok"


def test_spawn_while_shutting_down_raises(run):
    async def main():
        refused = []
        with pytest.raises(ExceptionGroup):
            async with rio.TaskGroup() as tg:

                async def late():
                    try:
                        await forever()
                    except rio.CancelledError:
                        with pytest.raises(RuntimeError, match="shutting down"):
                            tg.spawn(after(0, 1))
                        refused.append(True)
                        raise

                tg.spawn(late())
                tg.spawn(fail_after(1, ValueError()))
                await forever()
        return refused

    assert run(main) == [True]


def test_taskgroup_spawn_needs_a_coroutine(run):
    async def main():
        async with rio.TaskGroup() as tg:
            with pytest.raises(TypeError, match="coroutine"):
                tg.spawn(after)
            with pytest.raises(TypeError, match="coroutine"):
                await tg.start(lambda *, task_status: 42)
            ok = tg.spawn(after(1, "still works"))
        return ok.result(), len(tg)

    assert run(main) == ("still works", 0)


def test_enter_twice_raises(run):
    async def main():
        async with rio.TaskGroup() as tg:
            with pytest.raises(RuntimeError, match="already entered"):
                await tg.__aenter__()
        return "ok"

    assert run(main) == "ok"


def test_a_taskgroup_used_from_another_runtime_raises(run):
    errors = []

    async def main():
        async with rio.TaskGroup() as tg:

            def other_thread():
                async def use():
                    coro = after(0, 1)
                    try:
                        tg.spawn(coro)
                    except RuntimeError as exc:
                        errors.append(str(exc))
                    finally:
                        coro.close()

                rio.Runtime().block_on(use())

            thread = threading.Thread(target=other_thread)
            thread.start()
            await rio.spawn_blocking(thread.join, 10)
        return errors

    assert "another runtime" in run(main)[0]


def test_a_taskgroup_needs_a_rio_runtime():
    async def main():
        with pytest.raises(RuntimeError, match="rio runtime"):
            async with rio.TaskGroup():
                pass
        return "ok"

    assert asyncio.run(main()) == "ok"


def test_a_taskgroup_inside_a_shield_still_cancels_its_body(run):
    """The group cancels its body through its own cancel scope: a shield around
    the group (which holds back Task.cancel()) does not hold that back."""

    async def main():
        log = []

        async def boom():
            raise ValueError("child failed")

        with rio.CancelScope(shield=True):
            with pytest.raises(ExceptionGroup) as info:
                async with rio.TaskGroup() as tg:
                    tg.spawn(boom())
                    try:
                        await rio.sleep(100)
                    except asyncio.CancelledError:
                        log.append("body cancelled")
                        raise
            log.append(type(info.value.exceptions[0]).__name__)
        log.append(rio.current_task().cancelling())
        return log

    assert run(main) == ["body cancelled", "ValueError", 0]


def test_a_shield_inside_the_body_holds_the_groups_cancel_until_it_exits(run):
    async def main():
        log = []

        async def boom():
            raise ValueError("child failed")

        with pytest.raises(ExceptionGroup):
            async with rio.TaskGroup() as tg:
                tg.spawn(boom())
                with rio.CancelScope(shield=True):
                    await rio.sleep(5)
                    log.append("shielded part finished")
                await rio.sleep(100)
                log.append("not reached")
        log.append(rio.current_task().cancelling())
        return log

    assert run(main) == ["shielded part finished", 0]
