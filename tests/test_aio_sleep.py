"""asyncio.sleep on rio's loop: inside a rio task it is rio's C awaitable
(``rio_core._loop.AioSleep``), everywhere else asyncio's own coroutine.

Each behaviour test runs one body on stdlib asyncio (the oracle) and on rio's
loop, and compares what the program saw. Delays are a few milliseconds: time is
the subject only where a test says so.
"""

import asyncio
import gc
import inspect
import math
import sys
import warnings
import weakref
from unittest import mock

import pytest
import rio_core
from rio_core._loop import AioSleep

import rio_rt
import rio_rt.testing


def fast_sleep_type():
    """What asyncio.sleep(0) is inside a rio task on rio's loop."""

    async def probe():
        s = asyncio.sleep(0)
        kind = type(s)
        await s
        return kind

    return rio_rt.run(probe())


def test_inside_a_rio_task_sleep_is_rios_and_elsewhere_asyncios():
    assert fast_sleep_type() is AioSleep
    # no loop, the stdlib loop, rio's loop with CPython's Task, debug mode:
    # asyncio's coroutine
    coro = asyncio.sleep(0)  # no loop running at all
    assert inspect.iscoroutine(coro)
    coro.close()
    with asyncio.Runner(loop_factory=lambda: rio_rt.new_event_loop(tasks="asyncio")) as r:
        assert inspect.iscoroutine(r.run(_made_sleep()))
    with asyncio.Runner(loop_factory=rio_rt.new_event_loop, debug=True) as r:
        assert inspect.iscoroutine(r.run(_made_sleep()))
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as r:
        assert inspect.iscoroutine(r.run(_made_sleep()))
    with asyncio.Runner(loop_factory=rio_rt.new_event_loop) as r:
        assert type(r.run(_made_sleep())) is AioSleep


async def _made_sleep():
    s = asyncio.sleep(0)
    await s
    return s


def test_delays_that_are_not_finite_ints_or_floats_take_asyncios_path():
    async def kinds():
        out = []
        for delay in (0, 0.0, -1, 1e-9, True, 10**400, math.inf, -math.inf, math.nan):
            s = asyncio.sleep(delay)
            out.append(type(s) is AioSleep)
            s.close()
        return out

    assert rio_rt.run(kinds()) == [True, True, True, True, False, False, False, False, False]


