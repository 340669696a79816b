"""Type stubs for ``rio_core._reactor`` (the I/O driver).

Engine-internal: the runtime owns one ``Reactor``; Python code sees only its
counters and its backend name. Registrations are reached only through the
reactor's C methods.
"""

from typing import Final, Literal, Self

from typing_extensions import disjoint_base

_Backend = Literal["epoll", "kqueue", "poll", "wsapoll"]

# The poller compiled in: "epoll" (Linux), "kqueue" (macOS, the BSDs), "poll"
# (other POSIX systems, or built with RIO_REACTOR=poll), "wsapoll" (Windows).
BACKEND: Final[_Backend]

@disjoint_base
class Registration:
    """Interest in one fd: per direction, a parked task or an asyncio handle."""

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
    def waits(self) -> int: ...
    def __len__(self) -> int: ...
