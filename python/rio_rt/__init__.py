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
    Barrier,
    BroadcastReceiver,
    BroadcastSender,
    CancellationToken,
    CancelScope,
    ChannelClosed,
    Condition,
    Context,
    Event,
    Future,
    Interval,
    JoinSet,
    Lagged,
    Lock,
    Notify,
    Oneshot,
    Permit,
    Ready,
    Receiver,
    Runtime,
    RwLock,
    Semaphore,
    SemaphoreClosed,
    Sender,
    Sleep,
    SlowPoll,
    Task,
    TaskGroup,
    TaskStack,
    TaskStatus,
    Waker,
    WatchReceiver,
    WatchSender,
    WouldBlock,
    all_tasks,
    broadcast,
    channel,
    current_effective_deadline,
    current_task,
    dump_tasks,
    fail_after,
    fail_at,
    interval,
    monotonic,
    move_on_after,
    move_on_at,
    sleep,
    sleep_until,
    spawn,
    spawn_blocking,
    task_stack,
    watch,
    yield_now,
)

from rio_rt import lowlevel, net, signal, testing
from rio_rt._loop import EventLoopPolicy, Loop, block_on, install, new_event_loop, run
from rio_rt._timeout import Timeout, timeout, timeout_at, wait_for

__version__ = "0.1.0"

__all__ = [
    "Barrier",
    "BroadcastReceiver",
    "BroadcastSender",
    "CancelScope",
    "CancellationToken",
    "CancelledError",
    "ChannelClosed",
    "Condition",
    "Context",
    "Event",
    "EventLoopPolicy",
    "Future",
    "Interval",
    "InvalidStateError",
    "JoinSet",
    "Lagged",
    "Lock",
    "Loop",
    "Notify",
    "Oneshot",
    "PENDING",
    "Permit",
    "Ready",
    "Receiver",
    "Runtime",
    "RwLock",
    "Semaphore",
    "SemaphoreClosed",
    "Sender",
    "Sleep",
    "SlowPoll",
    "Task",
    "TaskGroup",
    "TaskStack",
    "TaskStatus",
    "Timeout",
    "Waker",
    "WatchReceiver",
    "WatchSender",
    "WouldBlock",
    "all_tasks",
    "block_on",
    "broadcast",
    "channel",
    "current_effective_deadline",
    "current_task",
    "dump_tasks",
    "fail_after",
    "fail_at",
    "install",
    "interval",
    "lowlevel",
    "monotonic",
    "move_on_after",
    "move_on_at",
    "net",
    "new_event_loop",
    "run",
    "signal",
    "sleep",
    "sleep_until",
    "spawn",
    "spawn_blocking",
    "task_stack",
    "testing",
    "timeout",
    "timeout_at",
    "wait_for",
    "watch",
    "yield_now",
]
