"""Channels of rio_core._channel: channel (Sender/Receiver), broadcast, watch.

The contract under test (rio_core/_channel.pyx, design note): capacity 0 is
a rendezvous, an int bounds the buffer, None is unbounded; parked senders
and receivers are served FIFO; a cancelled send sends nothing (also when it
was already granted a reserved slot) and a cancelled recv loses no item and
keeps the order; closing is counted per handle (receivers see the end only
once every sender handle is closed and everything was drained; sends fail
once every receiver handle is closed); the ``*_blocking`` forms park a
thread and refuse to run on a runtime's thread; one runtime at a time.

"Granted, then cancelled" is built deterministically: park task A, then
``a.cancel()`` and the grant in the same step, with no await in between.
Autojump clock everywhere except where another thread does the waking.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import subprocess
import sys
import threading
import time
import weakref

import pytest
from thread_helpers import REAL_GUARD, join, start_thread

import rio_rt as rio

GUARD = 60.0  # autojump seconds; reaching it means a wake-up was lost


async def settle(rounds: int = 5) -> None:
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
    return await operation(*args)


async def cancelled(task) -> bool:
    try:
        await task
    except rio.CancelledError:
        return True
    return False


async def drain(rx) -> list:
    """Everything buffered now (try_recv until WouldBlock or ChannelClosed)."""
    items = []
    while True:
        try:
            items.append(rx.try_recv())
        except (rio.WouldBlock, rio.ChannelClosed):
            return items


# =========================================================================== capacities


def test_rendezvous_send_completes_only_when_received(run):
    tx, rx = rio.channel(0)

    async def main():
        async with rio.timeout(GUARD):
            sender = rio.spawn(awaited(tx.send, "x"))
            await settle()
            assert not sender.done()
            assert len(rx) == 0  # nothing buffered in a rendezvous
            assert await rx.recv() == "x"
            await settle()
            assert sender.done()
            await sender

    run(main)


def test_rendezvous_send_to_a_waiting_receiver_completes_at_once(run):
    tx, rx = rio.channel(0)

    async def main():
        async with rio.timeout(GUARD):
            receiver = rio.spawn(awaited(rx.recv))
            await settle()
            await tx.send("a")  # the waiting receiver is the room
            assert await receiver == "a"
            receiver = rio.spawn(awaited(rx.recv))
            await settle()
            tx.try_send("b")
            assert await receiver == "b"

    run(main)


def test_rendezvous_try_send_without_a_waiting_receiver_would_block(run):
    tx, rx = rio.channel(0)

    async def main():
        with pytest.raises(rio.WouldBlock):
            tx.try_send(1)
        with pytest.raises(rio.WouldBlock):
            rx.try_recv()

    run(main)


def test_bounded_send_waits_while_full(run):
    tx, rx = rio.channel(2)

    async def main():
        async with rio.timeout(GUARD):
            await tx.send(1)
            await tx.send(2)
            assert len(rx) == 2
            third = rio.spawn(awaited(tx.send, 3))
            await settle()
            assert not third.done()
            with pytest.raises(rio.WouldBlock):
                tx.try_send(99)
            assert await rx.recv() == 1
            await third
            assert len(rx) == 2
            assert await drain(rx) == [2, 3]
            with pytest.raises(rio.WouldBlock):
                rx.try_recv()

    run(main)


def test_unbounded_send_never_waits(run):
    tx, rx = rio.channel(None)

    async def main():
        async with rio.timeout(GUARD):
            for i in range(1000):
                await tx.send(i)
            for i in range(1000, 2000):
                tx.try_send(i)
            assert len(rx) == 2000
            return [await rx.recv() for _ in range(2000)]

    assert run(main) == list(range(2000))


def test_try_send_and_try_recv(run):
    tx, rx = rio.channel(1)

    async def main():
        with pytest.raises(rio.WouldBlock):
            rx.try_recv()
        tx.try_send("a")
        with pytest.raises(rio.WouldBlock):
            tx.try_send("b")
        assert rx.try_recv() == "a"
        with pytest.raises(rio.WouldBlock):
            rx.try_recv()

    run(main)


def test_parked_senders_are_served_in_fifo_order(run):
    tx, rx = rio.channel(1)
    park_order = [3, 0, 2, 4, 1]

    async def main():
        async with rio.timeout(GUARD):
            await tx.send("first")
            senders = []
            for i in park_order:
                senders.append(rio.spawn(awaited(tx.send, i)))
                await settle()
            got = [await rx.recv() for _ in range(len(park_order) + 1)]
            for task in senders:
                await task
            return got

    assert run(main) == ["first"] + park_order


def test_parked_receivers_are_served_in_fifo_order(run):
    tx, rx = rio.channel(4)
    park_order = [2, 0, 3, 1]
    got = []

    async def receiver(i):
        got.append((i, await rx.recv()))

    async def main():
        async with rio.timeout(GUARD):
            tasks = []
            for i in park_order:
                tasks.append(rio.spawn(receiver(i)))
                await settle()
            for item in "abcd":
                await tx.send(item)
            for task in tasks:
                await task

    run(main)
    assert got == list(zip(park_order, "abcd", strict=True))


def test_send_to_a_full_channel_does_not_barge_past_parked_senders(run):
    tx, rx = rio.channel(1)

    async def main():
        async with rio.timeout(GUARD):
            await tx.send(1)
            parked = rio.spawn(awaited(tx.send, 2))
            await settle()
            assert rx.try_recv() == 1  # room: reserved for the parked sender
            with pytest.raises(rio.WouldBlock):
                tx.try_send(3)
            await parked
            assert await drain(rx) == [2]

    run(main)


# =========================================================================== threads


def test_send_blocking_from_a_thread(run):
    tx, rx = rio.channel(1)
    count = 200

    def producer():
        for i in range(count):
            tx.send_blocking(i)
        tx.close()

    async def main():
        thread = start_thread(producer)
        try:
            async with rio.timeout(REAL_GUARD):
                return [item async for item in rx]
        finally:
            join(thread)

    assert run(main, autojump=False) == list(range(count))


def test_recv_blocking_from_a_thread(run):
    tx, rx = rio.channel(0)
    count = 200
    got = []

    def consumer():
        while True:
            try:
                got.append(rx.recv_blocking())
            except rio.ChannelClosed:
                return

    async def main():
        thread = start_thread(consumer)
        try:
            async with rio.timeout(REAL_GUARD):
                for i in range(count):
                    await tx.send(i)
                tx.close()
        finally:
            join(thread)

    run(main, autojump=False)
    assert got == list(range(count))


def test_blocking_calls_between_two_threads():
    tx, rx = rio.channel(2)
    got = []

    def consumer():
        for _ in range(50):
            got.append(rx.recv_blocking())

    thread = start_thread(consumer)
    for i in range(50):
        tx.send_blocking(i)
    join(thread)
    assert got == list(range(50))


def test_blocking_calls_on_the_runtime_thread_raise(run):
    tx, rx = rio.channel(None)

    async def main():
        with pytest.raises(RuntimeError):
            tx.send_blocking(1)
        with pytest.raises(RuntimeError):
            rx.recv_blocking()
        assert len(rx) == 0  # the refused send sent nothing

    run(main)


def test_blocking_calls_in_an_asyncio_task_raise():
    tx, rx = rio.channel(None)

    async def main():
        with pytest.raises(RuntimeError):
            tx.send_blocking(1)
        with pytest.raises(RuntimeError):
            rx.recv_blocking()
        return "checked"

    assert asyncio.run(main()) == "checked"
    assert rio.run(main()) == "checked"


def test_send_blocking_fails_when_every_receiver_closes(run):
    tx, rx = rio.channel(0)
    errors = []

    def producer():
        try:
            tx.send_blocking("lost")
        except rio.ChannelClosed as exc:
            errors.append(exc)

    thread = start_thread(producer)
    time.sleep(0.01)  # let it park (if it has not, the send fails at once: same outcome)
    rx.close()
    join(thread)
    assert len(errors) == 1


def test_recv_blocking_ends_when_every_sender_closes():
    tx, rx = rio.channel(0)
    errors = []

    def consumer():
        try:
            rx.recv_blocking()
        except rio.ChannelClosed as exc:
            errors.append(exc)

    thread = start_thread(consumer)
    time.sleep(0.01)
    tx.close()
    join(thread)
    assert len(errors) == 1


class Interrupted(Exception):
    pass


def interrupt_main_thread_soon(delay: float = 0.05) -> threading.Thread:
    """Send SIGUSR1 to the main thread after ``delay`` (as Ctrl-C would arrive)."""
    main_id = threading.main_thread().ident

    def fire():
        time.sleep(delay)
        signal.pthread_kill(main_id, signal.SIGUSR1)

    return start_thread(fire)


def raise_interrupted(signum, frame):
    raise Interrupted


posix_only = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(signal, "pthread_kill"),
    reason="needs signal.pthread_kill",
)


@posix_only
def test_recv_blocking_interrupted_by_a_signal_loses_no_item():
    """A blocked recv_blocking left by an exception (Ctrl-C) must leave the queue:
    an item sent afterwards goes to the next receiver, not to the dead call."""
    tx, rx = rio.channel(None)
    previous = signal.signal(signal.SIGUSR1, raise_interrupted)
    try:
        thread = interrupt_main_thread_soon()
        with pytest.raises(Interrupted):
            rx.recv_blocking()
        join(thread)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    tx.try_send("item")
    assert rx.try_recv() == "item"


@posix_only
def test_send_blocking_interrupted_by_a_signal_sends_nothing_and_keeps_no_slot():
    tx, rx = rio.channel(1)
    tx.try_send("x")
    previous = signal.signal(signal.SIGUSR1, raise_interrupted)
    try:
        thread = interrupt_main_thread_soon()
        with pytest.raises(Interrupted):
            tx.send_blocking("never sent")
        join(thread)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert rx.try_recv() == "x"
    with pytest.raises(rio.WouldBlock):
        rx.try_recv()  # the interrupted send sent nothing
    tx.try_send("z")  # and holds no slot
    assert rx.try_recv() == "z"


# =========================================================================== closing


def test_receivers_see_the_end_only_after_every_sender_closes_and_the_buffer_drains(run):
    tx, rx = rio.channel(None)

    async def main():
        async with rio.timeout(GUARD):
            tx2 = tx.clone()
            tx3 = tx2.clone()
            await tx.send(1)
            await tx2.send(2)
            tx.close()
            tx.close()  # idempotent: does not count twice
            with pytest.raises(rio.ChannelClosed):
                await tx.send(3)  # a closed handle cannot send
            tx3.close()
            assert await rx.recv() == 1
            assert await rx.recv() == 2
            with pytest.raises(rio.WouldBlock):
                rx.try_recv()  # tx2 is still open: not the end
            assert await blocks(rx.recv())
            await tx2.send(4)
            tx2.close()
            assert await rx.recv() == 4  # drained before the end
            with pytest.raises(rio.ChannelClosed):
                await rx.recv()
            with pytest.raises(rio.ChannelClosed):
                rx.try_recv()

    run(main)


def test_parked_receiver_gets_channel_closed_when_the_last_sender_closes(run):
    tx, rx = rio.channel(1)

    async def main():
        async with rio.timeout(GUARD):
            tx2 = tx.clone()
            receivers = [rio.spawn(awaited(rx.recv)) for _ in range(2)]
            await settle()
            tx.close()
            await settle()
            assert not any(r.done() for r in receivers)
            tx2.close()
            for r in receivers:
                with pytest.raises(rio.ChannelClosed):
                    await r

    run(main)


def test_async_for_ends_after_every_sender_closes(run):
    tx, rx = rio.channel(2)

    async def producer(sender, items):
        with sender:
            for item in items:
                await sender.send(item)

    async def main():
        async with rio.timeout(GUARD):
            tx2 = tx.clone()
            a = rio.spawn(producer(tx, ["a1", "a2", "a3"]))
            b = rio.spawn(producer(tx2, ["b1", "b2", "b3"]))
            got = [item async for item in rx]
            await a
            await b
            return got

    got = run(main)
    assert sorted(got) == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert [g for g in got if g[0] == "a"] == ["a1", "a2", "a3"]
    assert [g for g in got if g[0] == "b"] == ["b1", "b2", "b3"]


def test_items_of_parked_senders_are_drained_before_the_end(run):
    tx, rx = rio.channel(0)

    async def main():
        async with rio.timeout(GUARD):
            tx2 = tx.clone()
            parked = rio.spawn(awaited(tx2.send, "late"))
            await settle()
            tx.close()
            tx2.close()  # the send is parked already: its item still counts
            assert await rx.recv() == "late"
            await parked
            with pytest.raises(rio.ChannelClosed):
                await rx.recv()

    run(main)


def test_send_after_every_receiver_closed_raises(run):
    tx, rx = rio.channel(4)

    async def main():
        async with rio.timeout(GUARD):
            rx2 = rx.clone()
            await tx.send(1)
            rx.close()
            assert not tx.is_closed()
            await tx.send(2)  # rx2 still open
            rx2.close()
            assert tx.is_closed()
            with pytest.raises(rio.ChannelClosed):
                await tx.send(3)
            with pytest.raises(rio.ChannelClosed):
                tx.try_send(4)
            with pytest.raises(rio.ChannelClosed):
                await rx.recv()  # a closed handle cannot receive

    run(main)


def test_parked_sender_gets_channel_closed_when_the_last_receiver_closes(run):
    tx, rx = rio.channel(0)

    async def main():
        async with rio.timeout(GUARD):
            senders = [rio.spawn(awaited(tx.send, i)) for i in range(3)]
            await settle()
            rx.close()
            for s in senders:
                with pytest.raises(rio.ChannelClosed):
                    await s

    run(main)


def test_context_managers_close_the_handles(run):
    async def main():
        async with rio.timeout(GUARD):
            tx, rx = rio.channel(1)
            with tx:
                await tx.send(1)
            assert tx.is_closed()
            with rx:
                assert await rx.recv() == 1
                with pytest.raises(rio.ChannelClosed):
                    await rx.recv()
            assert rx.is_closed()

            tx, rx = rio.channel(1)
            async with tx:
                await tx.send(2)
            async with rx:
                assert await rx.recv() == 2
            assert tx.is_closed() and rx.is_closed()

    run(main)


def test_handles_cannot_be_constructed_directly():
    for cls in (
        rio.Sender,
        rio.Receiver,
        rio.BroadcastSender,
        rio.BroadcastReceiver,
        rio.WatchSender,
        rio.WatchReceiver,
    ):
        with pytest.raises(TypeError):
            cls()


# =========================================================================== cancellation


def test_cancelled_queued_send_keeps_its_item_out(run):
    tx, rx = rio.channel(0)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(tx.send, "cancelled"))
            await settle()
            a.cancel()
            assert await cancelled(a)
            assert await blocks(rx.recv())  # nothing was sent
            b = rio.spawn(awaited(tx.send, "kept"))
            await settle()
            assert await rx.recv() == "kept"
            await b

    run(main)


def test_cancelled_send_granted_a_slot_sends_nothing_and_passes_the_slot_on(run):
    tx, rx = rio.channel(1)

    async def main():
        async with rio.timeout(GUARD):
            await tx.send("x")
            a = rio.spawn(awaited(tx.send, "a"))
            await settle()
            b = rio.spawn(awaited(tx.send, "b"))
            await settle()
            a.cancel()
            assert rx.try_recv() == "x"  # frees room: A is granted the slot
            assert await cancelled(a)
            await b
            assert await drain(rx) == ["b"]
            assert await blocks(rx.recv())

    run(main)


def test_cancelled_rendezvous_send_granted_a_receiver_sends_nothing(run):
    tx, rx = rio.channel(0)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(tx.send, "a"))
            await settle()
            b = rio.spawn(awaited(tx.send, "b"))
            await settle()
            a.cancel()
            got = await rx.recv()  # parking grants A; A is cancelled: B comes in
            assert await cancelled(a)
            await b
            assert await blocks(rx.recv())
            return got

    assert run(main) == "b"


def test_cancelled_queued_recv_takes_nothing(run):
    tx, rx = rio.channel(None)

    async def main():
        async with rio.timeout(GUARD):
            r = rio.spawn(awaited(rx.recv))
            await settle()
            r.cancel()
            assert await cancelled(r)
            await tx.send(1)
            await tx.send(2)
            return [await rx.recv(), await rx.recv()]

    assert run(main) == [1, 2]


def test_cancelled_recv_granted_an_item_passes_it_to_the_next_receiver(run):
    tx, rx = rio.channel(None)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(rx.recv))
            await settle()
            b = rio.spawn(awaited(rx.recv))
            await settle()
            a.cancel()
            tx.try_send("item")  # handed to A, which is cancelled
            assert await cancelled(a)
            return await b

    assert run(main) == "item"


def test_cancelled_recv_granted_an_item_puts_it_back_in_order(run):
    tx, rx = rio.channel(None)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(rx.recv))
            await settle()
            a.cancel()
            tx.try_send(1)  # handed to A
            tx.try_send(2)  # buffered
            tx.try_send(3)
            assert await cancelled(a)
            return await drain(rx)

    assert run(main) == [1, 2, 3]


def test_cancelled_async_for_loses_no_item(run):
    tx, rx = rio.channel(None)
    got = []

    async def consumer():
        async for item in rx:
            got.append(item)

    async def main():
        async with rio.timeout(GUARD):
            c = rio.spawn(consumer())
            await settle()
            c.cancel()
            tx.try_send("x")
            assert await cancelled(c)
            tx.close()
            return [item async for item in rx]

    assert run(main) == ["x"]
    assert got == []


# =========================================================================== bad input


def test_channel_bad_capacity():
    with pytest.raises(ValueError):
        rio.channel(-1)
    with pytest.raises(TypeError):
        rio.channel("x")
    with pytest.raises(TypeError):
        rio.channel(1.5)
    with pytest.raises(TypeError):
        rio.channel(True)
    with pytest.raises(ValueError):
        rio.broadcast(0)
    with pytest.raises(ValueError):
        rio.broadcast(-3)
    with pytest.raises(TypeError):
        rio.broadcast(None)
    with pytest.raises(TypeError):
        rio.broadcast("x")


# =========================================================================== broadcast


def test_broadcast_every_receiver_gets_every_value(run):
    tx, rx1 = rio.broadcast(8)
    rx2 = tx.subscribe()

    async def main():
        async with rio.timeout(GUARD):
            for i in range(5):
                tx.send(i)
            a = [await rx1.recv() for _ in range(5)]
            b = [await rx2.recv() for _ in range(5)]
            return a, b

    assert run(main) == (list(range(5)), list(range(5)))


def test_broadcast_send_wakes_every_parked_receiver(run):
    tx, rx = rio.broadcast(4)
    receivers = [rx] + [tx.subscribe() for _ in range(3)]

    async def main():
        async with rio.timeout(GUARD):
            tasks = [rio.spawn(awaited(r.recv)) for r in receivers]
            await settle()
            assert not any(t.done() for t in tasks)
            tx.send("v")
            return [await t for t in tasks]

    assert run(main) == ["v"] * 4


def test_broadcast_subscribe_gets_only_later_values(run):
    tx, rx = rio.broadcast(8)

    async def main():
        async with rio.timeout(GUARD):
            tx.send("before")
            late = tx.subscribe()
            tx.send("after")
            assert await rx.recv() == "before"
            assert await rx.recv() == "after"
            assert await late.recv() == "after"
            assert await blocks(late.recv())

    run(main)


def test_broadcast_lagged_once_then_continues_from_the_oldest_kept(run):
    tx, rx = rio.broadcast(2)

    async def main():
        async with rio.timeout(GUARD):
            for i in range(1, 6):
                tx.send(i)
            with pytest.raises(rio.Lagged) as info:
                await rx.recv()
            assert info.value.skipped == 3
            assert await rx.recv() == 4
            assert await rx.recv() == 5
            assert await blocks(rx.recv())
            tx.send(6)
            assert await rx.recv() == 6

    run(main)


def test_broadcast_lagged_in_async_for(run):
    tx, rx = rio.broadcast(2)

    async def main():
        async with rio.timeout(GUARD):
            for i in range(4):
                tx.send(i)
            tx.close()
            got = []
            with pytest.raises(rio.Lagged):
                async for value in rx:
                    got.append(value)
            got.extend([value async for value in rx])
            return got

    assert run(main) == [2, 3]


def test_broadcast_channel_closed_after_every_sender_closes(run):
    tx, rx = rio.broadcast(4)

    async def main():
        async with rio.timeout(GUARD):
            tx2 = tx.clone()
            tx.send(1)
            tx.close()
            with pytest.raises(rio.ChannelClosed):
                tx.send(2)
            assert await rx.recv() == 1
            parked = rio.spawn(awaited(rx.recv))
            await settle()
            assert not parked.done()  # tx2 still open
            tx2.send(3)
            assert await parked == 3
            parked = rio.spawn(awaited(rx.recv))
            await settle()
            tx2.close()
            with pytest.raises(rio.ChannelClosed):
                await parked
            with pytest.raises(rio.ChannelClosed):
                await rx.recv()

    run(main)


def test_broadcast_values_are_read_before_the_end(run):
    tx, rx = rio.broadcast(4)

    async def main():
        async with rio.timeout(GUARD):
            with tx:
                tx.send("a")
                tx.send("b")
            return [v async for v in rx]

    assert run(main) == ["a", "b"]


def test_broadcast_cancelled_recv_granted_a_value_keeps_it_unread(run):
    tx, rx = rio.broadcast(4)
    other = tx.subscribe()

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(rx.recv))
            await settle()
            a.cancel()
            tx.send("v")  # handed to A, which is cancelled
            assert await cancelled(a)
            assert await rx.recv() == "v"  # still unread for this receiver
            assert await other.recv() == "v"

    run(main)


TWO_TASKS_ON_ONE_BROADCAST_RECEIVER = """
import rio_rt as rio

