"""rio's Task as the asyncio task of rio's loop (the default; ``tasks="asyncio"`` restores
CPython's). Each behaviour is one test body run on stdlib asyncio (the oracle) and on rio's
loop, where create_task makes a rio Task; the tests that are about rio alone say so.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import subprocess
import sys
import weakref
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rio_core._runtime import Task as RioTask

import rio_rt as rio


def made_by(loop_name: str, task: Any) -> None:
    """On rio's loop, create_task made a rio Task; on stdlib asyncio, CPython's."""
    if loop_name == "rio":
        assert type(task) is RioTask
    else:
        assert type(task) is not RioTask


@pytest.fixture
def loop_name(loop_factory: Any) -> str:
    return "rio" if loop_factory is rio.new_event_loop else "asyncio"


# ---- identity


def test_create_task_makes_a_rio_task_that_is_an_asyncio_task(arun: Any, loop_name: str) -> None:
    async def child() -> int:
        return 1

    async def main() -> list[Any]:
        task = asyncio.get_running_loop().create_task(child())
        made_by(loop_name, task)
        made_by(loop_name, asyncio.current_task())
        made_by(loop_name, asyncio.ensure_future(child()))
        facts = [
            isinstance(task, asyncio.Task),
            isinstance(task, asyncio.Future),
            asyncio.isfuture(task),
            asyncio.iscoroutine(task),
            task.get_loop() is asyncio.get_running_loop(),
            task in asyncio.all_tasks(),
            asyncio.current_task() in asyncio.all_tasks(),
        ]
        await task
        facts.append(task in asyncio.all_tasks())
        return facts

    assert arun(main()) == [True, True, True, False, True, True, True, False]


def test_native_tasks_are_asyncio_tasks_of_the_loop_too() -> None:
    async def child() -> Any:
        return asyncio.current_task()

    async def main() -> list[Any]:
        task = rio.spawn(child())
        return [task in asyncio.all_tasks(), await task is task, isinstance(task, asyncio.Task)]

    assert rio.run(main()) == [True, True, True]


# ---- the Future side


def test_attributes_set_on_a_task_live_in_a_dict_made_on_first_use(
    arun: Any, loop_name: str
) -> None:
    async def child() -> None:
        await asyncio.sleep(0)

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()

        async def cycle() -> weakref.ref[Any]:
            task = loop.create_task(child())
            await task
            task.me = task  # a cycle through the instance dict: the collector's to free
            return weakref.ref(task)

        plain, tagged = loop.create_task(child()), loop.create_task(child())
        tagged.tag = "mine"
        await asyncio.gather(plain, tagged)
        facts: list[Any] = [tagged.tag, hasattr(plain, "tag"), getattr(plain, "tag", None)]
        gone = await cycle()
        for _ in range(3):  # until the done callbacks that hold the task have run
            await asyncio.sleep(0)
        gc.collect()
        facts.append(gone() is None)
        if loop_name == "rio":
            facts += [dict(vars(tagged)), dict(plain.__dict__)]
            # no dict until one is needed: none among the referents the collector sees
            fresh = loop.create_task(child())
            facts.append(any(type(r) is dict for r in gc.get_referents(fresh)))
            fresh.x = 1
            facts.append([dict(r) for r in gc.get_referents(fresh) if type(r) is dict])
            await fresh
        else:  # CPython's Task has an instance dict but no __dict__ attribute
            facts += [{"tag": "mine"}, {}, False, [{"x": 1}]]
        return facts

    expected = ["mine", False, None, True, {"tag": "mine"}, {}, False, [{"x": 1}]]
    assert arun(main()) == expected


def test_done_callbacks_run_later_in_order_in_their_context(arun: Any) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> list[Any]:
        log: list[Any] = []

        async def child() -> str:
            return "value"

        task = asyncio.get_running_loop().create_task(child())
        ctx = contextvars.copy_context()
        ctx.run(var.set, "from ctx")
        task.add_done_callback(lambda t: log.append(("first", t.result(), var.get())), context=ctx)
        task.add_done_callback(lambda t: log.append(("second", t is task, var.get())))
        removed = task.remove_done_callback(print)
        await task
        log.append("after await")
        await asyncio.sleep(0)
        log.append(("removed", removed))
        # on a done task: still through the loop, never inside the call
        task.add_done_callback(lambda t: log.append("late"))
        log.append("added late")
        await asyncio.sleep(0)
        return log

    # the awaiting task's wake-up was registered last: it runs after the two
    assert arun(main()) == [
        ("first", "value", "from ctx"),
        ("second", True, "unset"),
        "after await",
        ("removed", 0),
        "added late",
        "late",
    ]


def test_remove_done_callback_counts_every_registration(arun: Any) -> None:
    async def main() -> list[int]:
        never = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(asyncio.wait_for(never, None))

        def cb(_task: Any) -> None:
            pass

        task.add_done_callback(cb)
        task.add_done_callback(cb)
        task.add_done_callback(print)
        counts = [task.remove_done_callback(cb), task.remove_done_callback(cb)]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return counts

    assert arun(main()) == [2, 0]


def test_set_result_and_set_exception_are_refused(arun: Any) -> None:
    async def main() -> list[str]:
        task = asyncio.current_task()
        assert task is not None
        out = []
        for call in (lambda: task.set_result(1), lambda: task.set_exception(ValueError())):
            try:
                call()
            except RuntimeError as exc:
                out.append(str(exc))
        return out

    assert arun(main()) == [
        "Task does not support set_result operation",
        "Task does not support set_exception operation",
    ]


def test_states_results_and_private_state(arun: Any) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()

        async def ok() -> int:
            await asyncio.sleep(0)
            return 7

        async def bad() -> None:
            raise KeyError("k")

        async def stuck() -> None:
            await loop.create_future()

        t_ok, t_bad, t_stuck = (loop.create_task(c()) for c in (ok, bad, stuck))
        before = [t_ok._state, t_ok.done()]
        with pytest.raises(asyncio.InvalidStateError):
            t_ok.result()
        with pytest.raises(asyncio.InvalidStateError):
            t_ok.exception()
        await asyncio.sleep(0)
        waiter = t_stuck._fut_waiter
        parked = [isinstance(waiter, asyncio.Future), waiter.done()]
        t_stuck.cancel("stop it")
        must = t_stuck._must_cancel  # the future took the cancel: nothing left to throw
        await asyncio.gather(t_ok, t_bad, t_stuck, return_exceptions=True)
        with pytest.raises(asyncio.CancelledError) as cancelled:
            t_stuck.result()
        return [
            *before,
            *parked,
            must,
            t_ok.result(),
            t_ok._state,
            t_ok._result,
            type(t_bad.exception()).__name__,
            t_bad._state,
            type(t_bad._exception).__name__,
            t_stuck.cancelled(),
            t_stuck._state,
            cancelled.value.args,
            t_ok._fut_waiter,
            t_ok.cancelling(),
            t_stuck.cancelling(),
        ]

    assert arun(main()) == [
        "PENDING",
        False,
        True,
        False,
        False,
        7,
        "FINISHED",
        7,
        "KeyError",
        "FINISHED",
        "KeyError",
        True,
        "CANCELLED",
        ("stop it",),
        None,
        0,
        1,
    ]


def test_get_coro_name_context_and_stack(arun: Any) -> None:
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=0)

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        gate = loop.create_future()

        async def child() -> int:
            await gate
            return var.get()

        coro = child()
        ctx = contextvars.copy_context()
        ctx.run(var.set, 5)
        task = loop.create_task(coro, name="the-child", context=ctx)
        await asyncio.sleep(0)
        stack = task.get_stack()
        facts: list[Any] = [
            task.get_coro() is coro,
            task.get_name(),
            # (CPython's Task has get_context from 3.12)
            task.get_context() is ctx if hasattr(task, "get_context") else True,
            [frame.f_code.co_name for frame in stack],
            "the-child" in repr(task),
        ]
        task.set_name(42)
        facts.append(task.get_name())
        gate.set_result(None)
        facts.append(await task)
        facts.append(task.get_coro() is coro)
        facts.append(task.get_stack())
        return facts

    assert arun(main()) == [True, "the-child", True, ["child"], True, "42", 5, True, []]


def test_default_names_are_task_numbers(arun: Any) -> None:
    async def main() -> bool:
        task = asyncio.get_running_loop().create_task(asyncio.sleep(0))
        await task
        return task.get_name().startswith("Task-") and task.get_name()[5:].isdigit()

    assert arun(main())


# ---- cancellation as asyncio does it


def test_cancelling_a_joiner_cancels_the_task_it_awaits(arun: Any) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()

        async def inner() -> None:
            await loop.create_future()

        async def outer(task: asyncio.Task[None]) -> None:
            await task

        inner_task = loop.create_task(inner())
        outer_task = loop.create_task(outer(inner_task))
        await asyncio.sleep(0)
        waiting_on = outer_task._fut_waiter is inner_task
        outer_task.cancel()
        await asyncio.gather(outer_task, return_exceptions=True)
        return [waiting_on, inner_task.cancelled(), outer_task.cancelled()]

    assert arun(main()) == [True, True, True]


def test_a_task_cancelled_as_it_returns_ends_cancelled(arun: Any) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()

        async def child() -> str:
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            return "returned anyway"

        task = loop.create_task(child())
        await asyncio.gather(task, return_exceptions=True)
        return [task.cancelled(), task.cancelling()]

    assert arun(main()) == [True, 1]


def test_bad_awaits_raise_asyncio_errors_in_the_task(arun: Any) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        other_loop = asyncio.new_event_loop()
        out = []

        async def self_await() -> None:
            await asyncio.current_task()  # type: ignore[misc]

        async def foreign() -> None:
            await other_loop.create_future()

        class BadYield:
            def __await__(self) -> Any:
                yield "not a future"

        async def bad_yield() -> None:
            await BadYield()

        try:
            for body in (self_await, foreign, bad_yield):
                task = loop.create_task(body())
                try:
                    await task
                except RuntimeError as exc:
                    out.append(str(exc).split(":")[0].split(" <")[0])
        finally:
            other_loop.close()
        return out

    assert arun(main()) == [
        "Task cannot await on itself",
        "Task",
        "Task got bad yield",
    ]


# ---- eager tasks (3.12+)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks: 3.12+")
@pytest.mark.parametrize(
    "how",
    [
        "factory",
        pytest.param(
            "eager_start",
            marks=pytest.mark.skipif(
                sys.version_info < (3, 14), reason="create_task(eager_start=): 3.14+"
            ),
        ),
    ],
)
def test_eager_tasks_run_their_first_step_at_once(arun: Any, loop_name: str, how: str) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        log: list[Any] = []

        async def child(n: int) -> int:
            log.append(("child starts", asyncio.current_task() is task_box[0] or "early"))
            await asyncio.sleep(0)
            log.append(("child resumes", asyncio.current_task() is task_box[0]))
            return n

        async def done_at_once() -> str:
            return "no await"

        task_box: list[Any] = [None]
        if how == "factory":
            loop.set_task_factory(asyncio.eager_task_factory)
            task = loop.create_task(child(1))
        else:
            task = loop.create_task(child(1), eager_start=True)  # type: ignore[call-arg]
        task_box[0] = task
        made_by(loop_name, task) if how == "eager_start" else None
        log.append(("after create", asyncio.current_task() is not task))
        if how == "factory":
            quick = loop.create_task(done_at_once())
        else:
            quick = loop.create_task(done_at_once(), eager_start=True)  # type: ignore[call-arg]
        log.append(("quick done at once", quick.done(), quick.result()))
        log.append(await task)
        loop.set_task_factory(None)
        return log

    assert arun(main()) == [
        ("child starts", "early"),
        ("after create", True),
        ("quick done at once", True, "no await"),
        ("child resumes", True),
        1,
    ]


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="3.14+ takes create_task(eager_start=)")
def test_create_task_refuses_eager_start_before_3_14() -> None:
    async def main() -> None:
        coro = asyncio.sleep(0)
        try:
            asyncio.get_running_loop().create_task(coro, eager_start=True)  # type: ignore[call-arg]
        finally:
            coro.close()

    with pytest.raises(TypeError, match="eager_start"):
        rio.run(main())


# ---- reports through the loop's exception handler


def test_an_exception_never_retrieved_is_reported_to_the_loop(loop_factory: Any) -> None:
    loop = loop_factory()
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: contexts.append(context))

    async def fails() -> None:
        raise ValueError("never looked at")

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(fails())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert task.done()

    try:
        loop.run_until_complete(main())
        gc.collect()
    finally:
        loop.close()
    assert [(c["message"], type(c["exception"]).__name__) for c in contexts] == [
        ("Task exception was never retrieved", "ValueError")
    ]
    assert isinstance(contexts[0]["future"], asyncio.Task)


def test_log_traceback_false_silences_the_report(loop_factory: Any) -> None:
    loop = loop_factory()
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: contexts.append(context))

    async def fails() -> None:
        raise ValueError("silenced")

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(fails())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert task._log_traceback
        task._log_traceback = False
        assert not task._log_traceback

    try:
        loop.run_until_complete(main())
        gc.collect()
    finally:
        loop.close()
    assert contexts == []


def test_closing_the_loop_reports_tasks_still_pending(loop_factory: Any) -> None:
    loop = loop_factory()
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: contexts.append(context))

    async def stuck() -> None:
        await asyncio.get_running_loop().create_future()

    async def main() -> None:
        asyncio.get_running_loop().create_task(stuck(), name="left-behind")
        quiet = asyncio.get_running_loop().create_task(stuck())
        quiet._log_destroy_pending = False
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    loop.close()
    gc.collect()
    assert [(c["message"], c["task"].get_name()) for c in contexts] == [
        ("Task was destroyed but it is pending!", "left-behind")
    ]


def test_debug_mode_records_where_a_task_was_created(loop_factory: Any) -> None:
    loop = loop_factory()
    loop.set_debug(True)

    async def main() -> Any:
        task = asyncio.get_running_loop().create_task(asyncio.sleep(0))
        await task
        return task._source_traceback

    try:
        source = loop.run_until_complete(main())
    finally:
        loop.close()
    assert source[-1].name == "main"


# ---- the switch back to CPython's Task


def test_tasks_asyncio_restores_cpythons_task() -> None:
    async def main() -> Any:
        return type(asyncio.current_task())

    assert rio.run(main(), tasks="asyncio") is asyncio.Task
    assert rio.run(main(), tasks="rio") is RioTask
    loop = rio.new_event_loop(tasks="asyncio")
    try:
        assert loop.task_kind == "asyncio"
    finally:
        loop.close()
    with pytest.raises(ValueError, match="tasks must be"):
        rio.new_event_loop(tasks="trio")  # type: ignore[arg-type]


def test_the_environment_variable_restores_cpythons_task(tmp_path: Any) -> None:
    script = (
        "import asyncio, rio_rt\n"
        "async def main():\n"
        "    return type(asyncio.current_task()).__module__\n"
        "print(rio_rt.run(main()), rio_rt.new_event_loop().task_kind)\n"
    )
    env = dict(os.environ, RIO_ASYNCIO_TASKS="1")
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["_asyncio", "asyncio"]


def test_a_task_factory_with_an_asyncio_task_subclass_is_obeyed() -> None:
    class MyTask(asyncio.Task):  # type: ignore[type-arg]
        pass

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(lambda loop, coro, **kw: MyTask(coro, loop=loop, **kw))
        task = loop.create_task(asyncio.sleep(0, "slept"), name="mine")
        return [type(task), task.get_name(), await task]

    assert rio.run(main()) == [MyTask, "mine", "slept"]


def test_a_future_whose_get_loop_fails_is_found_by_its_loop_attribute(arun: Any) -> None:
    """asyncio's Task falls back to ``future._loop`` when get_loop() is missing."""

    class OldFuture(asyncio.Future):  # type: ignore[type-arg]
        @property
        def get_loop(self) -> Any:  # type: ignore[override]
            raise AttributeError("no get_loop")

    async def main() -> str:
        loop = asyncio.get_running_loop()
        fut = OldFuture(loop=loop)
        loop.call_soon(fut.set_result, 1)

        async def waits() -> str:
            await fut
            return "spam"

        return await loop.create_task(waits())

    assert arun(main()) == "spam"


