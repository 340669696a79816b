"""Type stubs for ``rio_core._sync`` (native leaf futures for hand-offs)."""

from collections.abc import Generator
from typing import Any, Generic, TypeVar, overload

from rio_core._future import Future
from rio_core._runtime import Context, Ready, _Pending
from typing_extensions import disjoint_base

_T = TypeVar("_T")

@disjoint_base
class Oneshot(Future, Generic[_T]):
    """A value set once and awaited; ``set`` is safe from any thread.

    Generic for the type checker only: annotate ``o: Oneshot[int] = Oneshot()``.
    """

    @overload
    def set(self: Oneshot[None]) -> None: ...
    @overload
    def set(self, value: _T) -> None: ...
    def set_exception(self, exc: BaseException | type[BaseException]) -> None: ...
    def is_set(self) -> bool: ...
    def poll(self, cx: Context) -> Ready[_T] | _Pending: ...
    def __await__(self) -> Generator[Any, Any, _T]: ...