async def recv(rx):
    return await rx.recv()

async def main():
    tx, rx = rio.broadcast(4)
    async with rio.timeout(60):
        a = rio.spawn(recv(rx))
        b = rio.spawn(recv(rx))
        for _ in range(5):
            await rio.yield_now()
        tx.send(1)
        for _ in range(5):
            await rio.yield_now()
        tx.send(2)
        return sorted([await a, await b])

print(rio.Runtime(autojump_clock=True).block_on(main()))
"""


def test_broadcast_two_tasks_receiving_on_one_receiver(tmp_path):
    """Two tasks parked in recv() of the same receiver: a send must not fail, and
    each value goes to one of them. (Run in a child process: a crash here must
    fail this test, not end the suite.)"""
    child = subprocess.run(
        # -P, and not from the checkout: the installed rio_core, not the source folder
        [sys.executable, "-P", "-c", TWO_TASKS_ON_ONE_BROADCAST_RECEIVER],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=REAL_GUARD * 3,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "[1, 2]"


def test_broadcast_closed_receiver(run):
    tx, rx = rio.broadcast(4)

    async def main():
        with rx:
            pass
        with pytest.raises(rio.ChannelClosed):
            await rx.recv()
        tx.send(1)  # other receivers (none) are unaffected; never waits

    run(main)


# =========================================================================== watch


def test_watch_borrow_and_changed(run):
    tx, rx = rio.watch("v0")

    async def main():
        async with rio.timeout(GUARD):
            assert rx.borrow() == "v0"
            assert tx.borrow() == "v0"
            assert not rx.has_changed()
            assert await blocks(rx.changed())
            waiter = rio.spawn(awaited(rx.changed))
            await settle()
            tx.send("v1")
            await waiter
            assert rx.borrow() == "v1"
            assert not rx.has_changed()
            assert await blocks(rx.changed())

    run(main)


def test_watch_changed_returns_at_once_for_an_unseen_value(run):
    tx, rx = rio.watch(0)

    async def main():
        async with rio.timeout(GUARD):
            tx.send(1)
            tx.send(2)
            assert rx.has_changed()
            await rx.changed()  # several sends count as one change
            assert rx.borrow() == 2
            assert await blocks(rx.changed())

    run(main)


def test_watch_wakes_every_receiver(run):
    tx, rx = rio.watch(0)
    receivers = [rx, tx.subscribe(), rx.clone()]

    async def main():
        async with rio.timeout(GUARD):
            tasks = [rio.spawn(awaited(r.changed)) for r in receivers]
            await settle()
            tx.send(1)
            for t in tasks:
                await t
            return [r.borrow() for r in receivers]

    assert run(main) == [1, 1, 1]


def test_watch_subscribe_sees_the_current_value_as_seen(run):
    tx, rx = rio.watch(0)

    async def main():
        async with rio.timeout(GUARD):
            tx.send(1)
            late = tx.subscribe()
            assert not late.has_changed()
            assert rx.has_changed()
            assert await blocks(late.changed())

    run(main)


def test_watch_channel_closed_after_the_sender_closes(run):
    tx, rx = rio.watch(0)
    other = tx.subscribe()

    async def main():
        async with rio.timeout(GUARD):
            parked = rio.spawn(awaited(rx.changed))
            await settle()
            tx.send(1)
            await parked
            parked = rio.spawn(awaited(rx.changed))
            await settle()
            tx.close()
            with pytest.raises(rio.ChannelClosed):
                await parked
            with pytest.raises(rio.ChannelClosed):
                await rx.changed()
            with pytest.raises(rio.ChannelClosed):
                tx.send(2)
            # an unseen value is still reported before the end
            await other.changed()
            assert other.borrow() == 1
            with pytest.raises(rio.ChannelClosed):
                await other.changed()

    run(main)


def test_watch_cancelled_changed_leaves_the_change_unseen(run):
    tx, rx = rio.watch(0)

    async def main():
        async with rio.timeout(GUARD):
            a = rio.spawn(awaited(rx.changed))
            await settle()
            a.cancel()
            tx.send(1)  # granted to A, which is cancelled
            assert await cancelled(a)
            assert rx.has_changed()
            assert not await blocks(rx.changed())

    run(main)


def test_watch_closed_receiver(run):
    tx, rx = rio.watch(0)

    async def main():
        with rx:
            pass
        with pytest.raises(rio.ChannelClosed):
            await rx.changed()

    run(main)


# =========================================================================== both doors


async def asyncio_settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def run_door(door, body):
    """Run ``body(spawn, settle)`` through one door, bounded in time."""
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


@pytest.mark.parametrize("capacity", [0, 1, None])
@pytest.mark.parametrize("door", DOORS)
def test_door_channel_producers_and_consumer(door, capacity):
    async def body(spawn, settle_):
        tx, rx = rio.channel(capacity)

        async def producer(sender, base):
            with sender:
                for i in range(20):
                    await sender.send(base + i)

        tx2 = tx.clone()
        producers = [spawn(producer(tx, 0)), spawn(producer(tx2, 100))]
        got = []
        async for item in rx:
            got.append(item)
        for p in producers:
            await p
        return got

    got = run_door(door, body)
    assert [g for g in got if g < 100] == list(range(20))
    assert [g for g in got if g >= 100] == list(range(100, 120))


@pytest.mark.parametrize("door", DOORS)
def test_door_channel_cancellation(door):
    async def body(spawn, settle_):
        tx, rx = rio.channel(1)
        await tx.send("x")
        a = spawn(awaited(tx.send, "a"))
        await settle_()
        b = spawn(awaited(tx.send, "b"))
        await settle_()
        a.cancel()
        assert rx.try_recv() == "x"  # grants A a slot; A is cancelled: B gets it
        assert await task_cancelled(a)
        await b
        assert rx.try_recv() == "b"
        r1 = spawn(awaited(rx.recv))
        await settle_()
        r2 = spawn(awaited(rx.recv))
        await settle_()
        r1.cancel()
        tx.try_send("c")  # handed to r1 (cancelled): passes on to r2
        assert await task_cancelled(r1)
        result = await r2
        with pytest.raises(rio.WouldBlock):
            rx.try_recv()
        return result

    assert run_door(door, body) == "c"


@pytest.mark.parametrize("door", DOORS)
def test_door_broadcast_and_watch(door):
    async def body(spawn, settle_):
        btx, brx = rio.broadcast(4)
        other = btx.subscribe()
        wtx, wrx = rio.watch(0)
        waits = [spawn(awaited(brx.recv)), spawn(awaited(other.recv)), spawn(awaited(wrx.changed))]
        await settle_()
        btx.send("b")
        wtx.send(1)
        results = [await w for w in waits]
        btx.close()
        wtx.close()
        with pytest.raises(rio.ChannelClosed):
            await brx.recv()
        with pytest.raises(rio.ChannelClosed):
            await wrx.changed()
        return results[:2], wrx.borrow()

    assert run_door(door, body) == (["b", "b"], 1)


@pytest.mark.parametrize("door", DOORS)
def test_door_blocking_thread_and_task(door):
    async def body(spawn, settle_):
        to_thread, from_task = rio.channel(1)
        to_task, from_thread = rio.channel(0)

        def echo():
            with to_task:
                while True:
                    try:
                        item = from_task.recv_blocking()
                    except rio.ChannelClosed:
                        return
                    to_task.send_blocking(item * 2)

        thread = start_thread(echo)
        try:
            got = []
            for i in range(30):
                await to_thread.send(i)
                got.append(await from_thread.recv())
            to_thread.close()
            with pytest.raises(rio.ChannelClosed):
                await from_thread.recv()
        finally:
            join(thread)
        return got

    assert run_door(door, body) == [2 * i for i in range(30)]


# =========================================================================== one runtime at a time


def test_channel_waited_on_by_two_runtimes_at_once_raises():
    tx, rx = rio.channel(0)
    rx2 = rx.clone()
    parked = threading.Event()
    checked = threading.Event()
    errors = []
    got = []

    def first_runtime():
        async def main():
            waiter = rio.spawn(awaited(rx.recv))
            await settle()
            parked.set()
            checked.wait(REAL_GUARD)  # hold the runtime while the other one tries
            tx.try_send("item")
            async with rio.timeout(REAL_GUARD):
                got.append(await waiter)

        try:
            rio.Runtime().block_on(main())
        except BaseException as exc:
            errors.append(exc)

    def second_runtime():
        async def main():
            try:
                async with rio.timeout(REAL_GUARD):
                    await rx2.recv()
            except RuntimeError as exc:
                errors.append(exc)
            finally:
                checked.set()

        parked.wait(REAL_GUARD)
        rio.Runtime().block_on(main())

    threads = [start_thread(first_runtime), start_thread(second_runtime)]
    for thread in threads:
        join(thread)
    assert len(errors) == 1, errors
    assert isinstance(errors[0], RuntimeError)
    assert "another runtime" in str(errors[0])
    assert got == ["item"]


def test_channel_used_by_one_runtime_after_another(run):
    tx, rx = rio.channel(0)

    async def main():
        async with rio.timeout(GUARD):
            r = rio.spawn(awaited(rx.recv))
            await settle()
            await tx.send("x")
            return await r

    assert run(main) == "x"
    assert run(main) == "x"


# =========================================================================== the fast path


@pytest.mark.parametrize("door", DOORS)
def test_door_operations_do_nothing_until_awaited(door):
    """send() and recv() are lazy, also when they could complete at once; each one
    awaited later completes then, in the order awaited."""

    async def body(spawn, settle_):
        tx, rx = rio.channel(4)
        tx.send("dropped")  # never awaited: sends nothing
        first, second = tx.send(1), tx.send(2)
        assert len(rx) == 0
        await second
        await first
        assert len(rx) == 2
        rx.recv()  # never awaited: takes nothing
        later, sooner = rx.recv(), rx.recv()
        got = [await sooner, await later]
        assert len(rx) == 0
        return got

    assert run_door(door, body) == [2, 1]


@pytest.mark.parametrize("door", DOORS)
def test_door_an_operation_held_after_its_await_is_not_reused(door):
    """A handle reuses the waiter of its last operation only when nothing else
    refers to it: one held by the caller stays done (awaiting it again raises)."""

    async def body(spawn, settle_):
        tx, rx = rio.channel(4)
        sent = tx.send("a")
        await sent
        again = tx.send("b")
        assert again is not sent
        await again
        received = rx.recv()
        assert await received == "a"
        assert rx.recv() is not received
        with pytest.raises(RuntimeError, match="already awaited"):
            await sent
        with pytest.raises(RuntimeError, match="already awaited"):
            await received
        return await drain(rx)

    assert run_door(door, body) == ["b"]


@pytest.mark.parametrize("door", DOORS)
def test_door_operations_on_one_handle_from_many_tasks(door):
    """Tasks sharing one Sender and one Receiver, parked and fast path mixed:
    every item arrives once, each sender's items in order."""

    async def body(spawn, settle_):
        tx, rx = rio.channel(2)

        async def produce(base):
            for i in range(30):
                await tx.send(base + i)

        async def consume():
            got = []
            for _ in range(30):
                got.append(await rx.recv())
            return got

        consumers = [spawn(consume()) for _ in range(2)]
        producers = [spawn(produce(base)) for base in (0, 1000)]
        for p in producers:
            await p
        return [await c for c in consumers]

    a, b = run_door(door, body)
    got = a + b
    assert sorted(got) == list(range(30)) + list(range(1000, 1030))
    for received in (a, b):
        assert [g for g in received if g < 1000] == sorted(g for g in received if g < 1000)
        assert [g for g in received if g >= 1000] == sorted(g for g in received if g >= 1000)


