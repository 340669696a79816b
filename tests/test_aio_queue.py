"""asyncio.Queue's put() and get() on rio's loop: inside a rio task they return
an ``AioQueueOp``, which runs the path that does not wait in C and hands a
put that must wait (full) or a get that must wait (empty) to asyncio's own
coroutine; everywhere else they are asyncio's coroutines.

Stdlib asyncio is the oracle: each program runs on both loops and must see the
same results, exceptions and order of events. A hypothesis test draws random
producer/consumer programs with cancellations over Queue, PriorityQueue and
LifoQueue. The rest pin what the C path must notice: methods overridden by a
subclass, set on an instance or patched on the class after the queue was used.
"""

import asyncio
import gc
import inspect
import os
import subprocess
import sys
import warnings
import weakref
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rio_core._loop import AioQueueOp

import rio_rt

HAS_SHUTDOWN = sys.version_info >= (3, 13)


def on_both(body: Any) -> Any:
    """Run ``body()`` on asyncio and on rio; both must give the same; returns it."""
    expected = asyncio.run(body())
    assert rio_rt.run(body()) == expected
    return expected


def outcome(error: BaseException) -> Any:
    return ("raised", type(error).__name__, error.args)


def test_put_and_get_are_rios_inside_a_rio_task_only():
    async def body() -> Any:
        q: asyncio.Queue[int] = asyncio.Queue()
        seen = []
        for c in (q.put(1), q.get()):
            seen.append((type(c).__name__, c.__qualname__, asyncio.iscoroutine(c)))
            c.close()
        return seen

    assert asyncio.run(body()) == [
        ("coroutine", "Queue.put", True),
        ("coroutine", "Queue.get", True),
    ]
    assert rio_rt.run(body()) == [
        (AioQueueOp.__name__, "Queue.put", True),
        (AioQueueOp.__name__, "Queue.get", True),
    ]
    outside = asyncio.Queue().get()  # no task running: asyncio's coroutine
    assert inspect.iscoroutine(outside)
    outside.close()
    if sys.version_info >= (3, 12):  # (markcoroutinefunction is 3.12+)
        assert inspect.iscoroutinefunction(asyncio.Queue.put)
        assert inspect.iscoroutinefunction(asyncio.Queue.get)
    else:
        assert asyncio.iscoroutinefunction(asyncio.Queue.put)
        assert asyncio.iscoroutinefunction(asyncio.Queue.get)
    assert asyncio.Queue.put.__qualname__ == "Queue.put"
    assert asyncio.Queue.put.__module__ == "asyncio.queues"


def test_nothing_happens_until_the_put_or_get_is_awaited():
    async def body() -> Any:
        q: asyncio.Queue[str] = asyncio.Queue()
        put = q.put("a")
        log = [q.qsize()]
        await put
        log.append(q.qsize())
        get = q.get()
        log.append(q.qsize())
        log.append(await get)
        log.append(q.qsize())
        return log

    assert on_both(body) == [0, 1, 1, "a", 0]


def test_a_put_or_get_never_awaited_warns_as_a_coroutine_does():
    async def body() -> Any:
        q: asyncio.Queue[int] = asyncio.Queue()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            q.put(1)
            q.get()
            gc.collect()
        return sorted((w.category.__name__, str(w.message)) for w in caught), q.qsize()

    assert on_both(body) == (
        [
            ("RuntimeWarning", "coroutine 'Queue.get' was never awaited"),
            ("RuntimeWarning", "coroutine 'Queue.put' was never awaited"),
        ],
        0,
    )


