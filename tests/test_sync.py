"""Locks and signals of rio_core._sync: Lock, RwLock, Semaphore/Permit, Event,
Notify, Barrier, Condition, Oneshot.

The contract under test (rio_core/_sync.pyx, design note): hand-offs are FIFO
(a released lock / freed permit / notify_one goes to the first parked waiter,
later arrivals do not barge); a waiter cancelled while queued takes nothing;
a waiter granted something but cancelled before it ran passes it on; the
thread-safe methods wake parked tasks from other threads; while tasks wait on
a primitive it belongs to their runtime.

"Granted, then cancelled" is built deterministically: park task A (and B
behind it), then ``a.cancel()`` and the grant in the same step with no await
in between, so A is handed the thing and only then sees its cancellation.

Everything runs on the autojump clock (every wait is bounded by
``rio.timeout``, which autojump makes instant when a wake is lost), except the
tests where another thread does the waking: those use the real clock with a
generous bound, and join their threads with a timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from thread_helpers import REAL_GUARD, join, start_thread, wait_until

import rio_rt as rio

GUARD = 60.0  # autojump seconds; reaching it means a wake-up was lost


async def settle(rounds: int = 5) -> None:
    """Let every other ready task take a few steps."""
    for _ in range(rounds):
        await rio.yield_now()


async def blocks(awaitable, seconds: float = 1.0) -> bool:
    """True when ``awaitable`` does not complete within ``seconds`` (autojump: instant)."""
    try:
        async with rio.timeout(seconds):
            await awaitable
    except TimeoutError:
        return True
    return False


async def awaited(operation, *args):
    """A coroutine awaiting ``operation(*args)``, called inside the spawned task
    (a Lock's acquire() belongs to the task that calls it)."""
    return await operation(*args)


async def cancelled(task) -> bool:
    """Wait for ``task`` to end; True when it ended cancelled."""
    try:
        await task
    except rio.CancelledError:
        return True
    return False


# =========================================================================== Lock


def test_lock_fast_path_acquire_and_release(run):
    lock = rio.Lock()

    async def main():
        async with rio.timeout(GUARD):
            assert not lock.locked()
            assert await lock.acquire() is True
            assert lock.locked()
            lock.release()
            assert not lock.locked()
            async with lock:
                assert lock.locked()
            assert not lock.locked()
            assert lock._waiting() == 0

    run(main)


def test_lock_async_with_releases_on_exception(run):
    lock = rio.Lock()

    async def main():
        async with rio.timeout(GUARD):
            with pytest.raises(KeyError):
                async with lock:
                    raise KeyError("boom")
            assert not lock.locked()

    run(main)


def test_lock_waiters_get_it_in_fifo_order(run):
    lock = rio.Lock()
    park_order = [3, 0, 4, 1, 2]
    got = []

    async def worker(i):
        async with lock:
            got.append(i)
            await settle(2)  # hold it across steps: others must wait their turn

    async def main():
        async with rio.timeout(GUARD):
            await lock.acquire()
            tasks = []
            for i in park_order:
                tasks.append(rio.spawn(worker(i)))
                await settle()
            assert lock._waiting() == len(park_order)
            lock.release()
            for task in tasks:
                await task
            assert not lock.locked()

    run(main)
    assert got == park_order


def test_lock_later_arrival_does_not_barge_past_waiters(run):
    lock = rio.Lock()
    got = []

    async def worker(name):
        async with lock:
            got.append(name)

    async def main():
        async with rio.timeout(GUARD):
            await lock.acquire()
            first = rio.spawn(worker("queued"))
            await settle()
            lock.release()  # handed to "queued", which has not run yet
            assert lock.locked()
            late = rio.spawn(worker("late"))
            await first
            await late

    run(main)
    assert got == ["queued", "late"]


def test_lock_cancelled_queued_acquire_takes_nothing(run):
    lock = rio.Lock()
    got = []

    async def worker(name):
        async with lock:
            got.append(name)

    async def main():
        async with rio.timeout(GUARD):
            await lock.acquire()
            a = rio.spawn(worker("a"))
            await settle()
            b = rio.spawn(worker("b"))
            await settle()
            a.cancel()
            assert await cancelled(a)
            assert lock._waiting() == 1
            assert lock.locked()
            lock.release()
            await b
            assert not lock.locked()

    run(main)
    assert got == ["b"]


def test_lock_granted_then_cancelled_waiter_passes_it_on(run):
    lock = rio.Lock()
    got = []

    async def worker(name):
        async with lock:
            got.append(name)

    async def main():
        async with rio.timeout(GUARD):
            await lock.acquire()
            a = rio.spawn(worker("a"))
            await settle()
            b = rio.spawn(worker("b"))
            await settle()
            a.cancel()
            lock.release()  # A is granted the lock, then sees its cancellation
            assert await cancelled(a)
            await b
            assert not lock.locked()
            assert lock._waiting() == 0
            # nothing was lost: the lock is free for the next one
            assert await lock.acquire() is True
            lock.release()

    run(main)
    assert got == ["b"]


def test_lock_granted_then_cancelled_last_waiter_leaves_it_unlocked(run):
    lock = rio.Lock()

    async def main():
        async with rio.timeout(GUARD):
            await lock.acquire()
            a = rio.spawn(awaited(lock.acquire))
            await settle()
            a.cancel()
            lock.release()
            assert await cancelled(a)
            assert not lock.locked()

    run(main)


def test_lock_release_by_task_that_does_not_hold_it_raises(run):
    lock = rio.Lock()

    async def other():
        with pytest.raises(RuntimeError):
            lock.release()
        return "checked"

    async def main():
        async with rio.timeout(GUARD):
            await lock.acquire()
            assert await rio.spawn(other()) == "checked"
            assert lock.locked()
            lock.release()

    run(main)


def test_lock_release_when_unlocked_raises(run):
    lock = rio.Lock()

    async def main():
        with pytest.raises(RuntimeError):
            lock.release()

    run(main)


def test_lock_is_not_reentrant(run):
    lock = rio.Lock()

    async def main():
        async with rio.timeout(GUARD):
            await lock.acquire()
            with pytest.raises(RuntimeError):
                await lock.acquire()
            assert lock._waiting() == 0
            lock.release()
            assert not lock.locked()

    run(main)


# =========================================================================== RwLock


def test_rwlock_readers_share_it(run):
    lock = rio.RwLock()
    inside = []
    peak = []

    async def reader():
        async with lock.read():
            inside.append(1)
            await settle(3)
            peak.append(len(inside))
            inside.pop()

    async def main():
        async with rio.timeout(GUARD):
            tasks = [rio.spawn(reader()) for _ in range(4)]
            for task in tasks:
                await task

    run(main)
    assert max(peak) == 4


def test_rwlock_writer_excludes_readers_and_writers(run):
    lock = rio.RwLock()
    log = []

    async def writer(name):
        async with lock.write():
            log.append(f"{name} in")
            await settle(3)
            log.append(f"{name} out")

    async def reader(name):
        async with lock.read():
            log.append(f"{name} in")
            await settle(3)
            log.append(f"{name} out")

    async def main():
        async with rio.timeout(GUARD):
            tasks = [rio.spawn(writer("w1")), rio.spawn(reader("r1")), rio.spawn(writer("w2"))]
            for task in tasks:
                await task

    run(main)
    assert log == ["w1 in", "w1 out", "r1 in", "r1 out", "w2 in", "w2 out"]


def test_rwlock_waiting_writer_is_not_starved_by_later_readers(run):
    lock = rio.RwLock()
    log = []

    async def reader(name):
        async with lock.read():
            log.append(name)

    async def writer():
        async with lock.write():
            log.append("w")

    async def main():
        async with rio.timeout(GUARD):
            held = lock.read()
            await held
            w = rio.spawn(writer())
            await settle()
            later = []
            for i in range(3):  # a stream of readers after the writer
                later.append(rio.spawn(reader(f"r{i}")))
                await settle()
            assert log == []  # the readers do not overtake the waiting writer
            await held.__aexit__(None, None, None)
            await w
            for task in later:
                await task

    run(main)
    assert log == ["w", "r0", "r1", "r2"]


def test_rwlock_cancelled_queued_writer_lets_readers_behind_it_in(run):
    lock = rio.RwLock()
    log = []

    async def reader():
        async with lock.read():
            log.append("r")

    async def main():
        async with rio.timeout(GUARD):
            held = lock.read()
            await held
            w = rio.spawn(awaited(lock.write))
            await settle()
            r = rio.spawn(reader())
            await settle()
            assert log == []
            w.cancel()
            assert await cancelled(w)
            await r  # admitted beside the held read guard
            assert log == ["r"]
            await held.__aexit__(None, None, None)
            # fully free again: a writer gets it at once
            async with lock.write():
                pass

    run(main)


def test_rwlock_granted_then_cancelled_writer_passes_it_on(run):
    lock = rio.RwLock()
    log = []

    async def writer(name):
        async with lock.write():
            log.append(name)

    async def reader(name):
        async with lock.read():
            log.append(name)

    async def main():
        async with rio.timeout(GUARD):
            held = lock.read()
            await held
            a = rio.spawn(writer("wa"))
            await settle()
            b = rio.spawn(reader("rb"))
            await settle()
            c = rio.spawn(writer("wc"))
            await settle()
            a.cancel()
            await held.__aexit__(None, None, None)  # grants the writer A
            assert await cancelled(a)
            await b
            await c
            async with lock.write():  # nothing left held
                pass

    run(main)
    assert log == ["rb", "wc"]


def test_rwlock_fifo_mix_of_readers_and_writers(run):
    lock = rio.RwLock()
    log = []

    async def user(kind, name):
        guard = lock.read() if kind == "r" else lock.write()
        async with guard:
            log.append(name)
            await settle(2)

    async def main():
        async with rio.timeout(GUARD):
            held = lock.write()
            await held
            order = [("r", "r1"), ("r", "r2"), ("w", "w1"), ("r", "r3"), ("w", "w2")]
            tasks = []
            for kind, name in order:
                tasks.append(rio.spawn(user(kind, name)))
                await settle()
            await held.__aexit__(None, None, None)
            for task in tasks:
                await task

    run(main)
    # r1 and r2 share; w1 after them; r3 after w1; w2 last
    assert log[:2] in (["r1", "r2"], ["r2", "r1"])
    assert log[2:] == ["w1", "r3", "w2"]


# =========================================================================== Semaphore


def test_semaphore_fast_path_and_permit_release(run):
    sem = rio.Semaphore(3)

    async def main():
        async with rio.timeout(GUARD):
            permit = await sem.acquire()
            assert isinstance(permit, rio.Permit)
            assert permit.amount == 1
            assert sem.available_permits() == 2
            two = await sem.acquire(2)
            assert two.amount == 2
            assert sem.available_permits() == 0
            permit.release()
            assert sem.available_permits() == 1
            permit.release()  # idempotent
            assert sem.available_permits() == 1
            with two:
                pass
            assert two.amount == 0
            assert sem.available_permits() == 3
            async with sem:
                assert sem.available_permits() == 2
            assert sem.available_permits() == 3
            with await sem.acquire(3) as p:
                assert p.amount == 3
                assert sem.available_permits() == 0
            assert sem.available_permits() == 3

    run(main)


def test_semaphore_permit_forget_drops_permits_for_good(run):
    sem = rio.Semaphore(2)

    async def main():
        async with rio.timeout(GUARD):
            permit = await sem.acquire()
            permit.forget()
            assert permit.amount == 0
            permit.release()
            assert sem.available_permits() == 1

    run(main)


def test_semaphore_try_acquire(run):
    sem = rio.Semaphore(2)

    async def main():
        async with rio.timeout(GUARD):
            p = sem.try_acquire(2)
            assert p is not None and p.amount == 2
            assert sem.try_acquire() is None
            p.release()
            q = sem.try_acquire()
            assert q is not None and q.amount == 1
            assert sem.available_permits() == 1
            q.release()

    run(main)


def test_semaphore_try_acquire_does_not_barge_past_waiters(run):
    sem = rio.Semaphore(1)

    async def main():
        async with rio.timeout(GUARD):
            big = rio.spawn(awaited(sem.acquire, 2))
            await settle()
            assert sem.available_permits() == 1
            assert sem.try_acquire(1) is None  # a waiter is ahead
            sem.add_permits(1)
            permit = await big
            assert permit.amount == 2
            assert sem.available_permits() == 0

    run(main)


def test_semaphore_waiters_get_permits_in_fifo_order(run):
    sem = rio.Semaphore(0)
    park_order = [2, 4, 0, 3, 1]
    got = []

    async def worker(i):
        permit = await sem.acquire()
        got.append(i)
        permit.forget()

    async def main():
        async with rio.timeout(GUARD):
            tasks = []
            for i in park_order:
                tasks.append(rio.spawn(worker(i)))
                await settle()
            for _ in park_order:
                sem.add_permits(1)
                await settle()
            for task in tasks:
                await task

    run(main)
    assert got == park_order


def test_semaphore_large_request_at_head_blocks_smaller_later_requests(run):
    sem = rio.Semaphore(1)
    got = []

    async def worker(name, k):
        permit = await sem.acquire(k)
        got.append((name, permit.amount))
        return permit

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(worker("a", 3))
            await settle()
            b = rio.spawn(worker("b", 1))
            await settle()
            assert got == []  # one permit free, but "a" is first and needs 3
            assert sem._waiting() == 2
            sem.add_permits(1)
            await settle()
            assert got == []
            sem.add_permits(1)
            pa = await a
            await settle()
            assert got == [("a", 3)]
            assert sem.available_permits() == 0
            pa.release()
            pb = await b
            assert got == [("a", 3), ("b", 1)]
            pb.release()
            assert sem.available_permits() == 3

    run(main)


def test_semaphore_cancelled_queued_acquire_takes_nothing(run):
    sem = rio.Semaphore(1)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(sem.acquire, 3))
            await settle()
            b = rio.spawn(awaited(sem.acquire, 1))
            await settle()
            assert not b.done()
            a.cancel()  # the head that did not fit leaves: "b" fits now
            assert await cancelled(a)
            pb = await b
            assert pb.amount == 1
            assert sem.available_permits() == 0
            pb.release()
            assert sem.available_permits() == 1
            assert sem._waiting() == 0

    run(main)


