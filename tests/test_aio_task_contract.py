"""The asyncio Task contract: what every task that ``create_task`` makes must do.

One body per behaviour, run on stdlib asyncio (the oracle) and on rio's loop
(``loop_factory`` / ``arun``, tests/conftest.py). Tasks are made the way
programs make them (``asyncio.create_task``, ``loop.create_task``, gather,
TaskGroup, ...), never by naming a Task class, so whatever Task class the loop
uses by default is the one under test. Besides the public API this checks the
private attributes that libraries read (docs/asyncio-task-attributes.md), as
those libraries use them.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import io
import re
import sys
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

cv: contextvars.ContextVar[str] = contextvars.ContextVar("cv", default="unset")


@contextmanager
def fresh_loop(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> Iterator[Any]:
    """A loop of the parametrized kind, set as the current loop, closed at the end."""
    loop = loop_factory()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def bounded(loop: Any, coro: Any, seconds: float = 10.0) -> Any:
    async def run() -> Any:
        async with asyncio.timeout(seconds):
            return await coro

    return loop.run_until_complete(run())


async def nothing() -> None:
    pass


# ------------------------------------------------------------------ identity


def test_a_task_is_an_asyncio_task_and_future(arun):
    async def main() -> list[Any]:
        t = asyncio.create_task(nothing())
        facts = [
            isinstance(t, asyncio.Task),
            isinstance(t, asyncio.Future),
            asyncio.isfuture(t),
            asyncio.iscoroutine(t),
            inspect.isawaitable(t),
            t._asyncio_future_blocking,
        ]
        ref = weakref.ref(t)  # anyio keeps tasks in a WeakKeyDictionary
        facts.append(ref() is t)
        facts.append(len({t, t}))  # hashable by identity (sets of tasks everywhere)
        t.tag = "mine"  # arbitrary attributes can be set on a task
        facts.append(t.tag)
        await t
        return facts

    assert arun(main()) == [True, True, True, False, True, False, True, 1, "mine"]


def test_repr_names_the_state_the_name_and_the_coroutine(arun):
    async def main() -> tuple[str, str, str]:
        fut = asyncio.get_running_loop().create_future()

        async def waits() -> None:
            await fut

        t = asyncio.create_task(waits(), name="the-task")
        pending = repr(t)
        await asyncio.sleep(0)
        waiting = repr(t)
        fut.set_result(None)
        await t
        return pending, waiting, repr(t)

    pending, waiting, finished = arun(main())
    assert pending.startswith("<") and "pending" in pending
    assert "name='the-task'" in pending and "coro=<" in pending and "waits()" in pending
    assert "wait_for=<Future pending" in waiting
    assert "finished" in finished and "result=None" in finished


# ------------------------------------------------------------------ cancellation


def test_cancel_message_reaches_the_cancelled_error(arun):
    async def main() -> list[Any]:
        fut = asyncio.get_running_loop().create_future()

        async def waits() -> None:
            await fut

        before_start = asyncio.create_task(waits())
        first = before_start.cancel("early")
        second = before_start.cancel("later")  # still pending: True again
        suspended = asyncio.create_task(waits())
        await asyncio.sleep(0)
        suspended.cancel("while waiting")
        out: list[Any] = [first, second]
        for t in (before_start, suspended):
            try:
                await t
            except asyncio.CancelledError as exc:
                out.append(exc.args)
            out.append((t.cancelled(), t.cancel("after")))
            try:
                t.result()
            except asyncio.CancelledError:
                out.append("result() raises")  # (its args differ between versions)
        return out

    assert arun(main()) == [
        True,
        True,
        ("later",),
        (True, False),
        "result() raises",
        ("while waiting",),
        (True, False),
        "result() raises",
    ]


def test_cancelling_and_uncancel_count_the_requests(arun):
    async def main() -> list[Any]:
        fut = asyncio.get_running_loop().create_future()
        seen: list[Any] = []

        async def waits() -> str:
            me = asyncio.current_task()
            assert me is not None
            seen.append(me.cancelling())
            try:
                await fut
            except asyncio.CancelledError:
                seen.append(me.cancelling())
                seen.append(me.uncancel())
                seen.append(me.uncancel())
                seen.append(me.cancelling())
            return "survived"

        t = asyncio.create_task(waits())
        await asyncio.sleep(0)
        t.cancel()
        t.cancel()
        seen.append(("outside", t.cancelling()))
        result = await t
        seen.append(("done", t.cancelling(), result, t.cancelled()))
        return seen

    assert arun(main()) == [0, ("outside", 2), 2, 1, 0, 0, ("done", 0, "survived", False)]


def test_must_cancel_is_set_by_cancel_before_the_task_runs(arun):
    """anyio (CancelScope._deliver_cancellation, has_pending_cancellation) reads it."""

    async def main() -> list[Any]:
        t = asyncio.create_task(asyncio.sleep(10))
        out = [t._must_cancel]
        t.cancel()
        out.append(t._must_cancel)  # not started: the cancellation waits in _must_cancel
        out.append(t._fut_waiter)
        try:
            await t
        except asyncio.CancelledError:
            out.append("cancelled")
        out.append(t._must_cancel)
        return out

    assert arun(main()) == [False, True, None, "cancelled", False]


def test_cancel_while_suspended_cancels_the_waiter_not_must_cancel(arun):
    """anyio's has_pending_cancellation: `_must_cancel or _fut_waiter.cancelled()`."""

    async def main() -> list[Any]:
        fut = asyncio.get_running_loop().create_future()

        async def waits() -> None:
            await fut

        t = asyncio.create_task(waits())
        await asyncio.sleep(0)
        out = [t._fut_waiter is fut, fut.cancelled()]
        t.cancel()
        out += [t._must_cancel, t._fut_waiter is fut, fut.cancelled()]
        out.append(isinstance(t._fut_waiter, asyncio.Future) and t._fut_waiter.cancelled())
        try:
            await t
        except asyncio.CancelledError:
            out.append("cancelled")
        out.append(t._fut_waiter)
        return out

    assert arun(main()) == [True, False, False, True, True, True, "cancelled", None]


