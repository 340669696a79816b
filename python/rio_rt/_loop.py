"""The asyncio door: ``rio_rt.Loop``, a complete asyncio event loop on the rio engine.

``Loop`` inherits the scheduling core from the engine (``rio_core.LoopCore``:
ready queue, timer heap, reactor) and everything else from asyncio's
``SelectorEventLoop``: transports, servers, SSL, subprocesses, signal
handlers, executors and the exception-handler family run unchanged, because
they reach the scheduler only through the methods the engine replaces.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, Literal, TypeVar

import rio_core

T = TypeVar("T")
TaskKind = Literal["rio", "asyncio"]

# RIO_ASYNCIO_TRANSPORTS=1 falls back to asyncio's Python socket transports.
_ENGINE_TRANSPORTS = os.environ.get("RIO_ASYNCIO_TRANSPORTS", "") in ("", "0")

__all__ = ["EventLoopPolicy", "Loop", "block_on", "install", "new_event_loop", "run"]


class _ReactorSelector(selectors.BaseSelector):
    """``loop._selector``: a read-only view of the engine's reactor.

    asyncio's own transports describe themselves with it ("polling"/"idle") and
    some code asks it which fds are watched; readers and writers are added with
    ``add_reader``/``add_writer``, which go to the engine. It owns no OS poller.
    """

    def __init__(self, loop: Loop) -> None:
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        raise NotImplementedError("rio's reactor is driven through loop.add_reader/add_writer")

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        raise NotImplementedError("rio's reactor: use loop.remove_reader/remove_writer")

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        raise NotImplementedError("rio's reactor is driven through loop.add_reader/add_writer")

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        raise NotImplementedError("rio's loop polls its reactor itself")

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else int(fileobj.fileno())
        interest = self._loop._rio_interest(fd)
        if interest is None:
            raise KeyError(f"{fileobj!r} is not registered")
        events, reader, writer = interest
        return selectors.SelectorKey(fileobj, fd, events, (reader, writer))

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return _WatchedFds(self)

    def close(self) -> None:
        pass  # the loop closes its reactor


class _WatchedFds(Mapping[Any, selectors.SelectorKey]):
    def __init__(self, selector: _ReactorSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._loop._rio_watched_fds())

    def __iter__(self) -> Iterator[int]:
        return iter(self._selector._loop._rio_watched_fds())

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        return self._selector.get_key(fileobj)


class Loop(rio_core.LoopCore, asyncio.SelectorEventLoop):  # type: ignore[misc]
    """An asyncio event loop whose ready queue, timers and reactor are rio's engine."""

    def __init__(
        self,
        *,
        clock: rio_core.MockClock | None = None,
        instrument: bool = False,
        slow_poll: float | None = None,
        on_slow_poll: Callable[[rio_core.SlowPoll], object] | None = None,
        tasks: TaskKind | None = None,
    ) -> None:
        asyncio.SelectorEventLoop.__init__(self, _ReactorSelector(self))
        try:
            self._use_tasks(tasks)
        except BaseException:
            self.close()  # a bad value leaves nothing open
            raise
        self.exception_handler = self._rio_callback_failed
        if clock is not None:
            self._use_clock(clock)
        self._configure_observe(instrument, slow_poll, on_slow_poll)

    def run_in_executor(  # type: ignore[override]  # same signature, spelled loosely
        self, executor: Any, func: Any, *args: Any
    ) -> asyncio.Future[Any]:
        future = super().run_in_executor(executor, func, *args)
        if self.clock is not None:
            # on test time, count the job: the clock never jumps while one runs
            self._blocking_job_started()
            future.add_done_callback(self._executor_job_done)
        return future

    def _executor_job_done(self, _future: asyncio.Future[Any]) -> None:
        self._blocking_job_done()

    def _rio_callback_failed(self, context: dict[str, Any]) -> None:
        handle = context.get("handle")
        callback = getattr(handle, "_callback", None)
        self.call_exception_handler(
            {
                "message": f"Exception in callback {callback!r}",
                "exception": context["exception"],
                "handle": handle,
            }
        )

    def run_forever(self) -> None:
        """Run until stop() is called; the tick loop itself runs in the engine."""
        setup = getattr(self, "_run_forever_setup", None)
        if setup is not None:  # Python 3.13+: asyncio exposes setup and cleanup
            # setup refuses a loop that is closed or already running; then there
            # is nothing to clean up (the running loop stays the running loop)
            setup()
            try:
                self._run_until_stopping()
            finally:
                self._run_forever_cleanup()  # type: ignore[attr-defined]
            return
        self._check_closed()  # type: ignore[attr-defined]
        self._check_running()  # type: ignore[attr-defined]
        self._set_coroutine_origin_tracking(self._debug)  # type: ignore[attr-defined]
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook,  # type: ignore[attr-defined]
                finalizer=self._asyncgen_finalizer_hook,  # type: ignore[attr-defined]
            )
            asyncio.events._set_running_loop(self)
            self._run_until_stopping()
        finally:
            self._stopping = False
            self._thread_id = None  # type: ignore[assignment]
            asyncio.events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)  # type: ignore[attr-defined]
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def block_on(self, awaitable: Any) -> Any:
        """rio's ``block_on`` with this loop as the running asyncio loop, so asyncio
        futures, tasks and libraries work inside; asyncio tasks left over are
        cancelled, then async generators and the default executor are shut down,
        as ``asyncio.run`` does."""
        if asyncio.events._get_running_loop() is not None:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise RuntimeError("block_on() cannot be called while an event loop is running")
        self._check_closed()  # type: ignore[attr-defined]
        old_agen_hooks = sys.get_asyncgen_hooks()
        self._thread_id = threading.get_ident()
        sys.set_asyncgen_hooks(
            firstiter=self._asyncgen_firstiter_hook,  # type: ignore[attr-defined]
            finalizer=self._asyncgen_finalizer_hook,  # type: ignore[attr-defined]
        )
        asyncio.events._set_running_loop(self)
        try:
            return rio_core.LoopCore.block_on(self, self._with_asyncio_cleanup(awaitable))
        finally:
            asyncio.events._set_running_loop(None)
            self._thread_id = None  # type: ignore[assignment]
            sys.set_asyncgen_hooks(*old_agen_hooks)

    async def _with_asyncio_cleanup(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        finally:
            # (no task kept in this frame: an exception's traceback holds it)
            await _cancel_and_wait(_leftover_tasks(self))
            await self.shutdown_asyncgens()
            await self.shutdown_default_executor()

    def _make_socket_transport(
        self,
        sock: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        *,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> Any:
        """TCP and Unix stream transports are the engine's (Cython, on the reactor)."""
        if _ENGINE_TRANSPORTS and sock.type == socket.SOCK_STREAM:
            return rio_core.SocketTransport(self, sock, protocol, waiter, extra, server)
        return super()._make_socket_transport(  # type: ignore[misc]
            sock, protocol, waiter, extra=extra, server=server
        )

    async def _sendfile_fallback(
        self, transp: Any, file: Any, offset: int, count: int | None
    ) -> int:
        """loop.sendfile() on an engine transport: read blocks in the executor,
        write them, and wait for the transport's buffer to drain (asyncio's own
        fallback only accepts its Python transports)."""
        if not isinstance(transp, rio_core.SocketTransport):
            return await super()._sendfile_fallback(  # type: ignore[misc,no-any-return]
                transp, file, offset, count
            )
        if offset:
            file.seek(offset)
        blocksize = min(count, 16384) if count else 16384
        buf = bytearray(blocksize)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        return total_sent
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total_sent
                transp.write(view[:read])
                total_sent += read
                if transp.get_write_buffer_size() > transp.get_write_buffer_limits()[1]:
                    waiter = transp._make_empty_waiter()
                    try:
                        await waiter
                    finally:
                        transp._reset_empty_waiter()
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset + total_sent)

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        try:
            asyncio.SelectorEventLoop.close(self)
        finally:
            self._rio_clear()  # the engine's reactor and its fds go in any case

    def _close_self_pipe(self) -> None:
        # A loop dropped without close() is finalized together with its self-pipe
        # sockets, in whatever order the GC picks: the reading socket may already
        # be closed (fileno() -1). Its registration goes with the reactor.
        ssock: socket.socket = self._ssock  # type: ignore[has-type]
        if ssock.fileno() == -1:
            csock: socket.socket = self._csock  # type: ignore[has-type]
            ssock.close()
            csock.close()
            self._ssock = self._csock = None
            self._internal_fds -= 1  # type: ignore[attr-defined]
            return
        super()._close_self_pipe()  # type: ignore[misc]

    def __repr__(self) -> str:
        return (
            f"<rio_rt.Loop running={self.is_running()} closed={self.is_closed()} "
            f"debug={self.get_debug()}>"
        )


def block_on(awaitable: Any) -> Any:
    """Run ``awaitable`` on a fresh rio loop on this thread and return its value
    (or raise its exception). Native rio tasks and asyncio code both work inside.
    Tasks still running at the end are cancelled and awaited; Ctrl-C cancels the
    main task, lets ``finally`` blocks run, then raises ``KeyboardInterrupt``."""
    if rio_core.current_runtime() is not None:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError(
            "block_on() cannot be called from a running rio runtime: it would block "
            "the runtime's thread; await the coroutine (or spawn it) instead"
        )
    loop = Loop()
    try:
        return loop.block_on(awaitable)
    finally:
        loop.close()


def _leftover_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    this = asyncio.current_task()
    return [task for task in asyncio.all_tasks(loop) if task is not this]


async def _cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()


def new_event_loop(
    *,
    clock: rio_core.MockClock | None = None,
    instrument: bool = False,
    slow_poll: float | None = None,
    on_slow_poll: Callable[[rio_core.SlowPoll], object] | None = None,
    tasks: TaskKind | None = None,
) -> Loop:
    """A new rio event loop (not set as the current loop); ``clock``: a test
    clock (``rio_rt.testing.MockClock``); ``instrument``, ``slow_poll`` and
    ``on_slow_poll``: as for ``rio_rt.Runtime``; ``tasks``: the tasks
    ``create_task`` makes, ``"rio"`` (rio's Task, the default) or ``"asyncio"``
    (CPython's ``asyncio.Task``; also the default when ``RIO_ASYNCIO_TASKS=1``)."""
    return Loop(
        clock=clock,
        instrument=instrument,
        slow_poll=slow_poll,
        on_slow_poll=on_slow_poll,
        tasks=tasks,
    )


def run(
    main: Coroutine[Any, Any, T], *, debug: bool | None = None, tasks: TaskKind | None = None
) -> T:
    """``asyncio.run`` on a rio loop: runs ``main``, then cancels leftover tasks,
    shuts down async generators and the default executor, and closes the loop.
    ``tasks``: as for ``new_event_loop``."""
    if asyncio.events._get_running_loop() is not None:
        if asyncio.iscoroutine(main):
            main.close()
        raise RuntimeError("rio_rt.run() cannot be called from a running event loop")
    with asyncio.Runner(debug=debug, loop_factory=lambda: new_event_loop(tasks=tasks)) as runner:
        return runner.run(main)


if sys.version_info >= (3, 14):
    _BasePolicy: Any = asyncio.events._BaseDefaultEventLoopPolicy  # type: ignore[attr-defined]
else:
    _BasePolicy = asyncio.DefaultEventLoopPolicy


class EventLoopPolicy(_BasePolicy):  # type: ignore[misc,valid-type,unused-ignore]
    """An event loop policy whose loops are rio loops (for code using the policy API)."""

    def _loop_factory(self) -> Loop:
        return Loop()

    def new_event_loop(self) -> Loop:
        return Loop()


def install() -> None:
    """Make asyncio's policy create rio loops (``asyncio.run``, ``new_event_loop``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(EventLoopPolicy())
