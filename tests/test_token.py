"""CancellationToken (rio_core._token): cancel, cancelled(), the token tree,
run_until_cancelled, threads and both doors.

The contract under test (rio_core/_token.pyx, design note; docs/native-api.md):
``cancel()`` is idempotent, safe from any thread and wakes every waiter of the
token and of every descendant; a child never cancels its parent; a child of a
cancelled token is born cancelled; a parent keeps no dropped child alive, but
a child keeps its ancestors alive; ``run_until_cancelled(aw)`` returns aw's
value, or None once the token is cancelled (aw cancelled at its await point,
its finally run), takes back exactly its own cancellation (``cancelling()``
balanced) and lets any other cancellation through.

Everything runs on the autojump clock and is bounded by ``rio.timeout``,
except where another thread does the cancelling: those use the real clock
with a generous bound and join their threads with a timeout.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import tracemalloc
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from thread_helpers import REAL_GUARD, join, start_thread, wait_until

import rio_rt as rio
from rio_rt.testing import runtime_stats

GUARD = 60.0  # autojump seconds; reaching it means a wake-up was lost


async def settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await rio.yield_now()


async def asyncio_settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def wait_cancelled(token):
    return await token.cancelled()


async def blocks(awaitable, seconds: float = 1.0) -> bool:
    """True when ``awaitable`` does not complete within ``seconds`` (autojump: instant)."""
    try:
        async with rio.timeout(seconds):
            await awaitable
    except TimeoutError:
        return True
    return False


# =========================================================================== cancel and cancelled()


def test_a_new_token_is_not_cancelled_and_its_repr_says_so():
    token = rio.CancellationToken()
    assert not token.is_cancelled()
    assert repr(token) == "<rio CancellationToken not cancelled, 0 waiting>"
    token.cancel()
    assert token.is_cancelled()
    assert repr(token) == "<rio CancellationToken cancelled>"


def test_cancel_wakes_every_waiter(run):
    token = rio.CancellationToken()

    async def main():
        async with rio.timeout(GUARD):
            waiters = [rio.spawn(wait_cancelled(token)) for _ in range(5)]
            await settle()
            assert token._waiting() == 5
            assert "5 waiting" in repr(token)
            assert not any(w.done() for w in waiters)
            token.cancel()
            assert token.is_cancelled()
            assert [await w for w in waiters] == [None] * 5
            assert token._waiting() == 0

    run(main)


def test_cancel_before_wait_returns_at_once(run):
    token = rio.CancellationToken()
    token.cancel()

    async def main():
        polls = runtime_stats()["polls"]
        assert await token.cancelled() is None
        # no park: the same step went on (no other task poll)
        assert runtime_stats()["polls"] == polls
        assert token._waiting() == 0

    run(main)


def test_cancel_is_idempotent(run):
    token = rio.CancellationToken()
    child = token.child_token()

    async def main():
        async with rio.timeout(GUARD):
            waiter = rio.spawn(wait_cancelled(child))
            await settle()
            token.cancel()
            token.cancel()
            child.cancel()
            assert await waiter is None
            token.cancel()
            assert token.is_cancelled() and child.is_cancelled()

    run(main)


def test_uncancelled_token_keeps_its_waiters_parked(run):
    token = rio.CancellationToken()

    async def main():
        assert await blocks(token.cancelled(), seconds=30)
        assert token._waiting() == 0  # the timed-out wait left the queue

    run(main)


def test_a_cancelled_wait_leaves_the_queue_and_the_others_still_wake(run):
    token = rio.CancellationToken()

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(wait_cancelled(token))
            b = rio.spawn(wait_cancelled(token))
            await settle()
            assert token._waiting() == 2
            a.cancel()
            with pytest.raises(rio.CancelledError):
                await a
            assert token._waiting() == 1
            token.cancel()
            assert await b is None

    run(main)


def test_a_wait_cancelled_in_the_step_the_token_was_cancelled_raises(run):
    """Granted, then cancelled before it ran: the task sees its cancellation."""
    token = rio.CancellationToken()

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(wait_cancelled(token))
            await settle()
            token.cancel()
            a.cancel()
            with pytest.raises(rio.CancelledError):
                await a
            assert token._waiting() == 0

    run(main)


def test_cancel_from_another_thread_wakes_a_task_on_a_runtime_blocked_in_the_reactor(run):
    token = rio.CancellationToken()
    runtime_thread = threading.get_ident()
    seen = {}

    def canceller():
        wait_until(lambda: token._waiting() == 1)
        time.sleep(0.05)  # the runtime has nothing else to do: it blocks in epoll
        token.cancel()

    async def main():
        thread = start_thread(canceller)
        try:
            async with rio.timeout(REAL_GUARD):
                await token.cancelled()
            seen["thread"] = threading.get_ident()
            seen["reactor_waits"] = runtime_stats()["reactor_waits"]
        finally:
            join(thread)
        return "woken"

    assert run(main, autojump=False) == "woken"
    assert seen["thread"] == runtime_thread
    assert seen["reactor_waits"] >= 1  # it did block in the reactor


def test_cancel_from_many_threads_at_once_wakes_each_waiter_once(run):
    tokens = [rio.CancellationToken() for _ in range(4)]
    root = tokens[0]
    children = [root.child_token() for _ in range(20)]
    start = threading.Event()

    def canceller(token):
        def body():
            start.wait(REAL_GUARD)
            token.cancel()

        return body

    async def main():
        waiters = [rio.spawn(wait_cancelled(t)) for t in children + tokens]
        await settle()
        threads = [start_thread(canceller(t)) for t in tokens + children[:4]]
        start.set()
        try:
            async with rio.timeout(REAL_GUARD):
                assert [await w for w in waiters] == [None] * len(waiters)
        finally:
            for thread in threads:
                join(thread)

    run(main, autojump=False)
    assert all(t.is_cancelled() for t in tokens + children)
    assert root._children() == 0


# =========================================================================== the tree


def test_cancelling_a_parent_cancels_children_and_grandchildren(run):
    parent = rio.CancellationToken()
    child = parent.child_token()
    sibling = parent.child_token()
    grandchild = child.child_token()
    tokens = [parent, child, sibling, grandchild]

    async def main():
        async with rio.timeout(GUARD):
            waiters = [rio.spawn(wait_cancelled(t)) for t in tokens]
            await settle()
            assert parent._children() == 2 and child._children() == 1
            parent.cancel()
            assert all(t.is_cancelled() for t in tokens)
            assert [await w for w in waiters] == [None] * 4
            assert parent._children() == child._children() == 0  # unlinked

    run(main)


def test_cancelling_a_child_never_cancels_its_parent_or_siblings(run):
    parent = rio.CancellationToken()
    child = parent.child_token()
    sibling = parent.child_token()
    grandchild = child.child_token()

    async def main():
        async with rio.timeout(GUARD):
            on_parent = rio.spawn(wait_cancelled(parent))
            on_sibling = rio.spawn(wait_cancelled(sibling))
            on_grandchild = rio.spawn(wait_cancelled(grandchild))
            await settle()
            child.cancel()
            assert child.is_cancelled() and grandchild.is_cancelled()
            assert not parent.is_cancelled() and not sibling.is_cancelled()
            assert await on_grandchild is None
            await settle()
            assert not on_parent.done() and not on_sibling.done()
            assert parent._children() == 1  # the cancelled child left
            grandchild.cancel()
            assert not parent.is_cancelled()
            parent.cancel()
            assert await on_parent is None and await on_sibling is None

    run(main)


def test_a_child_of_a_cancelled_token_is_born_cancelled(run):
    parent = rio.CancellationToken()
    parent.cancel()
    child = parent.child_token()
    grandchild = child.child_token()

    async def main():
        assert child.is_cancelled() and grandchild.is_cancelled()
        assert await child.cancelled() is None
        assert await grandchild.cancelled() is None
        assert parent._children() == 0

    run(main)


def test_a_grandparent_still_cancels_a_grandchild_whose_parent_was_dropped(run):
    root = rio.CancellationToken()
    middle = root.child_token()
    leaf = middle.child_token()
    del middle
    gc.collect()
    assert root._children() == 1  # the leaf keeps the middle token alive

    async def main():
        async with rio.timeout(GUARD):
            waiter = rio.spawn(wait_cancelled(leaf))
            await settle()
            root.cancel()
            assert await waiter is None

    run(main)
    assert leaf.is_cancelled()


def test_a_deep_chain_is_cancelled_without_recursion():
    root = rio.CancellationToken()
    token = root
    for _ in range(50_000):
        token = token.child_token()
    root.cancel()
    assert token.is_cancelled()


def test_dropping_the_leaf_of_a_deep_chain_frees_it_without_recursion():
    """Each token owns its parent: freeing a million-deep chain from its leaf
    must not recurse once per token (that overflowed the C stack)."""
    root = rio.CancellationToken()
    token = root
    for _ in range(1_000_000):
        token = token.child_token()
    assert root._children() == 1
    del token
    assert root._children() == 0


def test_children_are_linked_and_unlinked_as_they_come_and_go():
    parent = rio.CancellationToken()
    kids = [parent.child_token() for _ in range(5)]
    assert parent._children() == 5
    del kids[1], kids[3]  # from the middle of the list
    assert parent._children() == 3
    kids[0].cancel()  # a cancelled child leaves too
    assert parent._children() == 2
    parent.cancel()
    assert all(k.is_cancelled() for k in kids)
    assert parent._children() == 0


def test_a_long_lived_token_does_not_keep_dropped_children_alive():
    parent = rio.CancellationToken()

    def churn(n: int) -> None:
        for i in range(n):
            child = parent.child_token()
            if i % 3 == 0:
                child.child_token()  # a grandchild, dropped with it
            if i % 7 == 0:
                child.cancel()
        del child

    churn(1000)  # warm-up: free lists, caches
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        churn(100_000)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parent._children() == 0
    assert after - before < 64 * 1024, f"grew by {after - before} bytes"
    assert not parent.is_cancelled()


def test_children_that_were_waited_on_are_collected_too(run):
    """A token with a wait queue is in a cycle (token <-> queue): the collector
    frees it, and the parent's list forgets it."""
    parent = rio.CancellationToken()

    async def main():
        for _ in range(200):
            child = parent.child_token()
            await blocks(child.cancelled(), seconds=0.01)
        del child

    run(main)
    gc.collect()
    assert parent._children() == 0


