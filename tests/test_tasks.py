"""Tasks: spawning, joining, the Task API, contextvars, lost exceptions, shutdown."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import traceback
import warnings

import pytest

import rio_rt as rio


async def double(x):
    await rio.yield_now()
    return x * 2


def test_block_on_returns_the_main_value_and_raises_its_exception(run):
    async def ok():
        return "value"

    async def fails():
        await rio.sleep(1)
        raise LookupError("main failed")

    assert rio.block_on(ok()) == "value"
    assert run(ok) == "value"
    with pytest.raises(LookupError, match="main failed"):
        run(fails)


def test_runtime_runs_block_on_many_times_sequentially():
    rt = rio.Runtime(autojump_clock=True)

    async def main(i):
        tasks = [rio.spawn(double(i + k)) for k in range(3)]
        await rio.sleep(1)
        return [await t for t in tasks]

    results = [rt.block_on(main(i)) for i in range(5)]
    assert results == [[2 * (i + k) for k in range(3)] for i in range(5)]
    assert rt.stats()["tasks_alive"] == 0


def test_spawn_and_join(run):
    async def main():
        task = rio.spawn(double(21))
        assert isinstance(task, rio.Task)
        return await task

    assert run(main) == 42


def test_join_twice_gives_the_same_result(run):
    async def main():
        task = rio.spawn(double("ab"))
        return await task, await task, task.result()

    assert run(main) == ("abab", "abab", "abab")


def test_task_state_while_running_and_after(run):
    async def main():
        task = rio.spawn(double(5))
        assert not task.done()
        assert not task.cancelled()
        with pytest.raises(asyncio.InvalidStateError):
            task.result()
        assert await task == 10
        assert task.done()
        assert not task.cancelled()
        assert task.result() == 10
        assert task.exception() is None

    run(main)


def test_failed_task_state(run):
    async def fail():
        await rio.yield_now()
        raise KeyError("k")

    async def main():
        task = rio.spawn(fail())
        with pytest.raises(KeyError):
            await task
        assert task.done()
        assert not task.cancelled()
        exc = task.exception()
        assert isinstance(exc, KeyError)
        with pytest.raises(KeyError) as info:
            task.result()
        assert info.value is exc

    run(main)


def test_names_and_ids(run):
    async def main():
        named = rio.spawn(double(1), name="worker")
        unnamed = [rio.spawn(double(i)) for i in range(50)]
        assert named.name == "worker"
        ids = [t.id for t in unnamed] + [named.id]
        assert all(isinstance(i, int) for i in ids)
        assert len(set(ids)) == len(ids)
        for task in unnamed:
            assert isinstance(task.name, str)
            assert task.name == f"Task-{task.id}"
        await named
        for task in unnamed:
            await task
        return rio.current_task().id, ids

    main_id, ids = run(main)
    assert main_id not in ids


def test_ids_unique_across_runtimes(run):
    async def main():
        return [rio.spawn(double(i)).id for i in range(5)] + [rio.current_task().id]

    first, second = run(main), run(main)
    assert not set(first) & set(second)


def test_current_task(run):
    seen = {}

    async def child():
        seen["child"] = rio.current_task()
        await rio.yield_now()
        seen["child_after_await"] = rio.current_task()

    async def main():
        seen["main"] = rio.current_task()
        task = rio.spawn(child())
        await task
        seen["main_after_join"] = rio.current_task()
        return task

    assert rio.current_task() is None
    task = run(main)
    assert rio.current_task() is None
    assert isinstance(seen["main"], rio.Task)
    assert seen["main_after_join"] is seen["main"]
    assert seen["child"] is task
    assert seen["child_after_await"] is task
    assert seen["main"] is not task


async def deep_raiser():
    await rio.yield_now()
    raise ValueError("from deep down")


async def middle_layer():
    await deep_raiser()


def test_exception_propagates_with_its_traceback(run):
    async def main():
        await rio.spawn(middle_layer())

    with pytest.raises(ValueError, match="from deep down") as info:
        run(main)
    text = "".join(traceback.format_exception(info.value))
    assert "deep_raiser" in text
    assert "middle_layer" in text


def test_several_joiners_get_the_result(run):
    async def slow():
        await rio.sleep(3)
        return "shared"

    async def joiner(task, delay):
        await rio.sleep(delay)
        return await task

    async def main():
        target = rio.spawn(slow())
        joiners = [rio.spawn(joiner(target, d)) for d in (0, 0, 1, 2, 5)]
        return [await j for j in joiners]

    assert run(main) == ["shared"] * 5


def test_several_joiners_get_the_same_exception(run):
    async def slow_fail():
        await rio.sleep(3)
        raise OSError("shared failure")

    async def joiner(task):
        try:
            await task
        except OSError as exc:
            return exc
        return None

    async def main():
        target = rio.spawn(slow_fail())
        joiners = [rio.spawn(joiner(target)) for _ in range(4)]
        return target, [await j for j in joiners]

    target, caught = run(main)
    assert all(isinstance(exc, OSError) for exc in caught)
    assert all(exc is caught[0] for exc in caught)
    assert target.exception() is caught[0]


def test_task_awaiting_itself_raises_runtime_error(run):
    async def self_joiner():
        me = rio.current_task()
        with pytest.raises(RuntimeError):
            await me
        await rio.yield_now()
        return "survived"

    async def main():
        return await rio.spawn(self_joiner())

    assert run(main) == "survived"


def test_hundred_thousand_concurrent_tasks():
    count = 100_000
    rt = rio.Runtime(autojump_clock=True)

    async def work(i):
        await rio.yield_now()
        return i

    async def main():
        tasks = [rio.spawn(work(i)) for i in range(count)]
        alive_during = rt.stats()["tasks_alive"]
        total = 0
        for task in tasks:
            total += await task
        alive_after = rt.stats()["tasks_alive"]
        return total, alive_during - alive_after

    total, difference = rt.block_on(main())
    assert total == count * (count - 1) // 2
    assert difference == count
    assert rt.stats()["tasks_alive"] == 0


VAR = contextvars.ContextVar("VAR", default="unset")


def test_child_sees_parent_value_at_spawn_time_and_does_not_leak(run):
    async def child():
        seen = VAR.get()
        VAR.set("child")
        await rio.yield_now()
        return seen, VAR.get()

    async def main():
        VAR.set("parent")
        task = rio.spawn(child())
        VAR.set("parent after spawn")
        seen, child_after = await task
        return seen, child_after, VAR.get()

    assert run(main) == ("parent", "child", "parent after spawn")


def test_main_task_runs_in_a_copy_of_the_callers_context(run):
    token = VAR.set("caller")
    try:

        async def main():
            seen = VAR.get()
            VAR.set("main")
            await rio.yield_now()
            return seen, VAR.get()

        assert run(main) == ("caller", "main")
        assert VAR.get() == "caller"
    finally:
        VAR.reset(token)


def test_interleaved_tasks_keep_their_own_context(run):
    async def worker(name, log):
        VAR.set(name)
        for _ in range(3):
            await rio.yield_now()
            log.append((name, VAR.get()))

    async def main():
        log = []
        tasks = [rio.spawn(worker(n, log)) for n in ("a", "b", "c")]
        for task in tasks:
            await task
        return log, VAR.get()

    log, main_value = run(main)
    assert len(log) == 9
    assert all(name == value for name, value in log)
    assert main_value == "unset"


class LostError(Exception):
    pass


async def fail_unobserved():
    await rio.yield_now()
    raise LostError("nobody joined me")


def test_unjoined_failed_task_is_reported_through_unraisablehook(run, unraisable):
    async def main():
        rio.spawn(fail_unobserved())
        for _ in range(3):
            await rio.yield_now()

    run(main)
    gc.collect()
    mine = [r for r in unraisable if isinstance(r.exc_value, LostError)]
    assert len(mine) == 1, unraisable
    report = mine[0]
    assert report.err_msg.startswith("rio task exception was never retrieved")
    assert report.exc_type is LostError
    assert str(report.exc_value) == "nobody joined me"
    frames = [f.name for f in traceback.extract_tb(report.exc_value.__traceback__)]
    assert "fail_unobserved" in frames


@pytest.mark.parametrize("retrieve", ["await", "result", "exception"])
def test_retrieved_exception_is_not_reported(run, unraisable, retrieve):
    async def main():
        task = rio.spawn(fail_unobserved())
        for _ in range(3):
            await rio.yield_now()
        assert task.done()
        if retrieve == "await":
            with pytest.raises(LostError):
                await task
        elif retrieve == "result":
            with pytest.raises(LostError):
                task.result()
        else:
            assert isinstance(task.exception(), LostError)

    run(main)
    gc.collect()
    assert [r for r in unraisable if isinstance(r.exc_value, LostError)] == []


def test_tasks_still_running_are_cancelled_before_block_on_returns(run):
    log = []

    async def worker():
        log.append("started")
        try:
            await rio.sleep(1000)
        except rio.CancelledError:
            log.append("cancelled")
            raise
        finally:
            log.append("finally")

    async def slow_cleanup():
        try:
            await rio.sleep(1000)
        finally:
            # block_on waits for cleanup that itself awaits
            await rio.sleep(1)
            log.append("slow cleanup done")

    async def main():
        tasks = [rio.spawn(worker()), rio.spawn(slow_cleanup())]
        await rio.yield_now()
        return tasks

    tasks = run(main)
    assert log == ["started", "cancelled", "finally", "slow cleanup done"]
    assert all(task.done() and task.cancelled() for task in tasks)


def test_unstarted_task_is_cancelled_at_shutdown_without_warnings(run):
    ran = []

    async def never_started():
        ran.append(True)

    async def main():
        return rio.spawn(never_started())  # main returns before it is stepped

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = run(main)
        gc.collect()
    assert ran == []
    assert task.done() and task.cancelled()
    assert [str(w.message) for w in caught] == []


def test_runtime_stats_after_shutdown():
    rt = rio.Runtime(autojump_clock=True)

    async def sleeper():
        await rio.sleep(50)

    async def main():
        before = rt.stats()
        for _ in range(10):
            rio.spawn(sleeper())
        await rio.yield_now()
        return before, rt.stats()

    before, during = rt.block_on(main())
    after = rt.stats()
    expected_keys = {
        "tasks_alive",
        "ready_depth",
        "timers",
        "timers_cancelled",
        "polls",
        "ticks",
        "reactor_waits",
        "fds",
    }
    assert expected_keys <= set(during)
    assert during["tasks_alive"] - before["tasks_alive"] == 10
    assert during["timers"] - before["timers"] == 10
    assert during["polls"] > before["polls"]
    assert during["ticks"] > before["ticks"]
    assert after["tasks_alive"] == 0
    assert after["ready_depth"] == 0
