"""Type stubs for ``rio_core._runtime`` (the scheduler: tasks, wakers, the runtime).

Kept honest by ``python -m mypy.stubtest rio_core`` (see ``make lint``).

Typing notes:

- ``Task`` and ``Ready`` are generic here but not subscriptable at run time:
  write ``Task[int]`` only where annotations are not evaluated (with
  ``from __future__ import annotations``, or in quotes).
- ``Future`` is not generic, so subclasses can be written as
  ``class Flag(rio.Future)`` under ``mypy --strict``; a subclass narrows the
  return type of ``poll`` (``Ready[bool] | _Pending``), and awaiting a plain
  ``Future`` gives ``Any``.
- ``_Pending`` is the type of the ``PENDING`` singleton. It has no public
  name at run time; import it only under ``typing.TYPE_CHECKING``.
"""

import contextvars
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import TracebackType
from typing import (
    Any,
    ClassVar,
    Final,
    Generic,
    NoReturn,
    Self,
    TypedDict,
    TypeVar,
    TypeVarTuple,
    Unpack,
    final,
    overload,
)

from rio_core._handle import Wakeable
from rio_core._time import TimerHandle
from typing_extensions import disjoint_base

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_Ts = TypeVarTuple("_Ts")

# What ``throw()`` accepts, as on generators: an exception type or instance,
# optionally a value and a traceback.
_ThrowType = type[BaseException] | BaseException

@final
class _Pending:
    """The single value a leaf future's poll() returns when it is not ready."""

    def __reduce__(self) -> str: ...

PENDING: Final[_Pending]

@final
class Ready(Generic[_T_co]):
    """A leaf future's poll() result when it is ready: ``Ready(value)``."""

    @overload
    def __init__(self: Ready[None]) -> None: ...
    @overload
    def __init__(self, value: _T_co) -> None: ...
    @property
    def value(self) -> _T_co: ...
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

# Waker, Context and Task are made by the runtime: calling the class raises TypeError.

@final
class Waker:
    """Wakes one task. A view of the task: ``wake()`` is a state transition."""

    @property
    def task(self) -> Task[Any]: ...
    def wake(self) -> None: ...
    def wake_by_ref(self) -> None: ...
    def will_wake(self, other: object) -> bool: ...

@final
class Context:
    """What ``poll(cx)`` gets: ``cx.waker`` wakes the task being polled."""

    @property
    def waker(self) -> Waker: ...

@final
class Task(Wakeable, Generic[_T_co]):
    """A spawned coroutine. Await it to join: you get its result or its exception."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @name.setter
    def name(self, value: object) -> None: ...
    def get_name(self) -> str: ...
    def set_name(self, value: object) -> None: ...
    def get_context(self) -> contextvars.Context: ...
    def get_coro(self) -> Coroutine[Any, Any, _T_co] | None: ...
    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def result(self) -> _T_co: ...
    def exception(self) -> BaseException | None: ...
    def cancel(self, msg: Any | None = None) -> bool: ...
    def cancelling(self) -> int: ...
    def uncancel(self) -> int: ...
    def add_done_callback(self, fn: Callable[[Task[_T_co]], object]) -> None: ...
    # The scheduler's state: "IDLE", "SCHEDULED", "RUNNING", "NOTIFIED" or "DONE".
    @property
    def _state(self) -> str: ...
    def remove_done_callback(self, fn: Callable[[Task[_T_co]], object]) -> int: ...
    # Joining: the task is its own awaitable iterator.
    def __await__(self) -> Generator[Any, Any, _T_co]: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> _Pending: ...
    def send(self, value: object) -> _Pending: ...
    def throw(
        self, typ: _ThrowType, val: object = None, tb: TracebackType | None = None
    ) -> NoReturn: ...
    def close(self) -> None: ...
    def __del__(self) -> None: ...

class _RuntimeStats(TypedDict):
    tasks_alive: int
    ready_depth: int
    timers: int
    timers_cancelled: int
    polls: int
    ticks: int
    reactor_waits: int
    fds: int
    injected: int

@disjoint_base
class Runtime:
    """An explicit runtime. ``Runtime().block_on(coro)`` runs on this thread."""

    exception_handler: Callable[[dict[str, Any]], object] | None
    def __init__(self, *, autojump_clock: bool = False) -> None: ...
    @property
    def tasks_alive(self) -> int: ...
    @property
    def polls(self) -> int: ...
    @property
    def ticks(self) -> int: ...
    def time(self) -> float: ...
    def stats(self) -> _RuntimeStats: ...
    def block_on(self, awaitable: Awaitable[_T]) -> _T: ...
    def spawn(self, coro: Coroutine[Any, Any, _T], *, name: object = None) -> Task[_T]: ...
    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> TimerHandle: ...
    def close(self) -> None: ...
    # The reactor's backend: "epoll", "kqueue", "poll" or "wsapoll".
    def _reactor_backend(self) -> str: ...

def spawn(coro: Coroutine[Any, Any, _T], *, name: object = None) -> Task[_T]: ...
def current_task() -> Task[Any] | None: ...
def current_runtime() -> Runtime | None: ...
def call_at(
    when: float,
    callback: Callable[[Unpack[_Ts]], object],
    *args: *_Ts,
    context: contextvars.Context | None = None,
) -> TimerHandle: ...
def block_on(awaitable: Awaitable[_T]) -> _T: ...
def debug_counters() -> dict[str, int]: ...
def debug_build() -> bool: ...