def test_a_token_in_a_garbage_cycle_with_a_task_is_collected_safely(run):
    parent = rio.CancellationToken()

    async def holder(box):
        child = box["child"]
        box["task"] = rio.current_task()  # cycle: task -> coro -> box -> task
        await child.cancelled()

    async def main():
        box = {"child": parent.child_token()}
        rio.spawn(holder(box))
        await settle()
        # the runtime's shutdown cancels the parked holder

    run(main)
    gc.collect()
    assert parent._children() == 0
    parent.cancel()  # the list holds no dangling child


# =========================================================================== run_until_cancelled


async def finishes_with(value, seconds: float = 1.0):
    await rio.sleep(seconds)
    return value


def test_run_until_cancelled_returns_the_value(run):
    token = rio.CancellationToken()

    async def main():
        async with rio.timeout(GUARD):
            assert await token.run_until_cancelled(finishes_with("v")) == "v"
            # any awaitable: a Sleep, a Task
            assert await token.run_until_cancelled(rio.sleep(1)) is None
            task = rio.spawn(finishes_with(7))
            assert await token.run_until_cancelled(task) == 7
            assert rio.current_task().cancelling() == 0
            await settle()
            assert runtime_stats()["tasks_alive"] == 1  # no watcher left behind
            assert token._waiting() == 0

    run(main)


