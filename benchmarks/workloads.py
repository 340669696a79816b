"""Workloads: the same job written for each runner, registered by name.

A runner is one way to execute coroutines:

- ``rio``: rio-rt's native API (`rio_rt.block_on`, `rio_rt.spawn`, leaf `rio_rt.Future`s);
- ``asyncio``: stdlib asyncio on a fresh `asyncio.SelectorEventLoop`;
- ``uvloop``: the same asyncio code on `uvloop.new_event_loop()`;
- ``floor``: the bare CPython loops in `floor.py`.

A workload maps runner names to bodies. A body runs the whole job once (loop or
runtime creation included, so every runner pays for its own setup) and raises
`WrongResult` if the outcome is wrong, so a broken runner cannot look fast. The
harness in `run.py` times each call. A runner missing from a workload's bodies
leaves that cell empty.

The runners above and their ratios are the default `Columns` (`CORE`). A workload
whose job needs other runners declares its own `Columns`: the TCP workloads in
`net_workloads.py` compare rio with asyncio streams, asyncio protocols and uvloop;
the synchronisation workloads in `sync_workloads.py` add a ``trio`` runner (`trio.run`),
and their ``channel`` an ``rloop`` runner (asyncio code on `rloop.new_event_loop()`).
Workloads sharing `Columns` share one table in the report.

To add a workload: write its bodies and call `register(Workload(...))` at the
bottom of this module, as the ones below do.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from floor import FloorFlag, FloorLoop, FloorSleep, bare_yield, run_bare

T = TypeVar("T")
Body = Callable[[], None]

RUNNERS = ("rio", "asyncio", "uvloop", "floor")
# (label, A, B): the ratio is median(B) / median(A), so above 1 means A is faster.
RATIOS = (
    ("rio vs asyncio", "rio", "asyncio"),
    ("rio vs uvloop", "rio", "uvloop"),
    ("floor vs asyncio", "floor", "asyncio"),
    ("rio vs floor", "rio", "floor"),
)


@dataclass(frozen=True)
class Columns:
    """The runners of a group of workloads, the ratios shown, and the one ratio gated.

    A runner named ``BACKEND-STYLE`` (``uvloop-protocols``) runs on ``BACKEND`` and is
    skipped when that backend does not import; see `unavailable`.
    """

    runners: tuple[str, ...]
    ratios: tuple[tuple[str, str, str], ...]  # (label, A, B): median(B) / median(A)
    gated: str  # the label `--min-ratio` checks: rio vs this workload's stdlib asyncio baseline

    def __post_init__(self) -> None:
        labels = [label for label, _, _ in self.ratios]
        if self.gated not in labels:
            raise ValueError(f"gated ratio {self.gated!r} is not one of {labels}")
        strangers = {r for _, a, b in self.ratios for r in (a, b)} - set(self.runners)
        if strangers:
            raise ValueError(f"ratios name runners not in the columns: {sorted(strangers)}")


CORE = Columns(RUNNERS, RATIOS, gated="rio vs asyncio")


def _import_optional(name: str) -> tuple[ModuleType | None, str]:
    """The module, or None and why it cannot be imported."""
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # reported to the user, not hidden: a half-built engine counts
        return None, f"import {name} failed: {type(exc).__name__}: {exc}"


rio: Any
uvloop: Any
rloop: Any
trio: Any
rio, _rio_missing = _import_optional("rio_rt")
uvloop, _uvloop_missing = _import_optional("uvloop")
rloop, _rloop_missing = _import_optional("rloop")  # aio_workloads.py and the channel run it
trio, _trio_missing = _import_optional("trio")  # only sync_workloads.py runs it

# backend name -> why it cannot run in this process
UNAVAILABLE: dict[str, str] = {
    name: why
    for name, why in (
        ("rio", _rio_missing),
        ("uvloop", _uvloop_missing),
        ("rloop", _rloop_missing),
        ("trio", _trio_missing),
    )
    if why
}


# workload name -> why it is not registered here (a library it needs does not import)
MISSING_WORKLOADS: dict[str, str] = {}


def unavailable(runner: str) -> str:
    """Why `runner` cannot run here ("" if it can): its backend, the part before "-", is missing."""
    return UNAVAILABLE.get(runner.partition("-")[0], "")


class WrongResult(Exception):
    """A runner completed a workload with the wrong outcome."""


def expect(what: str, got: object, wanted: object) -> None:
    if got != wanted:
        raise WrongResult(f"{what}: got {got!r}, expected {wanted!r}")


@dataclass(frozen=True)
class Workload:
    name: str
    summary: str
    params: Mapping[str, float]  # sizes, reported with the results
    bodies: Mapping[str, Body]  # runner name -> body
    columns: Columns = CORE  # the runners it is measured on and the ratios it reports


WORKLOADS: dict[str, Workload] = {}


def register(workload: Workload) -> None:
    if workload.name in WORKLOADS:
        raise ValueError(f"workload {workload.name!r} registered twice")
    unknown = set(workload.bodies) - set(workload.columns.runners)
    if unknown:
        raise ValueError(f"workload {workload.name!r} has unknown runners {sorted(unknown)}")
    WORKLOADS[workload.name] = workload


# -- running a main coroutine on each runner ------------------------------------------


def run_rio(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    result: T = rio.block_on(main())
    return result


def run_asyncio(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    # SelectorEventLoop, not the policy's loop: an installed uvloop policy must not leak in.
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop, debug=False) as runner:
        return runner.run(main())


def run_uvloop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop, debug=False) as runner:
        return runner.run(main())


def run_rloop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=rloop.new_event_loop, debug=False) as runner:
        return runner.run(main())


def asyncio_and_uvloop(body: Callable[[Callable[..., Any]], None]) -> dict[str, Body]:
    """The asyncio and uvloop bodies of one asyncio-flavoured body taking a run function."""
    return {
        "asyncio": functools.partial(body, run_asyncio),
        "uvloop": functools.partial(body, run_uvloop),
    }


class Interleaving:
    """Checks that N tasks really took turns: every task started before the first one finished.

    Costs O(1) per task, not per step. A runner whose yield does not suspend would run each
    task to completion in turn and fail this check.
    """

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self.started_at_first_finish = 0

    def start(self) -> None:
        self.started += 1

    def finish(self) -> None:
        if self.finished == 0:
            self.started_at_first_finish = self.started
        self.finished += 1

    def check(self, tasks: int) -> None:
        expect("tasks finished", self.finished, tasks)
        expect("tasks started before the first one finished", self.started_at_first_finish, tasks)


# -- yield: N tasks each suspending M times -------------------------------------------

YIELD_TASKS = 100
YIELD_STEPS = 3_000


def _yield_check(results: list[int], progress: Interleaving) -> None:
    expect("sum of task results", sum(results), YIELD_TASKS * YIELD_STEPS)
    progress.check(YIELD_TASKS)


def yield_rio() -> None:
    async def worker(progress: Interleaving) -> int:
        progress.start()
        for _ in range(YIELD_STEPS):
            await rio.yield_now()
        progress.finish()
        return YIELD_STEPS

    async def main(progress: Interleaving) -> list[int]:
        tasks = [rio.spawn(worker(progress)) for _ in range(YIELD_TASKS)]
        return [await task for task in tasks]

    progress = Interleaving()
    _yield_check(run_rio(lambda: main(progress)), progress)


def yield_asyncio(run: Callable[..., Any]) -> None:
    async def worker(progress: Interleaving) -> int:
        progress.start()
        for _ in range(YIELD_STEPS):
            await asyncio.sleep(0)
        progress.finish()
        return YIELD_STEPS

    async def main(progress: Interleaving) -> list[int]:
        tasks = [asyncio.create_task(worker(progress)) for _ in range(YIELD_TASKS)]
        return [await task for task in tasks]

    progress = Interleaving()
    _yield_check(run(lambda: main(progress)), progress)


def yield_floor() -> None:
    # The contract's floor exactly: run_bare sends None to coroutines from a deque; there is
    # no main task to join, the loop collects results as the coroutines finish.
    async def worker(progress: Interleaving) -> int:
        progress.start()
        for _ in range(YIELD_STEPS):
            await bare_yield()
        progress.finish()
        return YIELD_STEPS

    progress = Interleaving()
    _yield_check(run_bare(worker(progress) for _ in range(YIELD_TASKS)), progress)


# -- spawn_join: spawn many trivial tasks, then await each ----------------------------

SPAWN_TASKS = 10_000
SPAWN_ROUNDS = 6
SPAWN_TOTAL = SPAWN_ROUNDS * (SPAWN_TASKS * (SPAWN_TASKS - 1) // 2)


async def _identity(value: int) -> int:
    return value


def spawn_join_rio() -> None:
    async def main() -> int:
        total = 0
        for _ in range(SPAWN_ROUNDS):
            tasks = [rio.spawn(_identity(i)) for i in range(SPAWN_TASKS)]
            for task in tasks:
                total += await task
        return total

    expect("sum of joined results", run_rio(main), SPAWN_TOTAL)


def spawn_join_asyncio(run: Callable[..., Any]) -> None:
    async def main() -> int:
        total = 0
        for _ in range(SPAWN_ROUNDS):
            tasks = [asyncio.create_task(_identity(i)) for i in range(SPAWN_TASKS)]
            for task in tasks:
                total += await task
        return total

    expect("sum of joined results", run(main), SPAWN_TOTAL)


def spawn_join_floor() -> None:
    # Floor: spawning is FloorTask(coro) appended to the deque; joining parks the main
    # coroutine on the task, which re-queues it when it finishes (FloorLoop).
    async def main(loop: FloorLoop) -> int:
        total = 0
        for _ in range(SPAWN_ROUNDS):
            tasks = [loop.spawn(_identity(i)) for i in range(SPAWN_TASKS)]
            for task in tasks:
                total += await task
        return total

    loop = FloorLoop()
    expect("sum of joined results", loop.run(main(loop)), SPAWN_TOTAL)


# -- ping_pong: two tasks pass a counter back and forth through leaf futures ----------

PING_PONG_HOPS = 100_000


@functools.cache
def _rio_flag_class() -> Any:
    """README.md's `Flag` example, carrying a value: a pure-Python leaf `rio_rt.Future`."""

    class Flag(rio.Future):  # type: ignore[misc]  # rio_rt is imported dynamically
        def __init__(self) -> None:
            self.is_set = False
            self.value: int | None = None
            self.waker: Any = None

        def poll(self, cx: Any) -> Any:
            if self.is_set:
                return rio.Ready(self.value)
            self.waker = cx.waker  # whoever sets us wakes the task
            return rio.PENDING

        def set(self, value: int) -> None:
            self.value = value
            self.is_set = True
            if self.waker is not None:
                self.waker.wake()

    return Flag


