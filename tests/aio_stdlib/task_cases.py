"""CPython's own Task test cases, built for one Task class: the module task_driver.py runs.

CPython's ``test.test_asyncio.test_tasks`` writes its Task tests once, in mixins
parametrized by the class attributes ``Task`` and ``Future`` (``BaseTaskTests``,
``SetMethodsTest``, ``add_subclass_tests``, ``BaseCurrentLoopTests``), and
instantiates them for ``_CTask`` and ``_PyTask``; on 3.12+
``test_eager_task_factory`` does the same (``EagerTaskFactoryLoopTests``,
``BaseEagerTaskFactoryTests``, ``BaseNonEagerTaskFactoryTests``). Importing this
module builds the same test classes for the Task class named by the environment:

- ``RIO_TASK_CLASS``: ``module:attr`` (default ``asyncio.tasks:_CTask``), the Task
  under test. ``Future`` is the Future class the Task derives from in ``Task_Tests``
  (``_asyncio.Future`` for any subclass of ``asyncio.Task``, as CPython's
  ``CTask_CFuture_Tests``; ``_PyFuture`` for ``_PyTask``), ``_asyncio.Future`` in
  ``Task_SubclassTests`` and ``futures._PyFuture`` in ``Task_PyFuture_Tests`` (as
  ``CTask_PyFuture_Tests``).
- ``RIO_TASK_LOOP``: ``testloop`` (default) runs the tests as CPython does, on
  ``test_utils.TestLoop`` (a fake-clock ``BaseEventLoop``: ``new_test_loop()``);
  ``rio`` makes ``new_test_loop()`` build a rio loop on a ``MockClock`` that
  jumps to the next timer when idle, its time shifted to start at 0 as
  TestLoop's does (``advance_time`` jumps the clock, ``_run_once`` runs the
  ready queue briefly; the generator that TestLoop takes to check its timeouts
  is not used). Tests that
  build real loops (``asyncio.new_event_loop()``) get rio's loop from the
  driver's ``--loop rio`` patching.

A test that needs something the Task class cannot have in this run (for example
C-only reference counting) is left as CPython wrote it: the driver compares each
test with the same test built for ``_CTask``, so only differences matter.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from asyncio import futures
from typing import Any

from test.test_asyncio import test_tasks
from test.test_asyncio import utils as test_utils


def load_class(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


TASK_SPEC = os.environ.get("RIO_TASK_CLASS", "asyncio.tasks:_CTask")
TASK: Any = load_class(TASK_SPEC)
C_FUTURE: Any = getattr(futures, "_CFuture", None) or futures._PyFuture
# The Future paired with the Task, as CPython pairs them (CTask with CFuture, PyTask
# with PyFuture): the Future class the candidate derives from, which is
# _asyncio.Future for any subclass of asyncio.Task. SetMethodsTest calls
# Future.set_result(task, ...) through it.
OWN_FUTURE: Any = next(
    (cls for cls in TASK.__mro__ if cls in (C_FUTURE, futures._PyFuture)), C_FUTURE
)
LOOP_KIND = os.environ.get("RIO_TASK_LOOP", "testloop")


def tearDownModule() -> None:  # noqa: N802 (unittest's name)
    asyncio.set_event_loop_policy(None)


class RioTestLoopMixin:
    """``new_test_loop()`` builds a rio loop with a test clock (RIO_TASK_LOOP=rio)."""

    def new_test_loop(self, gen: Any = None) -> Any:
        import rio_rt
        from rio_rt.testing import MockClock

        clock = MockClock(autojump_threshold=0.0)
        loop = rio_rt.new_event_loop(clock=clock)
        # TestLoop's time starts at 0 and the tests compare loop.time() with small
        # numbers; a MockClock starts at the real monotonic time, so shift what
        # the tests see (time, call_at) by that origin, consistently.
        origin = loop.time()
        engine_time, engine_call_at = loop.time, loop.call_at

        def time() -> float:
            return engine_time() - origin

        def call_at(when: float, callback: Any, *args: Any, context: Any = None) -> Any:
            return engine_call_at(when + origin, callback, *args, context=context)

        loop.time = time
        loop.call_at = call_at
        loop.advance_time = clock.jump  # TestLoop's way to move time by hand
        loop._run_once = lambda: test_utils.run_briefly(loop)  # one pass of the ready queue
        self.set_event_loop(loop)  # type: ignore[attr-defined]
        return loop


if LOOP_KIND == "rio":
    CASE_BASES: tuple[type, ...] = (RioTestLoopMixin, test_utils.TestCase)
elif LOOP_KIND == "testloop":
    CASE_BASES = (test_utils.TestCase,)
else:
    raise SystemExit(f"RIO_TASK_LOOP: testloop or rio, not {LOOP_KIND!r}")


class PyBooksMixin:
    """For ``_PyTask`` from 3.14, as CPython's own PyTask tests do: while a test
    runs, ``asyncio.current_task`` and ``all_tasks`` are asyncio's pure-Python
    ones. ``_PyTask`` keeps the pure-Python books (a dict of current tasks, a
    WeakSet); from 3.14 the C functions read the thread state instead, which
    only the C Task (and rio's loop) set."""

    all_tasks = staticmethod(getattr(asyncio.tasks, "_py_all_tasks", None))
    current_task = staticmethod(getattr(asyncio.tasks, "_py_current_task", None))

    def setUp(self) -> None:  # noqa: N802 (unittest's name)
        self._public_books = (asyncio.current_task, asyncio.all_tasks)
        asyncio.current_task = asyncio.tasks.current_task = self.current_task
        asyncio.all_tasks = asyncio.tasks.all_tasks = self.all_tasks
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:  # noqa: N802 (unittest's name)
        super().tearDown()  # type: ignore[misc]
        current_task, all_tasks = self._public_books
        asyncio.current_task = asyncio.tasks.current_task = current_task
        asyncio.all_tasks = asyncio.tasks.all_tasks = all_tasks


PY_BOOKS = (
    TASK is getattr(asyncio.tasks, "_PyTask", None)
    and sys.version_info >= (3, 14)
    and PyBooksMixin.all_tasks is not None
)


def case(name: str, *mixins: type, **attrs: Any) -> type:
    if PY_BOOKS:
        mixins = (PyBooksMixin, *mixins)
        attrs.pop("current_task", None)
    else:
        # BaseTaskTests calls self.current_task() (3.13+): asyncio's public one,
        # as CTask_CFuture_Tests names the C one
        attrs.setdefault("current_task", staticmethod(asyncio.current_task))
        attrs.setdefault("all_tasks", staticmethod(asyncio.all_tasks))
    return type(name, (*mixins, *CASE_BASES), {"__module__": __name__, **attrs})


# test_tasks: the Task tests proper (CTask_CFuture_Tests, without its two C-only
# tests of CPython internals: reference counts, deleting _log_destroy_pending)
Task_Tests = case(
    "Task_Tests", test_tasks.BaseTaskTests, test_tasks.SetMethodsTest, Task=TASK, Future=OWN_FUTURE
)
# CTask_PyFuture_Tests: the loop's futures are pure-Python ones
Task_PyFuture_Tests = case(
    "Task_PyFuture_Tests", test_tasks.BaseTaskTests, Task=TASK, Future=futures._PyFuture
)
# CTask_CFuture_SubclassTests: Task and Future subclassed in Python (not built
# for a Task class that cannot be subclassed: rio's Task is final; its tests
# then show as missing in the comparison)
try:
    Task_SubclassTests = test_tasks.add_subclass_tests(
        case("Task_SubclassTests", test_tasks.BaseTaskTests, Task=TASK, Future=C_FUTURE)
    )
except TypeError:
    pass


def _new_task(self: Any, coro: Any) -> Any:
    return TASK(coro, loop=self.loop)


# CCurrentLoopTests: current_task() sees the task (3.12+ names the current_task
# function to test: asyncio's public one, which must see any loop's tasks)
Task_CurrentLoopTests = case(
    "Task_CurrentLoopTests",
    test_tasks.BaseCurrentLoopTests,
    new_task=_new_task,
    current_task=staticmethod(asyncio.current_task),
)

if sys.version_info >= (3, 12):
    from test.test_asyncio import test_eager_task_factory as eager

    Task_EagerTaskFactoryLoopTests = case(
        "Task_EagerTaskFactoryLoopTests", eager.EagerTaskFactoryLoopTests, Task=TASK
    )
    Task_NonEagerTests = case("Task_NonEagerTests", eager.BaseNonEagerTaskFactoryTests, Task=TASK)
    Task_EagerTests = case("Task_EagerTests", eager.BaseEagerTaskFactoryTests, Task=TASK)
