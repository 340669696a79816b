"""asyncio.gather on rio's loop: inside a rio task, with rio tasks, loop futures
and coroutines as arguments, it is rio's (``rio_core._loop.gather``, the same
steps in C); everywhere else asyncio's own.

Stdlib asyncio is the oracle: every program runs on both loops and must see the
same results, exceptions, cancellations, order of events and reports to the
exception handler. A hypothesis test draws random gathers.
"""

import asyncio
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rio_core._loop import GatherState

import rio_rt


def on_both(body: Any) -> Any:
    """Run ``body()`` on asyncio and on rio; both must give the same; returns it."""
    expected = asyncio.run(body())
    assert rio_rt.run(body()) == expected
    return expected


def describe(outcome: Any) -> Any:
    """Exceptions compared by type and arguments."""
    if isinstance(outcome, BaseException):
        return (type(outcome).__name__, outcome.args)
    if isinstance(outcome, list):
        return [describe(item) for item in outcome]
    return outcome


async def settle(outer: Any) -> Any:
    try:
        return ("result", describe(await outer))
    except BaseException as error:  # noqa: BLE001 - CancelledError is the subject too
        return ("raised", describe(error))


def test_rios_gather_runs_inside_a_rio_task_only():
    async def body() -> Any:
        loop = asyncio.get_running_loop()
        task = loop.create_task(asyncio.sleep(0, "t"))
        outer = asyncio.gather(task, asyncio.sleep(0, "c"), loop.create_future())
        kinds = [type(cb).__name__ for cb, _ in task._callbacks]
        outer._children[2].set_result("f")
        return kinds, await outer, type(outer).__name__

    assert asyncio.run(body()) == (["function"], ["t", "c", "f"], "_GatheringFuture")
    assert rio_rt.run(body()) == ([GatherState.__name__], ["t", "c", "f"], "_GatheringFuture")


def test_results_in_argument_order_with_repeats():
    async def body() -> Any:
        loop = asyncio.get_running_loop()

        async def value(v: Any, yields: int) -> Any:
            for _ in range(yields):
                await asyncio.sleep(0)
            return v

        shared = loop.create_task(value("shared", 2))
        coro = value("coro", 1)
        fut = loop.create_future()
        loop.call_soon(fut.set_result, "fut")
        outer = asyncio.gather(value("a", 3), shared, coro, shared, fut, coro, value("b", 0))
        return await outer, len(outer._children), len(set(map(id, outer._children)))

    assert on_both(body) == (["a", "shared", "coro", "shared", "fut", "coro", "b"], 7, 5)


@pytest.mark.parametrize("return_exceptions", [False, True])
def test_a_failing_child(return_exceptions: bool):
    async def body() -> Any:
        trace: list[Any] = []

        async def ok(v: int) -> int:
            await asyncio.sleep(0)
            trace.append(("ok", v))
            return v

        async def boom() -> None:
            raise ValueError("boom")

        async def late_boom() -> None:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            raise KeyError("late")

        children = [asyncio.ensure_future(c) for c in (ok(1), boom(), late_boom(), ok(2))]
        outer = asyncio.gather(*children, return_exceptions=return_exceptions)
        got = await settle(outer)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return got, trace, [describe(c.exception()) for c in children]

    on_both(body)


def test_cancelling_the_outer_future_cancels_the_children():
    async def body() -> Any:
        loop = asyncio.get_running_loop()
        started = loop.create_future()

        async def slow(tag: str) -> str:
            if not started.done():
                started.set_result(None)
            await asyncio.sleep(30)
            return tag

        quick = loop.create_task(asyncio.sleep(0, "quick"))
        children = [loop.create_task(slow("x")), quick, loop.create_task(slow("y"))]
        outer = asyncio.gather(*children, return_exceptions=True)
        await started
        await asyncio.sleep(0)
        cancelled = outer.cancel("stop")
        got = await settle(outer)
        return cancelled, got, [c.cancelled() for c in children], outer.cancelled()

    assert on_both(body)[0] is True