def test_settable_private_attributes_cannot_be_deleted(arun) -> None:
    # as CPython's C Future and Task: AttributeError, not Cython's NotImplementedError
    async def main() -> list[tuple[str, str, str]]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = asyncio.ensure_future(asyncio.sleep(0))
        refused = []
        for kind, obj, names in (
            ("future", fut, ("_cancel_message", "_asyncio_future_blocking", "_log_traceback")),
            ("task", task, ("_cancel_message", "_asyncio_future_blocking", "_log_traceback",
                            "_log_destroy_pending")),
        ):  # fmt: skip
            for name in names:
                try:
                    delattr(obj, name)
                except Exception as exc:  # noqa: BLE001 (the type is what is compared)
                    refused.append((kind, name, type(exc).__name__))
        await task
        fut.cancel()
        return refused

    refused = arun(main())
    assert refused == asyncio.run(main())
    assert {error for _, _, error in refused} == {"AttributeError"} and len(refused) == 7


def test_all_tasks_sees_rio_tasks_that_asyncio_never_registered() -> None:
    """rio's tasks stay out of asyncio's registry (no weak reference is made
    for them) and asyncio.all_tasks sees them anyway, beside CPython's tasks;
    another loop's all_tasks does not, nor the registry once they are done."""
    from rio_core import _loop

    registry = _loop.find_task_registry()
    assert type(registry) is _loop.TaskRegistry and _loop.TASK_REGISTRY == "registry"
    other = asyncio.new_event_loop()
    gate = asyncio.Event()

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        made = asyncio.create_task(gate.wait())
        spawned = rio.spawn(gate.wait())
        cpython = asyncio.Task(gate.wait(), loop=loop)
        me = asyncio.current_task()
        await asyncio.sleep(0)
        everyone = {me, made, spawned, cpython}
        facts = [
            weakref.getweakrefcount(made),
            weakref.getweakrefcount(spawned),
            asyncio.all_tasks() == everyone,
            asyncio.all_tasks(loop) == _loop.all_tasks() == _loop.all_tasks(loop) == everyone,
            set(_loop.live_rio_tasks(loop)) == {me, made, spawned},
            asyncio.all_tasks(other),
            _loop.all_tasks(other),
            (made in registry, spawned in registry),
            {me, made, spawned} <= set(registry) and len(registry) >= 3,
        ]
        gate.set()
        await asyncio.gather(made, spawned, cpython)
        facts += [asyncio.all_tasks() == {me}, made in registry]
        return facts

    try:
        expected = [0, 0, True, True, True, set(), set(), (True, True), True, True, False]
        assert rio.run(main()) == expected
    finally:
        other.close()
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.all_tasks()
    with pytest.raises(RuntimeError, match="no running event loop"):
        _loop.all_tasks()
    with pytest.raises(TypeError, match="a rio loop was expected"):
        _loop.live_rio_tasks(object())
    # a native runtime's tasks are not asyncio tasks
    assert rio.Runtime().block_on(_registered_now(registry)) is False