def test_send_throw_and_close_answer_as_a_coroutine_does():
    async def body() -> Any:
        q: asyncio.Queue[int] = asyncio.Queue()
        log: list[Any] = []
        c = q.put(1)
        try:
            c.send("x")
        except TypeError as error:
            log.append(outcome(error))
        c.close()  # not started: no warning, nothing put
        log.append(q.qsize())
        c = q.get()
        try:
            c.throw(ValueError("thrown"))
        except ValueError as error:
            log.append(outcome(error))
        await q.put(2)
        c = q.get()
        try:
            c.send(None)
        except StopIteration as stop:
            log.append(("returned", stop.value))
        for action in (lambda: c.send(None), c.close):
            try:
                log.append(("then", action()))
            except RuntimeError as error:
                log.append(outcome(error))
        return log

    assert on_both(body) == [
        ("raised", "TypeError", ("can't send non-None value to a just-started coroutine",)),
        0,
        ("raised", "ValueError", ("thrown",)),
        ("returned", 2),
        ("raised", "RuntimeError", ("cannot reuse already awaited coroutine",)),
        ("then", None),
    ]


def test_a_full_put_and_an_empty_get_wait_and_can_be_cancelled():
    async def body() -> Any:
        q: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        log: list[Any] = []
        await q.put(0)
        putter = asyncio.ensure_future(q.put(1))  # the put itself is the task's coroutine
        await asyncio.sleep(0)
        log.append((putter.done(), q.qsize(), len(q._putters), "Queue.put" in repr(putter)))
        log.append(await q.get())
        await asyncio.sleep(0)
        log.append((putter.done(), q.qsize(), await q.get()))
        getter = asyncio.ensure_future(q.get())
        await asyncio.sleep(0)
        log.append(len(q._getters))
        getter.cancel()
        try:
            await getter
        except asyncio.CancelledError:
            log.append(("cancelled", len(q._getters)))
        await q.put(5)
        log.append(await q.get())
        return log

    assert on_both(body) == [(False, 1, 1, True), 0, (True, 1, 1), 1, ("cancelled", 0), 5]


def test_a_woken_getter_cancelled_before_it_runs_wakes_the_next_one():
    """asyncio's own wait path runs the cleanup: the wake-up goes to the next getter."""

    async def body() -> Any:
        q: asyncio.Queue[int] = asyncio.Queue()
        got: list[Any] = []

        async def getter(name: str) -> None:
            try:
                got.append((name, await q.get()))
            except asyncio.CancelledError:
                got.append((name, "cancelled"))

        a = asyncio.ensure_future(getter("a"))
        b = asyncio.ensure_future(getter("b"))
        await asyncio.sleep(0)
        q.put_nowait(1)  # wakes a
        a.cancel()  # before a runs
        await asyncio.gather(a, b)
        return got, q.qsize()

    assert on_both(body) == ([("a", "cancelled"), ("b", 1)], 0)


def test_writes_by_asyncios_own_code_between_two_puts_are_seen():
    """A get that waits, then asyncio's Python put_nowait, then a put in C: the
    count of unfinished tasks must include both puts (a property-test find:
    on 3.13 a dict's version misses such a write)."""

    async def body() -> Any:
        q: asyncio.Queue[int] = asyncio.Queue()
        log = []

        async def first() -> None:
            log.append(("got", await q.get(), q._unfinished_tasks))
            await q.put(0)
            log.append(("put", q._unfinished_tasks))

        async def second() -> None:
            q.put_nowait(0)
            log.append(("put_nowait", q._unfinished_tasks))

        await asyncio.gather(first(), second())
        await q.put(1)
        return log, q._unfinished_tasks, q.qsize()

    assert on_both(body) == (
        [("put_nowait", 1), ("got", 0, 1), ("put", 2)],
        3,
        2,
    )


def test_join_and_task_done_see_the_puts():
    async def body() -> Any:
        q: asyncio.Queue[int] = asyncio.Queue()
        log = []

        async def worker() -> None:
            while True:
                item = await q.get()
                log.append(item)
                q.task_done()

        w = asyncio.ensure_future(worker())
        for i in range(5):
            await q.put(i)
        log.append(("finished set", q._finished.is_set()))
        await q.join()
        log.append(("joined", q._unfinished_tasks, q._finished.is_set()))
        w.cancel()
        await asyncio.gather(w, return_exceptions=True)
        return log

    assert on_both(body) == [("finished set", False), 0, 1, 2, 3, 4, ("joined", 0, True)]