def test_run_until_cancelled_lets_aw_raise(run):
    token = rio.CancellationToken()

    async def fails():
        await rio.sleep(1)
        raise ValueError("boom")

    async def main():
        with pytest.raises(ValueError, match="boom"):
            await token.run_until_cancelled(fails())
        assert rio.current_task().cancelling() == 0
        assert token._waiting() == 0

    run(main)


def test_run_until_cancelled_returns_none_once_cancelled_and_aw_finally_runs(run):
    token = rio.CancellationToken()
    log = []

    async def body():
        try:
            log.append("started")
            await rio.sleep(100)
            log.append("not reached")
        finally:
            log.append("finally")

    async def canceller():
        await rio.sleep(1)
        token.cancel()

    async def main():
        async with rio.timeout(GUARD):
            started = rio.monotonic()
            rio.spawn(canceller())
            assert await token.run_until_cancelled(body()) is None
            assert rio.monotonic() - started == pytest.approx(1.0, abs=0.01)
            task = rio.current_task()
            assert task.cancelling() == 0
            await rio.sleep(1)  # no stray cancellation is left
            await settle()
            assert runtime_stats()["tasks_alive"] == 1
        return log

    assert run(main) == ["started", "finally"]


def test_run_until_cancelled_when_cancelled_by_aw_itself(run):
    token = rio.CancellationToken()

    async def body():
        token.cancel()
        await rio.sleep(100)
        return "not reached"

    async def main():
        async with rio.timeout(GUARD):
            assert await token.run_until_cancelled(body()) is None
            assert rio.current_task().cancelling() == 0

    run(main)


