"""TCP workloads: rio's native sockets vs asyncio streams, asyncio protocols and uvloop.

Server and clients run in one process, on one event loop (one rio runtime), over
127.0.0.1 with a port picked by the kernel. Every runner pays for its own setup:
creating the loop, binding, connecting and closing are inside the timed body.

Runners (the `TCP` columns):

- ``rio``: `rio_rt.net.TcpListener` / `TcpStream` (`read`, `read_exact`, `write_all`);
- ``asyncio-streams``: `asyncio.start_server` + `asyncio.open_connection`, the
  documented idiom (``writer.write(...)`` then ``await writer.drain()``), on a stdlib
  `asyncio.SelectorEventLoop`. The stdlib baseline: ``--min-ratio`` gates
  ``rio vs asyncio-streams``;
- ``asyncio-protocols``: `loop.create_server` / `loop.create_connection` with
  `asyncio.Protocol` classes on both sides (callbacks, no coroutine per message,
  flow control through ``pause_writing``/``resume_writing``);
- ``uvloop-protocols``: the same protocol code on `uvloop.new_event_loop()`;
- ``uvloop-streams``: the streams code on uvloop.

All three stacks set TCP_NODELAY on their TCP sockets. Every body checks its result
(each echoed message, byte counts on both sides) and raises `WrongResult` otherwise.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from workloads import (
    Columns,
    Workload,
    WrongResult,
    expect,
    register,
    rio,
    run_asyncio,
    run_rio,
    run_uvloop,
)

HOST = "127.0.0.1"

TCP = Columns(
    runners=("rio", "asyncio-streams", "asyncio-protocols", "uvloop-protocols", "uvloop-streams"),
    ratios=(
        ("rio vs asyncio-streams", "rio", "asyncio-streams"),
        ("rio vs asyncio-protocols", "rio", "asyncio-protocols"),
        ("rio vs uvloop-protocols", "rio", "uvloop-protocols"),
    ),
    gated="rio vs asyncio-streams",
)


def streams_and_protocols(
    streams: Callable[[Callable[..., Any]], None], protocols: Callable[[Callable[..., Any]], None]
) -> dict[str, Callable[[], None]]:
    """The four asyncio-flavoured bodies: each style on the stdlib loop and on uvloop."""
    return {
        "asyncio-streams": functools.partial(streams, run_asyncio),
        "asyncio-protocols": functools.partial(protocols, run_asyncio),
        "uvloop-protocols": functools.partial(protocols, run_uvloop),
        "uvloop-streams": functools.partial(streams, run_uvloop),
    }


def _native() -> Any:
    """rio_rt.net, looked up only when a rio body runs (`rio` is None without rio_rt)."""
    return rio.net


def _port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# -- echo: C concurrent clients, R round trips of a 100-byte message each ---------------

ECHO_CLIENTS = 10
ECHO_ROUND_TRIPS = 1_500  # per client
ECHO_SIZE = 100
ECHO_TOTAL = ECHO_CLIENTS * ECHO_ROUND_TRIPS


@functools.cache
def _echo_messages() -> tuple[tuple[bytes, ...], ...]:
    """messages[client][i]: distinct 100-byte messages, so a stale or misrouted echo fails."""

    def message(client: int, i: int) -> bytes:
        head = b"client %03d message %08d " % (client, i)
        return head + b"x" * (ECHO_SIZE - len(head))

    return tuple(tuple(message(c, i) for i in range(ECHO_ROUND_TRIPS)) for c in range(ECHO_CLIENTS))


def _echo_check(echoed_by_clients: list[int], echoed_by_server: int) -> None:
    expect("round trips checked by the clients", sum(echoed_by_clients), ECHO_TOTAL)
    expect("bytes echoed by the server", echoed_by_server, ECHO_TOTAL * ECHO_SIZE)


def echo_rio() -> None:
    net = _native()
    messages = _echo_messages()
    echoed = [0]  # bytes, counted by the server

    async def serve(stream: Any) -> None:
        async with stream:
            while data := await stream.read(65536):
                echoed[0] += len(data)
                await stream.write_all(data)

    async def client(port: int, mine: tuple[bytes, ...]) -> int:
        async with await net.TcpStream.connect(HOST, port) as stream:
            for message in mine:
                await stream.write_all(message)
                if await stream.read_exact(ECHO_SIZE) != message:
                    raise WrongResult(f"echo mismatch for {message[:24]!r}")
        return len(mine)

    async def main() -> list[int]:
        async with await net.TcpListener.bind(HOST, 0) as listener:
            port = listener.local_address[1]

            async def accept() -> list[Any]:
                return [rio.spawn(serve((await listener.accept())[0])) for _ in range(ECHO_CLIENTS)]

            acceptor = rio.spawn(accept())
            clients = [rio.spawn(client(port, mine)) for mine in messages]
            done = [await c for c in clients]
            for server_task in await acceptor:
                await server_task
            return done

    _echo_check(run_rio(main), echoed[0])


def echo_streams(run: Callable[..., Any]) -> None:
    messages = _echo_messages()
    echoed = [0]
    handlers: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while data := await reader.read(65536):
                echoed[0] += len(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    async def client(port: int, mine: tuple[bytes, ...]) -> int:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for message in mine:
                writer.write(message)
                await writer.drain()
                if await reader.readexactly(ECHO_SIZE) != message:
                    raise WrongResult(f"echo mismatch for {message[:24]!r}")
        finally:
            writer.close()
            await writer.wait_closed()
        return len(mine)

    async def main() -> list[int]:
        server = await asyncio.start_server(serve, HOST, 0)
        async with server:
            port = _port(server)
            done = await asyncio.gather(*(client(port, mine) for mine in messages))
            expect("server connections", len(handlers), ECHO_CLIENTS)
            await asyncio.gather(*handlers)
        return done

    _echo_check(run(main), echoed[0])


class EchoServerProtocol(asyncio.Protocol):
    def __init__(self, echoed: list[int], closed: Callable[[BaseException | None], None]) -> None:
        self.echoed = echoed
        self.closed = closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.echoed[0] += len(data)
        self.transport.write(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed(exc)


class EchoClientProtocol(asyncio.Protocol):
    """Sends messages[0], and each next message once the previous one came back intact."""

    def __init__(self, messages: tuple[bytes, ...], done: asyncio.Future[int]) -> None:
        self.messages = messages
        self.done = done
        self.sent = 0
        self.pending = bytearray()  # a partial echo

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        transport.write(self.messages[0])  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.pending or len(data) != ECHO_SIZE:  # the echo came in pieces
            self.pending += data
            if len(self.pending) < ECHO_SIZE:
                return
            data, self.pending = bytes(self.pending), bytearray()
        message = self.messages[self.sent]
        if data != message:  # also catches more than one message's worth
            _fail(self.done, WrongResult(f"echo mismatch for {message[:24]!r}"))
            self.transport.close()
            return
        self.sent += 1
        if self.sent == len(self.messages):
            self.transport.close()
        else:
            self.transport.write(self.messages[self.sent])

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.sent == len(self.messages) and exc is None:
            if not self.done.done():
                self.done.set_result(self.sent)
        else:
            _fail(self.done, exc or WrongResult(f"closed after {self.sent} round trips"))


def echo_protocols(run: Callable[..., Any]) -> None:
    messages = _echo_messages()
    echoed = [0]

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        all_closed = loop.create_future()
        closed = [0]

        def server_closed(exc: BaseException | None) -> None:
            if exc is not None:
                _fail(all_closed, exc)
            closed[0] += 1
            if closed[0] == ECHO_CLIENTS and not all_closed.done():
                all_closed.set_result(None)

        server = await loop.create_server(
            lambda: EchoServerProtocol(echoed, server_closed), HOST, 0
        )
        async with server:
            port = _port(server)
            futures = []
            for mine in messages:
                done: asyncio.Future[int] = loop.create_future()
                await loop.create_connection(
                    functools.partial(EchoClientProtocol, mine, done), HOST, port
                )
                futures.append(done)
            results = await asyncio.gather(*futures)
            await all_closed
        return results

    _echo_check(run(main), echoed[0])


# -- bulk: one client streams S MiB in 64 KiB writes to a server that counts and discards --

BULK_MIB = 256
BULK_CHUNK = 64 * 1024
BULK_CHUNKS = BULK_MIB * 1024 * 1024 // BULK_CHUNK
BULK_TOTAL = BULK_CHUNKS * BULK_CHUNK


@functools.cache
def _bulk_chunk() -> bytes:
    return bytes(range(256)) * (BULK_CHUNK // 256)


def _bulk_check(sent: int, received: int) -> None:
    expect("bytes sent by the client", sent, BULK_TOTAL)
    expect("bytes counted by the server", received, BULK_TOTAL)


def bulk_rio() -> None:
    net = _native()
    chunk = _bulk_chunk()

    async def sink(listener: Any) -> int:
        stream, _ = await listener.accept()
        received = 0
        async with stream:
            while data := await stream.read(65536):
                received += len(data)
        return received

    async def send(port: int) -> int:
        sent = 0
        async with await net.TcpStream.connect(HOST, port) as stream:
            for _ in range(BULK_CHUNKS):
                await stream.write_all(chunk)
                sent += len(chunk)
        return sent

    async def main() -> tuple[int, int]:
        async with await net.TcpListener.bind(HOST, 0) as listener:
            server = rio.spawn(sink(listener))
            client = rio.spawn(send(listener.local_address[1]))
            sent = await client
            return sent, await server

    _bulk_check(*run_rio(main))


def bulk_streams(run: Callable[..., Any]) -> None:
    chunk = _bulk_chunk()

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        received: asyncio.Future[int] = loop.create_future()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            count = 0
            try:
                while data := await reader.read(65536):
                    count += len(data)
            except Exception as exc:
                _fail(received, exc)
                raise
            finally:
                writer.close()
                await writer.wait_closed()
            received.set_result(count)

        server = await asyncio.start_server(sink, HOST, 0)
        async with server:
            reader, writer = await asyncio.open_connection(HOST, _port(server))
            sent = 0
            try:
                for _ in range(BULK_CHUNKS):
                    writer.write(chunk)
                    sent += len(chunk)
                    await writer.drain()
            finally:
                writer.close()
                await writer.wait_closed()
            return sent, await received

    _bulk_check(*run(main))


class SinkProtocol(asyncio.Protocol):
    """Counts the bytes received; resolves `received` at EOF."""

    def __init__(self, received: asyncio.Future[int]) -> None:
        self.received = received
        self.count = 0

    def data_received(self, data: bytes) -> None:
        self.count += len(data)

    def eof_received(self) -> None:  # returning None: the transport closes itself
        if not self.received.done():
            self.received.set_result(self.count)

    def connection_lost(self, exc: BaseException | None) -> None:
        _fail(self.received, exc or WrongResult(f"closed without EOF after {self.count} bytes"))


class SenderProtocol(asyncio.Protocol):
    """Writes `chunks` copies of `chunk` while the transport is not paused.

    Resolves `written` once the last chunk is handed to the transport, and `closed` with
    the byte count when the connection is lost after that. The caller closes the
    transport: closing it from `resume_writing` makes CPython 3.11's selector transport
    run `connection_lost` twice.
    """

    def __init__(
        self, chunk: bytes, chunks: int, written: asyncio.Future[None], closed: asyncio.Future[int]
    ) -> None:
        self.chunk = chunk
        self.left = chunks
        self.sent = 0
        self.paused = False
        self.written = written
        self.closed = closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.pump()

    def pump(self) -> None:
        write, chunk = self.transport.write, self.chunk
        while self.left and not self.paused:
            write(chunk)  # may call pause_writing() before it returns
            self.sent += len(chunk)
            self.left -= 1
        if not self.left and not self.written.done():
            self.written.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.left:
            self.pump()

    def connection_lost(self, exc: BaseException | None) -> None:
        if exc is None and not self.left:
            if not self.closed.done():
                self.closed.set_result(self.sent)
        else:
            exc = exc or WrongResult(f"closed with {self.left} chunks unsent")
            _fail(self.written, exc)
            _fail(self.closed, exc)


def bulk_protocols(run: Callable[..., Any]) -> None:
    chunk = _bulk_chunk()

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        received: asyncio.Future[int] = loop.create_future()
        written: asyncio.Future[None] = loop.create_future()
        sent: asyncio.Future[int] = loop.create_future()
        server = await loop.create_server(lambda: SinkProtocol(received), HOST, 0)
        async with server:
            transport, _ = await loop.create_connection(
                lambda: SenderProtocol(chunk, BULK_CHUNKS, written, sent), HOST, _port(server)
            )
            await written
            transport.close()  # after the buffered bytes are flushed
            return await sent, await received

    _bulk_check(*run(main))


register(
    Workload(
        "echo",
        f"{ECHO_CLIENTS} concurrent TCP clients x {ECHO_ROUND_TRIPS} round trips of a "
        f"{ECHO_SIZE}-byte message to an echo server, same loop, 127.0.0.1",
        {
            "clients": ECHO_CLIENTS,
            "round_trips_per_client": ECHO_ROUND_TRIPS,
            "message_bytes": ECHO_SIZE,
        },
        {"rio": echo_rio, **streams_and_protocols(echo_streams, echo_protocols)},
        TCP,
    )
)
register(
    Workload(
        "bulk",
        f"1 TCP client sends {BULK_MIB} MiB in {BULK_CHUNK // 1024} KiB writes to a server "
        f"that counts and discards, same loop, 127.0.0.1",
        {"mib": BULK_MIB, "write_bytes": BULK_CHUNK, "read_bytes": 65536},
        {"rio": bulk_rio, **streams_and_protocols(bulk_streams, bulk_protocols)},
        TCP,
    )
)