def test_semaphore_granted_then_cancelled_acquire_gives_permits_back(run):
    sem = rio.Semaphore(0)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(sem.acquire, 2))
            await settle()
            b = rio.spawn(awaited(sem.acquire, 2))
            await settle()
            a.cancel()
            sem.add_permits(2)  # granted to A, which then sees its cancellation
            assert await cancelled(a)
            pb = await b
            assert pb.amount == 2
            assert sem.available_permits() == 0
            pb.release()
            assert sem.available_permits() == 2

    run(main)


def test_semaphore_granted_then_cancelled_last_acquire_gives_permits_back(run):
    sem = rio.Semaphore(0)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(sem.acquire, 3))
            await settle()
            a.cancel()
            sem.add_permits(3)
            assert await cancelled(a)
            assert sem.available_permits() == 3

    run(main)


def test_semaphore_close_fails_waiters_and_later_acquires(run):
    sem = rio.Semaphore(0)

    async def main():
        async with rio.timeout(GUARD):
            waiters = [rio.spawn(awaited(sem.acquire)) for _ in range(3)]
            await settle()
            assert not sem.is_closed()
            sem.close()
            assert sem.is_closed()
            for task in waiters:
                with pytest.raises(rio.SemaphoreClosed):
                    await task
            with pytest.raises(rio.SemaphoreClosed):
                await sem.acquire()
            with pytest.raises(rio.SemaphoreClosed):
                sem.try_acquire()
            with pytest.raises(rio.SemaphoreClosed):
                async with sem:
                    pass

    run(main)
    assert issubclass(rio.SemaphoreClosed, RuntimeError)