@pytest.mark.parametrize("kind", ["PriorityQueue", "LifoQueue"])
def test_asyncios_other_queues_keep_their_order(kind: str):
    async def body() -> Any:
        q = getattr(asyncio, kind)(maxsize=3)
        out = []
        for item in (5, 1, 4):
            await q.put(item)
        out.append(q.full())
        out.append(await q.get())
        await q.put(2)
        while not q.empty():
            out.append(await q.get())
        return out

    expected = {"PriorityQueue": [True, 1, 2, 4, 5], "LifoQueue": [True, 4, 2, 1, 5]}[kind]
    assert on_both(body) == expected


def test_methods_set_on_the_instance_are_called():
    async def body() -> Any:
        calls: list[Any] = []
        q: asyncio.Queue[int] = asyncio.Queue(maxsize=5)
        original_put, original_get = q._put, q._get
        q._put = lambda item: (calls.append(("_put", item)), original_put(item * 10))
        q._get = lambda: (calls.append("_get"), original_get())[1]
        await q.put(1)
        calls.append(await q.get())
        q2: asyncio.Queue[int] = asyncio.Queue()
        q2.full = lambda: calls.append("full") or False
        q2.put_nowait = lambda item: calls.append(("put_nowait", item))
        await q2.put(7)
        q2.empty = lambda: calls.append("empty") or False
        q2.get_nowait = lambda: "from get_nowait"
        calls.append(await q2.get())
        q3: asyncio.Queue[int] = asyncio.Queue()
        q3._finished.clear = lambda: calls.append("clear")
        await q3.put(3)
        q3._wakeup_next = lambda waiters: calls.append(("wakeup", len(waiters)))
        calls.append(await q3.get())
        return calls

    assert on_both(body) == [
        ("_put", 1),
        "_get",
        10,
        "full",
        ("put_nowait", 7),
        "empty",
        "from get_nowait",
        "clear",
        ("wakeup", 0),
        3,
    ]


def test_a_subclass_patched_after_use_is_seen_at_once():
    class Counting(asyncio.Queue):  # type: ignore[type-arg]
        pass

    async def body() -> Any:
        log: list[Any] = []
        q = Counting()
        await q.put(1)  # the type's verdict is made (and kept) here
        log.append(await q.get())
        Counting._put = lambda self, item: self._queue.append(("patched", item))  # type: ignore
        await q.put(2)
        log.append(await q.get())
        del Counting._put  # type: ignore[attr-defined]
        await q.put(3)
        log.append(await q.get())
        return log

    assert on_both(body) == [1, ("patched", 2), 3]


def test_asyncio_queue_patched_by_a_user_is_seen(monkeypatch: pytest.MonkeyPatch):
    async def body() -> Any:
        q: asyncio.Queue[int] = asyncio.Queue()
        await q.put(1)
        await q.get()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(asyncio.Queue, "full", lambda self: True)
            putter = asyncio.ensure_future(q.put(2))
            await asyncio.sleep(0)
            waiting = (putter.done(), q.qsize())
            putter.cancel()
            await asyncio.gather(putter, return_exceptions=True)
        await q.put(3)
        return waiting, q.qsize()

    assert on_both(body) == ((False, 0), 1)


def test_an_event_subclass_as_finished_is_honoured():
    class Loud(asyncio.Event):
        cleared = 0

        def clear(self) -> None:
            Loud.cleared += 1
            super().clear()

    async def body() -> Any:
        Loud.cleared = 0
        q: asyncio.Queue[int] = asyncio.Queue()
        q._finished = Loud()
        await q.put(1)
        await q.put(2)
        return Loud.cleared, q._finished.is_set()

    assert on_both(body) == (2, False)


