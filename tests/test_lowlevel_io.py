"""Readiness waits (rio_rt.lowlevel) and the reactor's cadence under load.

Real-clock runtimes only (an autojump clock does not mix with I/O); every
body runs inside ``rio.timeout`` so a lost wake fails the test, not the suite.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import rio_rt as rio
from rio_rt.lowlevel import (
    BusyResourceError,
    ClosedResourceError,
    notify_closing,
    wait_readable,
    wait_writable,
)
from rio_rt.net import TcpListener, TcpStream
from rio_rt.testing import run_with_timeout as run_io
from rio_rt.testing import runtime_stats as stats


async def wait_until(predicate: Callable[[], bool], what: str, seconds: float = 2.0) -> None:
    deadline = rio.monotonic() + seconds
    while not predicate():
        if rio.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await rio.yield_now()


@contextlib.contextmanager
def socketpair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def fill_send_buffer(sock: socket.socket) -> None:
    chunk = bytes(65536)
    while True:
        try:
            sock.send(chunk)
        except BlockingIOError:
            return


# --------------------------------------------------------------------------- waits


def test_wait_readable_and_wait_writable_on_a_socketpair():
    async def main():
        with socketpair() as (a, b):
            await wait_writable(a)  # a fresh socket has buffer space
            reader = rio.spawn(wait_readable(b))
            # parked: the task is idle (a's writable interest may already be gone, as
            # the reactor drops interest an event finds no waiter for)
            await wait_until(lambda: "idle" in repr(reader), "the reader parked")
            for _ in range(3):
                await rio.yield_now()
            assert not reader.done(), "readable before anything was sent"
            a.send(b"x")
            assert await reader is None
            assert b.recv(1) == b"x"
            # accepts an fd number as well as a socket
            a.send(b"y")
            await wait_readable(b.fileno())
            assert b.recv(1) == b"y"
            await wait_writable(a.fileno())

    run_io(main)


def test_wait_readable_returns_for_data_that_arrived_before_the_wait():
    async def main():
        with socketpair() as (a, b):
            a.send(b"early")
            await wait_readable(b)
            assert b.recv(16) == b"early"

    run_io(main)


def test_wait_writable_blocks_on_a_full_buffer_until_the_peer_reads():
    async def main():
        with socketpair() as (a, b):
            fill_send_buffer(a)
            writer = rio.spawn(wait_writable(a))
            await wait_until(lambda: stats()["fds"] >= 1, "the writer parked")
            for _ in range(3):
                await rio.yield_now()
            assert not writer.done(), "writable although the send buffer is full"
            while True:
                try:
                    if not b.recv(1 << 20):
                        break
                except BlockingIOError:
                    break
            await writer

    run_io(main)


def test_a_reader_and_a_writer_may_wait_on_one_fd_together():
    async def main():
        with socketpair() as (a, b):
            fill_send_buffer(a)
            reader = rio.spawn(wait_readable(a))
            writer = rio.spawn(wait_writable(a))
            await wait_until(lambda: stats()["fds"] >= 1, "both parked")
            for _ in range(3):
                await rio.yield_now()
            assert not reader.done() and not writer.done()
            b.send(b"wake the reader only")
            await reader
            for _ in range(3):
                await rio.yield_now()
            assert not writer.done()
            while True:
                try:
                    b.recv(1 << 20)
                except BlockingIOError:
                    break
            await writer

    run_io(main)


def test_two_readers_of_one_fd_is_a_busy_resource_error():
    async def main():
        with socketpair() as (a, b):
            first = rio.spawn(wait_readable(b))
            await wait_until(lambda: stats()["fds"] == 1, "the first reader parked")
            with pytest.raises(BusyResourceError) as info:
                await wait_readable(b)
            assert str(b.fileno()) in str(info.value)
            a.send(b"x")
            await first  # the first waiter is untouched by the refused second one

    run_io(main)


def test_two_writers_of_one_fd_is_a_busy_resource_error():
    async def main():
        with socketpair() as (a, b):
            fill_send_buffer(a)
            first = rio.spawn(wait_writable(a))
            await wait_until(lambda: stats()["fds"] == 1, "the first writer parked")
            with pytest.raises(BusyResourceError):
                await wait_writable(a)
            first.cancel()
            with pytest.raises(rio.CancelledError):
                await first

    run_io(main)


@pytest.mark.parametrize("direction", ["readable", "writable"])
def test_notify_closing_wakes_the_waiter_with_closed_resource_error(direction):
    async def main():
        with socketpair() as (a, b):
            if direction == "writable":
                fill_send_buffer(b)
            wait = wait_readable if direction == "readable" else wait_writable
            waiter = rio.spawn(wait(b))
            await wait_until(lambda: stats()["fds"] == 1, "the waiter parked")
            started = rio.monotonic()
            notify_closing(b)
            with pytest.raises(ClosedResourceError) as info:
                await waiter
            assert rio.monotonic() - started < 0.5
            assert isinstance(info.value, OSError)
            assert stats()["fds"] == 0
            # the fd itself is still open: waiting on it again works
            a.send(b"x") if direction == "readable" else b.recv(0)
            if direction == "readable":
                await wait_readable(b)

    run_io(main)


def test_notify_closing_without_waiters_or_runtime_is_harmless():
    with socketpair() as (_a, b):
        notify_closing(b)  # no runtime: nothing to do

        async def main():
            notify_closing(b)  # never registered
            assert stats()["fds"] == 0

        run_io(main)


@pytest.mark.parametrize("direction", ["readable", "writable"])
def test_cancelling_a_waiter_leaves_no_interest(direction):
    async def main():
        with socketpair() as (a, b):
            if direction == "writable":
                fill_send_buffer(b)
            baseline = stats()["fds"]
            wait = wait_readable if direction == "readable" else wait_writable
            waiter = rio.spawn(wait(b))
            await wait_until(lambda: stats()["fds"] == baseline + 1, "the waiter parked")
            waiter.cancel()
            with pytest.raises(rio.CancelledError):
                await waiter
            assert stats()["fds"] == baseline
            # and a new wait on the same fd is neither busy nor lost
            if direction == "readable":
                a.send(b"x")
                await wait_readable(b)
            else:
                while True:
                    try:
                        a.recv(1 << 20)
                    except BlockingIOError:
                        break
                await wait_writable(b)

    run_io(main)


def test_a_timeout_around_a_wait_leaves_no_interest():
    async def main():
        with socketpair() as (_a, b):
            baseline = stats()["fds"]
            with pytest.raises(TimeoutError):
                async with rio.timeout(0.02):
                    await wait_readable(b)
            assert stats()["fds"] == baseline

    run_io(main)


def test_a_readiness_nobody_consumes_does_not_make_the_reactor_spin():
    async def main():
        with socketpair() as (a, b):
            a.send(b"never read")
            await wait_readable(b)  # registers b; the data stays unread
            await wait_writable(a)  # a is writable for good
            before = stats()
            await rio.sleep(0.2)  # nothing ready: the runtime sleeps in the reactor
            after = stats()
            waits = after["reactor_waits"] - before["reactor_waits"]
            assert waits < 20, f"the reactor polled {waits} times in 0.2 s with nothing to do"
            assert after["fds"] == 0

    run_io(main)


def test_a_reused_fd_number_is_watched_again_after_a_plain_close():
    """Closing an fd without notify_closing (no task waits on it) must not
    leave a stale registration that swallows waits on the next fd that gets
    the same number (the kernel drops a closed fd from epoll by itself)."""

    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        a.send(b"x")
        await wait_readable(b)  # b's fd is now known to the reactor
        b.recv(1)
        fd = b.fileno()
        a.close()
        b.close()  # plain close: nobody waits on it
        c, d = socket.socketpair()
        with c, d:
            c.setblocking(False)
            d.setblocking(False)
            reused, peer = (c, d) if c.fileno() == fd else (d, c)
            if reused.fileno() != fd:
                pytest.skip("the kernel did not reuse the fd number")
            reader = rio.spawn(wait_readable(reused))
            await rio.yield_now()
            peer.send(b"y")
            try:
                async with rio.timeout(2.0):
                    await reader
            except TimeoutError:
                reader.cancel()
                with contextlib.suppress(rio.CancelledError):
                    await reader
                raise AssertionError(
                    f"wait_readable on reused fd {fd} never woke although data was sent"
                ) from None

    run_io(main)


def test_a_stream_that_gets_the_number_of_a_plainly_closed_fd_is_watched():
    """A raw socket waited on with wait_readable and closed without
    notify_closing leaves its number free; a stream accepted afterwards may
    get that number, and its reads must still be woken by the reactor."""

    async def main():
        dummies: list[int] = []
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            client = socket.socket()  # takes its number before the reuse below
            a, b = socket.socketpair()
            try:
                a.setblocking(False)
                b.setblocking(False)
                a.send(b"x")
                await wait_readable(b)
                b.recv(1)
                fd = b.fileno()
                b.close()  # plain close: no task waits on it
                while (dummy := os.open(os.devnull, os.O_RDONLY)) < fd:
                    dummies.append(dummy)  # fill lower holes: accept() gets `fd`
                os.close(dummy)
                if dummy != fd:
                    pytest.skip(f"fd {fd} was taken by something else")
                client.connect(listener.local_address)
                server, _ = await listener.accept()
                async with server:
                    if server.fileno() != fd:
                        pytest.skip("the accepted stream did not get the reused number")
                    reader = rio.spawn(server.read())
                    for _ in range(3):
                        await rio.yield_now()  # the reader parks in read()
                    client.send(b"hello")
                    try:
                        async with rio.timeout(2.0):
                            assert await reader == b"hello"
                    except TimeoutError:
                        reader.cancel()
                        with contextlib.suppress(rio.CancelledError):
                            await reader
                        raise AssertionError(
                            f"read() on an accepted stream with reused fd {fd} never woke"
                        ) from None
            finally:
                for dummy in dummies:
                    os.close(dummy)
                a.close()
                client.close()

    run_io(main)


@pytest.mark.parametrize("bad", ["3", 3.0, None, object()])
def test_waits_reject_what_is_not_an_fd(bad):
    with pytest.raises(TypeError):
        wait_readable(bad)
    with pytest.raises(TypeError):
        wait_writable(bad)
    with pytest.raises(TypeError):
        notify_closing(bad)


def test_waits_reject_a_negative_fd():
    with pytest.raises(ValueError):
        wait_readable(-1)
    with pytest.raises(ValueError):
        wait_writable(-5)


# --------------------------------------------------------------------------- starvation bound


def ticks_from_send_to_read(busy_tasks: int, step_seconds: float, rounds: int = 5) -> list[int]:
    """Per round, how many ticks pass between a send and the read of a reader parked
    on the other end, while ``busy_tasks`` tasks only yield, each step of each
    spinning for ``step_seconds`` of CPU first."""
    rt = rio.Runtime()

    async def main() -> list[int]:
        stop = False

        async def busy() -> None:
            while not stop:
                began = time.perf_counter()
                while time.perf_counter() - began < step_seconds:  # CPU work is the subject
                    pass
                await rio.yield_now()

        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            host, port = listener.local_address
            client = await TcpStream.connect(host, port)
            server, _ = await listener.accept()
        spinners = [rio.spawn(busy()) for _ in range(busy_tasks)]
        elapsed = []
        async with client, server:
            for i in range(rounds):
                seen: dict[str, Any] = {}

                async def reader(seen: dict[str, Any]) -> None:
                    seen["parked"] = True  # set in the same step that parks in read()
                    seen["data"] = await server.read(16)
                    seen["ticks"] = rt.stats()["ticks"]

                task = rio.spawn(reader(seen))
                while "parked" not in seen:
                    await rio.yield_now()
                for _ in range(3):  # several full ticks with the reader parked
                    await rio.yield_now()
                assert not task.done()
                await client.write_all(b"round %d" % i)
                sent_at = rt.stats()["ticks"]
                await task
                assert seen["data"] == b"round %d" % i
                elapsed.append(seen["ticks"] - sent_at)
        stop = True
        for spinner in spinners:
            await spinner
        return elapsed

    async def bounded() -> list[int]:
        async with rio.timeout(20):
            return await main()

    return rt.block_on(bounded())


def test_a_readable_socket_is_read_within_three_ticks_under_2000_busy_tasks():
    """The tick polls the reactor at least every IO_POLL_EVERY_TICKS ticks or
    IO_POLL_INTERVAL_NS (see rio_core/_runtime.pyx): with 2,000 tasks that
    only yield, one tick is far longer than the interval, so a reader parked
    on a socket must run in the tick after the data was sent."""
    elapsed = ticks_from_send_to_read(busy_tasks=2000, step_seconds=0)
    assert max(elapsed) <= 3, f"ticks from send to read, per round: {elapsed}"


def test_a_readable_socket_is_read_within_three_ticks_when_each_short_tick_is_slow():
    """One task whose every step is slow (here: 200 us of busy CPU) makes ticks of a
    single entry that each outlast the poll interval: the reader must run within a
    few ticks of the send, not only at the 16-tick mark."""
    elapsed = ticks_from_send_to_read(busy_tasks=1, step_seconds=200e-6)
    assert max(elapsed) <= 3, f"ticks from send to read, per round: {elapsed}"


def test_a_reader_woken_by_a_busy_poll_runs_in_the_tick_of_that_poll():
    """What a poll made while work is ready reports runs at once, ahead of what the
    batch queued (rio_core/_runtime.pyx, run_polled): with every tick long enough to
    poll, the reader runs in the very tick whose step sent the data, not the next."""
    assert ticks_from_send_to_read(busy_tasks=1, step_seconds=200e-6) == [0] * 5
    assert ticks_from_send_to_read(busy_tasks=200, step_seconds=1e-6) == [0] * 5