async def _player(
    me: int,
    inboxes: list[Any],
    new_inbox: Callable[[], Any],
    send: Callable[[Any, int], None],
    hops: int,
) -> int:
    """Receive a counter in inboxes[me], reply counter+1 to the other player, until `hops`.

    Each receive uses a fresh future, as asyncio code does. The inbox is replaced before
    replying, so the other player always replies into a future nobody has set yet.
    """
    other = 1 - me
    while True:
        counter: int = await inboxes[me]
        inboxes[me] = new_inbox()
        if counter >= hops:
            return counter
        send(inboxes[other], counter + 1)
        if counter + 1 >= hops:
            return counter + 1


async def _ping_pong(
    spawn: Callable[[Coroutine[Any, Any, int]], Awaitable[int]],
    new_inbox: Callable[[], Any],
    send: Callable[[Any, int], None],
) -> list[int]:
    inboxes = [new_inbox(), new_inbox()]
    players = [spawn(_player(me, inboxes, new_inbox, send, PING_PONG_HOPS)) for me in (0, 1)]
    send(inboxes[0], 0)  # serve
    return [await player for player in players]


def _ping_pong_check(results: list[int]) -> None:
    expect("final counter seen by each player", results, [PING_PONG_HOPS, PING_PONG_HOPS])