def test_odd_fields_get_asyncios_answers():
    async def body() -> Any:
        log: list[Any] = []
        q: asyncio.Queue[int] = asyncio.Queue(maxsize=2.0)  # type: ignore[arg-type]
        await q.put(1)
        await q.put(2)
        log.append(q.full())
        big: asyncio.Queue[int] = asyncio.Queue(maxsize=2**80)
        await big.put(1)
        log.append(big.qsize())
        q2: asyncio.Queue[int] = asyncio.Queue(maxsize=None)  # type: ignore[arg-type]
        try:
            await q2.put(1)
        except TypeError as error:
            log.append(type(error).__name__)
        q3: asyncio.Queue[int] = asyncio.Queue()
        q3._queue = [9]  # type: ignore[assignment]
        try:
            await q3.get()
        except AttributeError as error:
            log.append(type(error).__name__)
        q4: asyncio.Queue[int] = asyncio.Queue()
        del q4._putters
        await q4.put(4)
        try:
            await q4.get()
        except AttributeError as error:
            log.append(type(error).__name__)
        return log

    assert on_both(body) == [True, 1, "TypeError", "AttributeError", "AttributeError"]


def test_the_item_is_not_kept_after_the_put_or_get():
    class Item:
        pass

    async def body() -> Any:
        q: asyncio.Queue[Item] = asyncio.Queue()
        item = Item()
        ref = weakref.ref(item)
        put = q.put(item)
        await put
        del item
        got = await q.get()
        del got
        await asyncio.sleep(0)  # (3.12+: the await's value is let go when the step ends)
        gc.collect()
        return ref() is None

    assert on_both(body) is True


def test_a_finished_put_or_get_is_reused_only_when_no_one_holds_it():
    """rio keeps one finished put or get to hand out again: never one the
    program still holds (that one stays finished), and one handed out again and
    dropped unawaited still warns."""

    async def body() -> Any:
        q: asyncio.Queue[int] = asyncio.Queue()
        facts: list[Any] = []
        held = q.put(1)
        await held
        for i in range(3):
            fresh = q.get() if i % 2 else q.put(i)
            facts.append(fresh is not held)
            facts.append(await fresh)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                await q.put(5)
                q.get()  # dropped unawaited
            gc.collect()
        facts.append(sorted(str(w.message) for w in caught))
        try:
            held.send(None)
        except RuntimeError as error:
            facts.append(str(error))
        facts.append(q.qsize())
        return facts

    expected = on_both(body)
    assert expected[-2] == "cannot reuse already awaited coroutine"
    assert expected[-3] == ["coroutine 'Queue.get' was never awaited"] * 2


@pytest.mark.skipif(not HAS_SHUTDOWN, reason="Queue.shutdown is new in 3.13")
def test_shutdown_raises_where_asyncio_does():
    async def body() -> Any:
        log: list[Any] = []
        q: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
        await q.put(1)
        await q.put(2)
        waiter = asyncio.ensure_future(q.put(3))
        await asyncio.sleep(0)
        q.shutdown()
        for attempt in (lambda: waiter, lambda: q.put(4), q.get, q.get, q.get):
            try:
                log.append(await attempt())
            except asyncio.QueueShutDown as error:
                log.append(type(error).__name__)
        q3: asyncio.Queue[int] = asyncio.Queue()
        q3.shutdown()
        try:
            await q3.put(1)  # room, but shut down
        except asyncio.QueueShutDown as error:
            log.append(("room", type(error).__name__, q3.qsize()))
        q2: asyncio.Queue[int] = asyncio.Queue()
        await q2.put(1)
        q2.shutdown(immediate=True)
        try:
            await q2.get()
        except asyncio.QueueShutDown:
            log.append(("immediate", q2.qsize(), q2._unfinished_tasks))
        return log

    assert on_both(body) == [
        "QueueShutDown",
        "QueueShutDown",
        1,
        2,
        "QueueShutDown",
        ("room", "QueueShutDown", 0),
        ("immediate", 0, 0),
    ]


