"""Type stubs for ``rio_core._timers`` (callback handles and the timer heap)."""

import contextvars
from collections.abc import Callable
from typing import Any

from typing_extensions import disjoint_base

def callback_source(
    callback: Callable[..., object], args: tuple[Any, ...] | None, debug: bool
) -> str: ...

@disjoint_base
class Handle:
    """A callback queued on the ready queue (the asyncio door's Handle)."""

    def cancel(self) -> None: ...
    def cancelled(self) -> bool: ...
    def get_context(self) -> contextvars.Context | None: ...
    # what asyncio's Handle offers its own event-loop code
    def _run(self) -> None: ...
    @property
    def _source_traceback(self) -> list[Any] | None: ...
    @property
    def _callback(self) -> Callable[..., object] | None: ...
    @property
    def _args(self) -> tuple[Any, ...] | None: ...

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