def test_fut_waiter_is_the_awaited_future_only_while_suspended(arun):
    """anyio's wait_all_tasks_blocked: blocked means `_fut_waiter` is a pending future."""

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        seen: list[Any] = []

        async def body() -> None:
            me = asyncio.current_task()
            seen.append(("running", me._fut_waiter))
            await fut
            seen.append(("resumed", me._fut_waiter))
            await asyncio.sleep(0)  # a bare yield: no future to wait on

        t = asyncio.create_task(body())
        seen.append(("created", t._fut_waiter))
        await asyncio.sleep(0)
        seen.append(("suspended", t._fut_waiter is fut, t._fut_waiter.done()))
        fut.set_result(1)
        seen.append(("woken", t._fut_waiter is fut, t._fut_waiter.done()))
        await asyncio.sleep(0)
        seen.append(("bare yield", t._fut_waiter))
        await t
        seen.append(("done", t._fut_waiter))

        sleeper = asyncio.create_task(asyncio.sleep(5))
        await asyncio.sleep(0)
        waiter = sleeper._fut_waiter
        seen.append(("sleeping", isinstance(waiter, asyncio.Future), waiter.done()))
        sleeper.cancel()
        await asyncio.gather(sleeper, return_exceptions=True)
        return seen

    assert arun(main()) == [
        ("created", None),
        ("running", None),
        ("suspended", True, False),
        ("woken", True, True),
        ("resumed", None),
        ("bare yield", None),
        ("done", None),
        ("sleeping", True, False),
    ]


def test_coroutine_state_through_get_coro(arun):
    """anyio's _task_started: inspect.getcoroutinestate(task.get_coro())."""

    async def main() -> list[str]:
        states: list[str] = []

        async def body() -> None:
            states.append(inspect.getcoroutinestate(asyncio.current_task().get_coro()))
            await asyncio.sleep(0)

        coro = body()
        t = asyncio.create_task(coro)
        states.append(inspect.getcoroutinestate(t.get_coro()))
        await asyncio.sleep(0)
        states.append(inspect.getcoroutinestate(t.get_coro()))
        await t
        states.append(inspect.getcoroutinestate(coro))
        states.append(t.get_coro() is coro and t._coro is coro)
        return states

    assert arun(main()) == [
        inspect.CORO_CREATED,
        inspect.CORO_RUNNING,
        inspect.CORO_SUSPENDED,
        inspect.CORO_CLOSED,
        True,
    ]


