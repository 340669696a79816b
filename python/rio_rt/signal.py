"""Signals as async events: ``await ctrl_c()`` and ``async for _ in receive(signum)``.

A Python signal handler runs in the main thread; it counts the delivery and
wakes the waiting tasks through their wakers. ``block_on`` points
``signal.set_wakeup_fd`` at the runtime's self-pipe, so a signal that arrives
while the runtime sleeps in the OS wakes it at once.

While anything listens for a signal here, rio's handler replaces the previous
one, which is restored when the last listener goes. While ``ctrl_c()`` waits,
Ctrl-C is delivered to it instead of cancelling ``block_on``'s main task.
"""

from __future__ import annotations

import signal as _signal
import threading
from types import FrameType, TracebackType
from typing import Any

import rio_core

__all__ = ["SignalReceiver", "ctrl_c", "receive"]

_HandlerType = object
_listeners: dict[int, list[SignalReceiver]] = {}
_previous: dict[int, _HandlerType] = {}


def _dispatch(signum: int, _frame: FrameType | None) -> None:
    for receiver in list(_listeners.get(signum, ())):
        receiver._deliver()


def _subscribe(receiver: SignalReceiver) -> None:
    signum = receiver.signum
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("signals can only be received in the main thread")
    listeners = _listeners.setdefault(signum, [])
    if not listeners:
        _previous[signum] = _signal.signal(signum, _dispatch)
    listeners.append(receiver)


def _unsubscribe(receiver: SignalReceiver) -> None:
    signum = receiver.signum
    listeners = _listeners.get(signum)
    if not listeners or receiver not in listeners:
        return
    listeners.remove(receiver)
    if not listeners:
        del _listeners[signum]
        previous = _previous.pop(signum)
        if threading.current_thread() is threading.main_thread():
            _signal.signal(signum, previous)  # type: ignore[arg-type]


class SignalReceiver(rio_core.Future):
    """Counts deliveries of one signal; awaiting it waits for the next one.

    Subscribed from creation until ``close()`` (or the ``async with`` block
    ends), so no delivery in between is lost.
    """

    def __init__(self, signum: int) -> None:
        if not isinstance(signum, int) or isinstance(signum, bool):
            raise TypeError(f"signum must be an int, got {type(signum).__name__}")
        valid = set(_signal.valid_signals())
        if signum not in valid:
            raise ValueError(f"{signum} is not a valid signal number")
        if signum in (getattr(_signal, "SIGKILL", -1), getattr(_signal, "SIGSTOP", -1)):
            raise ValueError(f"signal {signum} cannot be caught")
        self.signum = signum
        self._pending = 0
        self._waker: rio_core.Waker | None = None
        self._closed = False
        _subscribe(self)

    def _deliver(self) -> None:
        self._pending += 1
        waker = self._waker
        if waker is not None:
            self._waker = None
            waker.wake()

    def poll(self, cx: rio_core.Context) -> Any:
        if self._pending:
            self._pending -= 1
            return rio_core.Ready(self.signum)
        if self._closed:
            raise RuntimeError("the signal receiver is closed")
        self._waker = cx.waker
        return rio_core.PENDING

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _unsubscribe(self)

    def __aiter__(self) -> SignalReceiver:
        return self

    async def __anext__(self) -> int:
        return await self  # type: ignore[no-any-return]

    async def __aenter__(self) -> SignalReceiver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def receive(signum: int) -> SignalReceiver:
    """``async for _ in receive(signal.SIGHUP): ...`` yields once per delivery."""
    return SignalReceiver(signum)


async def ctrl_c() -> None:
    """Wait for the next Ctrl-C (SIGINT)."""
    receiver = SignalReceiver(_signal.SIGINT)
    try:
        await receiver
    finally:
        receiver.close()
