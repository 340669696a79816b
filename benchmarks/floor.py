"""The floor: the least work CPython itself does to drive a workload's coroutines.

The project measures the native API against "a loop that only calls
``coro.send(None)`` on coroutines taken from a deque" (benchmarks/README.md).
`run_bare` is exactly that loop; it is the floor for the ``yield`` workload,
whose coroutines await `bare_yield`.

Workloads that need more than re-queueing (joining a task, waking a parked task,
waiting for a deadline) run on `FloorLoop`: the same deque-and-send loop plus the
one structure each of those needs and nothing else. A coroutine suspends by
yielding ``None`` (run me again later) or an object with ``park(task, loop)``,
which records who to wake; the object puts the task back on ``loop.ready`` when
it is done. There is no handle, no callback, no cancellation, no context switch
and no error handling: a real runtime needs those, so it is expected to sit
above this floor, and the distance is what the suite reports.
"""

from __future__ import annotations

import heapq
import time
import types
from collections import deque
from collections.abc import Coroutine, Generator, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@types.coroutine
def bare_yield() -> Generator[None, None, None]:
    """Suspend once; the floor loop re-queues the coroutine at the back."""
    yield


def run_bare(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run coroutines that only ever yield ``None``; return their results in finishing order."""
    ready = deque(coros)
    popleft, append = ready.popleft, ready.append
    results: list[T] = []
    while ready:
        coro = popleft()
        try:
            coro.send(None)
        except StopIteration as stop:
            results.append(stop.value)
        else:
            append(coro)
    return results


class FloorTask(Generic[T]):
    """A coroutine plus what joining it needs: its result and the one task awaiting it."""

    __slots__ = ("coro", "done", "result", "joiner")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self.coro = coro
        self.done = False
        self.result: T | None = None
        self.joiner: FloorTask[Any] | None = None  # Invariant: set at most once, by park().

    def park(self, task: FloorTask[Any], loop: FloorLoop) -> None:
        self.joiner = task

    def __await__(self) -> Generator[Any, None, T]:
        if not self.done:
            yield self  # woken by the loop when this task finishes
        return self.result  # type: ignore[return-value]  # done implies result is set


class FloorFlag(Generic[T]):
    """A one-shot value cell: the floor's leaf future (compare the `Flag` example in README.md)."""

    def __init__(self) -> None:
        self.is_set = False
        self.value: T | None = None
        self.waiter: FloorTask[Any] | None = None
        self.loop: FloorLoop | None = None

    def park(self, task: FloorTask[Any], loop: FloorLoop) -> None:
        self.waiter = task
        self.loop = loop

    def set(self, value: T) -> None:
        self.value = value
        self.is_set = True
        if self.waiter is not None and self.loop is not None:
            self.loop.ready.append(self.waiter)

    def __await__(self) -> Generator[Any, None, T]:
        while not self.is_set:
            yield self
        return self.value  # type: ignore[return-value]  # is_set implies value is set


class FloorSleep:
    """Ready ``seconds`` after it was created; parks its task in the loop's timer heap."""

    __slots__ = ("deadline",)

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def park(self, task: FloorTask[Any], loop: FloorLoop) -> None:
        loop.timer_seq += 1  # tie-breaker: tasks never compare
        heapq.heappush(loop.timers, (self.deadline, loop.timer_seq, task))

    def __await__(self) -> Generator[Any, None, None]:
        while time.monotonic() < self.deadline:  # never early, even if time.sleep is
            yield self


class FloorLoop:
    """The deque-and-send loop with joins, parking and a timer heap (heapq, as asyncio uses)."""

    def __init__(self) -> None:
        self.ready: deque[FloorTask[Any]] = deque()
        self.timers: list[tuple[float, int, FloorTask[Any]]] = []
        self.timer_seq = 0

    def spawn(self, coro: Coroutine[Any, Any, T]) -> FloorTask[T]:
        task = FloorTask(coro)
        self.ready.append(task)
        return task

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        main_task = self.spawn(main)
        ready, timers = self.ready, self.timers
        popleft, append = ready.popleft, ready.append
        while True:
            while ready:
                task = popleft()
                try:
                    parked_on = task.coro.send(None)
                except StopIteration as stop:
                    task.result = stop.value
                    task.done = True
                    if task.joiner is not None:
                        append(task.joiner)
                    continue
                if parked_on is None:
                    append(task)
                else:
                    parked_on.park(task, self)
            if not timers:
                break
            # Idle: timers are only looked at when nothing is ready (enough for these
            # workloads, where everything ready soon parks again).
            delay = timers[0][0] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                append(heapq.heappop(timers)[2])
        if not main_task.done:
            raise RuntimeError("floor loop ran out of work before the main coroutine finished")
        return main_task.result  # type: ignore[return-value]


def floor_channel(items: int, capacity: int) -> tuple[int, int]:
    """The floor of the ``channel`` workload: a producer passes ``items`` ints to a consumer
    through a ``deque`` bounded at ``capacity``, batched as rio's channel batches them.

    The producer appends until the buffer is full, then parks (waking the consumer if it
    is parked); the consumer drains the buffer, then parks (waking the producer if it is
    parked); it returns (count, sum) once the producer is done and the buffer empty. Two
    coroutines, a bare ``coro.send(None)`` loop, the buffer and two flags: the channel's
    logic written inline, with no call, await or object per item; what is left is
    CPython's own per-item work (the loops, the ints, the deque).
    """
    buffer: deque[int] = deque()
    ready: deque[Coroutine[Any, Any, Any]] = deque()
    producer_parked = consumer_parked = producer_done = False

    async def produce() -> None:
        nonlocal producer_parked, consumer_parked, producer_done
        append = buffer.append
        for i in range(items):
            if len(buffer) >= capacity:
                producer_parked = True
                if consumer_parked:
                    consumer_parked = False
                    ready.append(consumer)
                await bare_yield()  # parked: the consumer puts us back on `ready`
            append(i)
        producer_done = True
        if consumer_parked:
            consumer_parked = False
            ready.append(consumer)

    async def consume() -> tuple[int, int]:
        nonlocal producer_parked, consumer_parked
        popleft = buffer.popleft
        count = total = 0
        while True:
            while buffer:
                item = popleft()
                count += 1
                total += item
            if producer_done:
                return count, total
            if producer_parked:
                producer_parked = False
                ready.append(producer)
            consumer_parked = True
            await bare_yield()  # parked: the producer puts us back on `ready`

    producer, consumer = produce(), consume()
    ready.extend((producer, consumer))
    result: tuple[int, int] = (0, 0)
    while ready:
        coro = ready.popleft()
        try:
            coro.send(None)
        except StopIteration as stop:
            if coro is consumer:
                result = stop.value
    return result