def test_loop_attribute_and_get_loop(arun):
    async def main() -> list[bool]:
        loop = asyncio.get_running_loop()
        t = asyncio.create_task(nothing())
        out = [t.get_loop() is loop, t._loop is loop]  # anyio's WorkerThread reads _loop
        await t
        return out + [t.get_loop() is loop]

    assert arun(main()) == [True, True, True]


def test_state_strings(arun):
    """asyncio's repr helpers and some libraries read `_state`."""

    async def main() -> list[str]:
        ok = asyncio.create_task(nothing())
        failing = asyncio.create_task(asyncio.sleep(1))
        out = [ok._state]
        await ok
        failing.cancel()
        await asyncio.gather(failing, return_exceptions=True)
        return out + [ok._state, failing._state]

    assert arun(main()) == ["PENDING", "FINISHED", "CANCELLED"]


# ------------------------------------------------------------------ names, context, coro


def test_names_default_to_task_n_and_can_be_set(arun):
    async def main() -> list[Any]:
        a = asyncio.create_task(nothing())
        b = asyncio.create_task(nothing())
        named = asyncio.create_task(nothing(), name="given")
        numbered = asyncio.create_task(nothing(), name=42)
        out: list[Any] = [a.get_name(), b.get_name(), named.get_name(), numbered.get_name()]
        named.set_name(("renamed", 1))
        out.append(named.get_name())
        out.append(asyncio.current_task().get_name())
        await asyncio.gather(a, b, named, numbered)
        return out

    a, b, named, numbered, renamed, main_name = arun(main())
    na = int(re.fullmatch(r"Task-(\d+)", a).group(1))
    nb = int(re.fullmatch(r"Task-(\d+)", b).group(1))
    assert nb == na + 1  # one process-wide counter, as asyncio's
    assert (named, numbered, renamed) == ("given", "42", "('renamed', 1)")
    assert re.fullmatch(r"Task-\d+", main_name)


def test_tasks_run_in_a_copy_or_in_the_given_context(arun):
    async def main() -> list[Any]:
        cv.set("outer")

        async def body() -> str:
            seen = cv.get()
            cv.set("inner")
            return seen

        own = contextvars.copy_context()
        own.run(cv.set, "given")
        results = await asyncio.gather(
            asyncio.create_task(body()), asyncio.create_task(body(), context=own)
        )
        return [results, cv.get(), own[cv]]

    assert arun(main()) == [["outer", "given"], "outer", "inner"]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Task.get_context(): 3.12+")
def test_get_context_default_copy_and_given_context(arun):
    async def main() -> list[Any]:
        cv.set("outer")

        async def body() -> str:
            seen = cv.get()
            cv.set("inner")
            return seen

        t = asyncio.create_task(body())
        ctx = t.get_context()
        own = contextvars.copy_context()
        own.run(cv.set, "given")
        t2 = asyncio.create_task(body(), context=own)
        results = await asyncio.gather(t, t2)
        return [
            results,
            isinstance(ctx, contextvars.Context),
            ctx is not contextvars.copy_context(),
            ctx[cv],  # the task's own changes stay in its context
            cv.get(),  # ... not in the creator's
            t2.get_context() is own,
            own[cv],
        ]

    assert arun(main()) == [["outer", "given"], True, True, "inner", "outer", True, "inner"]


def test_get_coro_is_the_coroutine(arun):
    async def main() -> list[bool]:
        coro = nothing()
        t = asyncio.create_task(coro)
        before = t.get_coro() is coro
        await t
        return [before, t.get_coro() is coro]

    assert arun(main()) == [True, True]


# ------------------------------------------------------------------ stacks


async def parked_here(fut: asyncio.Future[None]) -> None:
    await fut


