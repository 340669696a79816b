"""The asyncio door: the same asyncio programs on stdlib asyncio, uvloop, rloop and rio's loop.

Every body is one asyncio program taking a loop factory, so the four columns run
identical code: ``rio-loop`` is ``rio_rt.new_event_loop``, ``asyncio`` a fresh
``asyncio.SelectorEventLoop``, ``uvloop`` ``uvloop.new_event_loop`` and ``rloop``
``rloop.new_event_loop``. ``aio_sleep0`` and ``aio_queue`` have a floor column: a
bare ``coro.send`` loop drives the very same coroutines (``floor``), with a stand-in
running loop that only makes futures for the queue; the other programs need what a
loop does (timers, sockets, tasks that others await) and have no loop-free equivalent.

Workloads (names start with ``aio_``): call_soon chains, an ``asyncio.sleep(0)``
loop, future ping-pong, create_task + gather, call_later + cancel churn, many
concurrent ``asyncio.sleep``, an ``asyncio.Queue`` producer/consumer, TCP echo
through protocols and through streams, bulk TCP through protocols, and a real
HTTP stack: httpx's ``AsyncClient`` (on anyio) against uvicorn + Starlette served
in the same loop.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from workloads import (
    MISSING_WORKLOADS,
    Body,
    Columns,
    Workload,
    expect,
    register,
    rio,
    rloop,
    uvloop,
)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

AIO = Columns(
    ("rio-loop", "asyncio", "uvloop", "rloop"),
    (
        ("rio-loop vs asyncio", "rio-loop", "asyncio"),
        ("rio-loop vs uvloop", "rio-loop", "uvloop"),
        ("rio-loop vs rloop", "rio-loop", "rloop"),
        ("uvloop vs asyncio", "uvloop", "asyncio"),
    ),
    gated="rio-loop vs asyncio",
)


def _factories() -> dict[str, LoopFactory]:
    return {
        "rio-loop": lambda: rio.new_event_loop(),
        "asyncio": asyncio.SelectorEventLoop,
        "uvloop": lambda: uvloop.new_event_loop(),
        "rloop": lambda: rloop.new_event_loop(),
    }


def _run(factory: LoopFactory, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    with asyncio.Runner(loop_factory=factory, debug=False) as runner:
        return runner.run(main())


AIO_FLOOR = Columns(
    (*AIO.runners, "floor"),
    (
        *AIO.ratios,
        ("floor vs asyncio", "floor", "asyncio"),
        ("rio-loop vs floor", "rio-loop", "floor"),
    ),
    gated="rio-loop vs asyncio",
)


def _register(
    name: str,
    summary: str,
    params: dict[str, float],
    job: Callable[..., None],
    floor: Body | None = None,
) -> None:
    bodies: dict[str, Body] = {
        runner: functools.partial(job, factory) for runner, factory in _factories().items()
    }
    if floor is not None:
        bodies["floor"] = floor
    register(Workload(name, summary, params, bodies, columns=AIO if floor is None else AIO_FLOOR))


# -- scheduling ---------------------------------------------------------------------

CALL_SOON_N = 200_000


def call_soon_chain(factory: LoopFactory) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        count = [0]

        def step() -> None:
            count[0] += 1
            if count[0] < CALL_SOON_N:
                loop.call_soon(step)
            else:
                done.set_result(count[0])

        loop.call_soon(step)
        return await done  # type: ignore[no-any-return]

    expect("callbacks run", _run(factory, main), CALL_SOON_N)


SLEEP0_TASKS, SLEEP0_STEPS = 10, 20_000


async def _sleep0_worker() -> int:
    for _ in range(SLEEP0_STEPS):
        await asyncio.sleep(0)
    return SLEEP0_STEPS


def sleep0_loop(factory: LoopFactory) -> None:
    async def main() -> list[int]:
        return await asyncio.gather(*(_sleep0_worker() for _ in range(SLEEP0_TASKS)))

    expect("steps", sum(_run(factory, main)), SLEEP0_TASKS * SLEEP0_STEPS)


def sleep0_floor() -> None:
    """The same workers, each ``asyncio.sleep(0)`` a bare ``yield``: sent ``None`` in
    turn from a deque, with no loop, no task and no scheduling. What CPython itself
    costs for this program, so ``floor vs asyncio`` bounds any loop's ratio."""
    queue = collections.deque(_sleep0_worker() for _ in range(SLEEP0_TASKS))
    steps = 0
    while queue:
        coro = queue.popleft()
        try:
            coro.send(None)
        except StopIteration as stop:
            steps += stop.value
        else:
            queue.append(coro)
    expect("steps", steps, SLEEP0_TASKS * SLEEP0_STEPS)