def test_run_until_cancelled_on_a_cancelled_token_does_not_start_aw(run):
    token = rio.CancellationToken()
    token.cancel()
    started = []

    async def body():
        started.append(True)

    async def main():
        coro = body()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert await token.run_until_cancelled(coro) is None
            assert coro.cr_frame is None  # closed, never started
            del coro
            gc.collect()
        assert rio.current_task().cancelling() == 0

    run(main)
    assert started == []


def test_an_outside_cancel_still_propagates_and_counts_stay_balanced(run):
    token = rio.CancellationToken()
    log = []

    async def body():
        try:
            await rio.sleep(100)
        finally:
            log.append("finally")

    async def runner():
        try:
            await token.run_until_cancelled(body())
        except rio.CancelledError:
            log.append(("cancelled", rio.current_task().cancelling()))
            raise
        log.append("swallowed")

    async def main():
        async with rio.timeout(GUARD):
            # 1. someone else cancels the task: CancelledError propagates
            task = rio.spawn(runner())
            await settle()
            task.cancel()
            with pytest.raises(rio.CancelledError):
                await task
            assert log == ["finally", ("cancelled", 1)]
            assert not token.is_cancelled()
            # 2. the token and someone else in the same step: still propagates,
            # and only the token's own request was taken back
            log.clear()
            task = rio.spawn(runner())
            await settle()
            token.cancel()
            await rio.yield_now()  # the watcher has run: it cancelled the task ...
            assert task.cancelling() == 1 and not task.done()
            task.cancel()  # ... and somebody else does too, before the task runs
            with pytest.raises(rio.CancelledError):
                await task
            assert log == ["finally", ("cancelled", 1)]

    run(main)


def test_the_token_alone_is_swallowed_with_no_cancel_request_left(run):
    token = rio.CancellationToken()

    async def runner():
        result = await token.run_until_cancelled(finishes_with("x", 100))
        return result, rio.current_task().cancelling()

    async def main():
        async with rio.timeout(GUARD):
            task = rio.spawn(runner())
            await settle()
            token.cancel()
            return await task

    assert run(main) == (None, 0)


def test_run_until_cancelled_when_an_earlier_cancel_was_caught(run):
    """A task that caught an earlier cancellation (cancelling() == 1) without
    uncancel: the token's own is still taken back, and exactly it."""
    token = rio.CancellationToken()

    async def runner():
        try:
            await rio.sleep(100)
        except rio.CancelledError:
            pass
        assert rio.current_task().cancelling() == 1
        result = await token.run_until_cancelled(finishes_with("x", 100))
        return result, rio.current_task().cancelling()

    async def main():
        async with rio.timeout(GUARD):
            task = rio.spawn(runner())
            await settle()
            task.cancel()
            await settle()
            token.cancel()
            return await task

    assert run(main) == (None, 1)


def test_run_until_cancelled_with_a_cancel_from_another_thread(run):
    token = rio.CancellationToken()
    runtime_thread = threading.get_ident()
    finally_thread = []

    async def body():
        try:
            await rio.sleep(REAL_GUARD * 2)
        finally:
            finally_thread.append(threading.get_ident())

    def canceller():
        wait_until(lambda: token._waiting() == 1)  # the watcher is parked
        token.cancel()

    async def main():
        thread = start_thread(canceller)
        try:
            async with rio.timeout(REAL_GUARD):
                result = await token.run_until_cancelled(body())
        finally:
            join(thread)
        return result, rio.current_task().cancelling()

    assert run(main, autojump=False) == (None, 0)
    assert finally_thread == [runtime_thread]


def test_run_until_cancelled_of_something_not_awaitable_raises_and_cleans_up(run):
    token = rio.CancellationToken()

    async def main():
        with pytest.raises(TypeError):
            await token.run_until_cancelled(42)
        await settle()
        assert token._waiting() == 0
        assert runtime_stats()["tasks_alive"] == 1  # the watcher is gone
        assert rio.current_task().cancelling() == 0

    run(main)


def test_run_until_cancelled_outside_a_task_raises_and_closes_aw():
    token = rio.CancellationToken()

    async def body():
        return 1

    coro = body()
    driver = token.run_until_cancelled(coro)
    with pytest.raises(RuntimeError, match="rio task or an asyncio task"):
        driver.send(None)
    assert coro.cr_frame is None


