"""Deadlines for a block of code: ``timeout``, ``timeout_at``, ``wait_for``.

A timeout is a callback timer on the runtime's heap. When it fires it cancels
the task (the body sees ``CancelledError`` at its current await point) and
``__aexit__`` turns that cancellation into the built-in ``TimeoutError``.
Cancellation counting (``Task.cancelling``/``uncancel``) tells a timeout's own
cancellation apart from one requested by somebody else, as in asyncio.
"""

from __future__ import annotations

from asyncio import CancelledError
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, TypeVar

import rio_core

T = TypeVar("T")

__all__ = ["Timeout", "timeout", "timeout_at", "wait_for"]


def _check_deadline(value: float | None, what: str) -> float | None:
    """The engine's check of a user's seconds (None: no deadline)."""
    return rio_core.check_seconds(value, what)


class Timeout:
    """Async context manager that raises ``TimeoutError`` once ``when`` passes.

    ``when`` is a deadline in seconds of ``rio_rt.monotonic()``, or None for
    no deadline. ``reschedule()`` moves it; ``expired()`` tells whether it fired.
    """

    __slots__ = ("_when", "_task", "_handle", "_expired", "_cancelling", "_entered")

    def __init__(self, when: float | None) -> None:
        self._when = _check_deadline(when, "when")
        self._task: rio_core.Task[Any] | None = None
        self._handle: rio_core.TimerHandle | None = None
        self._expired = False
        self._cancelling = 0
        self._entered = False

    def when(self) -> float | None:
        return self._when

    def expired(self) -> bool:
        return self._expired

    def reschedule(self, when: float | None) -> None:
        if self._expired:
            raise RuntimeError("cannot reschedule a timeout that already expired")
        self._when = _check_deadline(when, "when")
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._entered and self._when is not None:
            self._handle = rio_core.call_at(self._when, self._on_timeout)

    async def __aenter__(self) -> Timeout:
        if self._entered:
            raise RuntimeError("a Timeout can be entered only once")
        task = rio_core.current_task()
        if task is None:
            raise RuntimeError("rio_rt.timeout() must be used inside a rio task")
        self._entered = True
        self._task = task
        self._cancelling = task.cancelling()
        if self._when is not None:
            self._handle = rio_core.call_at(self._when, self._on_timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._expired and exc_type is not None and issubclass(exc_type, CancelledError):
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling:
                raise TimeoutError(f"timed out after deadline {self._when}") from exc
        return None

    def _on_timeout(self) -> None:
        self._handle = None
        if self._task is not None and not self._task.done():
            self._expired = True
            self._task.cancel()

    def __repr__(self) -> str:
        state = "expired" if self._expired else ("active" if self._entered else "created")
        return f"<rio Timeout when={self._when} {state}>"


def timeout(seconds: float | None) -> Timeout:
    """``async with rio.timeout(1.5): ...`` raises ``TimeoutError`` after 1.5 s."""
    seconds = _check_deadline(seconds, "seconds")
    if seconds is None:
        return Timeout(None)
    return Timeout(rio_core.monotonic() + max(seconds, 0.0))


def timeout_at(deadline: float | None) -> Timeout:
    """Like ``timeout`` with an absolute deadline (``rio_rt.monotonic()`` seconds)."""
    return Timeout(deadline)


async def wait_for(awaitable: Awaitable[T], seconds: float | None) -> T:
    """Await ``awaitable`` for at most ``seconds``; raise ``TimeoutError`` after.

    A rio Task that times out is cancelled (and awaited) before the error is raised.
    """
    async with timeout(seconds) as scope:
        try:
            return await awaitable
        except CancelledError:
            if scope.expired() and isinstance(awaitable, rio_core.Task):
                awaitable.cancel()
            raise
