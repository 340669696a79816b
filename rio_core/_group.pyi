"""Type stubs for ``rio_core._group`` (JoinSet, TaskGroup)."""

from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, final

from rio_core._runtime import Task
from rio_core._sync import Primitive, Waiter
from typing_extensions import disjoint_base

_T = TypeVar("_T")

def _debug_live_groups() -> int: ...

@final
class ChildFailed:
    """Runs a TaskGroup's reaction to a failed child one tick later (engine-internal)."""

    def __call__(self, task: Task[Any]) -> None: ...

@final
class ChildDone:
    """The done callback of a group's children (engine-internal)."""

    def __call__(self, task: Task[Any]) -> None: ...

@disjoint_base
class Group(Primitive):
    """What JoinSet and TaskGroup share (engine-internal)."""

    def __len__(self) -> int: ...

@disjoint_base
class JoinSet(Group, Generic[_T]):
    """Tasks joined in the order they finish."""

    def spawn(self, coro: Coroutine[Any, Any, _T], *, name: object = None) -> Task[_T]: ...
    def spawn_blocking(self, fn: Callable[..., _T], *args: Any) -> Task[_T]: ...
    def join_next(self) -> Waiter[Task[_T] | None]: ...
    def try_join_next(self) -> Task[_T] | None: ...
    async def join_all(self) -> list[_T]: ...
    def abort_all(self) -> None: ...
    async def shutdown(self) -> None: ...
    def detach_all(self) -> None: ...
    def __aiter__(self) -> Self: ...
    def __anext__(self) -> Waiter[Task[_T]]: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@disjoint_base
class TaskGroup(Group):
    """Structured concurrency: asyncio.TaskGroup's contract, plus cancel() and start()."""

    def spawn(self, coro: Coroutine[Any, Any, _T], *, name: object = None) -> Task[_T]: ...
    def create_task(self, coro: Coroutine[Any, Any, _T], *, name: object = None) -> Task[_T]: ...
    def cancel(self) -> None: ...
    async def start(
        self, fn: Callable[..., Awaitable[object]], *args: Any, name: object = None
    ) -> Any: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@final
class TaskStatus(Primitive):
    """What TaskGroup.start passes its child as ``task_status``."""

    def started(self, value: object = None) -> None: ...