def test_get_stack_and_print_stack(arun):
    async def main() -> list[Any]:
        fut = asyncio.get_running_loop().create_future()
        t = asyncio.create_task(parked_here(fut))
        await asyncio.sleep(0)
        stack = t.get_stack()
        limited = t.get_stack(limit=1)
        printed = io.StringIO()
        t.print_stack(file=printed)
        fut.set_result(None)
        await t
        done_stack = t.get_stack()

        async def fails() -> None:
            raise LookupError("boom")

        failed = asyncio.create_task(fails())
        await asyncio.gather(failed, return_exceptions=True)
        failed_stack = failed.get_stack()
        failed_printed = io.StringIO()
        failed.print_stack(file=failed_printed)
        return [
            [frame.f_code.co_name for frame in stack],
            [frame.f_code.co_name for frame in limited],
            printed.getvalue(),
            done_stack,
            [frame.f_code.co_name for frame in failed_stack],
            failed_printed.getvalue(),
        ]

    stack, limited, printed, done_stack, failed_stack, failed_printed = arun(main())
    assert stack == ["parked_here"] and limited == ["parked_here"]
    assert printed.startswith("Stack for <") and "parked_here" in printed
    assert "await fut" in printed
    assert done_stack == []
    assert failed_stack == ["fails"]
    assert "Traceback for <" in failed_printed and "LookupError: boom" in failed_printed


# ------------------------------------------------------------------ done callbacks


def test_done_callbacks_run_later_in_order_in_their_context(arun):
    async def main() -> list[Any]:
        calls: list[Any] = []
        t = asyncio.create_task(nothing())
        ctx = contextvars.copy_context()
        ctx.run(cv.set, "callback context")
        t.add_done_callback(lambda task: calls.append(("a", cv.get(), task is t)))
        t.add_done_callback(lambda task: calls.append(("b", cv.get())), context=ctx)
        t.add_done_callback(lambda task: calls.append(("c", asyncio.current_task())))
        await t
        calls.append("after await")  # the awaiting task wakes through its own callback
        await asyncio.sleep(0)
        # on a task already done: scheduled with call_soon, not run synchronously
        t.add_done_callback(lambda task: calls.append("late"))
        calls.append("added late")
        await asyncio.sleep(0)
        return calls

    assert arun(main()) == [
        ("a", "unset", True),
        ("b", "callback context"),
        ("c", None),
        "after await",
        "added late",
        "late",
    ]


def test_callbacks_attribute_lists_callback_and_context_pairs(arun):
    """anyio's find_root_task iterates `task._callbacks` as (callback, context)."""

    async def main() -> list[Any]:
        def cb(task: Any) -> None:
            pass

        t = asyncio.create_task(nothing())
        empty = t._callbacks
        ctx = contextvars.copy_context()
        t.add_done_callback(cb, context=ctx)
        pairs = list(t._callbacks)
        await t
        return [empty in (None, []), pairs == [(cb, ctx)]]

    assert arun(main()) == [True, True]


def test_run_until_complete_root_task_is_found_by_its_callback(loop_factory):
    """anyio's find_root_task looks for base_events._run_until_complete_cb."""
    from asyncio.base_events import _run_until_complete_cb  # type: ignore[attr-defined]

    async def main() -> list[Any]:
        me = asyncio.current_task()
        return [
            [cb is _run_until_complete_cb for cb, _ctx in me._callbacks],
            all(isinstance(ctx, contextvars.Context) for _cb, ctx in me._callbacks),
            me._log_destroy_pending,  # run_until_complete turned it off
        ]

    with fresh_loop(loop_factory) as loop:
        assert loop.run_until_complete(main()) == [[True], True, False]


def test_remove_done_callback_returns_the_count(arun):
    async def main() -> list[Any]:
        calls: list[str] = []

        def a(task: Any) -> None:
            calls.append("a")

        def b(task: Any) -> None:
            calls.append("b")

        t = asyncio.create_task(nothing())
        t.add_done_callback(a)
        t.add_done_callback(b)
        t.add_done_callback(a)
        removed = [t.remove_done_callback(a), t.remove_done_callback(a)]
        removed.append(t.remove_done_callback(lambda task: None))
        await t
        await asyncio.sleep(0)
        return [removed, calls]

    assert arun(main()) == [[2, 0, 0], ["b"]]


# ------------------------------------------------------------------ result states