def test_it_is_a_coroutine_function_to_asyncio_inspect_and_mock():
    assert asyncio.sleep is asyncio.tasks.sleep
    assert asyncio.sleep.__name__ == "sleep"
    assert asyncio.sleep.__module__ == "asyncio.tasks"
    assert list(inspect.signature(asyncio.sleep).parameters) == ["delay", "result"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.14 deprecates it
        assert asyncio.iscoroutinefunction(asyncio.sleep)
    if sys.version_info >= (3, 12):
        assert inspect.iscoroutinefunction(asyncio.sleep)
    with mock.patch("asyncio.sleep") as patched:
        assert isinstance(patched, mock.AsyncMock)


# ---- behaviour: one body, both loops


async def interleaving():
    """sleep(0) yields once: tasks take turns as on asyncio."""
    trace = []

    async def worker(name, n):
        for i in range(n):
            trace.append((name, i))
            got = await asyncio.sleep(0, result=(name, i))
            assert got == (name, i)
        return name

    results = await asyncio.gather(worker("a", 3), worker("b", 2), worker("c", 4))
    return results, trace


async def results_and_order():
    """Distinct delays wake in deadline order and return their result."""
    order = []

    async def sleeper(delay, tag):
        got = await asyncio.sleep(delay, tag)
        order.append(got)
        return got

    results = await asyncio.gather(*(sleeper(d / 1000, d) for d in (5, 1, 3, 2, 4)))
    negative = await asyncio.sleep(-5, "neg")
    as_task = await asyncio.create_task(asyncio.sleep(0.001, "task"))
    return results, order, negative, as_task


async def cancelled_while_sleeping():
    """cancel() reaches the sleep's future: CancelledError with the message,
    cancelling() counts it, and the timer goes."""
    seen = []

    async def sleeper():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as error:
            seen.append(("caught", error.args, asyncio.current_task().cancelling()))
            raise

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    waiter = task._fut_waiter
    seen.append(("waits on a future", asyncio.isfuture(waiter), waiter.done()))
    assert task.cancel("stop")
    seen.append(("future cancelled", waiter.cancelled()))
    try:
        await task
    except asyncio.CancelledError as error:
        seen.append(("task", error.args, task.cancelled()))
    return seen


async def timeouts():
    """wait_for and asyncio.timeout around a sleep that would take 30 s."""
    out = []
    try:
        await asyncio.wait_for(asyncio.sleep(30), 0.002)
    except TimeoutError:
        out.append("wait_for timed out")
    try:
        async with asyncio.timeout(0.002):
            await asyncio.sleep(30)
    except TimeoutError:
        out.append("timeout() timed out")
    out.append(await asyncio.wait_for(asyncio.sleep(0.001, "in time"), 5))
    done, pending = await asyncio.wait(
        [asyncio.create_task(asyncio.sleep(0.001, 1)), asyncio.create_task(asyncio.sleep(30, 2))],
        return_when=asyncio.FIRST_COMPLETED,
    )
    out.append(sorted(t.result() for t in done))
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    out.append([t.cancelled() for t in pending])
    return out


async def cancelled_during_sleep0():
    """A task cancelled while it is queued after sleep(0) gets CancelledError there."""

    async def spinner(log):
        try:
            while True:
                await asyncio.sleep(0)
                log.append("spun")
        except asyncio.CancelledError:
            log.append("cancelled")
            raise

    log = []
    task = asyncio.create_task(spinner(log))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return log, task.cancelled()


async def protocol_misuse():
    """What a program sees when it drives a sleep by hand."""
    out = []
    s = asyncio.sleep(0, "r")
    out.append(s.send(None))
    try:
        s.send(None)
    except StopIteration as stop:
        out.append(("returned", stop.value))
    try:
        s.send(None)
    except RuntimeError as error:
        out.append(("reused", str(error)))
    s = asyncio.sleep(0)
    try:
        s.send(1)
    except TypeError as error:
        out.append(("non-None", str(error)))
    s.close()  # it has not started: without close() it would warn it was never awaited
    s = asyncio.sleep(0)
    try:
        s.throw(ValueError("thrown"))
    except ValueError as error:
        out.append(("threw", str(error)))
    s = asyncio.sleep(0)
    s.close()
    try:
        s.send(None)
    except RuntimeError as error:
        out.append(("closed", str(error)))
    s = asyncio.sleep(0.001)
    fut = s.send(None)
    out.append(("parked on", asyncio.isfuture(fut), fut.done()))
    s.close()  # the timer goes: nothing completes the future now
    await asyncio.sleep(0.003)
    out.append(("after close", fut.done()))
    return out


async def bad_delay():
    out = []
    for delay in ("1", None):
        try:
            await asyncio.sleep(delay)
        except TypeError:
            out.append(("TypeError", delay))
    return out


@pytest.mark.parametrize(
    "body",
    [
        interleaving,
        results_and_order,
        cancelled_while_sleeping,
        timeouts,
        cancelled_during_sleep0,
        protocol_misuse,
        bad_delay,
    ],
    ids=lambda f: f.__name__,
)
def test_same_behaviour_as_asyncio(body):
    expected = asyncio.run(body())
    assert rio_rt.run(body()) == expected


def test_nan_delay_as_on_asyncio():
    """3.13+ refuses NaN when awaited; earlier versions handed it to call_later."""

    async def body():
        try:
            await asyncio.wait_for(asyncio.sleep(math.nan), 0.01)
        except (ValueError, TimeoutError) as error:
            return type(error)
        return "returned"

    expected = asyncio.run(body())
    got = rio_rt.run(body())
    if sys.version_info >= (3, 13):
        assert got is expected is ValueError
    else:
        assert got in (expected, ValueError)  # rio's call_later refuses NaN


def test_a_sleep_never_awaited_warns_as_a_coroutine_does():
    async def body():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.sleep(1)
            gc.collect()
        return [(w.category, str(w.message)) for w in caught]

    expected = asyncio.run(body())
    assert expected == [(RuntimeWarning, "coroutine 'sleep' was never awaited")]
    assert rio_rt.run(body()) == expected


def test_a_sleep_dropped_while_an_exception_propagates_keeps_it():
    """The never-awaited warning runs inside the deallocation, which may
    happen while an exception unwinds the frame that held the sleep: the
    exception must come out unchanged, and the warning still be given."""

    def drop_while_raising(delay):
        s = asyncio.sleep(delay)  # noqa: F841 (dropped by the unwinding)
        raise ValueError("kept")

    async def body():
        out = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for delay in (0, 1):
                try:
                    drop_while_raising(delay)
                except ValueError as error:
                    out.append((str(error), error.__context__))
            gc.collect()
        return out, [str(w.message) for w in caught]

    expected = asyncio.run(body())
    assert expected == ([("kept", None)] * 2, ["coroutine 'sleep' was never awaited"] * 2)
    assert rio_rt.run(body()) == expected


def test_a_finished_sleep_is_reused_only_when_no_one_holds_it():
    """rio keeps one finished sleep(0) to hand out again: never one the program
    still holds, never keeping its result alive; one handed out again and
    dropped unawaited still warns, and one held stays finished."""

    class Result:
        pass

    async def body():
        facts = []
        held = asyncio.sleep(0)
        await held
        for _ in range(3):
            fresh = asyncio.sleep(0)
            facts.append(fresh is not held)
            await fresh
        result = Result()
        ref = weakref.ref(result)
        finished = asyncio.sleep(0, result)
        facts.append(await finished is result)
        del result
        await asyncio.sleep(0)  # (a new step: the engine drops what the last await ended with)
        facts.append(ref() is None)  # a finished sleep, held or kept, holds no result
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                await asyncio.sleep(0)
                asyncio.sleep(0)  # dropped unawaited
            gc.collect()
        facts.append([str(w.message) for w in caught])
        try:
            held.send(None)
        except RuntimeError as error:
            facts.append(str(error))
        return facts

    expected = asyncio.run(body())
    assert expected[-1] == "cannot reuse already awaited coroutine"
    assert expected[-2] == ["coroutine 'sleep' was never awaited"] * 3
    assert rio_rt.run(body()) == expected


def test_no_timer_outlives_a_cancelled_sleep():
    async def body():
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(asyncio.sleep(30)) for _ in range(50)]
        await asyncio.sleep(0)
        armed = loop.stats()["timers"]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return armed, loop.stats()["timers"]

    assert rio_rt.run(body()) == (50, 0)