@pytest.mark.parametrize("return_exceptions", [False, True])
def test_a_cancelled_child(return_exceptions: bool):
    async def body() -> Any:
        loop = asyncio.get_running_loop()
        victim = loop.create_task(asyncio.sleep(30))
        other = loop.create_task(asyncio.sleep(0, "other"))
        fut = loop.create_future()
        outer = asyncio.gather(victim, other, fut, return_exceptions=return_exceptions)
        await asyncio.sleep(0)
        victim.cancel("victim's message")
        fut.cancel()
        return await settle(outer), outer.cancelled()

    on_both(body)


def test_children_done_before_the_call():
    """3.12+ handles them before gather returns; 3.11 from the ready queue."""

    async def body() -> Any:
        loop = asyncio.get_running_loop()
        trace: list[Any] = []
        done_task = loop.create_task(asyncio.sleep(0, "early"))
        await done_task
        done_fut = loop.create_future()
        done_fut.set_result("set")
        failed = loop.create_future()
        failed.set_exception(ValueError("failed early"))
        outer = asyncio.gather(done_task, done_fut, return_exceptions=True)
        trace.append(("right after", outer.done()))
        outer2 = asyncio.gather(done_task, failed)
        trace.append(("right after", outer2.done()))
        trace.append(await settle(outer))
        trace.append(await settle(outer2))
        return trace

    on_both(body)


def test_order_against_other_callbacks():
    """The outer future completes where asyncio's would among other callbacks."""

    async def body() -> Any:
        loop = asyncio.get_running_loop()
        trace: list[Any] = []

        async def child(tag: str, yields: int) -> str:
            for _ in range(yields):
                await asyncio.sleep(0)
            trace.append(("child done", tag))
            return tag

        tasks = [loop.create_task(child(t, n)) for t, n in (("a", 2), ("b", 0), ("c", 1))]
        outer = asyncio.gather(*tasks)
        outer.add_done_callback(lambda f: trace.append(("outer done", f.result())))
        for task in tasks:
            task.add_done_callback(lambda t: trace.append(("task cb", t.result())))
        for i in range(4):
            loop.call_soon(trace.append, ("soon", i))
            await asyncio.sleep(0)
        trace.append(("awaited", await outer))
        return trace

    on_both(body)


def test_siblings_of_a_failure_are_retrieved_not_reported():
    """Once the outer future failed, later failures are marked retrieved: no
    "exception was never retrieved" report on either loop."""

    async def body() -> Any:
        loop = asyncio.get_running_loop()
        reports: list[Any] = []
        loop.set_exception_handler(lambda loop, ctx: reports.append(ctx["message"]))

        async def fail(tag: str, yields: int) -> None:
            for _ in range(yields):
                await asyncio.sleep(0)
            raise ValueError(tag)

        outer = asyncio.gather(fail("first", 0), fail("second", 1), fail("third", 2))
        got = await settle(outer)
        for _ in range(4):
            await asyncio.sleep(0)
        del outer
        import gc

        gc.collect()
        return got, reports

    assert on_both(body)[1] == []


def test_arguments_rio_does_not_handle_go_to_asyncios_gather():
    async def body() -> Any:
        loop = asyncio.get_running_loop()
        cpython_future = asyncio.Future(loop=loop)
        loop.call_soon(cpython_future.set_result, "cpython")

        class Awaitable:
            def __await__(self) -> Any:
                yield from asyncio.sleep(0).__await__()
                return "awaitable"

        outer = asyncio.gather(cpython_future, Awaitable(), asyncio.sleep(0, "c"))
        kinds = sorted({type(cb).__name__ for c in outer._children for cb, _ in c._callbacks or []})
        return await outer, kinds

    assert on_both(body) == (["cpython", "awaitable", "c"], ["function"])