def test_result_exception_done_cancelled_in_every_state(arun):
    async def main() -> dict[str, Any]:
        def probe(t: Any) -> list[Any]:
            out: list[Any] = [t.done(), t.cancelled()]
            for method in (t.result, t.exception):
                try:
                    out.append(("value", method()))
                except BaseException as exc:  # noqa: BLE001 (the type is the answer)
                    out.append((type(exc).__name__, str(exc)))
            return out

        fut = asyncio.get_running_loop().create_future()

        async def waits() -> None:
            await fut

        async def fails() -> None:
            raise KeyError("k")

        async def returns() -> int:
            return 7

        pending = asyncio.create_task(waits())
        failed = asyncio.create_task(fails())
        ok = asyncio.create_task(returns())
        cancelled = asyncio.create_task(waits())
        states = {"pending": probe(pending)}
        cancelled.cancel()
        await asyncio.gather(failed, ok, cancelled, return_exceptions=True)
        states["failed"] = probe(failed)
        states["ok"] = probe(ok)
        states["cancelled"] = probe(cancelled)
        for method in ("set_result", "set_exception"):
            try:
                getattr(ok, method)(None if method == "set_result" else ValueError())
            except RuntimeError as exc:
                states[method] = str(exc)
        fut.set_result(None)
        await pending
        return states

    states = arun(main())
    assert states["pending"] == [
        False,
        False,
        ("InvalidStateError", "Result is not set."),
        ("InvalidStateError", "Exception is not set."),
    ]
    assert states["failed"] == [True, False, ("KeyError", "'k'"), ("value", KeyError("k"))] or (
        states["failed"][:3] == [True, False, ("KeyError", "'k'")]
        and isinstance(states["failed"][3][1], KeyError)
    )
    assert states["ok"] == [True, False, ("value", 7), ("value", None)]
    assert states["cancelled"] == [True, True, ("CancelledError", ""), ("CancelledError", "")]
    # (the C Task says "set_result operation", the Python Task "set_result() operation")
    assert re.fullmatch(r"Task does not support set_result(\(\))? operation", states["set_result"])
    assert re.fullmatch(
        r"Task does not support set_exception(\(\))? operation", states["set_exception"]
    )


# ------------------------------------------------------------------ current_task, all_tasks


def test_current_task_inside_tasks_and_none_in_callbacks(arun):
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        seen: list[Any] = []

        async def body() -> None:
            me = asyncio.current_task()
            seen.append(me is t and asyncio.current_task(loop) is t)
            await asyncio.sleep(0)
            seen.append(asyncio.current_task() is t)

        t = asyncio.create_task(body())
        main_task = asyncio.current_task()
        t.add_done_callback(lambda task: seen.append(("callback", asyncio.current_task())))
        loop.call_soon(lambda: seen.append(("call_soon", asyncio.current_task())))
        await t
        await asyncio.sleep(0)
        seen.append(asyncio.current_task() is main_task)
        return seen

    assert arun(main()) == [True, ("call_soon", None), True, ("callback", None), True]


def test_all_tasks_sees_pending_tasks_only(arun):
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        sleeper = asyncio.ensure_future(asyncio.sleep(1))
        finished = asyncio.create_task(nothing())
        await finished
        now = asyncio.all_tasks()
        out = [
            me in now,
            sleeper in now,
            finished not in now,
            asyncio.all_tasks(loop) == now,
            len(now),
        ]
        sleeper.cancel()
        await asyncio.gather(sleeper, return_exceptions=True)
        out.append(sleeper not in asyncio.all_tasks())
        return out

    assert arun(main()) == [True, True, True, True, 2, True]


# ------------------------------------------------------------------ debug mode


def test_debug_mode_records_the_source_traceback(loop_factory):
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        t1 = asyncio.create_task(nothing())
        t2 = loop.create_task(nothing())
        tb1, tb2 = t1._source_traceback, t2._source_traceback
        await asyncio.gather(t1, t2)
        return [
            isinstance(tb1, traceback.StackSummary),
            (tb1[-1].name, tb1[-2].name, tb1[-2].filename == __file__),
            "asyncio.create_task(nothing())" in tb1[-2].line,
            (tb2[-1].name, tb2[-1].filename == __file__),
            "loop.create_task(nothing())" in tb2[-1].line,
        ]

    with fresh_loop(loop_factory) as loop:
        loop.set_debug(True)
        assert loop.run_until_complete(main()) == [
            True,
            ("create_task", "main", True),
            True,
            ("main", True),
            True,
        ]

    async def not_debug() -> Any:
        return asyncio.create_task(nothing())._source_traceback

    with fresh_loop(loop_factory) as loop:
        assert loop.run_until_complete(not_debug()) is None