def test_semaphore_bad_arguments(run):
    with pytest.raises(ValueError):
        rio.Semaphore(-1)
    with pytest.raises(TypeError):
        rio.Semaphore("x")
    with pytest.raises(TypeError):
        rio.Semaphore(1.5)
    sem = rio.Semaphore(1)
    with pytest.raises(ValueError):
        sem.acquire(0)
    with pytest.raises(ValueError):
        sem.acquire(k=0)
    with pytest.raises(ValueError):
        sem.acquire(-2)
    with pytest.raises(TypeError):
        sem.acquire(1.0)
    with pytest.raises(ValueError):
        sem.try_acquire(0)
    with pytest.raises(ValueError):
        sem.add_permits(-1)
    assert sem.available_permits() == 1
    assert rio.Semaphore(0).available_permits() == 0


# =========================================================================== Event


def test_event_set_before_wait_is_the_fast_path(run):
    event = rio.Event()

    async def main():
        async with rio.timeout(GUARD):
            assert not event.is_set()
            event.set()
            assert event.is_set()
            assert await event.wait() is True
            event.clear()
            assert not event.is_set()
            assert await blocks(event.wait())

    run(main)


def test_event_set_wakes_every_waiter(run):
    event = rio.Event()

    async def main():
        async with rio.timeout(GUARD):
            tasks = [rio.spawn(awaited(event.wait)) for _ in range(5)]
            await settle()
            assert event._waiting() == 5
            event.set()
            assert [await t for t in tasks] == [True] * 5
            assert event._waiting() == 0

    run(main)