PING_HOPS = 50_000


def future_ping_pong(factory: LoopFactory) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        boxes = [loop.create_future(), loop.create_future()]

        async def player(me: int) -> int:
            last = 0
            while True:
                last = await boxes[me]
                boxes[me] = loop.create_future()
                if last >= PING_HOPS:
                    boxes[1 - me].set_result(last)
                    return last
                boxes[1 - me].set_result(last + 1)

        players = [loop.create_task(player(0)), loop.create_task(player(1))]
        boxes[0].set_result(0)
        results = await asyncio.gather(*players)
        return min(results)

    expect("final hop", _run(factory, main) >= PING_HOPS, True)


GATHER_TASKS, GATHER_ROUNDS = 5_000, 8


def create_task_gather(factory: LoopFactory) -> None:
    async def one(i: int) -> int:
        return i

    async def main() -> int:
        loop = asyncio.get_running_loop()
        total = 0
        for _ in range(GATHER_ROUNDS):
            tasks = [loop.create_task(one(i)) for i in range(GATHER_TASKS)]
            total += sum(await asyncio.gather(*tasks))
        return total

    expect("sum", _run(factory, main), GATHER_ROUNDS * GATHER_TASKS * (GATHER_TASKS - 1) // 2)


CHURN_N = 100_000


def call_later_cancel(factory: LoopFactory) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        fired = [0]

        def never() -> None:
            fired[0] += 1

        for i in range(CHURN_N):
            loop.call_later(10 + i * 1e-6, never).cancel()
        await asyncio.sleep(0)
        return fired[0]

    expect("cancelled timers that fired", _run(factory, main), 0)


SLEEP_TASKS = 10_000


def concurrent_sleeps(factory: LoopFactory) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()

        async def sleeper(i: int) -> int:
            duration = 0.001 + 0.004 * i / SLEEP_TASKS
            began = loop.time()
            await asyncio.sleep(duration)
            return int(loop.time() - began < duration - 1e-3)  # asyncio may fire 1 ms early

        return sum(await asyncio.gather(*(sleeper(i) for i in range(SLEEP_TASKS))))

    expect("sleeps woken early", _run(factory, main), 0)


QUEUE_ITEMS = 50_000


async def _queue_produce(queue: asyncio.Queue[int]) -> None:
    for i in range(QUEUE_ITEMS):
        await queue.put(i)


async def _queue_consume(queue: asyncio.Queue[int]) -> int:
    total = 0
    for _ in range(QUEUE_ITEMS):
        total += await queue.get()
    return total


def queue_producer_consumer(factory: LoopFactory) -> None:
    async def main() -> int:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=100)
        _, total = await asyncio.gather(_queue_produce(queue), _queue_consume(queue))
        return total

    expect("sum", _run(factory, main), QUEUE_ITEMS * (QUEUE_ITEMS - 1) // 2)


class _FloorFuture:
    """As little of a future as ``asyncio.Queue`` touches: ``done``, ``cancelled``,
    ``set_result``, ``cancel``, and an ``__await__`` that yields itself until done."""

    __slots__ = ("finished",)

    def __init__(self) -> None:
        self.finished = False

    def done(self) -> bool:
        return self.finished

    def cancelled(self) -> bool:
        return False

    def set_result(self, _result: object) -> None:
        self.finished = True

    def cancel(self) -> bool:
        return False

    def __await__(self) -> Generator[_FloorFuture, None, None]:
        while not self.finished:
            yield self


class _FloorLoop:
    """The running loop ``asyncio.Queue`` finds in the floor: it only makes futures."""

    def create_future(self) -> _FloorFuture:
        return _FloorFuture()


def queue_floor() -> None:
    """The same producer and consumer on the same ``asyncio.Queue``, driven by a bare
    ``coro.send`` loop: a coroutine parked in a future is sent ``None`` again only
    once the future is done. No task, no handle, no scheduling: what CPython and
    asyncio's own Queue code cost for this program, so ``floor vs asyncio`` bounds
    any loop's ratio."""
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=100)
    loop = _FloorLoop()
    asyncio.events._set_running_loop(loop)  # type: ignore[arg-type]
    try:
        waiting: dict[Coroutine[Any, Any, Any], _FloorFuture | None] = {
            _queue_produce(queue): None,
            _queue_consume(queue): None,
        }
        total = None
        while waiting:
            for coro, future in list(waiting.items()):
                if future is not None and not future.finished:
                    continue
                try:
                    waiting[coro] = coro.send(None)
                except StopIteration as stop:
                    del waiting[coro]
                    if stop.value is not None:
                        total = stop.value
    finally:
        asyncio.events._set_running_loop(None)
    expect("sum", total, QUEUE_ITEMS * (QUEUE_ITEMS - 1) // 2)


# -- TCP ----------------------------------------------------------------------------

MESSAGE = b"x" * 100
ECHO_CLIENTS, ECHO_ROUNDS = 10, 1_000


class _EchoServer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _EchoClient(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[int]) -> None:
        self.done = done
        self.pending = 0
        self.rounds = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.transport.write(MESSAGE)

    def data_received(self, data: bytes) -> None:
        self.pending += len(data)
        while self.pending >= len(MESSAGE):
            self.pending -= len(MESSAGE)
            self.rounds += 1
            if self.rounds == ECHO_ROUNDS:
                self.done.set_result(self.rounds)
                return
            self.transport.write(MESSAGE)


def echo_protocols(factory: LoopFactory) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        done = [loop.create_future() for _ in range(ECHO_CLIENTS)]
        transports = []
        for future in done:
            transport, _ = await loop.create_connection(
                functools.partial(_EchoClient, future), "127.0.0.1", port
            )
            transports.append(transport)
        rounds = sum(await asyncio.gather(*done))
        for transport in transports:
            transport.close()
        server.close()
        await server.wait_closed()
        return rounds

    expect("round trips", _run(factory, main), ECHO_CLIENTS * ECHO_ROUNDS)


def echo_streams(factory: LoopFactory) -> None:
    async def main() -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def client() -> int:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(ECHO_ROUNDS):
                writer.write(MESSAGE)
                if await reader.readexactly(len(MESSAGE)) != MESSAGE:
                    raise AssertionError("echo differs")
            writer.close()
            await writer.wait_closed()
            return ECHO_ROUNDS

        rounds = sum(await asyncio.gather(*(client() for _ in range(ECHO_CLIENTS))))
        server.close()
        await server.wait_closed()
        return rounds

    expect("round trips", _run(factory, main), ECHO_CLIENTS * ECHO_ROUNDS)


BULK_CHUNK, BULK_CHUNKS = 65536, 2048  # 128 MiB


class _Sink(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[int]) -> None:
        self.done = done
        self.received = 0

    def data_received(self, data: bytes) -> None:
        self.received += len(data)

    def eof_received(self) -> bool:
        self.done.set_result(self.received)
        return False


def bulk_protocols(factory: LoopFactory) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        server = await loop.create_server(lambda: _Sink(done), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        chunk = b"b" * BULK_CHUNK
        for _ in range(BULK_CHUNKS):
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
        received = await done
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return received

    expect("bytes received", _run(factory, main), BULK_CHUNK * BULK_CHUNKS)


# -- a real HTTP stack ----------------------------------------------------------------

HTTP_REQUESTS, HTTP_CONCURRENCY = 1_000, 20
HTTP_BOUND_S = 60.0  # a lost wake-up fails the body instead of hanging the run


def _http_libraries() -> tuple[Any, str]:
    """(httpx, anyio, uvicorn, starlette) as a namespace, or None and why not."""
    try:
        import anyio
        import httpx
        import starlette.applications
        import starlette.responses
        import starlette.routing
        import uvicorn
    except Exception as exc:  # reported in the header, not hidden
        return None, f"{type(exc).__name__}: {exc}"
    return (anyio, httpx, uvicorn, starlette), ""


def httpx_uvicorn(factory: LoopFactory) -> None:
    """httpx's AsyncClient (anyio's asyncio backend) makes HTTP_REQUESTS GETs, at most
    HTTP_CONCURRENCY at a time (an anyio CapacityLimiter, one task per request in an
    anyio task group), to uvicorn (h11) + Starlette served on the same loop."""
    (anyio, httpx, uvicorn, starlette), _ = _http_libraries()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"item {request.path_params['i']}")

    app = Starlette(routes=[Route("/item/{i:int}", item)])

    async def main() -> tuple[int, int, int, int]:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            http="h11",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
        )
        config.load()
        server = uvicorn.Server(config)
        # Server.serve() would install signal handlers and poll should_exit every
        # 0.1 s, and its shutdown() sleeps 0.1 s: start and stop the listener here.
        server.lifespan = config.lifespan_class(config)
        async with asyncio.timeout(HTTP_BOUND_S):
            await server.startup()
            port = server.servers[0].sockets[0].getsockname()[1]
            limiter = anyio.CapacityLimiter(HTTP_CONCURRENCY)
            right = in_flight = peak = 0

            async def get(client: Any, i: int) -> None:
                nonlocal right, in_flight, peak
                async with limiter:
                    in_flight += 1
                    peak = max(peak, in_flight)
                    response = await client.get(f"/item/{i}")
                    in_flight -= 1
                if response.status_code == 200 and response.text == f"item {i}":
                    right += 1

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                async with anyio.create_task_group() as group:
                    for i in range(HTTP_REQUESTS):
                        group.start_soon(get, client, i)
            # The client has closed its connections. Shut the server's side down as
            # uvicorn's shutdown() does (on rloop 0.5 the server does not see those
            # closes: its connections would wait for the 5 s keep-alive timeout),
            # wait until they are gone, then close the listener.
            state = server.server_state
            for connection in list(state.connections):
                connection.shutdown()
            while state.connections or state.tasks:
                await asyncio.sleep(0.001)
            for listener in server.servers:
                listener.close()
                await listener.wait_closed()
        return right, state.total_requests, peak, len(state.connections)

    right, served, peak, left_open = _run(factory, main)
    expect("right responses", right, HTTP_REQUESTS)
    expect("requests the server counted", served, HTTP_REQUESTS)
    expect("peak requests in flight", peak, HTTP_CONCURRENCY)
    expect("server connections left open", left_open, 0)


