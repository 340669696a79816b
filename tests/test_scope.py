"""Cancel scopes: CancelScope, move_on_*/fail_*, timeout, shields, deadlines.

Every behaviour is checked on each door that can run it: a native task on a
bare ``Runtime`` (autojump clock: deadlines take no real time), a native task
under ``rio.block_on`` (rio's loop), an asyncio task on rio's loop, and an
asyncio task on the stdlib loop. Where asyncio has the same thing
(``asyncio.timeout``), it is the oracle: one body, run with both.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import rio_rt as rio

pytestmark = pytest.mark.filterwarnings("error")

NEEDS_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")


def run_native(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return rio.Runtime(autojump_clock=True).block_on(coro_fn())


def run_block_on(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return rio.block_on(coro_fn())


def run_asyncio_on_rio(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return rio.run(coro_fn())


def run_asyncio_stdlib(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro_fn())


DOORS = {
    "native": run_native,
    "block_on": run_block_on,
    "asyncio-rio": run_asyncio_on_rio,
    "asyncio-stdlib": run_asyncio_stdlib,
}


@pytest.fixture(params=list(DOORS))
def door(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return DOORS[request.param]


@pytest.fixture(params=["native", "asyncio-rio"])
def rio_door(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return DOORS[request.param]


def current() -> Any:
    task = rio.current_task()
    return task if task is not None else asyncio.current_task()


async def checkpoint() -> None:
    if rio.current_task() is not None:
        await rio.sleep(0)
    else:
        await asyncio.sleep(0)


async def park_forever() -> None:
    if rio.current_task() is not None:
        await rio.Event().wait()
    else:
        await asyncio.get_running_loop().create_future()


# ---------------------------------------------------------------- basic cancel


def test_cancel_from_inside_before_an_await_ends_the_block(door: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, bool, list[str], int]:
        steps = []
        with rio.CancelScope() as scope:
            scope.cancel()
            steps.append("before await")
            await checkpoint()
            steps.append("after await")
        steps.append("after block")
        await checkpoint()  # nothing left pending for the task
        return scope.cancel_called, scope.cancelled_caught, steps, current().cancelling()

    assert door(main) == (True, True, ["before await", "after block"], 0)


def test_cancel_then_exit_without_await_leaves_nothing_pending(door: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, int, str]:
        with rio.CancelScope() as scope:
            scope.cancel()
        for _ in range(3):
            await checkpoint()
        return scope.cancelled_caught, current().cancelling(), "reached"

    assert door(main) == (False, 0, "reached")


def test_cancel_before_entry_cancels_on_entry(door: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, bool]:
        scope = rio.CancelScope()
        scope.cancel()
        with scope:
            await park_forever()
        return scope.cancel_called, scope.cancelled_caught

    assert door(main) == (True, True)


def test_cancel_from_another_task(rio_door: Callable[..., Any]) -> None:
    async def main() -> list[str]:
        log: list[str] = []
        scope = rio.CancelScope()
        entered = rio.Event()

        async def victim() -> None:
            with scope:
                entered.set()
                try:
                    await park_forever()
                finally:
                    log.append("finally ran")
            log.append(f"caught={scope.cancelled_caught}")

        task = rio.spawn(victim())
        await entered.wait()
        scope.cancel()
        await task
        log.append(f"cancelling={task.cancelling()}")
        return log

    assert rio_door(main) == ["finally ran", "caught=True", "cancelling=0"]


def test_async_with_works_like_with(door: Callable[..., Any]) -> None:
    async def main() -> bool:
        async with rio.CancelScope() as scope:
            scope.cancel()
            await park_forever()
        return scope.cancelled_caught

    assert door(main) is True


def test_exceptions_other_than_cancellation_pass_through(door: Callable[..., Any]) -> None:
    async def main() -> None:
        with rio.CancelScope() as scope:
            scope.cancel()
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        door(main)


def test_cancel_after_exit_does_nothing(door: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, bool, int]:
        with rio.CancelScope() as scope:
            await checkpoint()
        scope.cancel()
        await checkpoint()
        return scope.cancel_called, scope.cancelled_caught, current().cancelling()

    assert door(main) == (False, False, 0)


# ---------------------------------------------------------------- nesting


def test_outer_cancel_passes_through_inner_scopes(door: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, bool, bool, bool]:
        with rio.CancelScope() as outer:
            with rio.CancelScope() as inner:
                outer.cancel()
                await park_forever()
            raise AssertionError("the inner scope must not catch the outer cancel")
        return outer.cancelled_caught, inner.cancelled_caught, inner.cancel_called, True

    assert door(main) == (True, False, False, True)


def test_both_cancelled_the_outer_one_catches(door: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, bool, int]:
        with rio.CancelScope() as outer:
            with rio.CancelScope() as inner:
                inner.cancel()
                outer.cancel()
                await park_forever()
            raise AssertionError("not reached")
        return outer.cancelled_caught, inner.cancelled_caught, current().cancelling()

    assert door(main) == (True, False, 0)


def test_task_cancel_passes_through_a_scope(rio_door: Callable[..., Any]) -> None:
    async def main() -> tuple[str, bool, int]:
        scope = rio.CancelScope()
        entered = rio.Event()

        async def victim_outer() -> None:
            with scope:
                entered.set()
                await park_forever()

        task = rio.spawn(victim_outer())
        await entered.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            outcome = "cancelled"
        else:
            outcome = "returned"
        return outcome, scope.cancelled_caught, task.cancelling()

    assert rio_door(main) == ("cancelled", False, 1)


def test_exiting_out_of_order_is_an_error(door: Callable[..., Any]) -> None:
    async def main() -> tuple[str, int]:
        outer = rio.CancelScope()
        inner = rio.CancelScope()
        outer.__enter__()
        inner.__enter__()
        with pytest.raises(RuntimeError, match="out of order"):
            outer.__exit__(None, None, None)
        inner.__exit__(None, None, None)
        # the stack is consistent again: a new scope works
        with rio.CancelScope() as again:
            again.cancel()
            await park_forever()
        return repr(outer), current().cancelling()

    text, cancelling = door(main)
    assert "exited" in text and cancelling == 0


def test_misuse_errors(door: Callable[..., Any]) -> None:
    async def main() -> list[str]:
        errors = []
        scope = rio.CancelScope()
        with scope:
            pass
        for action in (scope.__enter__, lambda: scope.__exit__(None, None, None)):
            try:
                action()
            except RuntimeError as exc:
                errors.append(str(exc))
        return errors

    errors = door(main)
    assert len(errors) == 2
    assert "entered only once" in errors[0]
    assert "not active" in errors[1]


def test_scope_outside_a_task_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="inside a task"), rio.CancelScope():
        pass


def test_scope_exited_in_another_task_is_an_error(run: Callable[..., Any]) -> None:
    async def main() -> str:
        scope = rio.CancelScope()
        scope.__enter__()

        async def other() -> None:
            scope.__exit__(None, None, None)

        try:
            await rio.spawn(other())
        except RuntimeError as exc:
            message = str(exc)
        scope.__exit__(None, None, None)
        return message

    assert "task that entered it" in run(main)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        rio.CancelScope(deadline="soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rio.CancelScope(deadline=math.nan)
    with pytest.raises(TypeError):
        rio.move_on_after(True)
    with pytest.raises(TypeError):
        rio.fail_after("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rio.fail_at(math.nan)
    with pytest.raises(TypeError):
        rio.CancelScope(1.0)  # type: ignore[misc]


# ---------------------------------------------------------------- deadlines


def test_move_on_after_ends_the_block_quietly(door: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, bool, int]:
        with rio.move_on_after(0.005) as scope:
            await park_forever()
        return scope.cancel_called, scope.cancelled_caught, current().cancelling()

    assert door(main) == (True, True, 0)


def test_fail_after_raises_timeout_error(door: Callable[..., Any]) -> None:
    async def main() -> None:
        with rio.fail_after(0.005):
            await park_forever()

    with pytest.raises(TimeoutError) as info:
        door(main)
    assert isinstance(info.value.__cause__, asyncio.CancelledError)


def test_fail_after_cancelled_by_hand_moves_on(door: Callable[..., Any]) -> None:
    async def main() -> bool:
        with rio.fail_after(60) as scope:
            scope.cancel()
            await park_forever()
        return scope.cancelled_caught

    assert door(main) is True


def test_fail_at_and_move_on_at(run: Callable[..., Any]) -> None:
    async def main() -> tuple[float, float, bool]:
        start = rio.monotonic()
        with rio.move_on_at(start + 3) as scope:
            await rio.sleep(10)
        moved_on = rio.monotonic() - start
        try:
            with rio.fail_at(rio.monotonic() + 2):
                await rio.sleep(10)
        except TimeoutError:
            pass
        return moved_on, rio.monotonic() - start, scope.cancelled_caught

    moved_on, total, caught = run(main)
    assert 3 <= moved_on < 3.1 and 5 <= total < 5.2 and caught


def test_a_past_deadline_cancels_at_the_first_await(door: Callable[..., Any]) -> None:
    async def main() -> tuple[list[str], bool]:
        steps = []
        with rio.move_on_at(rio.monotonic() - 1) as scope:
            steps.append("body starts")
            await checkpoint()
            steps.append("not reached")
        return steps, scope.cancelled_caught

    assert door(main) == (["body starts"], True)


def test_the_deadline_can_move_while_the_block_runs(run: Callable[..., Any]) -> None:
    async def main() -> list[float]:
        start = rio.monotonic()
        ends = []
        with rio.move_on_after(1) as scope:
            scope.deadline = start + 5  # later
            await rio.sleep(10)
        ends.append(rio.monotonic() - start)
        with rio.move_on_after(5) as scope:
            scope.deadline = rio.monotonic() + 2  # earlier
            await rio.sleep(10)
        ends.append(rio.monotonic() - start)
        with rio.move_on_after(1) as scope:
            scope.deadline = None  # none
            await rio.sleep(3)
        ends.append(rio.monotonic() - start)
        assert scope.deadline == math.inf and not scope.cancel_called
        return ends

    ends = run(main)
    assert 5 <= ends[0] < 5.1 and 7 <= ends[1] < 7.1 and 10 <= ends[2] < 10.1


def test_deadline_moved_into_the_past_cancels(run: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, float]:
        start = rio.monotonic()
        scope = rio.CancelScope()

        async def mover() -> None:
            await rio.sleep(1)
            scope.deadline = rio.monotonic() - 5

        rio.spawn(mover())
        with scope:
            await rio.sleep(100)
        return scope.cancelled_caught, rio.monotonic() - start

    caught, elapsed = run(main)
    assert caught and 1 <= elapsed < 1.1


def test_current_effective_deadline(run: Callable[..., Any]) -> None:
    async def main() -> list[float]:
        seen = [rio.current_effective_deadline()]
        now = rio.monotonic()
        with rio.move_on_at(now + 10):
            seen.append(rio.current_effective_deadline() - now)
            with rio.move_on_at(now + 20):
                seen.append(rio.current_effective_deadline() - now)
                with rio.CancelScope(deadline=now + 30, shield=True):
                    seen.append(rio.current_effective_deadline() - now)
            with rio.move_on_at(now + 5) as inner:
                seen.append(rio.current_effective_deadline() - now)
                inner.cancel()
                seen.append(rio.current_effective_deadline())
        return seen

    assert run(main) == [math.inf, 10, 10, 30, 5, -math.inf]


def test_current_effective_deadline_outside_a_task() -> None:
    assert rio.current_effective_deadline() == math.inf


# ---------------------------------------------------------------- shields


def test_shield_holds_back_an_outer_cancel_until_it_exits(door: Callable[..., Any]) -> None:
    async def main() -> list[str]:
        log = []
        with rio.CancelScope() as outer:
            with rio.CancelScope(shield=True):
                outer.cancel()
                await checkpoint()
                await checkpoint()
                log.append("shielded body finished")
            log.append("after shield, before await")
            await checkpoint()
            log.append("not reached")
        log.append(f"outer caught={outer.cancelled_caught}")
        return log

    assert door(main) == [
        "shielded body finished",
        "after shield, before await",
        "outer caught=True",
    ]


def test_shield_holds_back_a_deadline(run: Callable[..., Any]) -> None:
    async def main() -> tuple[float, float, bool]:
        start = rio.monotonic()
        with rio.move_on_after(1) as outer:
            with rio.CancelScope(shield=True):
                await rio.sleep(3)
            shielded_until = rio.monotonic() - start
            await rio.sleep(10)
        return shielded_until, rio.monotonic() - start, outer.cancelled_caught

    shielded_until, end, caught = run(main)
    assert 3 <= shielded_until < 3.1 and end == pytest.approx(shielded_until, abs=0.05) and caught


def test_shield_holds_back_task_cancel_on_a_rio_task(run: Callable[..., Any]) -> None:
    async def main() -> tuple[list[str], bool, int]:
        log = []
        entered = rio.Event()

        async def cleanup() -> None:
            with rio.CancelScope(shield=True):
                entered.set()
                await rio.sleep(2)
                log.append("cleanup done")
            log.append("after shield")
            await rio.sleep(0)
            log.append("not reached")

        task = rio.spawn(cleanup())
        await entered.wait()
        assert task.cancel() is True
        assert task.cancelling() == 1
        with pytest.raises(asyncio.CancelledError):
            await task
        return log, task.cancelled(), task.cancelling()

    assert run(main) == (["cleanup done", "after shield"], True, 1)


def test_a_shielded_scope_is_cancelled_by_its_own_cancel(door: Callable[..., Any]) -> None:
    async def main() -> bool:
        with rio.CancelScope(shield=True) as scope:
            scope.cancel()
            await park_forever()
        return scope.cancelled_caught

    assert door(main) is True


def test_unshielding_delivers_what_was_held(door: Callable[..., Any]) -> None:
    async def main() -> tuple[list[str], bool]:
        log = []
        with rio.CancelScope() as outer:
            with rio.CancelScope(shield=True) as inner:
                outer.cancel()
                await checkpoint()
                log.append("still shielded")
                inner.shield = False
                await checkpoint()
                log.append("not reached")
        return log, outer.cancelled_caught

    assert door(main) == (["still shielded"], True)


def test_nested_shields_release_one_level_at_a_time(run: Callable[..., Any]) -> None:
    async def main() -> list[str]:
        log = []
        with rio.CancelScope() as a:
            with rio.CancelScope(shield=True) as b:
                with rio.CancelScope(shield=True):
                    a.cancel()
                    b.cancel()
                    await rio.sleep(0)
                    log.append("innermost ran")
                log.append("b's own cancel arrives at the next await")
                await rio.sleep(0)
                log.append("not reached")
            log.append(f"b caught={b.cancelled_caught}; a's cancel is released now")
            await rio.sleep(0)
            log.append("not reached")
        log.append(f"a caught={a.cancelled_caught}")
        return log

    assert run(main) == [
        "innermost ran",
        "b's own cancel arrives at the next await",
        "b caught=True; a's cancel is released now",
        "a caught=True",
    ]


# ---------------------------------------------------------------- timeout and wait_for


def test_timeout_is_a_cancel_scope_with_asyncio_timeouts_api(run: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, bool, bool]:
        t = rio.timeout(5)
        assert isinstance(t, rio.CancelScope)
        with pytest.raises(TimeoutError):
            with t:
                t.reschedule(rio.monotonic() + 1)
                await rio.sleep(10)
        with pytest.raises(RuntimeError, match="expired"):
            t.reschedule(None)
        with rio.timeout(None) as never:
            await rio.sleep(1)
        return t.expired(), never.expired(), never.when() is None

    assert run(main) == (True, False, True)


def nested_timeouts(
    outer: Callable[[float], Any],
    inner: Callable[[float], Any],
    outer_delay: float,
    inner_delay: float,
) -> Callable[[], Coroutine[Any, Any, list[str]]]:
    """Two nested timeouts (each rio.timeout or asyncio.timeout) around a sleep."""

    async def main() -> list[str]:
        log = []
        try:
            async with outer(outer_delay):
                try:
                    async with inner(inner_delay):
                        await asyncio.sleep(0.05 if outer_delay == inner_delay == 60 else 30)
                        log.append("body finished")
                except TimeoutError:
                    log.append("inner timed out")
                log.append("between")
        except TimeoutError:
            log.append("outer timed out")
        log.append(f"cancelling={asyncio.current_task().cancelling()}")  # type: ignore[union-attr]
        return log

    return main


@NEEDS_311
@pytest.mark.parametrize("loop", ["asyncio-stdlib", "asyncio-rio"])
@pytest.mark.parametrize(
    ("outer_delay", "inner_delay"), [(0.005, 60), (60, 0.005), (0.005, 0.005), (60, 60)]
)
def test_nested_timeouts_behave_as_asyncio_timeout(
    loop: str, outer_delay: float, inner_delay: float
) -> None:
    """One body, run with asyncio.timeout (the oracle) and with rio.timeout, and
    with each kind nested in the other: the same outcome."""
    run = DOORS[loop]
    expected = run(nested_timeouts(asyncio.timeout, asyncio.timeout, outer_delay, inner_delay))
    for outer, inner in [
        (rio.timeout, rio.timeout),
        (rio.timeout, asyncio.timeout),
        (asyncio.timeout, rio.timeout),
    ]:
        assert run(nested_timeouts(outer, inner, outer_delay, inner_delay)) == expected


@NEEDS_311
def test_asyncio_taskgroup_inside_a_rio_scope() -> None:
    async def main() -> tuple[list[str], bool, int]:
        log = []

        async def child(name: str) -> None:
            try:
                await asyncio.sleep(30)
            finally:
                log.append(f"{name} cancelled")

        with rio.move_on_after(0.005) as scope:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(child("a"))
                tg.create_task(child("b"))
        return sorted(log), scope.cancelled_caught, asyncio.current_task().cancelling()  # type: ignore[union-attr]

    assert rio.run(main()) == (["a cancelled", "b cancelled"], True, 0)


@NEEDS_311
def test_rio_scope_inside_asyncio_taskgroup_child() -> None:
    async def main() -> list[Any]:
        results = []

        async def child() -> None:
            with rio.move_on_after(0.005) as scope:
                await asyncio.sleep(30)
            results.append(scope.cancelled_caught)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(child())
            tg.create_task(child())
        return results

    assert rio.run(main()) == [True, True]


def test_wait_for_times_out_and_cancels_a_rio_task(run: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, bool, Any]:
        task = rio.spawn(rio.sleep(100))
        with pytest.raises(TimeoutError):
            await rio.wait_for(task, 1)
        with pytest.raises(asyncio.CancelledError):
            await task
        value = await rio.wait_for(quick(), 1)
        return task.cancelled(), rio.current_task().cancelling() == 0, value  # type: ignore[union-attr]

    async def quick() -> str:
        await rio.sleep(0.5)
        return "value"

    assert run(main) == (True, True, "value")


# ---------------------------------------------------------------- hygiene


def test_scopes_leave_no_state_behind(run: Callable[..., Any]) -> None:
    async def main() -> list[Any]:
        for i in range(200):
            with rio.move_on_after(0.001 * (i % 3)) as scope:
                if i % 2:
                    scope.cancel()
                await rio.sleep(0.002)
        task = rio.current_task()
        return [task.cancelling(), rio.current_effective_deadline()]  # type: ignore[union-attr]

    assert run(main) == [0, math.inf]
    assert rio.lowlevel.debug_counters().get("scoped_asyncio_tasks", 0) == 0


def test_asyncio_task_scope_registry_is_emptied() -> None:
    async def main() -> None:
        with rio.CancelScope():
            with rio.move_on_after(0.001):
                await asyncio.sleep(1)

    rio.run(main())
    asyncio.run(main())
    import rio_core._scope as scope_module

    assert scope_module._debug_scoped_asyncio_tasks() == 0


def test_a_dropped_asyncio_task_inside_a_scope_is_still_collected() -> None:
    """The scope registry holds CPython's asyncio tasks weakly: a task parked
    forever inside a scope and dropped is collected (asyncio reports it), not
    kept alive."""
    import gc
    import weakref

    async def stuck(started: asyncio.Future[None]) -> None:
        with rio.CancelScope():
            started.set_result(None)
            await asyncio.get_running_loop().create_future()  # nobody completes it

    async def main() -> weakref.ref[asyncio.Task[None]]:
        started = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(stuck(started))
        await started
        return weakref.ref(task)

    loop = rio.new_event_loop(tasks="asyncio")
    reports: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    try:
        ref = loop.run_until_complete(main())
        for _ in range(3):
            gc.collect()
        assert ref() is None
        assert any("destroyed but it is pending" in r["message"] for r in reports)
        import rio_core._scope as scope_module

        assert scope_module._debug_scoped_asyncio_tasks() == 0
    finally:
        loop.close()


def test_shield_holds_back_task_cancel_while_parked_on_an_asyncio_future() -> None:
    """A native task under rio.block_on awaiting an asyncio future inside a
    shield: Task.cancel() does not cancel that future; it is delivered after."""

    async def main() -> tuple[list[str], bool]:
        log = []
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        entered = rio.Event()

        async def shielded() -> None:
            with rio.CancelScope(shield=True):
                entered.set()
                log.append(f"future gave {await future}")
            await rio.sleep(0)
            log.append("not reached")

        task = rio.spawn(shielded())
        await entered.wait()
        task.cancel()
        await rio.sleep(0)
        assert not future.cancelled()
        future.set_result("value")
        with pytest.raises(asyncio.CancelledError):
            await task
        return log, task.cancelled()

    assert rio.block_on(main()) == (["future gave value"], True)


@pytest.mark.parametrize("tasks", ["asyncio", "rio"])
def test_a_shield_holds_back_task_cancel_on_rio_tasks_only(tasks: Any) -> None:
    """On rio's Task (the default on rio's loop) a shield holds back the task's
    own cancel() too; CPython's asyncio.Task.cancel() (tasks="asyncio") cannot
    be deferred: the documented limit."""

    async def main() -> list[str]:
        entered = asyncio.Event()
        outcomes: list[str] = []

        async def shielded(outer: rio.CancelScope) -> None:
            with outer:
                with rio.CancelScope(shield=True):
                    entered.set()
                    try:
                        await asyncio.sleep(0.01)
                        outcomes.append("shield held")
                    except asyncio.CancelledError:
                        outcomes.append("cancelled inside the shield")
                        raise
                await asyncio.sleep(0)
                outcomes.append("not reached")
            outcomes.append(f"outer caught={outer.cancelled_caught}")

        loop = asyncio.get_running_loop()
        scope = rio.CancelScope()
        task = loop.create_task(shielded(scope))
        await entered.wait()
        scope.cancel()  # a rio scope: held back until the shield exits
        await task
        entered.clear()
        task = loop.create_task(shielded(rio.CancelScope()))
        await entered.wait()
        task.cancel()  # the task's own cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return outcomes

    second = "cancelled inside the shield" if tasks == "asyncio" else "shield held"
    assert rio.run(main(), tasks=tasks) == ["shield held", "outer caught=True", second]