def test_event_cancelled_waiter_leaves_and_others_still_wake(run):
    event = rio.Event()

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(event.wait))
            b = rio.spawn(awaited(event.wait))
            await settle()
            a.cancel()
            assert await cancelled(a)
            assert event._waiting() == 1
            event.set()
            assert await b is True

    run(main)


def test_event_set_from_another_thread_wakes_a_parked_task(run):
    event = rio.Event()

    def setter():
        wait_until(lambda: event._waiting() == 1)
        event.set()

    async def main():
        thread = start_thread(setter)
        try:
            async with rio.timeout(REAL_GUARD):
                return await event.wait()
        finally:
            join(thread)

    assert run(main, autojump=False) is True


# =========================================================================== Notify


def test_notify_one_stores_a_single_permit_when_nobody_waits(run):
    notify = rio.Notify()

    async def main():
        async with rio.timeout(GUARD):
            notify.notify_one()
            notify.notify_one()  # permits do not add up
            await notify.notified()  # consumes the stored permit at once
            assert await blocks(notify.notified())

    run(main)


def test_notify_one_wakes_waiters_in_fifo_order(run):
    notify = rio.Notify()
    park_order = [1, 3, 0, 2]
    got = []

    async def worker(i):
        await notify.notified()
        got.append(i)

    async def main():
        async with rio.timeout(GUARD):
            tasks = []
            for i in park_order:
                tasks.append(rio.spawn(worker(i)))
                await settle()
            for expected_len in range(1, len(park_order) + 1):
                notify.notify_one()
                await settle()
                assert len(got) == expected_len  # one waiter per notify_one
            for task in tasks:
                await task

    run(main)
    assert got == park_order


