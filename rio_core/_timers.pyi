"""Type stubs for ``rio_core._timers`` (callback handles and the timer heap)."""

from typing_extensions import disjoint_base

@disjoint_base
class Handle:
    """A callback queued on the ready queue (the asyncio door's Handle)."""

    def cancel(self) -> None: ...
    def cancelled(self) -> bool: ...

@disjoint_base
class TimerHandle(Handle):
    """A timer on the runtime's heap; ``cancel()`` is O(1)."""

    @property
    def deadline_ns(self) -> int: ...
    def when(self) -> float: ...

@disjoint_base
class TimerHeap:
    """The runtime's timer heap (engine-internal; only its size is visible)."""

    def __len__(self) -> int: ...

def _debug_timer_handles() -> int: ...