async def _registered_now(registry: Any) -> bool:
    return rio.current_task() in registry


def test_all_tasks_taken_by_name_before_rio_was_imported_sees_rio_tasks(tmp_path: Any) -> None:
    # anyio's asyncio backend imports all_tasks by name, and pytest may import
    # it before rio: asyncio's own function must see rio's tasks
    program = (
        "from asyncio import all_tasks\n"
        "import asyncio, rio_rt\n"
        "async def main():\n"
        "    child = asyncio.create_task(asyncio.sleep(0))\n"
        "    seen = all_tasks() == {asyncio.current_task(), child}\n"
        "    await child\n"
        "    return seen, type(child).__module__\n"
        "print(rio_rt.run(main()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(True, 'rio_core._runtime')"


def test_all_tasks_of_a_running_rio_loop_from_another_thread() -> None:
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        gate = asyncio.Event()
        tasks = [asyncio.create_task(gate.wait()) for _ in range(3)]
        seen = await loop.run_in_executor(None, asyncio.all_tasks, loop)
        gate.set()
        await asyncio.gather(*tasks)
        return seen == {asyncio.current_task(), *tasks}

    assert rio.run(main())


# ---- the current task between steps (a step may leave it for the next one to overwrite)


def test_current_task_between_steps_is_seen_by_no_callback(arun: Any, loop_name: str) -> None:
    """Tasks that only yield or park leave asyncio's current task for the next
    step to overwrite; whatever runs between them (handles, timer callbacks,
    done callbacks, CPython's own tasks, eager tasks) must still see asyncio's
    answer."""
    seen: list[Any] = []

    def look(tag: str) -> None:
        seen.append((tag, asyncio.current_task()))

    async def yielder(i: int) -> int:
        loop = asyncio.get_running_loop()
        for _ in range(3):
            loop.call_soon(look, "handle")
            await asyncio.sleep(0)
            seen.append(("own", asyncio.current_task() is me[i]))
        fut = loop.create_future()
        loop.call_later(0, lambda: (look("timer"), fut.set_result(None)))
        await fut
        return i

    async def park(fut: Any) -> None:
        await asyncio.sleep(0)
        await fut

    async def cpython_task() -> bool:
        ok = True
        for _ in range(3):
            await asyncio.sleep(0)
            ok = ok and type(asyncio.current_task()) is not RioTask
        return ok

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        me.extend(asyncio.create_task(yielder(i)) for i in range(3))
        for task in me:
            task.add_done_callback(lambda t: look("done"))
        native = asyncio.Task(cpython_task(), loop=loop)
        results = await asyncio.gather(*me, native)
        # a task ends right after another one's step left it current (parked):
        # the done callback must not see that one
        parked_on = loop.create_future()
        parker = asyncio.create_task(park(parked_on))
        quick = asyncio.create_task(asyncio.sleep(0))
        quick.add_done_callback(lambda t: look("done"))
        await quick
        parked_on.set_result(None)
        await parker
        if hasattr(asyncio, "eager_task_factory"):
            main_task = asyncio.current_task()

            async def eager() -> bool:
                return asyncio.current_task() is not main_task

            loop.set_task_factory(asyncio.eager_task_factory)
            child = asyncio.create_task(eager())
            loop.set_task_factory(None)
            results.append(asyncio.current_task() is main_task)
            results.append(await child)
        return results

    me: list[Any] = []
    results = arun(main())
    assert results[:4] == [0, 1, 2, True] and all(results[4:])
    outside = [tag for tag, task in seen if tag != "own" and task is not None]
    assert outside == [] and len(seen) == 3 * (3 + 3 + 1 + 1) + 1
    assert all(task for tag, task in seen if tag == "own")
    loop = asyncio.new_event_loop() if loop_name == "asyncio" else rio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.sleep(0))
        assert asyncio.current_task(loop) is None
    finally:
        loop.close()
    assert stdlib_task_runs(), "a task of an earlier loop is still asyncio's current task"