_register(
    "aio_call_soon",
    f"a chain of {CALL_SOON_N} call_soon callbacks",
    {"callbacks": CALL_SOON_N},
    call_soon_chain,
)
_register(
    "aio_sleep0",
    f"{SLEEP0_TASKS} tasks x {SLEEP0_STEPS} asyncio.sleep(0)",
    {"tasks": SLEEP0_TASKS, "steps": SLEEP0_STEPS},
    sleep0_loop,
    floor=sleep0_floor,
)
_register(
    "aio_ping_pong",
    f"2 tasks, {PING_HOPS} hops through fresh loop futures",
    {"hops": PING_HOPS},
    future_ping_pong,
)
_register(
    "aio_gather",
    f"{GATHER_ROUNDS} x gather of {GATHER_TASKS} create_task'd coroutines",
    {"tasks": GATHER_TASKS, "rounds": GATHER_ROUNDS},
    create_task_gather,
)
_register(
    "aio_call_later_cancel",
    f"{CHURN_N} x call_later(...).cancel()",
    {"timers": CHURN_N},
    call_later_cancel,
)
_register(
    "aio_sleeps",
    f"{SLEEP_TASKS} concurrent asyncio.sleep of 1-5 ms",
    {"tasks": SLEEP_TASKS},
    concurrent_sleeps,
)
_register(
    "aio_queue",
    f"asyncio.Queue(maxsize=100), {QUEUE_ITEMS} items",
    {"items": QUEUE_ITEMS},
    queue_producer_consumer,
    floor=queue_floor,
)
_register(
    "aio_echo_protocols",
    f"{ECHO_CLIENTS} clients x {ECHO_ROUNDS} round trips of 100 B, protocols",
    {"clients": ECHO_CLIENTS, "rounds": ECHO_ROUNDS},
    echo_protocols,
)
_register(
    "aio_echo_streams",
    f"{ECHO_CLIENTS} clients x {ECHO_ROUNDS} round trips of 100 B, streams",
    {"clients": ECHO_CLIENTS, "rounds": ECHO_ROUNDS},
    echo_streams,
)
_register(
    "aio_bulk",
    f"{BULK_CHUNKS} x 64 KiB through a stream writer into a protocol",
    {"chunks": BULK_CHUNKS, "chunk_bytes": BULK_CHUNK},
    bulk_protocols,
)

_, _http_missing = _http_libraries()
if _http_missing:  # the `bench` extra installs them; say why the workload is missing
    MISSING_WORKLOADS["aio_httpx"] = _http_missing
else:
    _register(
        "aio_httpx",
        f"httpx AsyncClient: {HTTP_REQUESTS} GETs, {HTTP_CONCURRENCY} at a time, "
        "to uvicorn (h11) + Starlette on the same loop",
        {"requests": HTTP_REQUESTS, "concurrency": HTTP_CONCURRENCY},
        httpx_uvicorn,
    )
