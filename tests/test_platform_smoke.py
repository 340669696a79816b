"""The basics, on whatever platform runs this file.

Every wheel job runs the whole suite, Windows included (pyproject.toml,
``[tool.cibuildwheel]`` ``test-command``), as do the Windows jobs in ci.yml;
tests that need POSIX skip themselves there. This file is the part that must
pass everywhere, so it uses only what every platform has: no AF_UNIX, no
``resource``, no POSIX-only signals, no fork, loopback 127.0.0.1 only. Every
wait is bounded inside the test itself (``run_with_timeout``,
``asyncio.timeout``), because conftest's SIGALRM watchdog does not exist on
Windows.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import socket
import sys
import threading
import time

import pytest
import rio_core._reactor

import rio_rt as rio
from rio_rt.net import TcpListener, TcpStream
from rio_rt.testing import run_with_timeout

# Seconds. Nothing below needs more than a fraction of this, except a refused
# connect on Windows, which retries its SYN for about two seconds.
BOUND = 20.0

BACKENDS_BY_PLATFORM = {
    "linux": {"epoll", "poll"},  # poll: the RIO_REACTOR=poll build
    "darwin": {"kqueue", "poll"},
    "win32": {"wsapoll"},
}
KNOWN_BACKENDS = {"epoll", "kqueue", "poll", "wsapoll"}


def test_backend_is_a_known_name_and_the_one_for_this_platform():
    backend = rio_core._reactor.BACKEND
    assert backend in KNOWN_BACKENDS
    if sys.platform in BACKENDS_BY_PLATFORM:
        assert backend in BACKENDS_BY_PLATFORM[sys.platform]
    runtime = rio.Runtime()  # the reactor starts: poller and wake-up pipe (or socket pair)
    try:
        assert runtime._reactor_backend() == backend
    finally:
        runtime.close()


def test_runtime_runs_sleeps_and_spawned_tasks():
    async def work(i: int) -> int:
        await rio.sleep(0.01 * (i % 3))
        return i * i

    async def main() -> tuple[list[int], float]:
        started = rio.monotonic()
        tasks = [rio.spawn(work(i)) for i in range(20)]
        results = [await task for task in tasks]
        await rio.sleep(0.05)
        return results, rio.monotonic() - started

    results, elapsed = run_with_timeout(main, seconds=BOUND)
    assert results == [i * i for i in range(20)]
    assert elapsed >= 0.05  # a sleep never ends early


def test_native_tcp_echo_round_trip_and_eof():
    payload = bytes(range(256)) * 1024  # 256 KiB: many reads and writes each way

    async def main() -> tuple[bytes, bytes]:
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            host, port = listener.local_address

            async def serve() -> None:
                stream, _ = await listener.accept()
                async with stream:
                    while data := await stream.read():
                        await stream.write_all(data)

            server = rio.spawn(serve())
            async with await TcpStream.connect(host, port) as client:
                writer = rio.spawn(client.write_all(payload))  # write while reading
                echoed = await client.read_exact(len(payload))
                await writer
                client.shutdown_write()  # the server sees EOF and closes
                after_eof = await client.read()
            await server
        return echoed, after_eof

    echoed, after_eof = run_with_timeout(main, seconds=BOUND)
    assert echoed == payload
    assert after_eof == b""


def test_connect_to_a_closed_port_is_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the probe is closed

    async def main() -> OSError:
        with pytest.raises(ConnectionRefusedError) as info:
            await TcpStream.connect("127.0.0.1", port)
        return info.value

    error = run_with_timeout(main, seconds=BOUND)
    assert error.errno == errno.ECONNREFUSED  # Python's value: 10061 on Windows
    assert f"127.0.0.1:{port}" in str(error)


def ident_after_a_while() -> int:
    time.sleep(0.05)  # long enough for the loop to block in the reactor
    return threading.get_ident()


def test_asyncio_door_timers_tcp_echo_and_executor():
    """rio_rt.run() of an asyncio program: call_later order, an echo through
    start_server/open_connection (the engine's transports) with EOF both
    ways, and a thread pool result (a cross-thread wake of the blocked loop)."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def program() -> tuple[list[str], bytes, int]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, rio.Loop)
        order: list[str] = []
        loop.call_later(0.03, order.append, "30ms")
        loop.call_later(0.01, order.append, "10ms")
        loop.call_later(0.02, order.append, "20ms-a")
        loop.call_later(0.02, order.append, "20ms-b")
        loop.call_soon(order.append, "soon")
        await asyncio.sleep(0.06)

        payload = b"ping\n" * 10_000
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
            echoed = await reader.read()  # to EOF: the server closes after ours
            writer.close()
            await writer.wait_closed()

        # Not the default executor: asyncio.Runner shuts that down with a
        # cross-thread wake and no timer, so a lost wake would hang there
        # instead of failing within BOUND.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            worker = await loop.run_in_executor(pool, ident_after_a_while)
        return order, echoed, worker

    async def bounded() -> tuple[list[str], bytes, int]:
        async with asyncio.timeout(BOUND):
            return await program()

    order, echoed, worker = rio.run(bounded())
    assert order == ["soon", "10ms", "20ms-a", "20ms-b", "30ms"]
    assert echoed == b"ping\n" * 10_000
    assert worker != threading.get_ident()
