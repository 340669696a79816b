"""File-descriptor reuse: a registration belongs to an open file, not to a number.

When a socket is closed, the kernel frees its fd number and hands the lowest free
number to the next socket, so a new socket made right after a close usually gets
the same number. epoll forgets a closed fd by itself (the close drops it from the
interest list), but the reactor's own table, keyed by the number, does not know
that. If that table still holds the old registration, a registration for the new
socket looks like "no change of interest" and the reactor skips ``epoll_ctl``: the
kernel never watches the new socket, and its reader, writer or waiting task is never
woken. The program hangs.

The bug class was found running anyio's test suite on rio's loop. Its paths:

- ``loop.remove_reader(sock)``/``remove_writer(sock)`` on a socket object already
  closed (``sock.fileno() == -1``) must find the registration by the object, as
  ``selectors`` does, remove it and return True, as stdlib asyncio does; rio raised
  ``ValueError: Invalid file descriptor: -1`` and left the registration in place.
- A callback added for a new socket that reuses a closed socket's number must run,
  however the old registration ended (removed by object, by number, or never).
- Native waits (``rio_rt.lowlevel.wait_readable``/``wait_writable``) on a reused
  number must complete; a task still parked on the closed socket must be woken with
  ``ClosedResourceError`` instead of holding the slot (``BusyResourceError``) forever.

The asyncio-door tests run the same body on stdlib asyncio (the oracle) and on rio's
loop (``arun``), except where asyncio itself hangs (said at the test). Everything is
on ``socketpair()``; every wait is bounded by ``DEADLINE`` seconds, so a lost wake-up
fails its test in about a second instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import rio_rt as rio
from rio_rt.lowlevel import ClosedResourceError, wait_readable, wait_writable
from rio_rt.testing import run_on_loop
from rio_rt.testing import run_with_timeout as run_io
from rio_rt.testing import runtime_stats as stats

DEADLINE = 1.0  # seconds any one wake-up may take; loopback wakes in well under 1 ms
OUTER_BOUND = 2.5  # safety bound on a whole test body (at most two DEADLINEs in sequence)

NEVER_RAN = f"did not run within {DEADLINE} s"
STILL_WAITING = f"still waiting after {DEADLINE} s"


# ------------------------------------------------------------------ sockets


@pytest.fixture(autouse=True)
def no_collection_between_a_close_and_the_reuse() -> Iterator[None]:
    """The reuse is asserted on the lowest free number: a collection that frees an
    earlier test's garbage runtime (its epoll fd and wake pipe) between a close and
    the new socketpair would hand out a lower number. Collect first, then not at all."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextlib.contextmanager
def socketpair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A non-blocking socketpair, both ends closed on exit (closing twice is harmless)."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@contextlib.contextmanager
def pair_reusing(fd: int) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A new socketpair made right after ``fd`` was closed: ``(the end that got
    number fd, its peer)``. The kernel hands out the lowest free number, so the
    reuse is asserted, not hoped for."""
    with socketpair() as (a, b):
        numbers = (a.fileno(), b.fileno())
        assert fd in numbers, f"closed fd {fd} was not reused by the new pair {numbers}"
        yield (a, b) if a.fileno() == fd else (b, a)


def fill_send_buffer(sock: socket.socket) -> None:
    chunk = bytes(65536)
    while True:
        try:
            sock.send(chunk)
        except BlockingIOError:
            return


# ------------------------------------------------------------------ the asyncio door

DIRECTIONS = ["reader", "writer"]


def add(
    loop: asyncio.AbstractEventLoop, direction: str, fileobj: Any, callback: Callable[[], Any]
) -> None:
    getattr(loop, f"add_{direction}")(fileobj, callback)


def remove(loop: asyncio.AbstractEventLoop, direction: str, fileobj: Any) -> Any:
    return getattr(loop, f"remove_{direction}")(fileobj)


def make_ready(direction: str, peer: socket.socket) -> None:
    """Make the peer's other end ready: readable needs a byte; a fresh socket is writable."""
    if direction == "reader":
        peer.send(b"x")


def outcome_of(call: Callable[[], Any]) -> Any:
    """The call's value, or its exception as ``"TypeName: message"`` (comparable)."""
    try:
        return call()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


