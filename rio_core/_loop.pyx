# cython: language_level=3
"""The asyncio door's scheduling core: asyncio's loop API on the rio engine.

``LoopCore`` is a ``Runtime``: ``call_soon`` pushes a ``Handle`` on the same
ready queue that native tasks use, ``call_later``/``call_at`` put a
``TimerHandle`` on the same timer heap as ``Sleep``, and readers/writers are
persistent handles in the same reactor registrations that native I/O waits
use. One tick runs both.

The public ``rio_rt.Loop`` is a Python subclass of ``LoopCore`` and of
asyncio's ``SelectorEventLoop``. Method resolution puts the engine first, so
every asyncio transport, server, SSL, subprocess and signal path in the
stdlib runs unchanged on top: they reach the scheduler only through the
methods defined here (``call_soon``, ``call_at``, ``_add_reader``, ...) and
``_run_once``, which BaseEventLoop.run_forever calls in a loop.

The loop flags asyncio keeps as instance attributes (``_closed``,
``_debug``, ``_stopping``) are properties over C fields here, so the hot
paths test a C int and asyncio's own code that assigns them keeps working.
"""

from cpython.contextvars cimport PyContext_CopyCurrent

from rio_core._queue cimport ring_push
from rio_core._timers cimport Handle, TimerHandle, ACTION_CALLBACK, deadline_ns_from_seconds
from rio_core._runtime cimport Runtime, Task
from rio_core._reactor cimport Registration

from asyncio import coroutines as _coroutines
from asyncio.format_helpers import extract_stack as _extract_stack
from sys import _getframe
from asyncio import Future as _Future, Task as _Task


cdef int fd_of(object fileobj) except -1:
    """The fd of an int or of an object with fileno(), as selectors checks it."""
    cdef int fd
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