def test_first_resumed_outside_a_rio_task_runs_asyncios_sleep():
    """Made in a rio task, awaited by CPython's Task: asyncio's coroutine takes over."""

    async def body():
        s = asyncio.sleep(0.001, "late")
        assert type(s) is AioSleep
        loop = asyncio.get_running_loop()
        return await asyncio.Task(_await(s), loop=loop)

    assert rio_rt.run(body()) == "late"


async def _await(awaitable):
    return await awaitable


def test_the_mock_clock_drives_it():
    """Time is the subject: a 60 s sleep on a loop with an autojump clock ends at once."""

    async def body():
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(60)
        return loop.time() - start

    clock = rio_rt.testing.MockClock(autojump_threshold=0)
    with asyncio.Runner(loop_factory=lambda: rio_rt.new_event_loop(clock=clock)) as r:
        assert r.run(body()) >= 60 - 1e-6  # (a float difference can fall an ulp short)


@pytest.mark.skipif(not rio_core.debug_build(), reason="leak counters: RIO_DEBUG=1 builds")
def test_sleeps_are_freed_even_when_their_task_is_abandoned():
    """A sleep and its timer point at each other until it ends; a task left
    sleeping on a closed loop must still be collected."""
    gc.collect()
    before = rio_core.debug_counters()["aio_sleeps"]

    async def sleeper():
        await asyncio.sleep(30)

    async def main():
        tasks = [asyncio.create_task(sleeper()) for _ in range(10)]
        await asyncio.sleep(0)
        return tasks, rio_core.debug_counters()["aio_sleeps"]

    loop = rio_rt.new_event_loop()
    tasks, during = loop.run_until_complete(main())
    assert during - before == 10
    loop.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        del tasks, loop
        gc.collect()
    assert rio_core.debug_counters()["aio_sleeps"] == before


def test_the_environment_variable_keeps_asyncios_sleep_and_gather(tmp_path):
    import os
    import subprocess

    script = (
        "import asyncio, inspect, rio_rt\n"
        "async def main():\n"
        "    s = asyncio.sleep(0)\n"
        "    await s\n"
        "    return inspect.iscoroutine(s)\n"
        "print(type(asyncio.sleep).__name__, type(asyncio.gather).__name__, rio_rt.run(main()))\n"
    )
    for value, expected in (
        ("1", ["function", "function", "True"]),
        ("", ["cython_function_or_method", "cython_function_or_method", "False"]),
    ):
        env = dict(os.environ, RIO_ASYNCIO_TASKS=value)
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == expected


@pytest.mark.skipif(sys.version_info < (3, 14), reason="asyncio's call graph is new in 3.14")
def test_the_call_graph_of_a_sleeping_task_lacks_only_the_sleep_frame():
    """The one documented difference in 3.14's call graph: rio's sleep has no frame."""

    async def main():
        async def sleeper():
            await asyncio.sleep(30)

        task = asyncio.create_task(sleeper(), name="sleeper")
        await asyncio.sleep(0)
        graph = asyncio.capture_call_graph(task)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return [entry.frame.f_code.co_name for entry in graph.call_stack]

    assert asyncio.run(main()) == ["sleep", "sleeper"]
    assert rio_rt.run(main()) == ["sleeper"]