# ------------------------------------------------------------------ reports to the loop


def let_go_of_pending_tasks(loop: Any) -> None:
    """CPython collects a pending task nobody references; rio's loop keeps it (its
    list of live tasks) until the loop closes (docs/native-api.md): close it there."""
    if getattr(loop, "task_kind", None) == "rio":
        loop.close()


def collect_reports(loop: Any) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    return reports


def test_destroyed_pending_task_is_reported_to_the_exception_handler(loop_factory):
    with fresh_loop(loop_factory) as loop:
        reports = collect_reports(loop)

        async def start() -> None:
            fut = loop.create_future()

            async def waits() -> None:
                await fut

            asyncio.create_task(waits(), name="abandoned")
            quiet = asyncio.create_task(waits(), name="quiet")
            quiet._log_destroy_pending = False  # what run_until_complete and gather write
            await asyncio.sleep(0)

        bounded(loop, start())
        let_go_of_pending_tasks(loop)
        gc.collect()  # the task, its coroutine and the future form a cycle
        gc.collect()
        assert len(reports) == 1, reports
        (report,) = reports
        assert set(report) == {"message", "task"}
        assert report["message"] == "Task was destroyed but it is pending!"
        assert isinstance(report["task"], asyncio.Task)
        assert report["task"].get_name() == "abandoned"
        report["task"]._log_destroy_pending = False
        reports.clear()


def test_destroyed_pending_task_report_in_debug_mode_has_the_source_traceback(loop_factory):
    with fresh_loop(loop_factory) as loop:
        loop.set_debug(True)
        reports = collect_reports(loop)

        async def start() -> None:
            fut = loop.create_future()

            async def waits() -> None:
                await fut

            asyncio.create_task(waits())
            await asyncio.sleep(0)

        bounded(loop, start())
        let_go_of_pending_tasks(loop)
        gc.collect()
        gc.collect()
        assert [set(r) for r in reports] == [{"message", "task", "source_traceback"}]
        assert isinstance(reports[0]["source_traceback"], traceback.StackSummary)
        reports[0]["task"]._log_destroy_pending = False
        reports.clear()


def test_unretrieved_exception_is_reported_to_the_exception_handler(loop_factory):
    with fresh_loop(loop_factory) as loop:
        reports = collect_reports(loop)

        async def fails(tag: str) -> None:
            raise LookupError(tag)

        async def start() -> None:
            asyncio.create_task(fails("lost"))
            retrieved = asyncio.create_task(fails("seen"))
            for _ in range(3):
                await asyncio.sleep(0)
            assert retrieved.done() and retrieved._log_traceback
            retrieved.exception()
            assert retrieved._log_traceback is False

        bounded(loop, start())
        gc.collect()
        assert len(reports) == 1, reports
        (report,) = reports
        assert set(report) == {"message", "exception", "future"}
        assert report["message"] == "Task exception was never retrieved"
        assert isinstance(report["exception"], LookupError)
        assert report["exception"].args == ("lost",)
        assert isinstance(report["future"], asyncio.Task)
        reports.clear()


def test_log_traceback_can_be_cleared_to_silence_the_report(loop_factory):
    with fresh_loop(loop_factory) as loop:
        reports = collect_reports(loop)

        async def fails() -> None:
            raise LookupError

        async def start() -> None:
            t = asyncio.create_task(fails())
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert t._log_traceback is True
            t._log_traceback = False
            with pytest.raises(ValueError):
                t._log_traceback = True  # only False may be written

        bounded(loop, start())
        gc.collect()
        assert reports == []


# ------------------------------------------------------------------ eager tasks


needs_eager = pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks: 3.12+")


@needs_eager
def test_eager_task_factory_runs_the_first_step_in_create_task(loop_factory):
    async def main() -> list[Any]:
        steps: list[Any] = []

        async def quick() -> str:
            steps.append(("quick", asyncio.current_task() is not None))
            return "q"

        async def slow() -> str:
            steps.append("slow started")
            await asyncio.sleep(0)
            steps.append("slow resumed")
            return "s"

        q = asyncio.create_task(quick())
        steps.append(("after quick", q.done(), q.result() if q.done() else None))
        s = asyncio.create_task(slow())
        steps.append(("after slow", s.done()))
        steps.append(await s)
        steps.append(asyncio.current_task() in asyncio.all_tasks())
        return steps

    with fresh_loop(loop_factory) as loop:
        loop.set_task_factory(asyncio.eager_task_factory)
        assert bounded(loop, main()) == [
            ("quick", True),
            ("after quick", True, "q"),
            "slow started",
            ("after slow", False),
            "slow resumed",
            "s",
            True,
        ]