def test_notify_waiters_wakes_only_the_current_waiters(run):
    notify = rio.Notify()

    async def main():
        async with rio.timeout(GUARD):
            notify.notify_waiters()  # nobody waits: nothing is stored
            tasks = [rio.spawn(awaited(notify.notified)) for _ in range(3)]
            await settle()
            notify.notify_waiters()
            for task in tasks:
                await task
            assert notify._waiting() == 0
            assert await blocks(notify.notified())

    run(main)


def test_notify_cancelled_queued_waiter_takes_nothing(run):
    notify = rio.Notify()

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(notify.notified))
            await settle()
            b = rio.spawn(awaited(notify.notified))
            await settle()
            a.cancel()
            assert await cancelled(a)
            notify.notify_one()
            await b
            assert notify._waiting() == 0
            assert await blocks(notify.notified())  # no permit left over

    run(main)


def test_notify_one_granted_to_a_cancelled_waiter_goes_to_the_next(run):
    notify = rio.Notify()

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(notify.notified))
            await settle()
            b = rio.spawn(awaited(notify.notified))
            await settle()
            a.cancel()
            notify.notify_one()
            assert await cancelled(a)
            await b
            assert await blocks(notify.notified())  # it was passed on, not duplicated

    run(main)


def test_notify_one_granted_to_a_cancelled_last_waiter_is_stored(run):
    notify = rio.Notify()

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(notify.notified))
            await settle()
            a.cancel()
            notify.notify_one()
            assert await cancelled(a)
            assert not await blocks(notify.notified())  # the permit was kept

    run(main)


def test_notify_one_from_another_thread(run):
    notify = rio.Notify()

    def notifier():
        wait_until(lambda: notify._waiting() == 1)
        notify.notify_one()

    async def main():
        thread = start_thread(notifier)
        try:
            async with rio.timeout(REAL_GUARD):
                await notify.notified()
        finally:
            join(thread)
        return "woken"

    assert run(main, autojump=False) == "woken"