async def ran_within_deadline(fired: asyncio.Future[None]) -> str:
    try:
        async with asyncio.timeout(DEADLINE):
            await fired
    except TimeoutError:
        return NEVER_RAN
    return "ran"


def one_shot(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Future[None], Callable[[], None]]:
    """A future and a callback that resolves it (a reader/writer may fire repeatedly)."""
    fired = loop.create_future()
    return fired, lambda: fired.done() or fired.set_result(None)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_removing_the_callback_of_a_closed_socket_object_returns_true(arun, direction):
    """asyncio finds the registration by the object (selectors' lookup falls back to
    identity when fileno() is -1), removes it and returns True; rio raised ValueError."""

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        with socketpair() as (ours, _theirs):
            add(loop, direction, ours, lambda: None)
            ours.close()
            assert ours.fileno() == -1
            return outcome_of(lambda: remove(loop, direction, ours))

    removed = arun(main(), seconds=OUTER_BOUND)
    assert removed is True


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_callback_on_a_reused_fd_runs_after_removing_the_closed_socket_object(arun, direction):
    """remove_X(closed socket), then add_X on the new socket that got its number: the
    new registration must reach epoll (the kernel dropped the old fd on close)."""

    async def main() -> tuple[Any, str]:
        loop = asyncio.get_running_loop()
        with socketpair() as (old, old_peer):
            add(loop, direction, old, lambda: None)
            fd = old.fileno()
            old.close()
            old_peer.close()
            removed = outcome_of(lambda: remove(loop, direction, old))
        with pair_reusing(fd) as (new, new_peer):
            fired, callback = one_shot(loop)
            add(loop, direction, new, callback)
            try:
                make_ready(direction, new_peer)
                return removed, await ran_within_deadline(fired)
            finally:
                remove(loop, direction, new)

    removed, callback = arun(main(), seconds=OUTER_BOUND)
    assert (removed, callback) == (True, "ran")


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_callback_on_a_reused_fd_runs_after_removing_by_the_closed_number(arun, direction):
    """remove_X(fd) with the plain number after the socket was closed: asyncio returns
    True (it ignores the EBADF of the epoll unregister); the reused number then works."""

    async def main() -> tuple[Any, str]:
        loop = asyncio.get_running_loop()
        with socketpair() as (old, old_peer):
            add(loop, direction, old, lambda: None)
            fd = old.fileno()
            old.close()
            old_peer.close()
            removed = outcome_of(lambda: remove(loop, direction, fd))
        with pair_reusing(fd) as (new, new_peer):
            fired, callback = one_shot(loop)
            add(loop, direction, new, callback)
            try:
                make_ready(direction, new_peer)
                return removed, await ran_within_deadline(fired)
            finally:
                remove(loop, direction, new)

    removed, callback = arun(main(), seconds=OUTER_BOUND)
    assert (removed, callback) == (True, "ran")


@pytest.mark.parametrize("registered_with", ["socket", "fd"])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_callback_on_a_reused_fd_runs_when_the_closed_socket_was_never_removed(
    direction, registered_with
):
    """rio's loop only: stdlib asyncio hangs here. Its selector still holds the old
    key under the number; add_X(new socket) looks the number up, finds that key with
    the same event mask and only swaps the callback, with no epoll_ctl: add_X returns
    normally, the callback never runs, remove_X(new) returns True (checked on 3.11).

    rio must do better: the old socket is closed (its registration names an object
    whose fileno() is -1 now, or simply an fd epoll no longer has), so a registration
    for a different, open socket must be made afresh in the kernel. The old callback
    must not be called for the new socket either. Registered with plain fd numbers,
    nothing tells the two sockets apart: the fresh kernel registration must come
    from add_X itself.
    """
    stale_calls: list[str] = []

    def key(sock: socket.socket) -> Any:
        return sock if registered_with == "socket" else sock.fileno()

    async def main() -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        with socketpair() as (old, old_peer):
            add(loop, direction, key(old), lambda: stale_calls.append("old callback"))
            fd = old.fileno()
            old.close()  # and no remove_X, before or after
            old_peer.close()
        with pair_reusing(fd) as (new, new_peer):
            fired, callback = one_shot(loop)
            add(loop, direction, key(new), callback)
            try:
                make_ready(direction, new_peer)
                ran = await ran_within_deadline(fired)
                return ran, outcome_of(lambda: remove(loop, direction, key(new)))
            finally:
                remove(loop, direction, key(new))

    callback, removed = run_on_loop(rio.new_event_loop, main(), seconds=OUTER_BOUND)
    assert (callback, removed) == ("ran", True)
    assert stale_calls == []


