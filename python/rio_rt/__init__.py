"""rio-rt: a fast async runtime for Python with a Cython engine.

The native API, modelled on Rust's futures::

    import rio_rt as rio

    async def main():
        task = rio.spawn(rio.sleep(0.1))
        await task
        return "done"

    print(rio.block_on(main()))

Everything a user needs is exported here; power tools live in
``rio_rt.lowlevel``.
"""

from asyncio import CancelledError, InvalidStateError

from rio_core import (
    PENDING,
    Context,
    Future,
    Interval,
    Oneshot,
    Ready,
    Runtime,
    Sleep,
    Task,
    Waker,
    current_task,
    interval,
    monotonic,
    sleep,
    sleep_until,
    spawn,
    spawn_blocking,
    yield_now,
)

from rio_rt import lowlevel, net, signal, testing
from rio_rt._loop import EventLoopPolicy, Loop, block_on, install, new_event_loop, run
from rio_rt._timeout import Timeout, timeout, timeout_at, wait_for

__version__ = "0.1.0"

__all__ = [
    "PENDING",
    "CancelledError",
    "Context",
    "EventLoopPolicy",
    "Future",
    "Interval",
    "InvalidStateError",
    "Loop",
    "Oneshot",
    "Ready",
    "Runtime",
    "Sleep",
    "Task",
    "Timeout",
    "Waker",
    "block_on",
    "install",
    "lowlevel",
    "net",
    "signal",
    "testing",
    "current_task",
    "interval",
    "monotonic",
    "new_event_loop",
    "run",
    "sleep",
    "sleep_until",
    "spawn",
    "spawn_blocking",
    "timeout",
    "timeout_at",
    "wait_for",
    "yield_now",
]