def test_operations_that_complete_at_once_do_not_switch_tasks(run):
    """A send with room and a recv of a buffered item complete on their first
    poll: no other task runs meanwhile."""
    tx, rx = rio.channel(8)
    ran = []

    async def other():
        ran.append(True)

    async def main():
        rio.spawn(other())
        for i in range(8):
            await tx.send(i)
        got = [await rx.recv() for _ in range(8)]
        assert ran == []
        await settle()
        assert ran == [True]
        return got

    assert run(main) == list(range(8))


@pytest.mark.parametrize("moves_on", ["next send", "close"])
def test_a_send_never_awaited_holds_its_item_only_until_the_handle_moves_on(moves_on):
    class Item:
        pass

    tx, rx = rio.channel(4)
    item = Item()
    ref = weakref.ref(item)
    tx.send(item)  # never awaited
    del item
    gc.collect()
    if moves_on == "close":
        tx.close()
    else:
        tx.send("another")  # also never awaited
    gc.collect()
    assert ref() is None
    with pytest.raises(rio.ChannelClosed if moves_on == "close" else rio.WouldBlock):
        rx.try_recv()  # nothing was sent


def test_a_parked_recv_ends_when_its_receiver_and_every_sender_close() -> None:
    async def main() -> tuple[object, object]:
        tx, rx = rio.channel(0)

        async def send() -> str:
            try:
                await tx.send(101)
                return "sent"
            except rio.ChannelClosed:
                return "closed"

        async def recv() -> object:
            try:
                return await rx.recv()
            except rio.ChannelClosed:
                return "closed"

        sender, receiver = rio.spawn(send()), rio.spawn(recv())
        await rio.yield_now()
        rx.close()
        tx.close()
        for _ in range(5):
            await rio.yield_now()
        return sender.done() and sender.result(), receiver.done() and receiver.result()

    assert rio.Runtime(autojump_clock=True).block_on(main()) == ("closed", "closed")
