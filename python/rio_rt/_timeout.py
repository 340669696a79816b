"""``wait_for``, on the engine's cancel scopes.

``timeout``/``timeout_at`` (and ``Timeout``) are ``rio_core._scope``'s: a
timeout is a cancel scope whose own deadline turns into ``TimeoutError``.
"""

from __future__ import annotations

from asyncio import CancelledError
from collections.abc import Awaitable
from typing import TypeVar

import rio_core
from rio_core import Timeout, timeout, timeout_at

T = TypeVar("T")

__all__ = ["Timeout", "timeout", "timeout_at", "wait_for"]


async def wait_for(awaitable: Awaitable[T], seconds: float | None) -> T:
    """Await ``awaitable`` for at most ``seconds``; raise ``TimeoutError`` after.

    A rio Task that times out is cancelled before the error is raised (it
    finishes on its own; await it to wait for that).
    """
    scope = timeout(seconds)
    async with scope:
        try:
            return await awaitable
        except CancelledError:
            if scope.expired() and isinstance(awaitable, rio_core.Task):
                awaitable.cancel()
            raise
    raise AssertionError("unreachable: the timeout scope re-raises")  # pragma: no cover