# =========================================================================== doors and runtimes


DOORS = ["runtime", "rio.block_on", "rio.run", "asyncio.Runner(rio)", "asyncio.run"]


def run_door(door, body):
    """Run ``body(spawn, settle)`` through one door, bounded in time: rio tasks
    on a bare Runtime or on rio.block_on's loop, asyncio tasks on rio's loop
    (rio.run, asyncio.Runner with rio's loop factory) or on stdlib asyncio."""
    if door in ("runtime", "rio.block_on"):

        async def bounded_rio():
            async with rio.timeout(REAL_GUARD):
                return await body(rio.spawn, settle)

        if door == "runtime":
            return rio.Runtime().block_on(bounded_rio())
        return rio.block_on(bounded_rio())

    async def bounded_asyncio():
        async with asyncio.timeout(REAL_GUARD):
            return await body(asyncio.create_task, asyncio_settle)

    if door == "rio.run":
        return rio.run(bounded_asyncio())
    if door == "asyncio.Runner(rio)":
        with asyncio.Runner(loop_factory=rio.new_event_loop) as runner:
            return runner.run(bounded_asyncio())
    return asyncio.run(bounded_asyncio())


def current_any_task():
    return rio.current_task() or asyncio.current_task()


@pytest.mark.parametrize("door", DOORS)
def test_door_waiters_and_tree(door):
    async def body(spawn, settle_):
        root = rio.CancellationToken()
        child = root.child_token()
        waiters = [spawn(wait_cancelled(t)) for t in (root, child, child, root)]
        await settle_()
        assert root._waiting() == 2 and child._waiting() == 2
        lone = spawn(wait_cancelled(child))
        await settle_()
        lone.cancel()
        await settle_()
        assert child._waiting() == 2  # the cancelled wait left
        root.cancel()
        results = [await w for w in waiters]
        assert await child.cancelled() is None
        return results

    assert run_door(door, body) == [None] * 4


@pytest.mark.parametrize("door", DOORS)
def test_door_run_until_cancelled(door):
    async def body(spawn, settle_):
        token = rio.CancellationToken()
        log = []

        async def work(value):
            try:
                await settle_(3)
                return value
            finally:
                log.append(("finally", value))

        async def forever():
            try:
                await rio.Event().wait()
            finally:
                log.append("forever finally")

        assert await token.run_until_cancelled(work(1)) == 1
        task = current_any_task()
        assert task.cancelling() == 0

        # cancelled by a task of the same loop
        async def cancel_soon():
            await settle_()
            token.cancel()

        canceller = spawn(cancel_soon())
        assert await token.run_until_cancelled(forever()) is None
        await canceller
        assert task.cancelling() == 0

        # cancelled from another thread
        other = rio.CancellationToken()

        def poke():
            wait_until(lambda: other._waiting() == 1)
            other.cancel()

        thread = start_thread(poke)
        try:
            assert await other.run_until_cancelled(forever()) is None
        finally:
            join(thread)
        assert task.cancelling() == 0

        # already cancelled: aw never starts
        assert await token.run_until_cancelled(work(2)) is None

        # an outside cancel still propagates
        third = rio.CancellationToken()

        async def runner():
            try:
                await third.run_until_cancelled(forever())
            except asyncio.CancelledError:
                log.append(("propagated", current_any_task().cancelling()))
                raise

        inner = spawn(runner())
        await settle_()
        inner.cancel()
        try:
            await inner
        except asyncio.CancelledError:
            pass
        await settle_()
        assert third._waiting() == 0
        return log

    assert run_door(door, body) == [
        ("finally", 1),
        "forever finally",
        "forever finally",
        "forever finally",
        ("propagated", 1),
    ]


@pytest.mark.parametrize("door", DOORS)
def test_door_cancel_from_another_thread_wakes_waiters(door):
    async def body(spawn, settle_):
        token = rio.CancellationToken()
        child = token.child_token()

        def poke():
            wait_until(lambda: token._waiting() == 1 and child._waiting() == 1)
            token.cancel()

        a = spawn(wait_cancelled(token))
        b = spawn(wait_cancelled(child))
        thread = start_thread(poke)
        try:
            assert await a is None
            assert await b is None
        finally:
            join(thread)
        return "woken"

    assert run_door(door, body) == "woken"