def stdlib_task_runs() -> bool:
    """A CPython task on a stdlib loop can step: no task is left current on
    this thread (3.14 keeps the current task in the thread state)."""
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(asyncio.sleep(0))
        task.add_done_callback(lambda _: loop.stop())
        loop.call_later(5, loop.stop)  # only if the task cannot step
        loop.run_forever()
        return task.done()
    finally:
        loop.close()


def test_a_ctrl_c_between_yielding_steps_leaves_no_current_task() -> None:
    loop = rio.new_event_loop()

    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    async def stop() -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    try:
        loop.create_task(spin())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(stop())
        assert asyncio.current_task(loop) is None
    finally:
        loop.close()


# ---- the current task written in place (rio.h's dict slots, CPython 3.11-3.13)


def test_the_current_task_is_written_in_place_where_the_layout_is_known() -> None:
    """The import-time probe of the dict layout must pass where it is meant to:
    if it failed silently, every step would take the slow path unseen."""
    from rio_core._runtime import DICT_SLOTS

    assert DICT_SLOTS is (sys.version_info < (3, 14))


# what a step may do to asyncio's current-tasks dict: add or remove other keys
# (a resize moves every entry), or leave and re-enter its own task (a new entry)
dict_op = st.one_of(
    st.tuples(st.just("add"), st.integers(1, 12)),
    st.tuples(st.just("drop"), st.integers(1, 12)),
    st.just(("reenter",)),
    st.just(("yield",)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scripts=st.lists(st.lists(dict_op, max_size=10), min_size=1, max_size=4))
def test_the_current_task_survives_any_change_to_asyncios_dict(
    scripts: list[list[tuple[Any, ...]]],
) -> None:
    """Each step writes its task into the loop's entry in place while the entry
    is where it was; other keys added and removed (resizes), and the task's own
    leave and re-enter (a fresh entry), must never make asyncio.current_task()
    answer wrongly, in the step or after it, on either loop."""
    current_tasks = getattr(asyncio.tasks, "_current_tasks", None)

    async def worker(script: list[tuple[Any, ...]], junk: list[Any]) -> list[bool]:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        seen = []
        for op in script:
            if op[0] == "add" and isinstance(current_tasks, dict):
                for _ in range(op[1]):
                    key = object()
                    current_tasks[key] = None
                    junk.append(key)
            elif op[0] == "drop" and isinstance(current_tasks, dict):
                for _ in range(min(op[1], len(junk))):
                    del current_tasks[junk.pop()]
            elif op[0] == "reenter":
                asyncio.tasks._leave_task(loop, me)
                asyncio.tasks._enter_task(loop, me)
            else:
                await asyncio.sleep(0)
            seen.append(asyncio.current_task() is me)
            await asyncio.sleep(0)
            seen.append(asyncio.current_task() is me)
        return seen

    async def main() -> Any:
        junk: list[Any] = []
        try:
            return await asyncio.gather(*(worker(script, junk) for script in scripts))
        finally:
            for key in junk:
                del current_tasks[key]

    for run in (asyncio.run, rio.run):
        results = run(main())
        assert results == [[True] * (2 * len(script)) for script in scripts]
    assert stdlib_task_runs()


# ---- the StopIteration an await of a done future ends with (one object reused from 3.12)


def test_the_value_an_await_ends_with_is_neither_shared_nor_kept(arun: Any) -> None:
    class Result:
        pass

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        facts: list[Any] = []
        # a StopIteration caught by hand keeps its own value
        first = loop.create_future()
        first.set_result("first")
        iterator = first.__await__()
        try:
            next(iterator)
        except StopIteration as stop:
            held = stop
        second = loop.create_future()
        second.set_result("second")
        facts.append(await second)
        facts.append((held.value, held.args))
        # inside an except block (a fresh exception there), and after it
        try:
            raise KeyError("handled")
        except KeyError:
            third = loop.create_future()
            third.set_result(3)
            facts.append(await third)
        # the last value is not kept alive by the engine once the task moves on
        fut = loop.create_future()
        value = Result()
        ref = weakref.ref(value)
        fut.set_result(value)
        got = await fut
        facts.append(got is value)
        del value, got, fut
        await asyncio.sleep(0)
        facts.append(ref() is None)
        task = asyncio.create_task(asyncio.sleep(0, "from a task"))
        facts.append(await task)
        return facts

    expected = ["second", ("first", ("first",)), 3, True, True, "from a task"]
    assert arun(main()) == expected