def test_notify_one_from_another_thread_before_anyone_waits_is_stored(run):
    notify = rio.Notify()
    thread = start_thread(notify.notify_one)
    join(thread)

    async def main():
        async with rio.timeout(GUARD):
            await notify.notified()
        return "woken"

    assert run(main) == "woken"


def test_notify_waiters_from_another_thread(run):
    notify = rio.Notify()

    def notifier():
        wait_until(lambda: notify._waiting() == 3)
        notify.notify_waiters()

    async def main():
        thread = start_thread(notifier)
        try:
            async with rio.timeout(REAL_GUARD):
                tasks = [rio.spawn(awaited(notify.notified)) for _ in range(3)]
                for task in tasks:
                    await task
        finally:
            join(thread)
        return "woken"

    assert run(main, autojump=False) == "woken"


# =========================================================================== Barrier


def test_barrier_true_in_exactly_one_task_per_generation(run):
    parties, generations = 4, 5
    barrier = rio.Barrier(parties)
    results: list[list[bool]] = [[] for _ in range(generations)]

    async def worker(i):
        for g in range(generations):
            await settle(i)  # arrive in varying order
            results[g].append(await barrier.wait())

    async def main():
        async with rio.timeout(GUARD):
            tasks = [rio.spawn(worker(i)) for i in range(parties)]
            for task in tasks:
                await task

    run(main)
    assert barrier.parties == parties
    for g in range(generations):
        assert len(results[g]) == parties
        assert results[g].count(True) == 1


def test_barrier_waits_until_all_parties_arrive(run):
    barrier = rio.Barrier(3)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(barrier.wait))
            b = rio.spawn(awaited(barrier.wait))
            await settle()
            assert not a.done() and not b.done()
            assert await barrier.wait() is True  # the last to arrive
            assert await a is False
            assert await b is False

    run(main)


def test_barrier_cancelled_waiter_leaves_the_generation(run):
    barrier = rio.Barrier(2)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(barrier.wait))
            await settle()
            a.cancel()
            assert await cancelled(a)
            b = rio.spawn(awaited(barrier.wait))
            await settle()
            assert not b.done()  # A no longer counts
            assert await barrier.wait() is True
            assert await b is False

    run(main)


def test_barrier_bad_parties():
    with pytest.raises(ValueError):
        rio.Barrier(0)
    with pytest.raises(TypeError):
        rio.Barrier("2")


# =========================================================================== Condition


def test_condition_wait_for_and_notify(run):
    cond = rio.Condition()
    items = []

    async def consumer():
        async with cond:
            await cond.wait_for(lambda: items)
            assert cond.locked()
            return items.pop(0)

    async def main():
        async with rio.timeout(GUARD):
            task = rio.spawn(consumer())
            await settle()
            assert not task.done()
            assert not cond.locked()  # wait() released the lock
            async with cond:
                items.append("x")
                cond.notify()
            return await task

    assert run(main) == "x"


def test_condition_wait_returns_true_with_the_lock_held(run):
    cond = rio.Condition()

    async def waiter():
        async with cond:
            result = await cond.wait()
            return result, cond.locked()

    async def main():
        async with rio.timeout(GUARD):
            task = rio.spawn(waiter())
            await settle()
            async with cond:
                cond.notify()
            return await task

    assert run(main) == (True, True)


def test_condition_notify_n_wakes_n_in_fifo_order(run):
    cond = rio.Condition()
    park_order = [2, 0, 3, 1]
    got = []

    async def waiter(i):
        async with cond:
            await cond.wait()
            got.append(i)

    async def main():
        async with rio.timeout(GUARD):
            tasks = []
            for i in park_order:
                tasks.append(rio.spawn(waiter(i)))
                await settle()
            async with cond:
                cond.notify(2)
            await settle(10)
            assert got == park_order[:2]
            async with cond:
                cond.notify_all()
            for task in tasks:
                await task

    run(main)
    assert got == park_order


def test_condition_notify_all_wakes_every_waiter(run):
    cond = rio.Condition()

    async def waiter():
        async with cond:
            await cond.wait()
            return "woken"

    async def main():
        async with rio.timeout(GUARD):
            tasks = [rio.spawn(waiter()) for _ in range(4)]
            await settle()
            async with cond:
                cond.notify_all()
            return [await t for t in tasks]

    assert run(main) == ["woken"] * 4


