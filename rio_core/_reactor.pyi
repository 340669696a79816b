"""Type stubs for ``rio_core._reactor`` (the OS poller driver).

Engine-internal: the runtime owns one ``Reactor``; Python code sees only its
counters, its backend name and its registrations' waiters.
"""

from typing import Any, Final, Literal, Self

from rio_core._runtime import Task
from rio_core._timers import Handle
from typing_extensions import disjoint_base

_Backend = Literal["epoll", "kqueue", "poll", "wsapoll"]

# The poller compiled in: "epoll" (Linux), "kqueue" (macOS, the BSDs), "poll"
# (other POSIX systems, or built with RIO_REACTOR=poll), "wsapoll" (Windows).
BACKEND: Final[_Backend]

@disjoint_base
class Registration:
    """Interest in one fd: at most one reader and one writer.

    A Task waiter is one-shot (the reactor clears it and sets the matching
    bit in ``fired``); a Handle stays until removed.
    """

    reader: Task[Any] | Handle | None
    writer: Task[Any] | Handle | None
    fired: int
    closed: bool
    def __new__(cls, fd: int) -> Self: ...
    @property
    def fd(self) -> int: ...

@disjoint_base
class Reactor:
    """Owns the OS poller and the self-pipe that wakes it.

    Constructing one raises ``OSError`` when the OS refuses a poller or wake-up pipe.
    """

    def __new__(cls, max_events: int = 256) -> Self: ...
    @property
    def wakeup_fd(self) -> int: ...
    @property
    def backend(self) -> _Backend: ...
    @property
    def nready(self) -> int: ...
    @property
    def waits(self) -> int: ...
    def __len__(self) -> int: ...
