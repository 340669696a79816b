"""``spawn_blocking``: run a blocking function in a bounded thread pool.

The pool thread completes a leaf future and wakes the task through its
waker, which is safe from any thread (the runtime's inject queue plus its
wake-up fd).
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import rio_core._runtime as rio_core
from rio_core._future import Future

T = TypeVar("T")

__all__ = ["spawn_blocking", "blocking_pool_size"]

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def blocking_pool_size() -> int:
    """The number of threads the blocking pool may use."""
    return min(64, (os.cpu_count() or 1) * 4 + 4)


def _get_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=blocking_pool_size(), thread_name_prefix="rio-blocking"
                )
    return _pool


class _BlockingCall(Future):
    """A leaf future completed by a pool thread."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._fn = fn
        self._args = args
        self._future: concurrent.futures.Future[Any] | None = None
        self._waker: rio_core.Waker | None = None
        self._runtime: rio_core.Runtime | None = None

    def poll(self, cx: rio_core.Context) -> Any:
        self._waker = cx.waker
        if self._future is None:
            # counted while it runs: a test clock never jumps during a job
            runtime = rio_core.current_runtime()
            if runtime is not None:
                runtime._blocking_job_started()
                self._runtime = runtime
            self._future = _get_pool().submit(self._fn, *self._args)
            self._future.add_done_callback(self._on_done)
        elif self._future.done():
            return rio_core.Ready(self._future)
        return rio_core.PENDING

    def _on_done(self, _future: concurrent.futures.Future[Any]) -> None:
        # runs in the pool thread: drop the waker (it references the task) before waking
        waker, self._waker = self._waker, None
        runtime, self._runtime = self._runtime, None
        if waker is not None:
            waker.wake()
        if runtime is not None:  # after the wake is handed over (see Runtime._blocking_job_done)
            runtime._blocking_job_done()

    def cancel(self) -> None:
        if self._future is not None:
            self._future.cancel()


async def _run_blocking(call: _BlockingCall) -> Any:
    try:
        future = await call
    except BaseException:
        call.cancel()
        raise
    return future.result()


def spawn_blocking(fn: Callable[..., T], /, *args: Any) -> rio_core.Task[T]:
    """Run ``fn(*args)`` in the blocking thread pool; the returned Task gives
    its return value or raises its exception when awaited."""
    if not callable(fn):
        raise TypeError(f"spawn_blocking() expects a callable, got {type(fn).__name__}")
    return rio_core.spawn(
        _run_blocking(_BlockingCall(fn, args)), name=getattr(fn, "__name__", None)
    )
