"""``loop.create_future()`` on rio's loop: rio's own Future (``LoopFuture``).

Two oracles here (CPython's own Future tests are the third:
test_aio_loop_future_cpython.py):

- One test body on stdlib asyncio and on rio's loop (``arun``) for what
  asyncio code sees of a future.
- hypothesis: random programs of tasks awaiting futures, callbacks, results,
  exceptions and cancellations; the trace of what ran in which order must be
  the same on both loops (a parked rio task is woken where asyncio queues its
  wake-up callback).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rio_core._runtime import LoopFuture

import rio_rt

# ------------------------------------------------------------------ which Future


def test_create_future_is_rios_future_only_with_rios_tasks() -> None:
    for tasks, expected in (("rio", LoopFuture), ("asyncio", asyncio.Future)):
        loop = rio_rt.new_event_loop(tasks=tasks)
        try:
            fut = loop.create_future()
            assert type(fut) is expected
            assert isinstance(fut, asyncio.Future) and asyncio.isfuture(fut)
            fut.cancel()
        finally:
            loop.close()


# ------------------------------------------------------------------ one body, both loops


def test_a_future_looks_like_asyncios(arun) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        seen: list[Any] = [repr(fut), fut._state, fut._callbacks, fut.get_loop() is loop]
        fut.add_done_callback(lambda f: seen.append(("cb", f._state)))
        seen.append(repr(fut))
        seen.append(asyncio.ensure_future(fut) is fut)
        fut.set_result(7)
        seen += [repr(fut), fut.done(), fut.result(), fut._result, fut._state]
        await asyncio.sleep(0)
        failed = loop.create_future()
        failed.set_exception(ValueError("no"))
        seen += [repr(failed), type(failed.exception()).__name__]
        with pytest.raises(asyncio.InvalidStateError, match="invalid state"):
            failed.set_result(1)
        with pytest.raises(TypeError, match="invalid exception object"):
            loop.create_future().set_exception(1)
        pending = loop.create_future()
        with pytest.raises(asyncio.InvalidStateError, match="Result is not set"):
            pending.result()
        with pytest.raises(asyncio.InvalidStateError, match="Exception is not set"):
            pending.exception()
        seen.append(pending.cancel("why"))
        seen.append(pending.cancel())
        with pytest.raises(asyncio.CancelledError, match="why"):
            pending.result()
        seen.append(pending._cancel_message)
        return seen

    assert arun(main()) == [
        "<Future pending>",
        "PENDING",
        None,
        True,
        "<Future pending cb=[test_a_future_looks_like_asyncios.<locals>.main.<locals>.<lambda>() "
        f"at {__file__}:{test_a_future_looks_like_asyncios.__code__.co_firstlineno + 5}]>",
        True,
        "<Future finished result=7>",
        True,
        7,
        7,
        "FINISHED",
        ("cb", "FINISHED"),
        "<Future finished exception=ValueError('no')>",
        "ValueError",
        True,
        False,
        "why",
    ]


def test_a_task_waiting_on_a_future_shows_in_its_callbacks(arun) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = asyncio.create_task(_await(fut))
        await asyncio.sleep(0)
        shown = [fn.__qualname__ for fn, _ in fut._callbacks]
        waiter_is_fut = task._fut_waiter is fut
        fut.set_result("x")
        return [shown, waiter_is_fut, await task]

    assert arun(main()) == [["Task.task_wakeup"], True, "x"]


async def _await(fut: Any) -> Any:
    return await fut


def test_cancelling_the_task_cancels_the_future_it_waits_on(arun) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = asyncio.create_task(_await(fut))
        await asyncio.sleep(0)
        task.cancel("stop")
        outcome = []
        try:
            await task
        except asyncio.CancelledError as error:
            outcome.append(error.args)
        return [fut.cancelled(), fut._cancel_message, outcome, task.cancelled()]

    assert arun(main()) == [True, "stop", [("stop",)], True]


def test_a_task_that_leaves_a_future_is_not_woken_by_it_later(arun) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        steps: list[str] = []

        async def waiter() -> str:
            try:
                await first
            except asyncio.CancelledError:
                steps.append("cancelled")
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
            return await second

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0)
        steps.append(f"first cancelled={first.cancelled()}")
        for _ in range(3):
            await asyncio.sleep(0)
        steps.append(f"done={task.done()}")
        second.set_result("second")
        return [steps, await task]

    assert arun(main()) == [["cancelled", "first cancelled=True", "done=False"], "second"]


def test_never_retrieved_is_reported_through_the_loop(loop_factory) -> None:
    loop = loop_factory()
    reports: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    try:
        fut = loop.create_future()
        fut.set_exception(KeyError("lost"))
        del fut
        gc.collect()
        retrieved = loop.create_future()
        retrieved.set_exception(KeyError("seen"))
        retrieved.exception()
        del retrieved
        gc.collect()
    finally:
        loop.close()
    assert [(r["message"], repr(r["exception"])) for r in reports] == [
        ("Future exception was never retrieved", "KeyError('lost')")
    ]


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.13 stores a RuntimeError")
def test_stop_iteration_becomes_runtime_error(arun) -> None:
    async def main() -> list[Any]:
        fut = asyncio.get_running_loop().create_future()
        stop = StopIteration(1)
        fut.set_exception(stop)
        error = fut.exception()
        return [type(error).__name__, error.__cause__ is stop, error.__context__ is stop]

    assert arun(main()) == ["RuntimeError", True, True]


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="before 3.13 it is refused")
def test_stop_iteration_is_refused(arun) -> None:
    async def main() -> bool:
        fut = asyncio.get_running_loop().create_future()
        with pytest.raises(TypeError, match="StopIteration interacts badly"):
            fut.set_exception(StopIteration(1))
        return fut.done()

    assert arun(main()) is False


# ------------------------------------------------------------------ the order, against asyncio

N_FUTURES = 4

op = st.one_of(
    st.tuples(st.just("await"), st.integers(0, 2), st.integers(0, N_FUTURES - 1)),
    st.tuples(st.just("callback"), st.integers(0, N_FUTURES - 1)),
    st.tuples(st.just("remove"), st.integers(0, N_FUTURES - 1)),
    st.tuples(st.just("result"), st.integers(0, N_FUTURES - 1)),
    st.tuples(st.just("exception"), st.integers(0, N_FUTURES - 1)),
    st.tuples(st.just("cancel"), st.integers(0, N_FUTURES - 1)),
    st.tuples(st.just("cancel_task"), st.integers(0, 2)),
    st.tuples(st.just("yield")),
)


def run_program(loop_factory: Any, ops: list[tuple[Any, ...]]) -> list[Any]:
    trace: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(N_FUTURES)]
        plans: list[list[int]] = [[], [], []]
        for step in ops:
            if step[0] == "await":
                plans[step[1]].append(step[2])
        callbacks: list[Any] = []

        async def worker(me: int) -> None:
            for index in plans[me]:
                try:
                    value = await futures[index]
                    trace.append(("got", me, index, value))
                except asyncio.CancelledError as error:
                    trace.append(("cancelled", me, index, error.args))
                    if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        return
                except KeyError as error:
                    trace.append(("raised", me, index, error.args))

        tasks = [asyncio.create_task(worker(me)) for me in range(3)]
        await asyncio.sleep(0)
        for number, step in enumerate(ops):
            kind = step[0]
            if kind == "callback":
                fut = futures[step[1]]

                def callback(f: Any, number: int = number, index: int = step[1]) -> None:
                    trace.append(("cb", number, index, f._state))

                callbacks.append((fut, callback))
                fut.add_done_callback(callback)
            elif kind == "remove":
                for fut, callback in callbacks:
                    if fut is futures[step[1]]:
                        trace.append(("removed", fut.remove_done_callback(callback)))
                        break
            elif kind in ("result", "exception", "cancel"):
                fut = futures[step[1]]
                if fut.done():
                    futures[step[1]] = fut = loop.create_future()
                    trace.append(("fresh", step[1]))
                if kind == "result":
                    fut.set_result(number)
                elif kind == "exception":
                    fut.set_exception(KeyError(number))
                else:
                    trace.append(("cancel", fut.cancel(f"m{number}")))
            elif kind == "cancel_task":
                trace.append(("cancel_task", step[1], tasks[step[1]].cancel(f"t{number}")))
            else:
                await asyncio.sleep(0)
            trace.append(("op", number))
        for index in range(N_FUTURES):
            if not futures[index].done():
                futures[index].cancel("end")
        for _ in range(3 * len(ops) + 3):
            if all(task.done() for task in tasks):
                break
            for index in range(N_FUTURES):  # later awaits of replaced futures
                if not futures[index].done():
                    futures[index].cancel("end")
            await asyncio.sleep(0)
        trace.append(("tasks", [task.done() for task in tasks]))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def handler(_loop: Any, context: dict[str, Any]) -> None:
        # "never retrieved" reports come when the garbage goes, not in order
        if "never retrieved" not in context["message"]:
            trace.append(("error", context["message"]))

    loop = loop_factory()
    loop.set_exception_handler(handler)
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        loop.close()
    return trace


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=14))
def test_the_order_of_wakeups_and_callbacks_is_asyncios(ops: list[tuple[Any, ...]]) -> None:
    assert run_program(rio_rt.new_event_loop, ops) == run_program(asyncio.new_event_loop, ops)
