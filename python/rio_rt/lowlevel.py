"""Power tools for building on the rio engine: handles, timers, the runtime."""

from rio_core import (
    BusyResourceError,
    ClosedResourceError,
    Handle,
    TimerHandle,
    YieldNow,
    call_at,
    current_runtime,
    debug_build,
    debug_counters,
    monotonic_ns,
    notify_closing,
    wait_readable,
    wait_writable,
)

__all__ = [
    "BusyResourceError",
    "ClosedResourceError",
    "notify_closing",
    "wait_readable",
    "wait_writable",
    "Handle",
    "TimerHandle",
    "YieldNow",
    "call_at",
    "current_runtime",
    "debug_build",
    "debug_counters",
    "monotonic_ns",
]
