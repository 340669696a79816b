"""Native sockets (rio_rt.net): TCP, UDP and Unix streams on the engine's reactor.

Every test runs on a real-clock runtime (I/O and autojump do not mix) inside
``rio.timeout``, so a hang fails the test instead of the suite; loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import rio_rt as rio
from rio_rt.net import (
    BusyResourceError,
    ClosedResourceError,
    TcpListener,
    TcpStream,
    UdpSocket,
    UnixListener,
    UnixStream,
)
from rio_rt.testing import run_with_timeout as run_io
from rio_rt.testing import runtime_stats as stats

# --------------------------------------------------------------------------- helpers


async def settle() -> None:
    """Let the reactor poll a few times with nothing ready, so interest it
    keeps lazily for ready fds (one event that finds no waiter) is dropped."""
    for _ in range(3):
        await rio.sleep(0.005)


async def wait_until(predicate: Callable[[], bool], what: str, seconds: float = 2.0) -> None:
    deadline = rio.monotonic() + seconds
    while not predicate():
        if rio.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await rio.yield_now()


async def connected_pair(host: str = "127.0.0.1") -> tuple[TcpStream, TcpStream]:
    """A connected (client, server) pair; the listener is closed again."""
    async with await TcpListener.bind(host, 0) as listener:
        address = listener.local_address
        client = await TcpStream.connect(address[0], address[1])
        server, _ = await listener.accept()
    return client, server


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


async def echo(stream: Any) -> None:
    async with stream:
        while data := await stream.read():
            await stream.write_all(data)


class EchoServer:
    """An echo server on a listener; on exit every handler must have ended
    cleanly (a handler's exception is raised by ``__aexit__``)."""

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        self.handlers: list[rio.Task] = []
        self.task: rio.Task | None = None

    async def __aenter__(self) -> EchoServer:
        self.task = rio.spawn(self._serve(), name="echo-acceptor")
        return self

    async def _serve(self) -> None:
        async for stream, _address in self.listener:
            self.handlers.append(rio.spawn(echo(stream)))

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(rio.CancelledError):
            await self.task
        self.listener.close()
        for handler in self.handlers:
            handler.cancel()
            with contextlib.suppress(rio.CancelledError):
                await handler


# --------------------------------------------------------------------------- TCP basics


def test_echo_round_trip_and_addresses():
    async def main():
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            host, port = listener.local_address
            async with EchoServer(listener):
                async with await TcpStream.connect(host, port) as client:
                    assert client.peer_address == ("127.0.0.1", port)
                    assert client.local_address[0] == "127.0.0.1"
                    await client.write_all(b"hello, rio")
                    assert await client.read_exact(10) == b"hello, rio"
                    await client.write_all(bytearray(b"second"))
                    assert await client.read_exact(6) == b"second"
                    await client.write_all(memoryview(b"..third..")[2:7])
                    assert await client.read_exact(5) == b"third"

    run_io(main)


def test_accepted_stream_addresses_mirror_the_client():
    async def main():
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            host, port = listener.local_address
            async with await TcpStream.connect(host, port) as client:
                server, address = await listener.accept()
                async with server:
                    assert address == client.local_address
                    assert server.peer_address == client.local_address
                    assert server.local_address == client.peer_address

    run_io(main)


def test_tcp_nodelay_is_on_by_default_and_can_be_switched():
    async def main():
        client, server = await connected_pair()
        async with client, server:
            assert client.nodelay() is True
            assert server.nodelay() is True
            client.set_nodelay(False)
            assert client.nodelay() is False
            client.set_nodelay(True)
            assert client.nodelay() is True

    run_io(main)


def test_listener_async_iteration_accepts_each_connection():
    async def main():
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            host, port = listener.local_address
            clients = [await TcpStream.connect(host, port) for _ in range(3)]
            seen = []
            async for stream, address in listener:
                seen.append(address)
                stream.close()
                if len(seen) == 3:
                    break
            assert sorted(seen) == sorted(c.local_address for c in clients)
            for client in clients:
                assert await client.read() == b""  # the server side closed
                client.close()

    run_io(main)


def under_wine() -> bool:
    """Windows CPython under wine (ci/wine-tests.sh), whose Winsock is not Microsoft's."""
    if sys.platform != "win32":
        return False
    import ctypes

    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")


@contextlib.contextmanager
def descriptors_at_least(needed: int) -> Iterator[None]:
    """Raise RLIMIT_NOFILE to ``needed`` for the block (POSIX; Windows has no such limit)."""
    try:
        import resource
    except ImportError:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_thousand_concurrent_connections_each_get_their_own_echo():
    connections = 1000

    async def client(host: str, port: int, i: int) -> bytes:
        message = f"<client {i:04d}>".encode() * (1 + i % 7)
        async with await TcpStream.connect(host, port) as stream:
            await stream.write_all(message)
            reply = await stream.read_exact(len(message))
            stream.shutdown_write()
            assert await stream.read() == b""  # the handler closed after our EOF
        assert reply == message, f"client {i} got another client's bytes"
        return reply

    async def main():
        listener = await TcpListener.bind("127.0.0.1", 0)
        host, port = listener.local_address
        async with EchoServer(listener) as server:
            tasks = [rio.spawn(client(host, port, i)) for i in range(connections)]
            replies = [await task for task in tasks]
            assert len(server.handlers) == connections
        assert stats()["fds"] == 0, "a closed socket is still registered with the reactor"
        return replies

    with descriptors_at_least(2500):
        replies = run_io(main, seconds=30)
    assert len(set(replies)) == connections


def test_half_close_server_reads_to_eof_then_replies():
    async def main():
        client, server = await connected_pair()

        async def serve() -> bytes:
            async with server:
                received = bytearray()
                while chunk := await server.read(7):
                    received += chunk
                await server.write_all(b"got " + bytes(received[::-1]))
                server.shutdown_write()
                return bytes(received)

        async with client:
            task = rio.spawn(serve())
            await client.write_all(b"first part, ")
            await client.write_all(b"second part")
            client.shutdown_write()
            reply = bytearray()
            while chunk := await client.read():
                reply += chunk
            assert await task == b"first part, second part"
            assert bytes(reply) == b"got trap dnoces ,trap tsrif"
            with pytest.raises(OSError):
                await client.write_all(b"after shutdown_write")

    run_io(main)


def test_a_read_after_a_write_gets_data_that_arrived_before_it():
    """A write makes the next read park first (a reply takes a round trip); data
    that is already there must still be read at once, through the reactor's
    level-triggered interest, on both sides and in any order."""

    async def main():
        client, server = await connected_pair()
        async with client, server:
            await server.write_all(b"greeting")
            await wait_until(
                lambda: select.select([client.fileno()], [], [], 0)[0] != [],
                "the greeting is in the client's receive buffer",
            )
            await client.write_all(b"request")
            assert await client.read(100) == b"greeting"
            assert await server.read_exact(7) == b"request"
            for i in range(50):  # pipelined: both messages are there before each read
                await client.write_all(b"a%02d" % i)
                await client.write_all(b"b%02d" % i)
                await wait_until(
                    lambda: select.select([server.fileno()], [], [], 0)[0] != [],
                    "the requests reached the server",
                )
                await server.write_all(b"ok")
                assert await server.read_exact(6) == b"a%02db%02d" % (i, i)
                assert await client.read_exact(2) == b"ok"

    run_io(main, seconds=10)


def test_64_mib_transfer_arrives_intact():
    size = 64 << 20
    data = os.urandom(size)
    expected = hashlib.sha256(data).hexdigest()

    async def main():
        client, server = await connected_pair()

        async def writer() -> None:
            view = memoryview(data)
            # one huge write_all (many partial sends), then uneven chunks
            await client.write_all(view[: size // 2])
            offset = size // 2
            step = 1_000_003
            while offset < size:
                await client.write_all(view[offset : offset + step])
                offset += step
            client.shutdown_write()

        async def reader() -> tuple[int, str]:
            digest = hashlib.sha256()
            buffer = bytearray(256 * 1024)
            view = memoryview(buffer)
            total = 0
            while got := await server.read_into(view):
                digest.update(view[:got])
                total += got
            return total, digest.hexdigest()

        async with client, server:
            write_task = rio.spawn(writer())
            total, digest = await rio.spawn(reader())
            await write_task
        return total, digest

    total, digest = run_io(main, seconds=30)
    assert total == size
    assert digest == expected


def test_read_exact_raises_incomplete_read_error_on_early_eof():
    async def main():
        client, server = await connected_pair()
        async with client, server:
            await client.write_all(b"abc")
            client.shutdown_write()
            with pytest.raises(asyncio.IncompleteReadError) as info:
                await server.read_exact(10)
            assert info.value.partial == b"abc"
            assert info.value.expected == 10
            assert await server.read_exact(0) == b""

    run_io(main)


def test_read_sizes_and_read_into():
    async def main():
        client, server = await connected_pair()
        async with client, server:
            await client.write_all(b"0123456789")
            assert await server.read(0) == b""
            assert await server.read(4) == b"0123"
            buffer = bytearray(3)
            assert await server.read_into(buffer) == 3
            assert buffer == b"456"
            assert await server.read_into(bytearray()) == 0
            payload = os.urandom(300_000)
            await client.write_all(payload)
            client.shutdown_write()
            received = bytearray(await server.read(200_000))  # more than 64 KiB at once
            assert 0 < len(received) <= 200_000
            while chunk := await server.read(200_000):
                received += chunk
            assert bytes(received) == b"789" + payload
            with pytest.raises(ValueError):
                await server.read(-1)
            with pytest.raises(ValueError):
                await server.read_exact(-1)
            with pytest.raises((TypeError, BufferError)):
                await server.read_into(b"immutable")

    run_io(main)


# --------------------------------------------------------------------------- cancellation


def test_cancel_while_blocked_in_read_leaves_no_interest():
    async def main():
        client, server = await connected_pair()
        async with client, server:
            await settle()
            baseline = stats()["fds"]
            reader = rio.spawn(server.read())
            await wait_until(lambda: stats()["fds"] == baseline + 1, "the reader parked")
            assert reader.cancel() is True
            with pytest.raises(rio.CancelledError):
                await reader
            assert reader.cancelled()
            assert stats()["fds"] == baseline
            # the stream still works, and no stale waiter blocks the next read
            await client.write_all(b"still alive")
            assert await server.read_exact(11) == b"still alive"

    run_io(main)


def test_cancel_while_blocked_in_accept_leaves_no_interest():
    async def main():
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            host, port = listener.local_address
            await settle()
            baseline = stats()["fds"]
            acceptor = rio.spawn(listener.accept())
            await wait_until(lambda: stats()["fds"] == baseline + 1, "the acceptor parked")
            acceptor.cancel()
            with pytest.raises(rio.CancelledError):
                await acceptor
            assert acceptor.cancelled()
            assert stats()["fds"] == baseline
            # the listener is still usable after the cancelled accept
            async with await TcpStream.connect(host, port) as client:
                server, address = await listener.accept()
                server.close()
                assert address == client.local_address

    run_io(main)


def fill_accept_queue() -> tuple[socket.socket, list[socket.socket]] | None:
    """A listener (backlog 0) whose accept queue is full: a new connect to it
    stays in SYN-SENT (the kernel drops the SYN) until the queue drains."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers: list[socket.socket] = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
        _, writable, _ = select.select([], [filler], [], 0.2)
        if not writable:
            return server, fillers
    for filler in fillers:
        filler.close()
    server.close()
    return None


def test_cancel_while_blocked_in_connect_leaves_no_interest():
    filled = fill_accept_queue()
    if filled is None:
        pytest.skip("could not fill a loopback accept queue (connects never blocked)")
    server, fillers = filled
    host, port = server.getsockname()

    async def main():
        baseline = stats()["fds"]
        connector = rio.spawn(TcpStream.connect(host, port))
        await wait_until(
            lambda: stats()["fds"] == baseline + 1 or connector.done(), "the connector parked"
        )
        assert not connector.done(), "connect completed although the accept queue was full"
        connector.cancel()
        with pytest.raises(rio.CancelledError):
            await connector
        assert connector.cancelled()
        assert stats()["fds"] == baseline

    try:
        run_io(main)
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_cancel_connect_right_after_spawn():
    async def main():
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            host, port = listener.local_address
            baseline = stats()["fds"]
            connector = rio.spawn(TcpStream.connect(host, port))
            connector.cancel()
            with pytest.raises(rio.CancelledError):
                await connector
            assert stats()["fds"] == baseline

    run_io(main)


# --------------------------------------------------------------------------- errors


def test_cancel_after_the_reactor_fired_loses_no_data_and_no_interest():
    """Data arrives, the reactor wakes the reader, and the reader is cancelled
    before it runs: the bytes stay in the socket for the next read. Two readers
    woken by one poll run one after the other: the first cancels the second."""

    async def main():
        (client_a, server_a), (client_b, server_b) = await connected_pair(), await connected_pair()
        servers = [server_a, server_b]
        async with client_a, server_a, client_b, server_b:
            await settle()
            baseline = stats()["fds"]
            readers: list[Any] = []
            seen: list[tuple[int, bytes, str, bool]] = []

            async def read(me: int) -> bytes:
                data = await servers[me].read()
                other = readers[1 - me]
                state = other._sched_state  # woken by the same poll: queued, not yet run
                seen.append((me, data, state, other.cancel()))
                return data

            readers.extend(rio.spawn(read(me)) for me in (0, 1))
            await wait_until(lambda: stats()["fds"] == baseline + 2, "both readers parked")
            await client_a.write_all(b"for a")
            await client_b.write_all(b"for b")
            outcomes = []
            for reader in readers:
                try:
                    outcomes.append(await reader)
                except rio.CancelledError:
                    outcomes.append("cancelled")
            assert len(seen) == 1, seen
            first, data, state, cancelled = seen[0]
            assert (data, state, cancelled) == ([b"for a", b"for b"][first], "SCHEDULED", True)
            assert outcomes[1 - first] == "cancelled"
            # the cancelled reader's interest is gone; the first reader's is kept
            # (lazily, until an event finds no waiter)
            assert stats()["fds"] == baseline + 1
            assert await servers[1 - first].read_exact(5) == [b"for a", b"for b"][1 - first]

    run_io(main)


def test_a_writer_parked_on_a_half_closed_peer_sleeps_until_the_peer_reads():
    """The peer sent FIN but still reads; our send buffer is full. WSAPoll reports
    POLLHUP for that socket on every wait (Windows, and wine): the reactor must not
    turn it into a busy loop, and the writer must still finish once the peer reads."""
    size = 32 << 20

    async def main():
        client, server = await connected_pair()
        async with client, server:
            server.socket.shutdown(socket.SHUT_WR)
            assert await client.read() == b""  # the FIN is here
            writer = rio.spawn(client.write_all(bytes(size)))
            await rio.sleep(0.1)  # the buffers fill and the writer parks
            assert not writer.done()
            ticks = stats()["ticks"]
            await rio.sleep(0.3)
            idle_ticks = stats()["ticks"] - ticks
            received = 0
            while received < size:
                chunk = await server.read(1 << 20)
                assert chunk, "EOF before the writer finished"
                received += len(chunk)
            await writer
            return idle_ticks, received

    idle_ticks, received = run_io(main, seconds=20)
    assert received == size
    # a busy loop makes thousands of ticks in 0.3 s; a parked writer makes a few
    # (on WSAPoll: one retry per hold period, see rio_poll.h)
    assert idle_ticks < 100, idle_ticks


def test_a_writer_parked_on_a_reset_peer_gets_an_error():
    async def main():
        client, server = await connected_pair()
        async with client:
            writer = rio.spawn(client.write_all(bytes(32 << 20)))
            await rio.sleep(0.1)
            assert not writer.done()
            # SO_LINGER on with a zero timeout: close() sends RST
            server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            server.close()
            with pytest.raises((ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
                async with rio.timeout(5):
                    await writer

    run_io(main)


@pytest.mark.skipif(under_wine(), reason="wine reports a reset connection as EOF")
def test_read_from_a_reset_connection_raises_connection_reset_error():
    async def main():
        client, server = await connected_pair()
        async with client:
            reader = rio.spawn(client.read())
            await wait_until(lambda: stats()["fds"] >= 1, "the reader parked")
            # SO_LINGER on with a zero timeout: close() sends RST instead of FIN
            server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            server.close()
            with pytest.raises(ConnectionResetError) as info:
                await reader
            host, port = client.peer_address
            assert f"{host}:{port}" in str(info.value)

    run_io(main)


def test_connect_to_closed_port_is_refused_and_names_the_address():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the probe is closed

    async def main():
        with pytest.raises(ConnectionRefusedError) as info:
            await TcpStream.connect("127.0.0.1", port)
        return info.value

    error = run_io(main)
    assert error.errno == errno.ECONNREFUSED
    assert f"127.0.0.1:{port}" in str(error)


def test_connects_after_a_refused_connect_in_the_same_runtime_do_not_hang():
    """A refused non-blocking connect waits for writability, then its socket
    is closed; the next socket usually gets the same fd number and must be
    watched again (the kernel dropped the closed one from the poller)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def connect_within(seconds: float, host: str, port: int) -> TcpStream:
        try:
            async with rio.timeout(seconds):
                return await TcpStream.connect(host, port)
        except TimeoutError:
            raise AssertionError(
                f"connect to {host}:{port} hung (no answer in {seconds} s on loopback)"
            ) from None

    async def main():
        for _ in range(3):
            with pytest.raises(ConnectionRefusedError):
                await connect_within(2.0, "127.0.0.1", port)
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            host, live_port = listener.local_address
            async with await connect_within(2.0, host, live_port):
                server, _ = await listener.accept()
                server.close()

    run_io(main)


def test_bind_to_a_port_in_use_names_the_address():
    async def main():
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            port = listener.local_address[1]
            with pytest.raises(OSError) as info:
                await TcpListener.bind("127.0.0.1", port)
            assert info.value.errno == errno.EADDRINUSE
            assert f"127.0.0.1:{port}" in str(info.value)
            with pytest.raises(ValueError):
                await TcpListener.bind("127.0.0.1", 0, backlog=-1)

    run_io(main)


@pytest.mark.parametrize(
    "operation",
    [
        "read",
        "read_exact",
        "read_into",
        "write_all",
        "shutdown_write",
        "local_address",
        "set_nodelay",
        "nodelay",
    ],
)
def test_using_a_closed_stream_raises_closed_resource_error(operation):
    async def use(stream: TcpStream) -> Any:
        if operation == "read":
            return await stream.read()
        if operation == "read_exact":
            return await stream.read_exact(1)
        if operation == "read_into":
            return await stream.read_into(bytearray(8))
        if operation == "write_all":
            return await stream.write_all(b"x")
        if operation == "shutdown_write":
            return stream.shutdown_write()
        if operation == "local_address":
            return stream.local_address
        if operation == "set_nodelay":
            return stream.set_nodelay(False)
        return stream.nodelay()

    async def main():
        client, server = await connected_pair()
        server.close()
        client.close()
        client.close()  # idempotent
        assert client.is_closed()
        assert client.fileno() == -1
        with pytest.raises(ClosedResourceError) as info:
            await use(client)
        assert isinstance(info.value, OSError)
        assert info.value.errno == errno.EBADF

    run_io(main)


def test_close_wakes_a_reader_blocked_in_another_task_promptly():
    async def main():
        client, server = await connected_pair()
        async with client:
            await settle()
            baseline = stats()["fds"]
            reader = rio.spawn(server.read())
            await wait_until(lambda: stats()["fds"] == baseline + 1, "the reader parked")
            started = rio.monotonic()
            server.close()
            with pytest.raises(ClosedResourceError):
                await reader
            assert rio.monotonic() - started < 0.5
            assert stats()["fds"] == baseline

    run_io(main)


def test_close_wakes_a_writer_blocked_on_a_full_buffer():
    async def main():
        client, server = await connected_pair()
        async with server:
            writer = rio.spawn(client.write_all(bytes(64 << 20)))  # nobody reads: it blocks
            await wait_until(lambda: stats()["fds"] >= 1, "the writer parked")
            for _ in range(5):
                await rio.yield_now()
            assert not writer.done()
            client.close()
            with pytest.raises(ClosedResourceError):
                await writer

    run_io(main)


def test_close_wakes_a_blocked_accept():
    async def main():
        listener = await TcpListener.bind("127.0.0.1", 0)
        acceptor = rio.spawn(listener.accept())
        await wait_until(lambda: stats()["fds"] == 1, "the acceptor parked")
        listener.close()
        with pytest.raises(ClosedResourceError):
            await acceptor
        with pytest.raises(ClosedResourceError):
            await listener.accept()
        assert stats()["fds"] == 0

    run_io(main)


def test_two_tasks_reading_one_stream_is_a_busy_resource_error():
    async def main():
        client, server = await connected_pair()
        async with client, server:
            await settle()
            baseline = stats()["fds"]
            first = rio.spawn(server.read())
            await wait_until(lambda: stats()["fds"] == baseline + 1, "the first reader parked")
            with pytest.raises(BusyResourceError):
                await server.read()
            await client.write_all(b"for the first")
            assert await first == b"for the first"

    run_io(main)


def test_write_to_a_peer_that_closed_raises_eventually():
    async def main():
        client, server = await connected_pair()
        server.close()  # the peer is gone; its kernel answers our data with RST
        chunk = bytes(64 * 1024)
        async with client:
            with pytest.raises((BrokenPipeError, ConnectionResetError)) as info:
                for _ in range(2000):  # at most 128 MiB
                    await client.write_all(chunk)
                    await rio.sleep(0.001)
            host, port = client.peer_address
            assert f"{host}:{port}" in str(info.value)

    run_io(main)


def test_write_all_sends_everything_the_peer_reads():
    size = 8 << 20
    data = os.urandom(size)

    async def main():
        client, server = await connected_pair()

        async def drain() -> bytes:
            received = bytearray()
            while chunk := await server.read():
                received += chunk
            return bytes(received)

        async with client, server:
            reader = rio.spawn(drain())
            await client.write_all(data)  # returned: every byte must arrive
            client.shutdown_write()
            return await reader

    received = run_io(main)
    assert len(received) == size
    assert received == data


def test_write_all_raises_when_the_peer_stops_reading_and_closes():
    size = 64 << 20  # more than loopback send + receive buffers can hold

    async def main():
        client, server = await connected_pair()

        async def read_a_little_then_close() -> int:
            got = len(await server.read_exact(1 << 20))
            server.close()  # unread data pending: the kernel resets the connection
            return got

        async with client:
            peer = rio.spawn(read_a_little_then_close())
            with pytest.raises((BrokenPipeError, ConnectionResetError)):
                await client.write_all(bytes(size))  # must not report success
            assert await peer == 1 << 20

    run_io(main, seconds=20)


# --------------------------------------------------------------------------- descriptor exhaustion

EXHAUSTION_SCRIPT = r"""
import errno, json, resource, socket, sys, time

import rio_rt as rio
from rio_rt.net import TcpListener

LIMIT = int(sys.argv[1])


async def wait_until(predicate, seconds):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await rio.sleep(0.002)
    return True


async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard))
    listener = await TcpListener.bind("127.0.0.1", 0, backlog=256)
    address = listener.local_address
    accepted, clients, summary = [], [], {"limit": LIMIT}
    accepted_total = connected_total = 0

    async def acceptor():
        nonlocal accepted_total
        async for stream, _ in listener:
            accepted.append(stream)
            accepted_total += 1

    def new_client():
        nonlocal connected_total
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(address)
        clients.append(client)
        connected_total += 1

    def pending():
        return connected_total - accepted_total

    task = rio.spawn(acceptor())
    try:
        # Linux's accept() takes a descriptor before it looks at the queue, so it
        # fails with EMFILE even with nothing queued: go on until a connection
        # really waits in the queue while accept() fails.
        for _ in range(4 * LIMIT):
            before = accepted_total
            try:
                new_client()
            except OSError as exc:
                if exc.errno != errno.EMFILE:
                    raise
                # accept() took the last descriptor: free one, so that the next
                # client takes it and accept() is the call that fails
                accepted.pop(0).close()
                continue
            await wait_until(lambda: accepted_total > before or listener.exhausted_count, 5)
            if listener.exhausted_count and pending() > 0:
                break
        summary["clients"] = len(clients)
        summary["pending"] = pending()
        summary["exhausted_at_start"] = listener.exhausted_count
        accepted_before = accepted_total

        wall0, cpu0 = time.monotonic(), time.process_time()
        await rio.sleep(0.5)
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        summary["cpu_ratio"] = cpu / wall
        summary["exhausted_count"] = listener.exhausted_count
        summary["accepted_while_exhausted"] = accepted_total - accepted_before
        summary["acceptor_alive"] = not task.done()

        for client in clients[:4]:
            client.close()
        del clients[:4]
        summary["pending_accepted"] = await wait_until(lambda: pending() == 0, 5)
        before = accepted_total
        new_client()
        summary["new_accepted"] = await wait_until(lambda: accepted_total > before, 5)
        summary["acceptor_alive_after"] = not task.done()
    finally:
        task.cancel()
        try:
            await task
        except BaseException:
            pass
        listener.close()
        for stream in accepted:
            stream.close()
        for client in clients:
            client.close()
    print(json.dumps(summary), flush=True)


rio.block_on(main())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_NOFILE (POSIX)")
def test_accept_survives_descriptor_exhaustion_without_spinning(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", EXHAUSTION_SCRIPT, "64"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["exhausted_at_start"] > 0, summary
    assert summary["pending"] > 0, summary
    assert summary["acceptor_alive"], summary
    assert summary["exhausted_count"] > summary["exhausted_at_start"], summary
    assert summary["accepted_while_exhausted"] == 0, summary
    assert summary["cpu_ratio"] < 0.3, f"accept back-off burns CPU: {summary}"
    assert summary["pending_accepted"], f"the queued connection was never accepted: {summary}"
    assert summary["new_accepted"], f"no new connection accepted after recovery: {summary}"
    assert summary["acceptor_alive_after"], summary


# --------------------------------------------------------------------------- UDP


def test_udp_round_trip():
    async def main():
        async with (
            await UdpSocket.bind("127.0.0.1", 0) as a,
            await UdpSocket.bind("127.0.0.1", 0) as b,
        ):
            receiver = rio.spawn(b.recv_from())  # parks before anything is sent
            await wait_until(lambda: stats()["fds"] >= 1, "the receiver parked")
            assert await a.send_to(b"ping", b.local_address) == 4
            data, sender = await receiver
            assert data == b"ping"
            assert sender == a.local_address
            await b.send_to(b"pong", sender)
            assert await a.recv_from() == (b"pong", b.local_address)
            # datagram boundaries are kept
            await a.send_to(b"one", b.local_address)
            await a.send_to(b"two", b.local_address)
            assert (await b.recv_from())[0] == b"one"
            if sys.platform == "win32":  # Windows drops a datagram too long for the buffer
                with pytest.raises(OSError) as info:
                    await b.recv_from(2)
                assert info.value.errno == errno.EMSGSIZE
            else:  # POSIX cuts it
                assert (await b.recv_from(2))[0] == b"tw"

    run_io(main)


def test_connected_udp_send_and_recv():
    async def main():
        async with (
            await UdpSocket.bind("127.0.0.1", 0) as a,
            await UdpSocket.bind("127.0.0.1", 0) as b,
        ):
            with pytest.raises(OSError) as info:
                await a.send(b"nowhere")
            assert info.value.errno == errno.EDESTADDRREQ
            await a.connect(*b.local_address)
            await b.connect(*a.local_address)
            assert a.peer_address == b.local_address
            receiver = rio.spawn(b.recv())
            await wait_until(lambda: stats()["fds"] >= 1, "the receiver parked")
            assert await a.send(b"hello") == 5
            assert await receiver == b"hello"
            await b.send(b"back")
            assert await a.recv() == b"back"

    run_io(main)


def test_udp_close_wakes_a_blocked_receiver():
    async def main():
        udp = await UdpSocket.bind("127.0.0.1", 0)
        receiver = rio.spawn(udp.recv_from())
        await wait_until(lambda: stats()["fds"] == 1, "the receiver parked")
        udp.close()
        with pytest.raises(ClosedResourceError):
            await receiver
        with pytest.raises(ClosedResourceError):
            await udp.send_to(b"x", ("127.0.0.1", 9))
        assert stats()["fds"] == 0

    run_io(main)


# --------------------------------------------------------------------------- Unix and IPv6


needs_af_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")


@pytest.mark.skipif(hasattr(socket, "AF_UNIX"), reason="this platform has AF_UNIX")
def test_unix_sockets_say_so_where_the_platform_has_none(tmp_path):
    async def main():
        for make in (UnixListener.bind, UnixStream.connect):
            with pytest.raises(NotImplementedError, match="Unix sockets are not available"):
                await make(tmp_path / "any.sock")

    run_io(main)


@needs_af_unix
def test_unix_stream_echo(tmp_path):
    path = tmp_path / "echo.sock"

    async def main():
        listener = await UnixListener.bind(path)
        async with EchoServer(listener):
            async with await UnixStream.connect(path) as client:
                assert client.peer_address == str(path)
                for size in (1, 1000, 300_000):
                    payload = os.urandom(size)
                    await client.write_all(payload)
                    assert await client.read_exact(size) == payload
                client.shutdown_write()
                assert await client.read() == b""

    run_io(main)


@needs_af_unix
def test_unix_connect_to_a_missing_path_names_it(tmp_path):
    path = tmp_path / "missing.sock"

    async def main():
        with pytest.raises(FileNotFoundError) as info:
            await UnixStream.connect(path)
        return str(info.value)

    assert str(path) in run_io(main)


@pytest.mark.skipif(not ipv6_available(), reason="IPv6 loopback is not available")
def test_ipv6_loopback_echo():
    async def main():
        listener = await TcpListener.bind("::1", 0)
        host, port = listener.local_address[:2]
        assert host == "::1"
        async with EchoServer(listener):
            async with await TcpStream.connect("::1", port) as client:
                assert client.peer_address[:2] == ("::1", port)
                await client.write_all(b"over IPv6")
                assert await client.read_exact(9) == b"over IPv6"
        with pytest.raises(ConnectionRefusedError) as info:
            await TcpStream.connect("::1", port)  # the listener is closed now
        assert f"[::1]:{port}" in str(info.value)

    run_io(main)
