"""Type stubs for ``rio_core._token`` (CancellationToken)."""

from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar, final

from rio_core._sync import Primitive, Waiter

_T = TypeVar("_T")

@final
class CancellationToken(Primitive):
    """A cancellation signal in a tree; ``cancel()`` is safe from any thread."""

    def is_cancelled(self) -> bool: ...
    def cancel(self) -> None: ...
    def child_token(self) -> CancellationToken: ...
    def cancelled(self) -> Waiter[None]: ...
    def run_until_cancelled(self, aw: Awaitable[_T]) -> Coroutine[Any, Any, _T | None]: ...
    def _children(self) -> int: ...

@final
class CancelRequest:
    """Cancels one task when its token is cancelled (engine-internal)."""

    def __call__(self, future: object) -> None: ...

async def until_cancelled(token: CancellationToken, aw: Awaitable[_T]) -> _T | None: ...