def test_condition_notify_without_the_lock_raises(run):
    cond = rio.Condition()

    async def other():
        with pytest.raises(RuntimeError):
            cond.notify()
        return "checked"

    async def main():
        async with rio.timeout(GUARD):
            with pytest.raises(RuntimeError):
                cond.notify()
            with pytest.raises(RuntimeError):
                cond.notify_all()
            with pytest.raises(RuntimeError):
                await cond.wait()
            async with cond:  # held by another task: still not ours
                assert await rio.spawn(other()) == "checked"

    run(main)


def test_condition_cancelled_wait_reacquires_the_lock(run):
    cond = rio.Condition()
    seen = []

    async def waiter():
        async with cond:
            try:
                await cond.wait()
            except rio.CancelledError:
                seen.append(cond.locked())
                raise

    async def main():
        async with rio.timeout(GUARD):
            task = rio.spawn(waiter())
            await settle()
            task.cancel()
            assert await cancelled(task)
            assert not cond.locked()
            assert cond._waiting() == 0

    run(main)
    assert seen == [True]


def test_condition_notify_granted_to_a_cancelled_waiter_goes_to_the_next(run):
    cond = rio.Condition()
    woken = []

    async def waiter(name):
        async with cond:
            await cond.wait()
            woken.append(name)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(waiter("a"))
            await settle()
            b = rio.spawn(waiter("b"))
            await settle()
            async with cond:
                a.cancel()
                cond.notify(1)  # granted to A, which then sees its cancellation
            assert await cancelled(a)
            await b
            assert not cond.locked()

    run(main)
    assert woken == ["b"]


def test_condition_with_a_given_lock(run):
    lock = rio.Lock()
    cond = rio.Condition(lock)

    async def main():
        async with rio.timeout(GUARD):
            assert cond.lock is lock
            async with lock:
                assert cond.locked()
                cond.notify_all()  # held through the shared lock

    run(main)
    with pytest.raises(TypeError):
        rio.Condition(asyncio.Lock())


# =========================================================================== Oneshot


def test_oneshot_set_and_await(run):
    shot = rio.Oneshot()

    async def main():
        async with rio.timeout(GUARD):
            task = rio.spawn(shot_waiter(shot))
            await settle()
            assert not task.done()
            shot.set(42)
            assert shot.is_set()
            with pytest.raises(rio.InvalidStateError):
                shot.set(43)
            return await task

    assert run(main) == 42


async def shot_waiter(shot):
    return await shot


def test_oneshot_set_exception(run):
    shot = rio.Oneshot()

    async def main():
        async with rio.timeout(GUARD):
            shot.set_exception(KeyError("k"))
            with pytest.raises(KeyError):
                await shot
            with pytest.raises(TypeError):
                rio.Oneshot().set_exception("not an exception")

    run(main)


def test_oneshot_set_from_another_thread(run):
    shot = rio.Oneshot()

    async def main():
        thread = start_thread(lambda: (time.sleep(0.01), shot.set("hi")))
        try:
            async with rio.timeout(REAL_GUARD):
                return await shot
        finally:
            join(thread)

    assert run(main, autojump=False) == "hi"


# =========================================================================== both doors


async def asyncio_settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def run_door(door, body):
    """Run ``body(spawn, settle)`` through one door, bounded in time:
    asyncio tasks under rio_rt.run or stdlib asyncio.run, or rio tasks on a bare
    rio.Runtime().block_on."""

    if door == "runtime":

        async def bounded_rio():
            async with rio.timeout(REAL_GUARD):
                return await body(rio.spawn, settle)

        return rio.Runtime().block_on(bounded_rio())

    async def bounded_asyncio():
        async with asyncio.timeout(REAL_GUARD):
            return await body(asyncio.create_task, asyncio_settle)

    if door == "rio.run":
        return rio.run(bounded_asyncio())
    return asyncio.run(bounded_asyncio())


DOORS = ["rio.run", "asyncio.run", "runtime"]


async def task_cancelled(task) -> bool:
    try:
        await task
    except (asyncio.CancelledError, rio.CancelledError):
        return True
    return False


