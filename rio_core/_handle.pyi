"""Type stubs for ``rio_core._handle`` (queued callbacks, and what drivers wake)."""

import contextvars
from collections.abc import Callable
from typing import Any

from typing_extensions import disjoint_base

@disjoint_base
class Wakeable:
    """A parked waiter a driver can wake (the scheduler's Task)."""

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

def _debug_live_handles() -> int: ...