@pytest.mark.skipif(sys.version_info < (3, 14), reason="asyncio's call graph is new in 3.14")
def test_the_call_graph_of_a_waiting_get_is_asyncios():
    async def body() -> Any:
        q: asyncio.Queue[int] = asyncio.Queue()

        async def waiter() -> int:
            return await q.get()

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        graph = asyncio.capture_call_graph(task)  # type: ignore[attr-defined]
        q.put_nowait(1)
        await task
        return [entry.frame.f_code.co_name for entry in graph.call_stack]

    assert on_both(body) == ["get", "waiter"]


def test_asyncio_tasks_get_asyncios_coroutines(tmp_path: Any):
    script = (
        "import asyncio, rio_rt\n"
        "async def main():\n"
        "    c = asyncio.Queue().put(1)\n"
        "    kind = type(c).__name__\n"
        "    await c\n"
        "    return kind\n"
        "print(type(asyncio.Queue.put).__name__, rio_rt.run(main()))\n"
    )
    for value, expected in (
        ("1", ["function", "coroutine"]),
        ("", ["cython_function_or_method", "AioQueueOp"]),
    ):
        env = dict(os.environ, RIO_ASYNCIO_TASKS=value)
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == expected


# ------------------------------------------------------------------ random programs

QUEUE_KINDS = ["Queue", "PriorityQueue", "LifoQueue"]

op_strategy = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 9)),
    st.tuples(st.just("put_nowait"), st.integers(0, 9)),
    st.just(("get",)),
    st.just(("get_nowait",)),
    st.just(("yield",)),
    st.just(("task_done",)),
    st.tuples(st.just("cancel"), st.integers(0, 3)),
    *([st.tuples(st.just("shutdown"), st.booleans())] if HAS_SHUTDOWN else []),
)


def program_body(kind: str, maxsize: int, scripts: list[list[tuple[Any, ...]]]) -> Any:
    async def body() -> Any:
        q = getattr(asyncio, kind)(maxsize=maxsize)
        log: list[Any] = []
        tasks: list[asyncio.Task[None]] = []
        stopping = False

        async def worker(index: int, script: list[tuple[Any, ...]]) -> None:
            for step, op in enumerate(script):
                name = op[0]
                try:
                    if name == "put":
                        result: Any = await q.put(op[1])
                    elif name == "get":
                        result = await q.get()
                    elif name == "put_nowait":
                        result = q.put_nowait(op[1])
                    elif name == "get_nowait":
                        result = q.get_nowait()
                    elif name == "yield":
                        result = await asyncio.sleep(0)
                    elif name == "task_done":
                        result = q.task_done()
                    elif name == "cancel":
                        result = tasks[op[1] % len(tasks)].cancel()
                    else:
                        result = q.shutdown(op[1])
                except asyncio.CancelledError:
                    if stopping:
                        raise
                    result = "cancelled"
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
                except Exception as error:  # noqa: BLE001 - the exception is the outcome
                    result = type(error).__name__
                log.append((index, step, name, result, q.qsize()))

        for index, script in enumerate(scripts):
            tasks.append(asyncio.ensure_future(worker(index, script)))
        for _ in range(40):  # bounded: a worker may wait for ever
            if all(t.done() for t in tasks):
                break
            await asyncio.sleep(0)
        stopping = True
        for t in tasks:
            t.cancel()
        ends = await asyncio.gather(*tasks, return_exceptions=True)
        rest = []
        while not q.empty():
            rest.append(q.get_nowait())
        state = (q._unfinished_tasks, q._finished.is_set(), len(q._getters), len(q._putters))
        return log, [type(e).__name__ for e in ends], rest, state

    return body


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(QUEUE_KINDS),
    maxsize=st.integers(0, 3),
    scripts=st.lists(st.lists(op_strategy, max_size=8), min_size=1, max_size=4),
)
def test_random_programs_see_what_asyncio_sees(
    kind: str, maxsize: int, scripts: list[list[tuple[Any, ...]]]
):
    on_both(program_body(kind, maxsize, scripts))
