"""rio_core: the Cython engine of rio-rt.

Its documented API is what this module exports; ``rio_rt`` uses nothing else.
``rio_core`` never imports ``rio_rt``.
"""

from rio_core._blocking import blocking_pool_size, spawn_blocking
from rio_core._future import (
    Future,
    Interval,
    Sleep,
    YieldNow,
    interval,
    monotonic,
    monotonic_ns,
    sleep,
    sleep_until,
    yield_now,
)
from rio_core._handle import Handle
from rio_core._io import (
    BusyResourceError,
    ClosedResourceError,
    notify_closing,
    wait_readable,
    wait_writable,
)
from rio_core._loop import LoopCore
from rio_core._net import (
    Listener,
    Stream,
    TcpListener,
    TcpStream,
    UdpSocket,
    UnixListener,
    UnixStream,
    lookup_host,
)
from rio_core._runtime import (
    PENDING,
    Context,
    Ready,
    Runtime,
    Task,
    Waker,
    block_on,
    call_at,
    current_runtime,
    current_task,
    debug_build,
    debug_counters,
    spawn,
)
from rio_core._sync import Oneshot
from rio_core._time import TimerHandle, check_seconds
from rio_core._transport import SocketTransport

__all__ = [
    "PENDING",
    "BusyResourceError",
    "ClosedResourceError",
    "Context",
    "Future",
    "Handle",
    "Interval",
    "Listener",
    "LoopCore",
    "Oneshot",
    "Ready",
    "Runtime",
    "Sleep",
    "SocketTransport",
    "Stream",
    "Task",
    "TcpListener",
    "TcpStream",
    "TimerHandle",
    "UdpSocket",
    "UnixListener",
    "UnixStream",
    "Waker",
    "YieldNow",
    "block_on",
    "blocking_pool_size",
    "call_at",
    "check_seconds",
    "current_runtime",
    "current_task",
    "debug_build",
    "debug_counters",
    "interval",
    "lookup_host",
    "monotonic",
    "monotonic_ns",
    "notify_closing",
    "sleep",
    "sleep_until",
    "spawn",
    "spawn_blocking",
    "wait_readable",
    "wait_writable",
    "yield_now",
]