def test_tasks_of_two_runtimes_wait_on_one_token_at_once():
    """A token is not bound to one runtime (unlike the locks): tasks of two
    runtimes on two threads wait at once, one cancel wakes both."""
    token = rio.CancellationToken()
    child = token.child_token()
    results = []

    def runtime_thread(which, door):
        async def main():
            bound = rio.timeout if rio.current_task() is not None else asyncio.timeout
            async with bound(REAL_GUARD):
                await which.cancelled()
                return threading.get_ident()

        try:
            results.append(door(main()) == threading.get_ident())
        except BaseException as exc:  # reported by the main thread
            results.append(exc)

    threads = [
        start_thread(lambda: runtime_thread(token, rio.Runtime().block_on)),
        start_thread(lambda: runtime_thread(child, rio.block_on)),
        start_thread(lambda: runtime_thread(child, rio.run)),
    ]
    wait_until(lambda: token._waiting() == 1 and child._waiting() == 2)
    token.cancel()
    for thread in threads:
        join(thread)
    assert results == [True, True, True]


# =========================================================================== model


@st.composite
def schedules(draw):
    """A list of operations on a growing tree of tokens: ("child", parent),
    ("root",), ("cancel", i), ("wait", i), ("drop", i), ("settle",)."""
    ops = [("root",)]
    kinds = ["child", "child", "root", "cancel", "wait", "wait", "drop", "settle"]
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(kinds))
        if kind in ("root", "settle"):
            ops.append((kind,))
        else:  # a token index, taken modulo the number of tokens made so far
            ops.append((kind, draw(st.integers(0, 1000))))
    return ops


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules())
def test_model_random_trees_and_cancels(ops):
    """A reference model of the tree says which tokens are cancelled; every
    live token must agree, every waiter of a cancelled token must be woken and
    none of a token that is not."""
    parent_of: dict[int, int | None] = {}
    cancelled: set[int] = set()
    tokens: dict[int, rio.CancellationToken] = {}  # the ones the program still holds
    waiters: list[tuple[int, rio.Task]] = []

    def model_cancel(i: int) -> None:
        stack = [i]
        while stack:
            j = stack.pop()
            if j in cancelled:
                continue
            cancelled.add(j)
            stack.extend(k for k, p in parent_of.items() if p == j)

    def check() -> None:
        for i, token in tokens.items():
            assert token.is_cancelled() == (i in cancelled), (i, ops)
            if i in cancelled:
                assert token._children() == 0 and token._waiting() == 0
        for i, task in waiters:
            assert task.done() == (i in cancelled), (i, ops)

    async def main():
        async with rio.timeout(GUARD):
            for op in ops:
                kind = op[0]
                target = op[1] % len(parent_of) if len(op) > 1 else None
                if kind == "root":
                    new = len(parent_of)
                    parent_of[new] = None
                    tokens[new] = rio.CancellationToken()
                elif target not in tokens:
                    continue  # the program dropped that token
                elif kind == "child":
                    new = len(parent_of)
                    parent_of[new] = target
                    tokens[new] = tokens[target].child_token()
                    if target in cancelled:
                        cancelled.add(new)  # born cancelled
                elif kind == "cancel":
                    tokens[target].cancel()
                    model_cancel(target)
                elif kind == "wait":
                    waiters.append((target, rio.spawn(wait_cancelled(tokens[target]))))
                elif kind == "drop":
                    del tokens[target]  # freed now, or at the next collection
                else:
                    gc.collect()
                    await settle(2)
                    check()
            await settle(3)
            check()
            # the rest: cancel every root, all waiters wake
            for i, p in list(parent_of.items()):
                if p is None and i in tokens:
                    tokens[i].cancel()
                    model_cancel(i)
            await settle(3)
            for i, task in waiters:
                if i in cancelled:
                    assert task.done()
                else:
                    task.cancel()  # its root was dropped: nobody can cancel it now

    rio.Runtime(autojump_clock=True).block_on(main())


def test_run_until_cancelled_inside_a_shield_still_ends_on_the_token(run):
    """The token cancels a scope around the awaitable, not the task: a shield
    around the call (which holds back Task.cancel()) does not hold it back."""

    async def main():
        token = rio.CancellationToken()

        async def canceller():
            await rio.sleep(1)
            token.cancel()

        async def late():
            await rio.sleep(100)
            return "late"

        rio.spawn(canceller())
        with rio.CancelScope(shield=True):
            value = await token.run_until_cancelled(late())
        return value, rio.current_task().cancelling()

    assert run(main) == (None, 0)