@needs_eager
def test_cpython_task_built_directly_with_eager_start(arun):
    """aiohttp (3.12+) builds `asyncio.Task(coro, loop=loop, eager_start=True)` itself."""

    async def main() -> list[Any]:
        steps: list[Any] = []

        async def body() -> int:
            steps.append(asyncio.current_task() is not None)
            await asyncio.sleep(0)
            return 5

        t = asyncio.Task(body(), loop=asyncio.get_running_loop(), eager_start=True)
        steps.append(t.done())
        steps.append(await t)
        return steps

    assert arun(main()) == [True, False, 5]


@pytest.mark.skipif(sys.version_info < (3, 14), reason="create_task(eager_start=): 3.14+")
def test_create_task_eager_start_argument(arun):
    async def main() -> list[Any]:
        steps: list[Any] = []

        async def body() -> int:
            steps.append("ran")
            return 3

        t = asyncio.get_running_loop().create_task(body(), eager_start=True)
        steps.append(t.done())
        lazy = asyncio.create_task(body(), eager_start=False)
        steps.append(lazy.done())
        steps.append(await lazy)
        return steps

    assert arun(main()) == ["ran", True, False, "ran", 3]


# ------------------------------------------------------------------ task factories


def test_task_factory_with_a_user_subclass(loop_factory):
    class CountingTask(asyncio.Task):  # type: ignore[type-arg]
        made = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            CountingTask.made += 1
            self.callbacks_added = 0
            super().__init__(*args, **kwargs)

        def add_done_callback(self, *args: Any, **kwargs: Any) -> None:
            self.callbacks_added += 1
            super().add_done_callback(*args, **kwargs)

    def factory(loop: Any, coro: Any, **kwargs: Any) -> CountingTask:
        return CountingTask(coro, loop=loop, **kwargs)

    async def main() -> list[Any]:
        async def child(n: int) -> int:
            await asyncio.sleep(0)
            return n

        t = asyncio.create_task(child(1), name="sub")
        results = await asyncio.gather(t, child(2), asyncio.ensure_future(child(3)))
        done, _ = await asyncio.wait([asyncio.create_task(child(4))])
        async with asyncio.TaskGroup() as tg:
            grouped = tg.create_task(child(5))
        return [
            type(t) is CountingTask,
            t.get_name(),
            results,
            [d.result() for d in done],
            type(grouped) is CountingTask,
            grouped.result(),
            t.callbacks_added >= 1,  # gather registered through the override
            type(asyncio.current_task()) is CountingTask,
        ]

    with fresh_loop(loop_factory) as loop:
        loop.set_task_factory(factory)
        assert loop.get_task_factory() is factory
        assert bounded(loop, main()) == [True, "sub", [1, 2, 3], [4], True, 5, True, True]
        assert CountingTask.made >= 6


# ------------------------------------------------------------------ asyncio's combinators


def test_task_group_cancels_siblings_on_failure(arun):
    async def main() -> list[Any]:
        events: list[Any] = []

        async def sibling() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                events.append("sibling cancelled")
                raise

        async def failing() -> None:
            await asyncio.sleep(0)
            raise LookupError("fail")

        try:
            async with asyncio.TaskGroup() as tg:
                s = tg.create_task(sibling())
                tg.create_task(failing())
        except* LookupError as group:
            events.append([type(e).__name__ for e in group.exceptions])
        events.append(s.cancelled())
        return events

    assert arun(main()) == ["sibling cancelled", ["LookupError"], True]


def test_timeout_wait_for_and_uncancel(arun):
    async def main() -> list[Any]:
        out: list[Any] = []
        me = asyncio.current_task()
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        except TimeoutError:
            out.append(("timeout", me.cancelling()))
        try:
            await asyncio.wait_for(asyncio.sleep(10), 0.01)
        except TimeoutError:
            out.append(("wait_for", me.cancelling()))
        out.append(await asyncio.wait_for(asyncio.sleep(0, "fast"), 5))
        return out

    assert arun(main()) == [("timeout", 0), ("wait_for", 0), "fast"]