def test_a_future_of_another_loop_is_refused_as_asyncio_refuses_it():
    other = asyncio.new_event_loop()
    try:

        async def body() -> Any:
            try:
                asyncio.gather(asyncio.sleep(0), other.create_future())
            except ValueError as error:
                return str(error)
            return "accepted"

        assert "loop" in on_both(body)
    finally:
        other.close()


def test_empty_gather():
    async def body() -> Any:
        outer = asyncio.gather()
        return outer.done(), await outer

    assert on_both(body) == (True, [])


# ---- random gathers against asyncio

child_spec = st.tuples(
    st.sampled_from(["coro", "task", "future"]),
    st.sampled_from(["return", "raise", "cancel", "cancel_msg"]),
    st.integers(min_value=0, max_value=3),  # yields before it ends
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(child_spec, min_size=1, max_size=6),
    repeats=st.lists(st.integers(min_value=0, max_value=5), max_size=3),
    return_exceptions=st.booleans(),
    cancel_outer_at=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
)
def test_random_gathers_behave_as_on_asyncio(
    specs: list[Any], repeats: list[int], return_exceptions: bool, cancel_outer_at: Any
) -> None:
    async def body() -> Any:
        loop = asyncio.get_running_loop()
        trace: list[Any] = []
        reports: list[Any] = []
        # (the message, up to how the callback is spelled: a set_result on a
        # future the outer cancel() cancelled fails on both loops)
        loop.set_exception_handler(
            lambda loop, ctx: reports.append(
                (ctx["message"].split(" ")[:3], type(ctx.get("exception")))
            )
        )

        async def child(i: int, how: str, yields: int) -> Any:
            for _ in range(yields):
                await asyncio.sleep(0)
            trace.append(("child ends", i, how))
            if how == "raise":
                raise ValueError(i)
            if how.startswith("cancel"):
                asyncio.current_task().cancel("msg" if how == "cancel_msg" else None)
                await asyncio.sleep(0)
            return i

        args: list[Any] = []
        for i, (kind, how, yields) in enumerate(specs):
            if kind == "coro":
                args.append(child(i, how, yields))
            elif kind == "task":
                args.append(loop.create_task(child(i, how, yields)))
            else:
                fut = loop.create_future()
                if how == "return":
                    loop.call_soon(fut.set_result, i)
                elif how == "raise":
                    loop.call_soon(fut.set_exception, ValueError(i))
                else:
                    loop.call_soon(fut.cancel, "msg" if how == "cancel_msg" else None)
                args.append(fut)
        for r in repeats:
            if r < len(args) and not asyncio.iscoroutine(args[r]):
                args.append(args[r])
        outer = asyncio.gather(*args, return_exceptions=return_exceptions)
        outer.add_done_callback(lambda f: trace.append(("outer done", f.cancelled())))
        if cancel_outer_at is not None:
            for _ in range(cancel_outer_at):
                await asyncio.sleep(0)
            trace.append(("outer.cancel()", outer.cancel("outer")))
        trace.append(await settle(outer))
        for _ in range(6):
            await asyncio.sleep(0)
        states = [
            "cancelled" if c.cancelled() else describe(c.exception()) for c in outer._children
        ]
        return trace, states, reports

    on_both(body)


@pytest.mark.skipif(sys.version_info < (3, 14), reason="asyncio's call graph is new in 3.14")
def test_the_call_graph_shows_the_gathering_task():
    async def body() -> Any:
        graphs: list[Any] = []

        async def child(tag: str) -> str:
            await asyncio.sleep(0)
            graph = asyncio.capture_call_graph()
            graphs.append([getattr(p.future, "get_name", lambda: "?")() for p in graph.awaited_by])
            return tag

        asyncio.current_task().set_name("parent")
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(child(t), name=t) for t in "ab"]
        got = await asyncio.gather(*tasks)
        return got, graphs, [t._asyncio_awaited_by for t in tasks]

    assert on_both(body) == (["a", "b"], [["parent"], ["parent"]], [None, None])
