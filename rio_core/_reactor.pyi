"""Type stubs for ``rio_core._reactor`` (the OS poller driver).

Engine-internal: the runtime owns one ``Reactor``; Python code sees only its
counters and file descriptors.
"""

from typing import Any

from rio_core._runtime import Task
from rio_core._timers import Handle

class Registration:
    """Interest in one fd: at most one reader and one writer (a Task or Handle)."""

    reader: Task[Any] | Handle | None
    writer: Task[Any] | Handle | None
    def __init__(self, fd: int) -> None: ...
    @property
    def fd(self) -> int: ...

class Reactor:
    """Owns the epoll instance and the self-pipe that wakes it.

    Constructing one raises ``OSError`` where epoll is not available.
    """

    def __init__(self, max_events: int = 256) -> None: ...
    @property
    def wakeup_fd(self) -> int: ...
    @property
    def nready(self) -> int: ...
    @property
    def waits(self) -> int: ...
    def fileno(self) -> int: ...
    def __len__(self) -> int: ...