@pytest.mark.parametrize("door", DOORS)
def test_door_lock_fifo_and_cancel_pass_on(door):
    async def body(spawn, settle_):
        lock = rio.Lock()
        got = []

        async def worker(i):
            async with lock:
                got.append(i)
                await settle_(2)

        await lock.acquire()
        tasks = []
        for i in range(4):
            tasks.append(spawn(worker(i)))
            await settle_()
        assert lock._waiting() == 4
        tasks[0].cancel()
        lock.release()  # granted to worker 0, which is cancelled: passes it on
        assert await task_cancelled(tasks[0])
        for task in tasks[1:]:
            await task
        assert not lock.locked()
        return got

    assert run_door(door, body) == [1, 2, 3]


@pytest.mark.parametrize("door", DOORS)
def test_door_semaphore_event_notify_barrier_condition(door):
    async def body(spawn, settle_):
        sem = rio.Semaphore(0)
        event = rio.Event()
        notify = rio.Notify()
        barrier = rio.Barrier(3)
        cond = rio.Condition()
        log = []

        async def sem_user(i):
            permit = await sem.acquire(2)
            log.append(("sem", i))
            permit.release()

        tasks = [spawn(sem_user(i)) for i in range(3)]
        await settle_()
        queued = spawn(awaited(sem.acquire, 1))
        await settle_()
        queued.cancel()
        assert await task_cancelled(queued)
        sem.add_permits(2)
        for task in tasks:
            await task
        assert sem.available_permits() == 2

        waiters = [spawn(awaited(event.wait)) for _ in range(3)]
        await settle_()
        event.set()
        assert [await w for w in waiters] == [True] * 3

        first = spawn(awaited(notify.notified))
        await settle_()
        second = spawn(awaited(notify.notified))
        await settle_()
        first.cancel()
        notify.notify_one()
        assert await task_cancelled(first)
        await second

        results = [spawn(awaited(barrier.wait)) for _ in range(2)]
        await settle_()
        last = await barrier.wait()
        assert sorted([last] + [await r for r in results]) == [False, False, True]

        async def cond_waiter():
            async with cond:
                await cond.wait_for(lambda: log)
                return "cond"

        cw = spawn(cond_waiter())
        await settle_()
        async with cond:
            cond.notify_all()
        return await cw, list(log)

    result, log = run_door(door, body)
    assert result == "cond"
    assert log == [("sem", 0), ("sem", 1), ("sem", 2)]


@pytest.mark.parametrize("door", DOORS)
def test_door_event_and_notify_set_from_another_thread(door):
    async def body(spawn, settle_):
        event = rio.Event()
        notify = rio.Notify()

        def poke():
            wait_until(lambda: event._waiting() == 1 and notify._waiting() == 1)
            event.set()
            notify.notify_one()

        a = spawn(awaited(event.wait))
        b = spawn(awaited(notify.notified))
        thread = start_thread(poke)
        try:
            assert await a is True
            await b
        finally:
            join(thread)
        return "woken"

    assert run_door(door, body) == "woken"


# =========================================================================== one runtime at a time


def test_lock_waited_on_by_two_runtimes_at_once_raises(run):
    lock = rio.Lock()
    parked = threading.Event()
    checked = threading.Event()
    errors = []

    def first_runtime():
        async def take_and_release():
            async with lock:
                pass

        async def main():
            await lock.acquire()
            waiter = rio.spawn(take_and_release())
            await settle()
            parked.set()
            checked.wait(REAL_GUARD)  # hold the runtime while the other one tries
            lock.release()
            async with rio.timeout(REAL_GUARD):
                await waiter

        try:
            rio.Runtime().block_on(main())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def second_runtime():
        async def main():
            try:
                async with rio.timeout(REAL_GUARD):
                    await lock.acquire()
            except RuntimeError as exc:
                errors.append(exc)
            finally:
                checked.set()

        parked.wait(REAL_GUARD)
        rio.Runtime().block_on(main())

    threads = [start_thread(first_runtime), start_thread(second_runtime)]
    for thread in threads:
        join(thread)
    assert len(errors) == 1
    assert "another runtime" in str(errors[0])
    assert not lock.locked()


def test_primitive_is_free_for_another_runtime_once_nobody_waits(run):
    lock = rio.Lock()
    event = rio.Event()

    async def main():
        async with rio.timeout(GUARD):
            task = rio.spawn(awaited(event.wait))
            await settle()
            event.set()
            await task
            async with lock:
                pass
        return "done"

    assert run(main) == "done"
    assert run(main) == "done"  # a second runtime, one after the other
