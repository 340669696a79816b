"""Synchronisation workloads: rio's channels, Lock and Semaphore vs asyncio's and trio's.

Three tables:

- `SYNC` (``lock``, ``semaphore_fanout``): native rio tasks (``rio_rt.block_on``,
  ``rio_rt.spawn``) using ``rio_rt.Lock`` / ``Semaphore``, against the asyncio
  primitives (``asyncio.Lock``, ``Semaphore``) on a stdlib `asyncio.SelectorEventLoop`
  and on uvloop, and against trio's (``trio.Lock``, ``trio.Semaphore``) under
  ``trio.run``. The ``trio`` column stays empty when trio does not import.
- `CHANNEL` (``channel``): the same for ``rio_rt.channel`` / ``asyncio.Queue`` /
  ``trio.open_memory_channel``, plus ``asyncio.Queue`` on rloop (empty when rloop does
  not import) and the floor (`floor.floor_channel`: the channel's logic inline in two
  coroutines driven by a bare ``coro.send`` loop).
- `AIO_SYNC` (``aio_channel``): the same rio channel used from asyncio tasks on rio's
  loop (``rio_rt.run``), against ``asyncio.Queue`` on the stdlib loop, on uvloop, and on
  rio's loop (``rio-loop-queue``: what switching from asyncio.Queue to the rio channel
  gains on the same loop).

Every body checks its result (sum and count of the items received; a read-yield-write
counter that only adds up under mutual exclusion; the peak number of tasks inside the
semaphore) and raises `WrongResult` otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from floor import floor_channel
from workloads import (
    Body,
    Columns,
    Workload,
    asyncio_and_uvloop,
    expect,
    register,
    rio,
    run_rio,
    run_rloop,
    trio,
)

SYNC = Columns(
    runners=("rio", "asyncio", "uvloop", "trio"),
    ratios=(
        ("rio vs asyncio", "rio", "asyncio"),
        ("rio vs uvloop", "rio", "uvloop"),
        ("rio vs trio", "rio", "trio"),
    ),
    gated="rio vs asyncio",
)

CHANNEL = Columns(
    runners=("rio", "asyncio", "uvloop", "rloop", "trio", "floor"),
    ratios=(
        ("rio vs asyncio", "rio", "asyncio"),
        ("rio vs uvloop", "rio", "uvloop"),
        ("rio vs rloop", "rio", "rloop"),
        ("rio vs trio", "rio", "trio"),
        ("floor vs asyncio", "floor", "asyncio"),
        ("rio vs floor", "rio", "floor"),
    ),
    gated="rio vs asyncio",
)

AIO_SYNC = Columns(
    runners=("rio-loop", "rio-loop-queue", "asyncio", "uvloop"),
    ratios=(
        ("rio-loop vs asyncio", "rio-loop", "asyncio"),
        ("rio-loop vs uvloop", "rio-loop", "uvloop"),
        ("rio-loop vs rio-loop-queue", "rio-loop", "rio-loop-queue"),
    ),
    gated="rio-loop vs asyncio",
)

CAPACITY = 64


def _run_trio(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return trio.run(main)


def _run_rio_loop(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return rio.run(main())


# -- channel: one producer, one consumer, a bounded channel ----------------------------

# 500,000, not 1,000,000: a million took 1.5-3.4 s per run on stdlib asyncio (and 14 s on
# trio) on the 2-core machine the suite was written on.
CHANNEL_ITEMS = 500_000


def _channel_check(received: tuple[int, int], items: int) -> None:
    count, total = received
    expect("items received", count, items)
    expect("sum of items received", total, items * (items - 1) // 2)


async def _rio_channel(spawn: Callable[[Any], Any], items: int) -> tuple[int, int]:
    """Producer task -> rio.channel(CAPACITY) -> this task; ends when the sender closes."""
    sender, receiver = rio.channel(CAPACITY)

    async def produce() -> None:
        with sender:
            for i in range(items):
                await sender.send(i)

    producer = spawn(produce())
    count = total = 0
    async for item in receiver:
        count += 1
        total += item
    await producer
    return count, total


async def _asyncio_queue(items: int) -> tuple[int, int]:
    """Producer task -> asyncio.Queue(CAPACITY) -> this task, `items` gets."""
    queue: asyncio.Queue[int] = asyncio.Queue(CAPACITY)

    async def produce() -> None:
        for i in range(items):
            await queue.put(i)

    producer = asyncio.create_task(produce())
    count = total = 0
    for _ in range(items):
        total += await queue.get()
        count += 1
    await producer
    return count, total


def channel_rio() -> None:
    _channel_check(run_rio(lambda: _rio_channel(rio.spawn, CHANNEL_ITEMS)), CHANNEL_ITEMS)


def channel_asyncio(run: Callable[..., Any]) -> None:
    _channel_check(run(lambda: _asyncio_queue(CHANNEL_ITEMS)), CHANNEL_ITEMS)


def channel_floor() -> None:
    _channel_check(floor_channel(CHANNEL_ITEMS, CAPACITY), CHANNEL_ITEMS)


def channel_trio() -> None:
    async def main() -> tuple[int, int]:
        sender, receiver = trio.open_memory_channel(CAPACITY)
        result = (0, 0)

        async def produce() -> None:
            async with sender:
                for i in range(CHANNEL_ITEMS):
                    await sender.send(i)

        async def consume() -> None:
            nonlocal result
            count = total = 0
            async with receiver:
                async for item in receiver:
                    count += 1
                    total += item
            result = (count, total)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            nursery.start_soon(consume)
        return result

    _channel_check(_run_trio(main), CHANNEL_ITEMS)


# -- aio_channel: the rio channel from asyncio tasks on rio's loop ---------------------

AIO_CHANNEL_ITEMS = 200_000


def aio_channel_rio_loop() -> None:
    async def main() -> tuple[int, int]:
        return await _rio_channel(asyncio.create_task, AIO_CHANNEL_ITEMS)

    _channel_check(_run_rio_loop(main), AIO_CHANNEL_ITEMS)


def aio_channel_queue(run: Callable[..., Any]) -> None:
    _channel_check(run(lambda: _asyncio_queue(AIO_CHANNEL_ITEMS)), AIO_CHANNEL_ITEMS)


# -- lock: many tasks hand one lock around ---------------------------------------------

LOCK_TASKS = 100
LOCK_ROUNDS = 300
LOCK_TOTAL = LOCK_TASKS * LOCK_ROUNDS


async def _contend(spawn: Callable[[Any], Any], lock: Any, yield_once: Callable[[], Any]) -> int:
    """LOCK_TASKS tasks x LOCK_ROUNDS: acquire, read the counter, yield, write it + 1.

    Without mutual exclusion the yield between read and write loses increments."""
    counter = [0]

    async def worker() -> None:
        for _ in range(LOCK_ROUNDS):
            async with lock:
                seen = counter[0]
                await yield_once()
                counter[0] = seen + 1

    tasks = [spawn(worker()) for _ in range(LOCK_TASKS)]
    for task in tasks:
        await task
    return counter[0]


def lock_rio() -> None:
    async def main() -> int:
        return await _contend(rio.spawn, rio.Lock(), rio.yield_now)

    expect("counter incremented under the lock", run_rio(main), LOCK_TOTAL)


def lock_asyncio(run: Callable[..., Any]) -> None:
    async def main() -> int:
        return await _contend(asyncio.create_task, asyncio.Lock(), lambda: asyncio.sleep(0))

    expect("counter incremented under the lock", run(main), LOCK_TOTAL)


def lock_trio() -> None:
    async def main() -> int:
        lock = trio.Lock()
        counter = [0]

        async def worker() -> None:
            for _ in range(LOCK_ROUNDS):
                async with lock:
                    seen = counter[0]
                    await trio.lowlevel.checkpoint()
                    counter[0] = seen + 1

        async with trio.open_nursery() as nursery:
            for _ in range(LOCK_TASKS):
                nursery.start_soon(worker)
        return counter[0]

    expect("counter incremented under the lock", _run_trio(main), LOCK_TOTAL)


# -- semaphore_fanout: many tasks through a small semaphore ----------------------------

FANOUT_TASKS = 10_000
FANOUT_PERMITS = 10


class _Gauge:
    """Counts tasks inside the semaphore: the peak must be exactly the permits."""

    def __init__(self) -> None:
        self.inside = 0
        self.peak = 0
        self.done = 0

    def enter(self) -> None:
        self.inside += 1
        self.peak = max(self.peak, self.inside)

    def leave(self) -> None:
        self.inside -= 1
        self.done += 1

    def check(self) -> None:
        expect("tasks through the semaphore", self.done, FANOUT_TASKS)
        expect("peak tasks inside the semaphore", self.peak, FANOUT_PERMITS)


async def _fanout(
    spawn: Callable[[Any], Any], semaphore: Any, yield_once: Callable[[], Any], gauge: _Gauge
) -> None:
    async def worker() -> None:
        async with semaphore:
            gauge.enter()
            await yield_once()
            gauge.leave()

    tasks = [spawn(worker()) for _ in range(FANOUT_TASKS)]
    for task in tasks:
        await task


def semaphore_rio() -> None:
    gauge = _Gauge()

    async def main() -> None:
        await _fanout(rio.spawn, rio.Semaphore(FANOUT_PERMITS), rio.yield_now, gauge)

    run_rio(main)
    gauge.check()


def semaphore_asyncio(run: Callable[..., Any]) -> None:
    gauge = _Gauge()

    async def main() -> None:
        semaphore = asyncio.Semaphore(FANOUT_PERMITS)
        await _fanout(asyncio.create_task, semaphore, lambda: asyncio.sleep(0), gauge)

    run(main)
    gauge.check()


def semaphore_trio() -> None:
    gauge = _Gauge()

    async def main() -> None:
        semaphore = trio.Semaphore(FANOUT_PERMITS)

        async def worker() -> None:
            async with semaphore:
                gauge.enter()
                await trio.lowlevel.checkpoint()
                gauge.leave()

        async with trio.open_nursery() as nursery:
            for _ in range(FANOUT_TASKS):
                nursery.start_soon(worker)

    _run_trio(main)
    gauge.check()


# -- registration ----------------------------------------------------------------------


def _sync_bodies(
    rio_body: Body, asyncio_body: Callable[..., None], trio_body: Body
) -> dict[str, Body]:
    return {"rio": rio_body, **asyncio_and_uvloop(asyncio_body), "trio": trio_body}


register(
    Workload(
        "channel",
        f"1 producer -> 1 consumer, {CHANNEL_ITEMS} items through a bounded channel of "
        f"{CAPACITY} (rio.channel / asyncio.Queue / trio.open_memory_channel)",
        {"items": CHANNEL_ITEMS, "capacity": CAPACITY},
        {
            **_sync_bodies(channel_rio, channel_asyncio, channel_trio),
            "rloop": lambda: channel_asyncio(run_rloop),
            "floor": channel_floor,
        },
        columns=CHANNEL,
    )
)
register(
    Workload(
        "lock",
        f"{LOCK_TASKS} tasks x {LOCK_ROUNDS} rounds contend for one lock, yielding once "
        "while holding it (rio.Lock / asyncio.Lock / trio.Lock)",
        {"tasks": LOCK_TASKS, "rounds": LOCK_ROUNDS},
        _sync_bodies(lock_rio, lock_asyncio, lock_trio),
        columns=SYNC,
    )
)
register(
    Workload(
        "semaphore_fanout",
        f"{FANOUT_TASKS} tasks through a semaphore of {FANOUT_PERMITS}, one yield each "
        "(rio.Semaphore / asyncio.Semaphore / trio.Semaphore)",
        {"tasks": FANOUT_TASKS, "permits": FANOUT_PERMITS},
        _sync_bodies(semaphore_rio, semaphore_asyncio, semaphore_trio),
        columns=SYNC,
    )
)
register(
    Workload(
        "aio_channel",
        f"asyncio tasks, 1 producer -> 1 consumer, {AIO_CHANNEL_ITEMS} items through "
        f"rio.channel({CAPACITY}) on rio's loop / asyncio.Queue({CAPACITY})",
        {"items": AIO_CHANNEL_ITEMS, "capacity": CAPACITY},
        {
            "rio-loop": aio_channel_rio_loop,
            "rio-loop-queue": lambda: aio_channel_queue(_run_rio_loop),
            **asyncio_and_uvloop(aio_channel_queue),
        },
        columns=AIO_SYNC,
    )
)
