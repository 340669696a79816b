"""Type stubs for ``rio_core._loop`` (the asyncio door's scheduling core).

``LoopCore`` implements the part of asyncio's event-loop API that reaches the
scheduler; ``rio_rt.Loop`` combines it with ``asyncio.SelectorEventLoop``.
The underscored members are the asyncio internals it replaces.
"""

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Final, Literal, TypeVar, TypeVarTuple, Unpack

from rio_core._handle import Handle
from rio_core._runtime import Runtime
from rio_core._time import TimerHandle
from typing_extensions import disjoint_base

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

@disjoint_base
class LoopCore(Runtime):
    # The tasks create_task makes without a task factory: "rio" (rio's Task)
    # or "asyncio" (CPython's asyncio.Task).
    @property
    def task_kind(self) -> Literal["rio", "asyncio"]: ...
    def _use_tasks(self, kind: Literal["rio", "asyncio"] | None) -> None: ...
    # asyncio's BaseEventLoop flags, as properties over C fields
    @property
    def _closed(self) -> bool: ...
    @_closed.setter
    def _closed(self, value: object) -> None: ...
    @property
    def _debug(self) -> bool: ...
    @_debug.setter
    def _debug(self, value: object) -> None: ...
    @property
    def _stopping(self) -> bool: ...
    @_stopping.setter
    def _stopping(self, value: object) -> None: ...
    # The asyncio door's run_forever body and one tick of it.
    def _run_until_stopping(self) -> None: ...
    def _run_once(self) -> None: ...
    @property
    def slow_callback_duration(self) -> float: ...
    @slow_callback_duration.setter
    def slow_callback_duration(self, value: float) -> None: ...
    def stop(self) -> None: ...
    def call_soon(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> Handle: ...
    def call_soon_threadsafe(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> Handle: ...
    def call_later(
        self,
        delay: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> TimerHandle: ...
    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> TimerHandle: ...
    def get_debug(self) -> bool: ...
    def is_closed(self) -> bool: ...
    def create_future(self) -> asyncio.Future[Any]: ...
    def create_task(
        self,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
        **kwargs: Any,
    ) -> asyncio.Task[_T]: ...
    def _timer_handle_cancelled(self, handle: TimerHandle) -> None: ...
    def _add_reader(
        self, fd: int | Any, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> Handle: ...
    def _add_writer(
        self, fd: int | Any, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> Handle: ...
    def _remove_reader(self, fd: int | Any) -> bool: ...
    def _remove_writer(self, fd: int | Any) -> bool: ...
    def _rio_interest(self, fd: int) -> tuple[int, Handle | None, Handle | None] | None: ...
    def _rio_watched_fds(self) -> list[int]: ...
    def _rio_clear(self) -> None: ...

TASK_KINDS: Final[tuple[str, str]]

def default_task_kind() -> Literal["rio", "asyncio"]: ...
