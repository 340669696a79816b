"""rio_core: the Cython engine of rio-rt.

Its documented API is what this module exports; ``rio_rt`` uses nothing else.
``rio_core`` never imports ``rio_rt``.
"""

from rio_core._runtime import (
    PENDING,
    Context,
    Future,
    Ready,
    Runtime,
    Sleep,
    Task,
    Waker,
    YieldNow,
    block_on,
    call_at,
    current_runtime,
    current_task,
    debug_build,
    debug_counters,
    monotonic,
    monotonic_ns,
    sleep,
    sleep_until,
    spawn,
    yield_now,
)
from rio_core._sync import Oneshot
from rio_core._timers import Handle, TimerHandle

__all__ = [
    "PENDING",
    "Context",
    "Future",
    "Handle",
    "Oneshot",
    "Ready",
    "Runtime",
    "Sleep",
    "Task",
    "TimerHandle",
    "Waker",
    "YieldNow",
    "block_on",
    "call_at",
    "current_runtime",
    "current_task",
    "debug_build",
    "debug_counters",
    "monotonic",
    "monotonic_ns",
    "sleep",
    "sleep_until",
    "spawn",
    "yield_now",
]
