"""Type stubs for ``rio_core._time`` (the time driver: clock, deadlines, timers)."""

from rio_core._handle import Handle
from typing_extensions import disjoint_base

@disjoint_base
class TimerHandle(Handle):
    """A timer on the runtime's heap; ``cancel()`` is O(1)."""

    @property
    def deadline_ns(self) -> int: ...
    def when(self) -> float: ...

@disjoint_base
class TimeDriver:
    """The runtime's clock and timers (engine-internal; ``len()`` is the live timers)."""

    @property
    def cancelled(self) -> int: ...
    def __len__(self) -> int: ...

def check_seconds(seconds: float | None, what: str = "seconds") -> float | None: ...