cdef class LoopCore(Runtime):

    # ---- flags asyncio's BaseEventLoop reads and writes

    @property
    def _closed(self):
        return self.closed_flag

    @_closed.setter
    def _closed(self, value):
        self.closed_flag = bool(value)

    @property
    def _debug(self):
        return self.debug_flag

    @_debug.setter
    def _debug(self, value):
        self.debug_flag = bool(value)
        self.update_slow_threshold()

    @property
    def slow_callback_duration(self):
        """Debug mode logs callbacks and task steps that run longer (seconds)."""
        return self.slow_seconds

    @slow_callback_duration.setter
    def slow_callback_duration(self, value):
        self.slow_seconds = float(value)
        self.update_slow_threshold()

    cdef int update_slow_threshold(self) except -1:
        if self.debug_flag:
            self.slow_ns = max(1, <long long>(self.slow_seconds * 1e9))
            self.slow_hook = self._log_slow
        else:
            self.slow_ns = 0
        return 0

    def _log_slow(self, entry, callback, args, seconds):
        """Debug mode: a callback or task step ran longer than slow_callback_duration.
        Logged through asyncio.base_events.logger, in asyncio's format."""
        from asyncio import base_events
        if isinstance(entry, Task):
            described = repr(entry)
        else:
            owner = getattr(callback, "__self__", None)
            if isinstance(owner, _Task):         # an asyncio task's step or wakeup
                described = repr(owner)
            else:   # the handle's own repr, with the callback it has dropped
                described = (<Handle>entry).describe(callback, args)
        base_events.logger.warning("Executing %s took %.3f seconds", described, seconds)

    @property
    def _stopping(self):
        return self.stopping

    @_stopping.setter
    def _stopping(self, value):
        self.stopping = bool(value)

    cdef int check_closed(self) except -1:
        if self.closed_flag:
            raise RuntimeError("Event loop is closed")
        return 0

    cdef int check_call(self, object callback, str method) except -1:
        """Debug mode: the checks asyncio makes on every scheduled call."""
        if _coroutines.iscoroutine(callback) or _coroutines.iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")
        if method != "call_soon_threadsafe":
            self._check_thread()
        return 0

    # ---- scheduling

    def stop(self):
        """Stop after the current tick (the loop does not block again)."""
        self.stopping = True
        self.stop_requested = True

    def call_soon(self, callback, *args, context=None):
        cdef Handle handle
        if self.closed_flag:
            raise RuntimeError("Event loop is closed")
        handle = Handle.__new__(Handle)
        if self.debug_flag:
            self.check_call(callback, "call_soon")
            handle.source_traceback = _extract_stack(_getframe())
        handle.callback = callback
        handle.args = args
        handle.context = PyContext_CopyCurrent() if context is None else context
        ring_push(&self.ready, handle)
        return handle

    def call_soon_threadsafe(self, callback, *args, context=None):
        cdef Handle handle
        self.check_closed()
        handle = Handle.__new__(Handle)
        if self.debug_flag:
            self.check_call(callback, "call_soon_threadsafe")
            handle.source_traceback = _extract_stack(_getframe())
        handle.callback = callback
        handle.args = args
        handle.context = PyContext_CopyCurrent() if context is None else context
        # Straight onto the ready queue, from any thread: a ring push makes no
        # Python call, so under the GIL it is atomic, and the handle keeps its
        # FIFO place among call_soon()s as in asyncio. A tick already running
        # takes it in the next batch (its batch size was fixed when it began).
        ring_push(&self.ready, handle)
        self.reactor.notify()
        return handle

    def call_later(self, delay, callback, *args, context=None):
        if delay is None:
            raise TypeError("delay must not be None")
        return self.schedule_at(self.now_ns() / 1e9 + delay, callback, args, context, "call_later")

    def get_debug(self):
        # Every Future and Task asks at creation: keep it free of Python frames.
        return self.debug_flag

    def is_closed(self):
        return self.closed_flag

    def create_future(self):
        return _Future(loop=self)

    def create_task(self, coro, *, name=None, context=None, **kwargs):
        """asyncio's create_task, without a Python frame when no task factory is set."""
        cdef object factory
        self.check_closed()
        factory = self._task_factory
        if factory is None:
            if kwargs:
                task = _Task(coro, loop=self, name=name, context=context, **kwargs)
            elif context is None:
                task = _Task(coro, loop=self, name=name)
            else:
                task = _Task(coro, loop=self, name=name, context=context)
            # (asyncio drops the last frame of _source_traceback here: its own
            # create_task. This one is C, so the last frame is the caller's.)
            return task
        if context is None:
            task = factory(self, coro, **kwargs)
        else:
            task = factory(self, coro, context=context, **kwargs)
        if name is not None:
            try:
                task.set_name(name)
            except AttributeError:
                pass
        return task

    def call_at(self, when, callback, *args, context=None):
        if when is None:
            raise TypeError("when cannot be None")
        return self.schedule_at(when, callback, args, context, "call_at")

    cdef TimerHandle schedule_at(self, double when, object callback, tuple args,
                                 object context, str method):
        """call_at and call_later: one TimerHandle on the engine's timer heap."""
        cdef TimerHandle handle
        self.check_closed()
        handle = TimerHandle.__new__(TimerHandle)
        if self.debug_flag:
            self.check_call(callback, method)
            handle.source_traceback = _extract_stack(_getframe())
        if when != when:
            raise ValueError("when must not be NaN")
        handle.when_seconds = when
        handle.action = ACTION_CALLBACK
        handle.deadline_ns = deadline_ns_from_seconds(when)
        handle.callback = callback
        handle.args = args
        handle.context = PyContext_CopyCurrent() if context is None else context
        self.timers.push(handle)
        return handle

    def _timer_handle_cancelled(self, handle):
        pass

    def _add_callback(self, handle):
        """asyncio internals queue their own Handle objects (signal handlers):
        run them through a rio handle on the same ready queue."""
        if not handle._cancelled:
            self.call_soon(handle._run, context=None)

    def _add_callback_signalsafe(self, handle):
        """From a Python signal handler: the inject list and the wake-up fd,
        exactly as a wake from another thread."""
        cdef Handle wrapper
        if handle._cancelled:
            return
        wrapper = self.io_handle(handle._run, ())
        wrapper.persistent = False
        self.inject.append(wrapper)
        self.reactor.notify()

    # ---- readers and writers (persistent handles in the reactor)

    cdef Handle io_handle(self, object callback, tuple args):
        cdef Handle handle = Handle.__new__(Handle)
        handle.callback = callback
        handle.args = args
        handle.context = PyContext_CopyCurrent()
        handle.persistent = True
        return handle

    cdef Handle set_io_handle(self, object fd, bint writable, object callback, tuple args):
        """Make a persistent handle the reader (or writer) of ``fd``."""
        cdef Registration reg
        cdef Handle handle
        cdef int fdno
        self.check_closed()
        fdno = fd_of(fd)
        handle = self.io_handle(callback, args)
        reg = self.reactor.registration(fdno)
        old = reg.writer if writable else reg.reader
        if type(old) is Task:
            what = "writing" if writable else "reading"
            raise RuntimeError(f"fd {fdno} is already awaited for {what} by a rio task")
        if writable:
            reg.writer = handle
        else:
            reg.reader = handle
        try:
            self.reactor.add_interest(reg)
        except BaseException:
            if writable:                # leave no phantom waiter behind
                reg.writer = old
            else:
                reg.reader = old
            self.reactor.sync_interest(reg)
            raise
        if old is not None:
            old.cancel()
        return handle

    cdef bint clear_io_handle(self, object fd, bint writable) except -1:
        """Remove the reader (or writer) handle of ``fd``; False if there was none."""
        cdef Registration reg
        if self.closed_flag:
            return False
        reg = self.reactor.registrations.get(fd_of(fd))
        if reg is None:
            return False
        old = reg.writer if writable else reg.reader
        if old is None or type(old) is Task:
            return False
        if writable:
            reg.writer = None
        else:
            reg.reader = None
        self.reactor.sync_interest(reg)
        old.cancel()
        return True

    def _add_reader(self, fd, callback, *args):
        return self.set_io_handle(fd, False, callback, args)

    def _add_writer(self, fd, callback, *args):
        return self.set_io_handle(fd, True, callback, args)

    def _remove_reader(self, fd):
        return self.clear_io_handle(fd, False)

    def _remove_writer(self, fd):
        return self.clear_io_handle(fd, True)

    def _rio_interest(self, fd):
        """``(events, reader, writer)`` for ``loop._selector``'s view of ``fd``:
        selectors.EVENT_READ (1) / EVENT_WRITE (2) bits of whoever waits on it
        (asyncio reader/writer handles or native tasks) and its asyncio handles;
        None when nobody waits."""
        cdef Registration reg
        if self.closed_flag:
            return None
        reg = self.reactor.registrations.get(fd)
        if reg is None or (reg.reader is None and reg.writer is None):
            return None
        return ((1 if reg.reader is not None else 0) | (2 if reg.writer is not None else 0),
                reg.reader if isinstance(reg.reader, Handle) else None,
                reg.writer if isinstance(reg.writer, Handle) else None)

    def _rio_watched_fds(self):
        """The fds somebody waits on (``loop._selector.get_map()``)."""
        cdef Registration reg
        cdef list fds = []
        if self.closed_flag:
            return fds
        for reg in self.reactor.registrations.values():
            if reg.reader is not None or reg.writer is not None:
                fds.append(reg.fd)
        return fds

    def _rio_clear(self):
        """Drop every queued callback and timer (the loop is closing)."""
        Runtime.close(self)