def test_wait_first_completed_and_gather(arun):
    async def main() -> list[Any]:
        fut = asyncio.get_running_loop().create_future()

        async def waits() -> str:
            return await fut

        slow = asyncio.create_task(waits())
        fast = asyncio.create_task(asyncio.sleep(0, "fast"))
        done, pending = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
        out: list[Any] = [done == {fast}, pending == {slow}]

        async def fails() -> None:
            raise KeyError("g")

        child = asyncio.create_task(asyncio.sleep(5))
        gathered = asyncio.gather(fails(), asyncio.sleep(0, 2), child, return_exceptions=True)
        await asyncio.sleep(0)
        child.cancel("stop")
        results = await gathered
        out.append([type(r).__name__ if isinstance(r, BaseException) else r for r in results])
        # gather builds this from the child's _cancel_message (None in 3.11, where a
        # cancelled task does not keep the message: CancelledError(''))
        out.append(results[2].args in (("",), ("stop",)))
        try:
            await asyncio.gather(asyncio.create_task(asyncio.sleep(5)), cancelling_soon())
        except asyncio.CancelledError as exc:
            out.append(("gather cancelled", exc.args))
        fut.set_result("slow")
        out.append(await slow)
        return out

    async def cancelling_soon() -> None:
        me = asyncio.current_task()
        await asyncio.sleep(0)
        me.cancel("by itself")
        await asyncio.sleep(0)

    assert arun(main()) == [
        True,
        True,
        ["KeyError", 2, "CancelledError"],
        True,
        ("gather cancelled", ("by itself",)),
        "slow",
    ]


def test_shield_keeps_the_inner_task_running(arun):
    async def main() -> list[Any]:
        fut = asyncio.get_running_loop().create_future()

        async def inner() -> str:
            await fut
            return "inner done"

        inner_task = asyncio.create_task(inner())

        async def outer() -> str:
            return await asyncio.shield(inner_task)

        outer_task = asyncio.create_task(outer())
        await asyncio.sleep(0)
        outer_task.cancel()
        out: list[Any] = []
        try:
            await outer_task
        except asyncio.CancelledError:
            out.append("outer cancelled")
        out.append(inner_task.done())
        fut.set_result(None)
        out.append(await inner_task)
        return out

    assert arun(main()) == ["outer cancelled", False, "inner done"]


def test_runner_run_with_context(loop_factory):
    async def main(n: int) -> tuple[Any, ...]:
        me = asyncio.current_task()
        cv.set(f"run {n}")
        return (isinstance(me, asyncio.Task), n, asyncio.get_running_loop() is runner.get_loop())

    ctx = contextvars.copy_context()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(main(1)) == (True, 1, True)
        assert runner.run(main(2), context=ctx) == (True, 2, True)
        assert ctx[cv] == "run 2"  # pytest-asyncio copies changes back from this context
        assert cv.get() == "unset"


def test_ensure_future_wraps_coroutines_and_awaitables(arun):
    async def main() -> list[Any]:
        class Awaitable:
            def __await__(self) -> Any:
                return asyncio.sleep(0, "awaited").__await__()

        t = asyncio.ensure_future(asyncio.sleep(0, "coro"))
        a = asyncio.ensure_future(Awaitable())
        fut = asyncio.get_running_loop().create_future()
        return [
            isinstance(t, asyncio.Task),
            asyncio.ensure_future(t) is t,
            asyncio.ensure_future(fut) is fut,
            await t,
            await a,
        ]

    assert arun(main()) == [True, True, True, "coro", "awaited"]


def test_gather_children_from_coroutines_do_not_report_destruction(loop_factory):
    """gather sets `_log_destroy_pending = False` on the tasks it makes itself."""
    with fresh_loop(loop_factory) as loop:
        reports = collect_reports(loop)

        async def start() -> Any:
            fut = loop.create_future()

            async def waits() -> None:
                await fut

            g = asyncio.gather(waits())
            await asyncio.sleep(0)
            return g

        gathered = bounded(loop, start())
        del gathered
        gc.collect()
        gc.collect()
        assert reports == []