def ping_pong_rio() -> None:
    flag = _rio_flag_class()
    _ping_pong_check(run_rio(lambda: _ping_pong(rio.spawn, flag, flag.set)))


def ping_pong_oneshot_rio() -> None:
    # The same hand-off through rio's native leaf future (rio_rt.Oneshot, polled in C).
    _ping_pong_check(run_rio(lambda: _ping_pong(rio.spawn, rio.Oneshot, rio.Oneshot.set)))


def ping_pong_asyncio(run: Callable[..., Any]) -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        set_result = asyncio.Future.set_result
        return await _ping_pong(asyncio.create_task, loop.create_future, set_result)

    _ping_pong_check(run(main))


def ping_pong_floor() -> None:
    # Floor: FloorFlag is a value cell whose waiter is re-queued on set (FloorLoop).
    loop = FloorLoop()
    _ping_pong_check(loop.run(_ping_pong(loop.spawn, FloorFlag, FloorFlag.set)))


# -- sleeps: many concurrent sleeps of distinct short durations -----------------------

SLEEP_TASKS = 10_000
SLEEP_MIN = 0.001
SLEEP_SPREAD = 0.004  # durations are SLEEP_MIN + SLEEP_SPREAD * i / SLEEP_TASKS, all distinct
SLEEP_ROUNDS = 3