# ------------------------------------------------------------------ native waits (rio only)


async def settle(task: Any) -> str:
    """How a spawned wait ended within DEADLINE: "completed", "raised <Type>", or
    STILL_WAITING (the task is then cancelled, so nothing outlives the test)."""
    try:
        async with rio.timeout(DEADLINE):
            await task
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(rio.CancelledError):
            await task
        return STILL_WAITING
    except Exception as exc:
        return f"raised {type(exc).__name__}"
    return "completed"


async def until_parked(fds: int) -> None:
    """Until the reactor holds ``fds`` fds with interest (a waiter parked), bounded."""
    deadline = rio.monotonic() + DEADLINE
    while stats()["fds"] < fds:
        assert rio.monotonic() < deadline, f"no waiter parked within {DEADLINE} s"
        await rio.yield_now()


async def cancel_quietly(task: Any) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task


@pytest.mark.parametrize("direction", ["readable", "writable"])
def test_a_wait_on_a_reused_fd_completes_and_the_stale_waiter_gets_closed_resource_error(
    direction,
):
    """A task parked on a socket closed with plain close() (no notify_closing) holds
    the fd's slot; a wait on the new socket that reused the number must still be
    served (not refused with BusyResourceError, not lost), and the stale waiter must
    be woken with ClosedResourceError rather than wait forever on a dead fd."""
    wait = wait_readable if direction == "readable" else wait_writable

    async def main() -> tuple[str, str]:
        with socketpair() as (old, old_peer):
            if direction == "writable":
                fill_send_buffer(old)  # so the first wait parks
            stale = rio.spawn(wait(old))
            try:
                await until_parked(1)
                fd = old.fileno()
                old.close()  # no notify_closing
                old_peer.close()
                with pair_reusing(fd) as (new, new_peer):
                    fresh = rio.spawn(wait(new))
                    for _ in range(3):
                        await rio.yield_now()  # let it park, where it can
                    if direction == "readable":
                        new_peer.send(b"x")  # a fresh socket is writable already
                    return await settle(fresh), await settle(stale)
            finally:
                await cancel_quietly(stale)

    fresh, stale = run_io(main, seconds=OUTER_BOUND)
    assert (fresh, stale) == ("completed", f"raised {ClosedResourceError.__name__}")


def test_a_wait_on_an_int_fd_completes_after_the_number_was_closed_plainly_and_reused():
    async def main() -> str:
        with socketpair() as (old, old_peer):
            old_peer.send(b"x")
            await wait_readable(old.fileno())  # the reactor now knows the number
            fd = old.fileno()
            old.close()  # nobody waits; no notify_closing
            old_peer.close()
        with pair_reusing(fd) as (new, new_peer):
            waiter = rio.spawn(wait_readable(fd))
            await until_parked(1)
            new_peer.send(b"y")
            return await settle(waiter)

    outcome = run_io(main, seconds=OUTER_BOUND)
    assert outcome == "completed"


def test_a_wait_on_a_reused_fd_completes_after_a_timed_out_wait_on_the_closed_socket():
    async def main() -> str:
        with socketpair() as (old, old_peer):
            with pytest.raises(TimeoutError):
                async with rio.timeout(0.01):  # the timeout is the subject here
                    await wait_readable(old)
            fd = old.fileno()
            old.close()
            old_peer.close()
        with pair_reusing(fd) as (new, new_peer):
            waiter = rio.spawn(wait_readable(new))
            for _ in range(3):
                await rio.yield_now()
            new_peer.send(b"z")
            return await settle(waiter)

    outcome = run_io(main, seconds=OUTER_BOUND)
    assert outcome == "completed"