def _sleep_duration(i: int) -> float:
    return SLEEP_MIN + SLEEP_SPREAD * i / SLEEP_TASKS


async def _sleeps(
    spawn: Callable[[Coroutine[Any, Any, int]], Awaitable[int]],
    sleep: Callable[[float], Awaitable[Any]],
) -> int:
    """Each task sleeps and reports 1 if it woke early; the total must be 0."""

    async def sleeper(duration: float) -> int:
        began = time.monotonic()  # before the sleep fixes its deadline
        await sleep(duration)
        return int(time.monotonic() - began < duration)

    early = 0
    for _ in range(SLEEP_ROUNDS):
        tasks = [spawn(sleeper(_sleep_duration(i))) for i in range(SLEEP_TASKS)]
        for task in tasks:
            early += await task
    return early


def sleeps_rio() -> None:
    expect("tasks woken early", run_rio(lambda: _sleeps(rio.spawn, rio.sleep)), 0)


def sleeps_asyncio(run: Callable[..., Any]) -> None:
    async def main() -> int:
        return await _sleeps(asyncio.create_task, asyncio.sleep)

    expect("tasks woken early", run(main), 0)


def sleeps_floor() -> None:
    # Floor: FloorLoop with a heapq of deadlines and time.sleep when idle -- the minimum a
    # timer needs (asyncio uses heapq too), with no handles or cancellation.
    loop = FloorLoop()
    expect("tasks woken early", loop.run(_sleeps(loop.spawn, FloorSleep)), 0)


register(
    Workload(
        "yield",
        f"{YIELD_TASKS} tasks x {YIELD_STEPS} yields (rio.yield_now / asyncio.sleep(0))",
        {"tasks": YIELD_TASKS, "steps": YIELD_STEPS},
        {"rio": yield_rio, **asyncio_and_uvloop(yield_asyncio), "floor": yield_floor},
    )
)
register(
    Workload(
        "spawn_join",
        f"{SPAWN_ROUNDS} x spawn {SPAWN_TASKS} trivial tasks, then await each",
        {"tasks": SPAWN_TASKS, "rounds": SPAWN_ROUNDS},
        {
            "rio": spawn_join_rio,
            **asyncio_and_uvloop(spawn_join_asyncio),
            "floor": spawn_join_floor,
        },
    )
)
register(
    Workload(
        "ping_pong",
        f"2 tasks pass a counter {PING_PONG_HOPS} times, a fresh leaf future per hop "
        "(rio: native Oneshot; asyncio: loop.create_future)",
        {"hops": PING_PONG_HOPS},
        {
            "rio": ping_pong_oneshot_rio,
            **asyncio_and_uvloop(ping_pong_asyncio),
            "floor": ping_pong_floor,
        },
    )
)
register(
    Workload(
        "ping_pong_pyfuture",
        "as ping_pong, but rio's leaf future is a pure-Python rio_rt.Future subclass "
        "with poll(cx) (4 Python frames per hop)",
        {"hops": PING_PONG_HOPS},
        {"rio": ping_pong_rio, **asyncio_and_uvloop(ping_pong_asyncio), "floor": ping_pong_floor},
    )
)
register(
    Workload(
        "sleeps",
        f"{SLEEP_ROUNDS} x {SLEEP_TASKS} concurrent sleeps of distinct 1-5 ms durations",
        {
            "tasks": SLEEP_TASKS,
            "rounds": SLEEP_ROUNDS,
            "shortest_s": SLEEP_MIN,
            "longest_s": SLEEP_MIN + SLEEP_SPREAD,
        },
        {"rio": sleeps_rio, **asyncio_and_uvloop(sleeps_asyncio), "floor": sleeps_floor},
    )
)
