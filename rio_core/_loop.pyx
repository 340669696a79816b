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

The run loop is here too: ``_run_until_stopping`` is ``run_forever``'s body
(the tick in a C loop until ``stop()``), ``_run_once`` one tick of it.
"""

cimport cython
from libc.math cimport isfinite, NAN
from libc.stdint cimport int64_t, uint32_t, uint64_t
from cpython.contextvars cimport PyContext_CopyCurrent
from cpython.object cimport PyObject
from cpython.ref cimport _Py_REFCNT, Py_INCREF, Py_XDECREF

from rio_core._queue cimport ring_push
from rio_core._handle cimport Handle, make_handle
from rio_core._time cimport TimerHandle, checked_deadline_ns
from rio_core._runtime cimport (
    Runtime, Task, FutureDone, LoopFuture, AIO_PENDING, AIO_FINISHED, enter_runtime,
    leave_runtime, new_loop_future, current_task_or_none, TASK_DONE, OUTCOME_RESULT,
    OUTCOME_CANCELLED, set_stop_value,
)
from rio_core._reactor cimport RIO_IN, RIO_OUT

from asyncio import coroutines as _coroutines
from asyncio.format_helpers import extract_stack as _extract_stack
from sys import _getframe
from asyncio import CancelledError as _CancelledError, Future as _Future, Task as _Task
from asyncio import tasks as _asyncio_tasks
from asyncio import futures as _asyncio_futures
import asyncio as _asyncio
from rio_core._runtime import (
    future_add_to_awaited_by as _rio_future_add_to_awaited_by,
    future_discard_from_awaited_by as _rio_future_discard_from_awaited_by,
)
import inspect as _inspect
import os as _os
import sys as _sys
from collections.abc import Coroutine as _AbcCoroutine
from weakref import WeakSet as _WeakSet
from warnings import warn as _warn

# asyncio's bookkeeping that rio Tasks join: asyncio.current_task() reads this
# dict up to 3.13. From 3.14 asyncio's C module keeps the current task in the
# thread state, set through _swap_current_task. Where the C module is missing,
# the pure-Python functions keep the dict.
cdef dict _current_tasks = _asyncio_tasks._current_tasks
cdef object _swap_current_task = None
if _sys.version_info >= (3, 14):
    _swap_current_task = _asyncio_tasks._swap_current_task

# 3.14's call graph: gather, TaskGroup, shield and the rest record which task
# awaits which through asyncio.futures' two functions, whose C versions skip
# futures that are not CPython's. rio's versions record edges on rio's Tasks
# and loop futures too, and hand the rest to asyncio's.
if hasattr(_asyncio_futures, "future_add_to_awaited_by"):
    _asyncio_futures.future_add_to_awaited_by = _rio_future_add_to_awaited_by
    _asyncio_futures.future_discard_from_awaited_by = _rio_future_discard_from_awaited_by
    _asyncio.future_add_to_awaited_by = _rio_future_add_to_awaited_by
    _asyncio.future_discard_from_awaited_by = _rio_future_discard_from_awaited_by

# 3.14+: the handle call_soon_threadsafe returns (None before)
cdef object _ThreadSafeHandle = getattr(_asyncio.events, "_ThreadSafeHandle", None)

# asyncio's own check, without the deprecation warning its public name gives
# from 3.14
cdef object _iscoroutinefunction = getattr(
    _coroutines, "_iscoroutinefunction", _coroutines.iscoroutinefunction)
cdef object _eager_task_factory = getattr(_asyncio_tasks, "eager_task_factory", None)
# asyncio's create_task takes eager_start from 3.14 (eager tasks exist from 3.12:
# the task factory, and the Task constructor's eager_start)
cdef bint _create_task_takes_eager_start = _sys.version_info >= (3, 14)

TASK_KINDS = ("rio", "asyncio")


def default_task_kind():
    """"asyncio" when RIO_ASYNCIO_TASKS=1 is set, else "rio"."""
    return "asyncio" if _os.environ.get("RIO_ASYNCIO_TASKS", "") == "1" else "rio"


cdef class LoopCore(Runtime):

    def __cinit__(self, *args, **kwargs):
        self.aio_tasks = True
        self.aio_current = _current_tasks
        self.aio_swap = _swap_current_task
        link_loop(self)
        self.rio_tasks = default_task_kind() == "rio"
        self.sync_aio_sleep()

    def __dealloc__(self):
        unlink_loop(self)

    def _use_tasks(self, kind):
        """Which task create_task makes: "rio" (rio's Task, stepped by the
        engine) or "asyncio" (CPython's asyncio.Task); None: the default
        (RIO_ASYNCIO_TASKS=1 makes it "asyncio")."""
        if kind is None:
            kind = default_task_kind()
        if kind not in TASK_KINDS:
            raise ValueError(f'tasks must be "rio" or "asyncio", got {kind!r}')
        self.rio_tasks = kind == "rio"
        self.sync_aio_sleep()

    cdef void sync_aio_sleep(self) noexcept:
        """(after rio_tasks or debug_flag changed)"""
        self.aio_sleep_in_c = self.rio_tasks and not self.debug_flag

    @property
    def task_kind(self):
        """"rio" or "asyncio": the tasks create_task makes without a task factory."""
        return "rio" if self.rio_tasks else "asyncio"

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
        self.sync_aio_sleep()
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
        self.update_observed()
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
            elif type(callback) is FutureDone:   # a rio task stepped by its wake-up
                described = repr((<FutureDone>callback).task)
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
        if _coroutines.iscoroutine(callback) or _iscoroutinefunction(callback):
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
        if self.closed_flag:
            raise RuntimeError("Event loop is closed")
        handle = self.new_handle(callback, args, context, "call_soon")
        ring_push(&self.ready, handle)
        return handle

    def call_soon_threadsafe(self, callback, *args, context=None):
        self.check_closed()
        cdef Handle queued
        if _ThreadSafeHandle is not None:
            handle = self.thread_safe_handle(callback, args, context)
            # the ready queue runs its _run, which checks for a cancel under
            # its lock and enters its own context (so the wake context here)
            queued = make_handle(handle._run, (), self.wake_context, False)
        else:
            handle = queued = self.new_handle(callback, args, context, "call_soon_threadsafe")
        # Straight onto the ready queue, from any thread: a ring push makes no
        # Python call, so under the GIL it is atomic, and the handle keeps its
        # FIFO place among call_soon()s as in asyncio. A tick already running
        # takes it in the next batch (its batch size was fixed when it began).
        ring_push(&self.ready, queued)
        self.reactor.notify()
        return handle

    cdef object thread_safe_handle(self, object callback, tuple args, object context):
        """3.14+: call_soon_threadsafe returns asyncio's _ThreadSafeHandle, whose
        lock makes cancel() and cancelled() from another thread wait while the
        callback runs."""
        if self.debug_flag:
            self.check_call(callback, "call_soon_threadsafe")
        handle = _ThreadSafeHandle(callback, args, self, context)
        if handle._source_traceback:
            # its last frame is _ThreadSafeHandle.__init__ (this method has none)
            del handle._source_traceback[-1]
        return handle

    cdef Handle new_handle(self, object callback, tuple args, object context, str method):
        """A one-shot handle for call_soon*; debug mode checks the callback
        and records where the handle was made."""
        cdef Handle handle = make_handle(callback, args, context, False)
        if self.debug_flag:
            self.check_call(callback, method)
            handle.source_traceback = _extract_stack(_getframe())
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
        # rio's own Future when tasks are rio's (a rio task parks in it with
        # no callback); asyncio's with tasks="asyncio"
        if self.rio_tasks:
            return new_loop_future(self, self.debug_flag)
        return _Future(loop=self)

    def create_task(self, coro, *, name=None, context=None, **kwargs):
        """asyncio's create_task, without a Python frame when no task factory is set."""
        cdef object factory
        self.check_closed()
        factory = self._task_factory
        if factory is None and self.rio_tasks:
            return self.new_rio_task(coro, name, context, kwargs, False)
        if factory is _eager_task_factory and factory is not None and self.rio_tasks:
            return self.new_rio_task(coro, name, context, kwargs, True)
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

    cdef object new_rio_task(self, object coro, object name, object context, dict kwargs,
                             bint eager_factory):
        """create_task's rio Task. Eager (asyncio.eager_task_factory, 3.12+, or
        ``eager_start=True``, 3.14+): its first step runs now, when the loop is
        running, as asyncio's eager tasks do."""
        cdef Task task
        cdef bint eager = eager_factory
        if kwargs:
            for key in kwargs:
                if key != "eager_start" or not _create_task_takes_eager_start:
                    raise TypeError(f"create_task() got an unexpected keyword argument {key!r}")
            eager = bool(kwargs["eager_start"])
        eager = eager and self.is_running()
        task = self.spawn_task(coro, name, context, eager)
        if self.debug_flag:
            task.source_traceback = _extract_stack(_getframe())
        if eager:
            self.step_eagerly(task)
        return task

    def call_at(self, when, callback, *args, context=None):
        if when is None:
            raise TypeError("when cannot be None")
        return self.schedule_at(when, callback, args, context, "call_at")

    cdef TimerHandle schedule_at(self, double when, object callback, tuple args,
                                 object context, str method):
        """call_at and call_later: one callback timer on the engine's time driver.
        ``when`` is a C double: asyncio takes any real number, a bool included
        (the native API refuses bools), and call_later's sum is never boxed."""
        cdef TimerHandle handle
        cdef int64_t deadline_ns
        self.check_closed()
        if self.debug_flag:
            self.check_call(callback, method)
        deadline_ns = checked_deadline_ns(when, "when")
        handle = self.time_driver.arm_callback(
            deadline_ns, callback, args,
            PyContext_CopyCurrent() if context is None else context)
        handle.when_seconds = when
        if self.debug_flag:
            handle.source_traceback = _extract_stack(_getframe())
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
        if handle._cancelled:
            return
        self.inject.append(make_handle(handle._run, (), None, False))
        self.reactor.notify()

    # ---- readers and writers (persistent handles in the reactor)

    cdef Handle set_io_handle(self, object fileobj, uint32_t direction, object callback,
                              tuple args):
        """Make a persistent handle the reader (RIO_IN) or writer (RIO_OUT) of
        ``fileobj`` (an fd or an object with fileno())."""
        cdef Handle handle, old
        self.check_closed()
        handle = make_handle(callback, args, None, True)
        old = self.reactor.set_handle(fileobj, direction, handle)
        if old is not None:
            old.cancel()
        return handle

    cdef bint clear_io_handle(self, object fileobj, uint32_t direction) except -1:
        """Remove the reader (or writer) handle of ``fileobj``; False if there was
        none. A closed socket object is found by identity, as selectors does."""
        cdef Handle old
        if self.closed_flag:
            return False
        old = self.reactor.clear_handle(fileobj, direction)
        if old is None:
            return False
        old.cancel()
        return True

    def _add_reader(self, fd, callback, *args):
        return self.set_io_handle(fd, RIO_IN, callback, args)

    def _add_writer(self, fd, callback, *args):
        return self.set_io_handle(fd, RIO_OUT, callback, args)

    def _remove_reader(self, fd):
        return self.clear_io_handle(fd, RIO_IN)

    def _remove_writer(self, fd):
        return self.clear_io_handle(fd, RIO_OUT)

    def _rio_interest(self, fd):
        """``(events, reader, writer)`` for ``loop._selector``'s view of ``fd``:
        selectors.EVENT_READ (1) / EVENT_WRITE (2) bits of whoever waits on it
        (asyncio reader/writer handles or native tasks) and its asyncio handles;
        None when nobody waits."""
        cdef tuple interest
        if self.closed_flag:
            return None
        interest = self.reactor.interest(fd)
        if interest is None:
            return None
        directions, reader, writer = interest
        return ((1 if directions & RIO_IN else 0) | (2 if directions & RIO_OUT else 0),
                reader, writer)

    def _rio_watched_fds(self):
        """The fds somebody waits on (``loop._selector.get_map()``)."""
        if self.closed_flag:
            return []
        return self.reactor.watched_fds()

    def _rio_clear(self):
        """Drop every queued callback and timer (the loop is closing)."""
        Runtime.close(self)

    # ---- the run loop

    def _run_until_stopping(self):
        """Tick until ``stopping`` is set (the asyncio door's run_forever body,
        with the loop in C instead of a Python call per tick)."""
        cdef Runtime previous = enter_runtime(self)
        try:
            self.start_watchdog()
            # asyncio's iterations poll I/O first, a tick polls last: poll once
            # now, so the first tick runs what is ready, as asyncio's first
            # iteration does. It matters when that tick is the only one: stop()
            # before run_forever(), or run_until_complete() of a done future.
            self.poll_io_now()
            while True:
                self.stop_requested = self.stopping
                self.tick()
                self.raise_pending_base_exc()
                if self.stopping:
                    break
        finally:
            self.stop_watchdog()
            leave_runtime(previous)

    def _run_once(self):
        """One tick as this thread's current runtime (asyncio's run_forever
        calls this in a loop). Never blocks once ``stopping``."""
        cdef Runtime previous = enter_runtime(self)
        try:
            self.stop_requested = self.stopping
            self.tick()
            self.raise_pending_base_exc()
        finally:
            leave_runtime(previous)


# --------------------------------------------------------------------------- asyncio.sleep
#
# asyncio.sleep() is a coroutine in Python: a frame for sleep, another for
# __sleep0 (delay <= 0) or a future, a call_later handle and a Python
# callback (delay > 0). On 3.11 that is about two thirds of a sleep(0) loop's
# time on any loop. Inside a rio task on a rio loop, rio's asyncio.sleep
# returns an AioSleep instead: the same awaitable in C, which yields None once
# (delay <= 0) or parks the task in a loop future that a timer on the engine's
# heap completes (delay > 0). What a task, a canceller or a timeout sees is
# asyncio's: the task's _fut_waiter is a loop future, cancel() cancels it, the
# timer goes when the sleep ends. Everywhere else (no rio task running, debug
# mode, tasks="asyncio", a delay that is not a finite int or float) it is
# asyncio's own coroutine, so behaviour elsewhere is unchanged.

cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    bint PyCoro_CheckExact(object obj) noexcept

cdef extern from "rio.h":
    bint RIO_DEBUG_ENABLED
    bint RIO_NO_SPARES
    ctypedef PySendResult (*sendfunc)(PyObject *, PyObject *, PyObject **) noexcept
    void rio_set_am_send(PyObject *type, sendfunc am_send) noexcept

cdef object _asyncio_sleep = _asyncio_tasks.sleep      # asyncio's own coroutine function
cdef Py_ssize_t live_aio_sleeps_count = 0


cdef inline LoopCore sleeping_loop():
    """The rio loop whose rio task is running now, if asyncio.sleep may be
    rio's there (rio tasks, not in debug mode); else None."""
    cdef Task current = current_task_or_none()
    if current is not None and current.rt is not None and current.rt.aio_sleep_in_c:
        return <LoopCore>current.rt
    return None


cdef extern from "Python.h":
    double long_as_double "PyLong_AsDouble"(object value) noexcept
    PyObject *PyErr_Occurred() noexcept
    void PyErr_Clear() noexcept


cdef inline double int_seconds(object delay) noexcept:
    """An exact int as a double, or NaN when it is too large for one (no
    try/except here: Cython's saves the handled exception on every call)."""
    cdef double seconds = long_as_double(delay)
    if seconds == -1.0 and PyErr_Occurred() != NULL:
        PyErr_Clear()       # (OverflowError, the only error of an exact int)
        return NAN
    return seconds


# ---- spares
#
# An awaitable made per await (AioSleep for sleep(0), AioQueueOp for a put
# or get that did not wait) is kept when it finishes, one of each kind, and
# handed out by the next call that makes one, once nothing else holds it
# (reference count 1: only the slot, so no one can see the change). That
# saves a free-list allocation and deallocation (the GC's track and untrack,
# the clearing of every field): about 150 of 2,000 instructions of a
# sleep(0) on 3.13. It lets go of what it held when it finishes, so a spare
# keeps nothing of the program's alive, and one that was never awaited is
# never a spare, so it still warns when dropped. A free-threaded build keeps
# none (RIO_NO_SPARES: the reference count proves less there).

cdef PyObject *spare_sleep = NULL
cdef PyObject *spare_queue_op = NULL


cdef inline bint spare_is_free(PyObject *spare) noexcept:
    return spare != NULL and _Py_REFCNT(spare) == 1


cdef inline void keep_spare(PyObject **slot, object finished) noexcept:
    """``finished`` just ended (DONE, its fields let go): keep it in ``*slot``,
    unless the slot's spare is free already. (A spare someone else holds is
    replaced: dropping the slot's reference cannot free it.)"""
    cdef PyObject *old = slot[0]
    if RIO_NO_SPARES or spare_is_free(old):
        return
    Py_INCREF(finished)
    slot[0] = <PyObject *>finished
    Py_XDECREF(old)


cdef inline object take_spare(PyObject **slot):
    """The slot's spare, if no one else holds it (the caller now owns the
    slot's reference), else None."""
    cdef PyObject *spare = slot[0]
    cdef object taken
    if not spare_is_free(spare):
        return None
    slot[0] = NULL
    taken = <object>spare
    Py_DECREF(taken)        # the slot's reference, now `taken`'s
    return taken


def sleep(delay, result=None):
    """Coroutine that completes after a given time (in seconds).

    asyncio.sleep on a rio loop (rio_rt installs it as asyncio.sleep): inside
    a rio task, a C awaitable with asyncio's behaviour; elsewhere asyncio's
    own coroutine."""
    cdef AioSleep s
    cdef double seconds
    if sleeping_loop() is None:
        return _asyncio_sleep(delay, result)
    if type(delay) is float:
        seconds = <double>delay
    elif type(delay) is int:
        seconds = int_seconds(delay)    # NaN past a double: asyncio's path says so
    else:
        return _asyncio_sleep(delay, result)
    if not isfinite(seconds):
        return _asyncio_sleep(delay, result)
    s = <AioSleep>take_spare(&spare_sleep)
    if s is not None:
        s.state = SLEEP_CREATED     # DONE -> CREATED: a spare (see keep_spare)
    else:
        s = AioSleep.__new__(AioSleep)
    s.delay = delay
    s.seconds = seconds
    s.result = result
    return s


@cython.final
@cython.freelist(64)
cdef class AioSleep:
    """What asyncio.sleep() returns inside a rio task on a rio loop: asyncio's
    sleep coroutine, in C (``send``/``throw``/``close``, registered as a
    ``collections.abc.Coroutine``)."""

    def __cinit__(self):
        if RIO_DEBUG_ENABLED:
            global live_aio_sleeps_count
            live_aio_sleeps_count += 1

    # (its tp_dealloc is aio_sleep_dealloc, below)

    # ---- the transitions

    cdef object resume(self, object arg, bint *done):
        """One resumption (``send(arg)``): what it yields, or, with ``*done``
        set, what it returns. A sleep(0)'s two transitions are here; the
        rest, in resume_other (a small function for the hot path)."""
        cdef object value
        if self.state == SLEEP_CREATED and self.seconds <= 0 and arg is None:
            # CREATED -> YIELDED: asyncio's __sleep0, a bare yield
            self.state = SLEEP_YIELDED
            return None
        if self.state == SLEEP_YIELDED:
            # YIELDED -> DONE, and kept as the spare
            self.state = SLEEP_DONE
            done[0] = True
            value = self.result
            self.result = None
            self.delay = None
            keep_spare(&spare_sleep, self)
            return value
        return self.resume_other(arg, done)

    cdef object resume_other(self, object arg, bint *done):
        cdef LoopCore loop
        cdef LoopFuture fut
        if self.state == SLEEP_CREATED:
            if arg is not None:
                # (it stays CREATED, as a coroutine does)
                raise TypeError("can't send non-None value to a just-started coroutine")
            loop = sleeping_loop()
            if loop is None:
                # CREATED -> DELEGATED: first resumed where rio's path cannot
                # run (another task kind or loop): asyncio's coroutine does
                self.state = SLEEP_DELEGATED
                self.delegate = _asyncio_sleep(self.delay, self.result)
                return self.resume(arg, done)
            # CREATED -> PARKED: loop.create_future() and loop.call_later(delay,
            # _set_result_unless_cancelled, future, result), then await the future
            fut = new_loop_future(loop, False)
            self.timer = loop.schedule_at(loop.now_ns() / 1e9 + self.seconds, self, (),
                                          loop.wake_context, "call_later")
            fut.blocking = True
            self.future = fut
            self.state = SLEEP_PARKED
            return fut
        if self.state == SLEEP_PARKED:
            fut = <LoopFuture>self.future
            if arg is not None:
                self.finish()
                raise TypeError("can't send non-None value to a FutureIter")
            if fut.state == AIO_PENDING:
                # resumed before the future completed (asyncio's FutureIter)
                if not fut.blocking:
                    fut.blocking = True
                    return fut
                self.finish()
                raise RuntimeError("await wasn't used with future")
            # PARKED -> DONE: the future's result, or its CancelledError
            self.finish()
            done[0] = True
            return fut.get_result()
        if self.state == SLEEP_DELEGATED:
            try:
                return self.delegate.send(arg)
            except StopIteration as stop:
                self.finish()
                done[0] = True
                return stop.value
            except BaseException:
                self.finish()
                raise
        raise RuntimeError("cannot reuse already awaited coroutine")

    cdef int finish(self) except -1:
        """Any state -> DONE: the timer goes (asyncio's ``finally: h.cancel()``)."""
        cdef TimerHandle timer = self.timer
        self.state = SLEEP_DONE
        self.future = None
        self.delegate = None
        if timer is not None:
            self.timer = None
            timer.cancel()
        return 0

    def __call__(self):
        """The timer fired: asyncio's _set_result_unless_cancelled(future, result)."""
        cdef LoopFuture fut = self.future
        if fut is not None and fut.state == AIO_PENDING:
            fut.result_value = self.result
            fut.state = AIO_FINISHED
            fut.schedule_callbacks()

    # ---- the coroutine protocol

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        # what `await` calls from 3.12 (am_send serves only C callers there):
        # no method call, and no StopIteration object for a None result
        cdef bint done = False
        result = self.resume(None, &done)
        if not done:
            return result
        if result is not None:
            set_stop_value(result)
        raise StopIteration     # returns NULL with the value set above

    def send(self, value):
        cdef bint done = False
        result = self.resume(value, &done)
        if not done:
            return result
        raise StopIteration(result)     # (by hand: await resumes it through am_send)

    def throw(self, *args):
        cdef object delegate = self.delegate
        if self.state == SLEEP_DELEGATED:
            try:
                return delegate.throw(*args)
            except BaseException:
                self.finish()
                raise
        self.finish()
        throw_as_a_coroutine(args)

    def close(self):
        cdef object delegate = self.delegate
        try:
            if delegate is not None:
                delegate.close()
        finally:
            self.finish()

    # ---- what introspection reads (asyncio's _format_coroutine, get_stack,
    # 3.14's call graph)

    @property
    def cr_await(self):
        if self.state == SLEEP_PARKED:
            return self.future
        if self.state == SLEEP_DELEGATED:
            return self.delegate
        return None

    @property
    def cr_running(self):
        return False

    @property
    def cr_frame(self):
        return None

    @property
    def cr_code(self):
        return None

    @property
    def cr_suspended(self):
        return self.state == SLEEP_YIELDED or self.state == SLEEP_PARKED \
            or self.state == SLEEP_DELEGATED

    @property
    def cr_origin(self):
        return None

    @property
    def __name__(self):
        return "sleep"

    @property
    def __qualname__(self):
        return "sleep"

    def __repr__(self):
        return f"<coroutine object sleep at {id(self):#x} (rio)>"


cdef bint _throw_signature_deprecated = _sys.version_info >= (3, 12)


def _gen_probe():
    yield


cdef int throw_as_a_coroutine(tuple args) except -1:
    """Raise what a coroutine's throw(*args) raises from where it stands (with
    CPython's warning for the three-argument form)."""
    if len(args) > 1 and _throw_signature_deprecated:
        _warn("the (type, exc, tb) signature of throw() is deprecated, "
              "use the single-arg signature instead.", DeprecationWarning, 2)
    thrower = _gen_probe()
    next(thrower)
    thrower.throw(*args)
    return 0


cdef object aio_sleep_resume(AioSleep s, object arg, bint *done):
    return s.resume(arg, done)


# aio_sleep_resume, seen as C: a new reference or NULL with the exception set
ctypedef PyObject *(*raw_resume_fn)(PyObject *s, PyObject *arg, bint *done) noexcept
cdef raw_resume_fn raw_aio_sleep_resume = <raw_resume_fn><void *>aio_sleep_resume


cdef PySendResult aio_sleep_am_send(PyObject *obj, PyObject *arg,
                                    PyObject **result) noexcept:
    """AioSleep's am_send: ``await`` resumes it here, with no StopIteration."""
    cdef bint done = False
    result[0] = raw_aio_sleep_resume(obj, arg, &done)
    if result[0] == NULL:
        return PYGEN_ERROR
    return PYGEN_RETURN if done else PYGEN_NEXT


rio_set_am_send(<PyObject *>AioSleep, aio_sleep_am_send)     # it has __await__
_AbcCoroutine.register(AioSleep)


# ---- deallocation, and the never-awaited warning
#
# Cython saves and restores the error state around a __dealloc__ method on
# every deallocation; for an awaitable made per await that was about 45 of
# the 2,100 instructions of an asyncio.sleep(0) on 3.13. AioSleep and
# AioQueueOp have no __dealloc__: their tp_dealloc is Cython's, preceded by
# these functions, which save the error state only when the warning is due.

cdef extern from "Python.h":
    ctypedef void (*destructor)(PyObject *) noexcept
    void PyObject_GC_UnTrack(void *op) noexcept
    void PyErr_Fetch(PyObject **type, PyObject **value, PyObject **tb) noexcept
    void PyErr_Restore(PyObject *type, PyObject *value, PyObject *tb) noexcept
    void PyErr_WriteUnraisable(PyObject *obj) noexcept


cdef extern from *:
    """
    static destructor rio_type_dealloc(PyObject *type) {
        return ((PyTypeObject *)type)->tp_dealloc;
    }
    static void rio_set_type_dealloc(PyObject *type, destructor fn) {
        ((PyTypeObject *)type)->tp_dealloc = fn;
    }
    """
    destructor rio_type_dealloc(PyObject *type) noexcept
    void rio_set_type_dealloc(PyObject *type, destructor fn) noexcept


cdef int warn_now(str message) except -1:
    _warn(message, RuntimeWarning, 1)
    return 0


cdef void warn_never_awaited(PyObject *o, str name) noexcept:
    """CPython's warning for a coroutine that never ran, from the frame that
    dropped it, inside a tp_dealloc: ``o`` leaves the GC first (the warning
    may collect, and ``o`` has no references left), and the error state is
    kept. ``o`` is at reference count 0: the callers read its C fields only,
    and nothing here may take a reference to it (no attribute lookup). (Not
    __del__: a finalizer runs once per memory block, and the free lists
    reuse blocks. No source= either: it would keep the dying object.)"""
    cdef PyObject *exc_type
    cdef PyObject *exc_value
    cdef PyObject *exc_tb
    PyObject_GC_UnTrack(o)          # (Cython's tp_dealloc untracks only if tracked)
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb)
    if warn_now(f"coroutine '{name}' was never awaited") < 0:
        PyErr_WriteUnraisable(NULL)
    PyErr_Restore(exc_type, exc_value, exc_tb)


cdef inline void dealloc_awaitable(PyObject *o, bint never_awaited, str name,
                                   Py_ssize_t *live_count, destructor cython_dealloc) noexcept:
    """The shared body of the awaitables' tp_dealloc (each type needs its own
    function, tp_dealloc's signature being fixed): the debug count, the
    warning when due, then Cython's tp_dealloc."""
    if RIO_DEBUG_ENABLED:
        live_count[0] -= 1
    if never_awaited:
        warn_never_awaited(o, name)
    cython_dealloc(o)


cdef destructor aio_sleep_cython_dealloc = rio_type_dealloc(<PyObject *>AioSleep)


cdef void aio_sleep_dealloc(PyObject *o) noexcept:
    dealloc_awaitable(o, (<AioSleep>o).state == SLEEP_CREATED, "sleep",
                      &live_aio_sleeps_count, aio_sleep_cython_dealloc)


rio_set_type_dealloc(<PyObject *>AioSleep, aio_sleep_dealloc)


def _debug_live_aio_sleeps():
    """Live AioSleeps, the spare (a cache of one) not counted."""
    return live_aio_sleeps_count - (spare_sleep != NULL)


cdef answer_as(object function, object original):
    """Give ``function`` asyncio's ``original``'s name, qualname, module and doc."""
    for attr in ("__doc__", "__module__", "__name__", "__qualname__"):
        setattr(function, attr, getattr(original, attr))


cdef install_as_asyncios(object function, object original):
    """Put ``function`` where asyncio's ``original`` is, under its name, in
    asyncio.tasks and asyncio; it answers to asyncio's name, module and doc."""
    answer_as(function, original)
    setattr(_asyncio_tasks, original.__name__, function)
    setattr(_asyncio, original.__name__, function)


cdef mark_coroutine_function(object function):
    """Make ``function`` a coroutine function to asyncio, inspect and mock."""
    if hasattr(_inspect, "markcoroutinefunction"):
        _inspect.markcoroutinefunction(function)
    else:
        function._is_coroutine = _coroutines._is_coroutine


def install_sleep():
    """Make this module's sleep asyncio.sleep (rio_rt does it on import, unless
    RIO_ASYNCIO_TASKS=1). A coroutine function to asyncio, inspect and mock."""
    mark_coroutine_function(sleep)
    install_as_asyncios(sleep, _asyncio_sleep)


if default_task_kind() == "rio":
    install_sleep()


# --------------------------------------------------------------------------- asyncio.Queue
#
# asyncio.Queue's put() and get() are coroutines in Python. One that does not
# wait (put on a queue with room, get on one with items) costs a coroutine
# and about six more Python frames: full() or empty(), qsize(), put_nowait()
# or get_nowait(), _put() or _get(), Event.clear(), _wakeup_next(). A
# producer/consumer program spends most of its time there, on any loop.
# rio_rt sets its own put and get on asyncio.Queue itself, so subclasses,
# isinstance and every other method stay asyncio's. Inside a rio task on a rio
# loop they return an AioQueueOp, whose first resumption runs that path in C
# when it does not wait. When the queue is full (put) or empty (get), asyncio's
# own coroutine runs instead, from its start, so waiting, cancellation and
# shutdown are asyncio's code. Outside a rio task put() and get() return
# asyncio's coroutine.
#
# The C path is asyncio's code inlined only for a queue whose type reaches
# asyncio's full, qsize, empty, put_nowait, get_nowait, _put, _get and
# _wakeup_next, and whose instance dict holds only asyncio's own attributes
# (read in one pass; so no method is set on the instance). Any other queue
# (PriorityQueue, LifoQueue, a subclass that overrides one) gets the same
# path through its own methods: full() then put_nowait(), empty() then
# get_nowait(). The verdict about a type is kept per (type, version tag):
# CPython changes the tag whenever the type or a base is modified.

from asyncio import queues as _asyncio_queues
from asyncio import locks as _asyncio_locks
from collections import deque as _deque_class
from cpython.dict cimport PyDict_Next, PyDict_SetItem
from cpython.long cimport PyLong_AsLongAndOverflow
from libc.string cimport memset
from cpython.ref cimport Py_DECREF

cdef extern from "Python.h":
    object PyObject_Vectorcall(object callable, PyObject **args, size_t nargsf, PyObject *kw)

cdef extern from "rio.h":
    unsigned int rio_type_tag(PyObject *type) noexcept
    uint64_t rio_dict_version(PyObject *d) noexcept
    PyObject *rio_instance_dict(object obj) noexcept

cdef object _Queue = _asyncio_queues.Queue
cdef object _Event = _asyncio_locks.Event
cdef object _queue_put = _Queue.put         # asyncio's own coroutine functions
cdef object _queue_get = _Queue.get
cdef object _QueueShutDown = getattr(_asyncio_queues, "QueueShutDown", None)   # 3.13+
cdef object _deque = _deque_class
cdef object _deque_append = _deque.append   # the method descriptors: no lookup per call
cdef object _deque_popleft = _deque.popleft
cdef Py_ssize_t live_aio_queue_ops_count = 0

# The methods put() and get() reach (name -> asyncio's function), and the
# instance attributes asyncio's Queue and Event have on any version (3.9 sets
# _loop in __init__, 3.10+ on first use; _is_shutdown is 3.13+).
cdef dict _queue_methods = {name: getattr(_Queue, name) for name in (
    "full", "qsize", "empty", "put_nowait", "get_nowait", "_put", "_get", "_wakeup_next")}
cdef str s_maxsize = "_maxsize", s_queue = "_queue", s_getters = "_getters"
cdef str s_putters = "_putters", s_unfinished = "_unfinished_tasks"
cdef str s_finished = "_finished", s_is_shutdown = "_is_shutdown", s_loop = "_loop"
cdef tuple _queue_fields = (s_maxsize, s_queue, s_getters, s_putters, s_unfinished,
                            s_finished, s_is_shutdown)
cdef dict _event_methods = {"clear": _Event.clear}
cdef str s_value = "_value", s_waiters = "_waiters"
cdef tuple _event_fields = (s_value, s_waiters)

ctypedef struct TypeVerdict:
    PyObject *tp            # borrowed: a tag is never reused by another type
    unsigned int tag
    bint plain

cdef enum:
    VERDICTS = 4        # types remembered, per cache

cdef TypeVerdict queue_verdicts[VERDICTS]
cdef TypeVerdict event_verdicts[VERDICTS]


cdef bint plain_type(object tp, TypeVerdict *cache, dict methods, tuple fields) except -1:
    """Whether ``tp`` reaches each of ``methods`` (name -> asyncio's function)
    and defines none of ``fields``, so that asyncio's code for it may run
    inlined, reading the fields from the instance dict."""
    cdef unsigned int tag = rio_type_tag(<PyObject *>tp)
    cdef int i
    cdef bint plain = True
    if tag != 0:
        for i in range(VERDICTS):
            if cache[i].tp == <PyObject *>tp and cache[i].tag == tag:
                return cache[i].plain
    for name, function in methods.items():
        if getattr(tp, name, None) is not function:
            plain = False
    for name in fields:
        if hasattr(tp, name):
            plain = False
    tag = rio_type_tag(<PyObject *>tp)      # (the lookups above give it one)
    if tag != 0:
        for i in range(VERDICTS - 1, 0, -1):
            cache[i] = cache[i - 1]
        cache[0].tp = <PyObject *>tp
        cache[0].tag = tag
        cache[0].plain = plain
    return plain


cdef object instance_dict(object obj):
    """``obj.__dict__`` (made now if the instance keeps its attributes
    inline), or None."""
    cdef PyObject *d = rio_instance_dict(obj)
    if d == NULL:
        return None
    result = <object>d
    Py_DECREF(result)
    return result if type(result) is dict else None


ctypedef struct QueueFields:
    # a plain queue's instance dict, read in one pass (borrowed)
    PyObject *maxsize
    PyObject *queue
    PyObject *getters
    PyObject *putters
    PyObject *unfinished
    PyObject *finished
    PyObject *is_shutdown


ctypedef struct FieldsMemo:
    # the last queue dict read_queue_fields passed, at a version (up to 3.13)
    PyObject *d             # borrowed: compared, read only while the version matches
    uint64_t version
    QueueFields f

cdef FieldsMemo queue_memo


cdef dict read_queue_fields(object q, QueueFields *f):
    """The instance dict of ``q``, with ``f`` filled from it, if asyncio's
    code may run inlined on it: a plain type, and nothing in the dict but
    asyncio's own attributes (so no method is set on the instance); else
    None. The dict is read in one pass, keys compared by identity (attribute
    names are interned; a key that is not takes the general path, which is
    never wrong). Up to 3.12 the verdict is kept with the dict's version."""
    cdef Py_ssize_t pos = 0
    cdef PyObject *key
    cdef PyObject *value
    cdef uint64_t version
    if not plain_type(type(q), queue_verdicts, _queue_methods, _queue_fields):
        return None
    dict_ = instance_dict(q)
    if dict_ is None:
        return None
    version = rio_dict_version(<PyObject *>dict_)
    if version != 0 and queue_memo.d == <PyObject *>dict_ and queue_memo.version == version:
        f[0] = queue_memo.f     # the same dict, unchanged since it was read
        return <dict>dict_
    memset(f, 0, sizeof(QueueFields))
    while PyDict_Next(dict_, &pos, &key, &value):
        if key == <PyObject *>s_queue:
            f.queue = value
        elif key == <PyObject *>s_maxsize:
            f.maxsize = value
        elif key == <PyObject *>s_unfinished:
            f.unfinished = value
        elif key == <PyObject *>s_getters:
            f.getters = value
        elif key == <PyObject *>s_putters:
            f.putters = value
        elif key == <PyObject *>s_finished:
            f.finished = value
        elif key == <PyObject *>s_is_shutdown:
            f.is_shutdown = value
        elif key != <PyObject *>s_loop:
            return None
    if version != 0:
        queue_memo.d = <PyObject *>dict_
        queue_memo.version = version
        queue_memo.f = f[0]
    return <dict>dict_


cdef int clear_event(object event) except -1:
    """asyncio's Event.clear(): ``_value = False``, written only when it is
    not False already (which no one can tell apart)."""
    cdef Py_ssize_t pos = 0
    cdef PyObject *key
    cdef PyObject *value
    cdef PyObject *current = NULL
    if plain_type(type(event), event_verdicts, _event_methods, _event_fields):
        d = instance_dict(event)
        if d is not None:
            while PyDict_Next(d, &pos, &key, &value):
                if key == <PyObject *>s_value:
                    current = value
                elif key != <PyObject *>s_waiters and key != <PyObject *>s_loop:
                    break
            else:
                if current == NULL or <object>current is not False:
                    PyDict_SetItem(d, s_value, False)
                return 0
    event.clear()
    return 0


cdef int wakeup_next(object waiters) except -1:
    """asyncio's Queue._wakeup_next: wake the first waiter not done."""
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            break
    return 0


cdef object queue_put_now(object q, object item, bint *blocked):
    """put()'s first pass when it does not wait: put_nowait(item). With
    ``*blocked`` set instead when the queue is full.

    Inlined only where nothing it touches can run Python code (a deque, an
    int maxsize, a bool _is_shutdown), so it reads and writes what asyncio's
    code would, in the same order."""
    cdef QueueFields f
    cdef dict d
    cdef PyObject *args[2]
    cdef uint64_t version
    cdef long maxsize
    cdef int overflow = 0
    d = read_queue_fields(q, &f)
    if d is not None and f.maxsize != NULL and f.queue != NULL \
            and f.unfinished != NULL and f.finished != NULL and f.getters != NULL \
            and type(<object>f.queue) is _deque and type(<object>f.maxsize) is int \
            and (_QueueShutDown is None or
                 (f.is_shutdown != NULL and type(<object>f.is_shutdown) is bool)):
        maxsize = PyLong_AsLongAndOverflow(<object>f.maxsize, &overflow)
        if not overflow:
            # (strong references first: the dict changes below)
            items = <object>f.queue
            unfinished = <object>f.unfinished
            finished = <object>f.finished
            getters = <object>f.getters
            # full(): maxsize > 0 and qsize() >= maxsize
            if maxsize > 0 and len(items) >= maxsize:
                blocked[0] = True
                return None
            # put_nowait(), inlined: QueueShutDown (3.13+), then _put, the
            # count of unfinished tasks, _finished.clear(), _wakeup_next(_getters)
            if _QueueShutDown is not None and <object>f.is_shutdown is True:
                raise _QueueShutDown
            args[0] = <PyObject *>items
            args[1] = <PyObject *>item
            PyObject_Vectorcall(_deque_append, args, 2, NULL)
            unfinished = unfinished + 1
            version = rio_dict_version(<PyObject *>d)
            PyDict_SetItem(d, s_unfinished, unfinished)
            if version != 0 and queue_memo.d == <PyObject *>d \
                    and queue_memo.version == version:
                # the memo follows its own write: this key was all that changed
                queue_memo.f.unfinished = <PyObject *>unfinished
                queue_memo.version = rio_dict_version(<PyObject *>d)
            clear_event(finished)
            wakeup_next(getters)
            return None
    # any other queue: asyncio's code through the queue's own methods
    if q.full():
        blocked[0] = True
        return None
    return q.put_nowait(item)


cdef object queue_get_now(object q, bint *blocked):
    """get()'s first pass when it does not wait: get_nowait(). With
    ``*blocked`` set instead when the queue is empty (inlined for a deque)."""
    cdef QueueFields f
    cdef dict d
    cdef PyObject *args[1]
    d = read_queue_fields(q, &f)
    if d is not None and f.queue != NULL and f.putters != NULL \
            and type(<object>f.queue) is _deque:
        items = <object>f.queue         # (strong references first)
        putters = <object>f.putters
        if not items:
            blocked[0] = True
            return None
        # get_nowait(), inlined: _get, then _wakeup_next(_putters)
        args[0] = <PyObject *>items
        item = PyObject_Vectorcall(_deque_popleft, args, 1, NULL)
        wakeup_next(putters)
        return item
    if q.empty():
        blocked[0] = True
        return None
    return q.get_nowait()


cdef inline bint in_rio_task_on_loop():
    """Whether a rio task of a rio loop is running now (debug mode too: the
    path that does not wait makes no handle, future or callback)."""
    cdef Task current = current_task_or_none()
    # (aio_tasks: set by LoopCore, for every rio loop, and only there)
    return current is not None and current.rt is not None and current.rt.aio_tasks


def queue_put(self, item):
    """Put an item into the queue.

    asyncio.Queue.put on a rio loop (rio_rt sets it on asyncio.Queue): inside
    a rio task, a C awaitable with asyncio's behaviour; elsewhere asyncio's
    own coroutine."""
    cdef AioQueueOp op
    if not in_rio_task_on_loop():
        return _queue_put(self, item)
    op = new_queue_op(False)
    op.queue = self
    op.item = item
    return op


def queue_get(self):
    """Remove and return an item from the queue.

    asyncio.Queue.get on a rio loop (rio_rt sets it on asyncio.Queue): inside
    a rio task, a C awaitable with asyncio's behaviour; elsewhere asyncio's
    own coroutine."""
    cdef AioQueueOp op
    if not in_rio_task_on_loop():
        return _queue_get(self)
    op = new_queue_op(True)
    op.queue = self
    return op


cdef inline AioQueueOp new_queue_op(bint getting):
    cdef AioQueueOp op = <AioQueueOp>take_spare(&spare_queue_op)
    if op is not None:
        op.state = QOP_CREATED      # DONE -> CREATED: a spare (see keep_spare)
    else:
        op = AioQueueOp.__new__(AioQueueOp)
    op.getting = getting
    return op


@cython.final
@cython.freelist(16)
cdef class AioQueueOp:
    """What asyncio.Queue's put() and get() return inside a rio task on a rio
    loop: asyncio's coroutine, in C while it does not wait (``send``/``throw``/
    ``close``, registered as a ``collections.abc.Coroutine``)."""

    def __cinit__(self):
        if RIO_DEBUG_ENABLED:
            global live_aio_queue_ops_count
            live_aio_queue_ops_count += 1

    # (its tp_dealloc is aio_queue_op_dealloc, below)

    # ---- the transitions

    cdef object resume(self, object arg, bint *done):
        """One resumption (``send(arg)``): what it yields, or, with ``*done``
        set, what it returns."""
        cdef bint blocked = False
        cdef object queue
        if self.state == QOP_CREATED:
            if arg is not None:
                # (it stays CREATED, as a coroutine does)
                raise TypeError("can't send non-None value to a just-started coroutine")
            queue = self.queue
            item = self.item
            # CREATED -> DONE: it did not wait (or it raised: QueueShutDown,
            # or whatever the queue's own methods raise)
            self.state = QOP_DONE
            self.queue = None
            self.item = None
            if self.getting:
                result = queue_get_now(queue, &blocked)
            else:
                result = queue_put_now(queue, item, &blocked)
            if not blocked:
                done[0] = True
                keep_spare(&spare_queue_op, self)
                return result
            # CREATED -> DELEGATED: it waits; asyncio's coroutine runs from its start
            self.state = QOP_DELEGATED
            if self.getting:
                self.delegate = _queue_get(queue)
            else:
                self.delegate = _queue_put(queue, item)
        if self.state == QOP_DELEGATED:
            try:
                return self.delegate.send(arg)
            except StopIteration as stop:
                self.finish()
                done[0] = True
                return stop.value
            except BaseException:
                self.finish()
                raise
        raise RuntimeError("cannot reuse already awaited coroutine")

    cdef int finish(self) except -1:
        """Any state -> DONE."""
        self.state = QOP_DONE
        self.queue = None
        self.item = None
        self.delegate = None
        return 0

    # ---- the coroutine protocol

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        cdef bint done = False
        result = self.resume(None, &done)
        if not done:
            return result
        if result is not None:
            set_stop_value(result)
        raise StopIteration     # returns NULL with the value set above

    def send(self, value):
        cdef bint done = False
        result = self.resume(value, &done)
        if not done:
            return result
        raise StopIteration(result)

    def throw(self, *args):
        cdef object delegate = self.delegate
        if delegate is not None:
            try:
                return delegate.throw(*args)
            except BaseException:
                self.finish()
                raise
        self.finish()
        throw_as_a_coroutine(args)

    def close(self):
        cdef object delegate = self.delegate
        try:
            if delegate is not None:
                delegate.close()
        finally:
            self.finish()

    # ---- what introspection reads

    @property
    def cr_await(self):
        return None if self.delegate is None else self.delegate.cr_await

    @property
    def cr_running(self):
        return False if self.delegate is None else self.delegate.cr_running

    @property
    def cr_frame(self):
        return None if self.delegate is None else self.delegate.cr_frame

    @property
    def cr_code(self):
        return None if self.delegate is None else self.delegate.cr_code

    @property
    def cr_suspended(self):
        return self.state == QOP_DELEGATED

    @property
    def cr_origin(self):
        return None

    @property
    def __name__(self):
        return "get" if self.getting else "put"

    @property
    def __qualname__(self):
        return "Queue.get" if self.getting else "Queue.put"

    def __repr__(self):
        return f"<coroutine object {self.__qualname__} at {id(self):#x} (rio)>"


cdef object aio_queue_op_resume(AioQueueOp op, object arg, bint *done):
    return op.resume(arg, done)


cdef raw_resume_fn raw_aio_queue_op_resume = <raw_resume_fn><void *>aio_queue_op_resume


cdef PySendResult aio_queue_op_am_send(PyObject *obj, PyObject *arg,
                                       PyObject **result) noexcept:
    """AioQueueOp's am_send, as AioSleep's."""
    cdef bint done = False
    result[0] = raw_aio_queue_op_resume(obj, arg, &done)
    if result[0] == NULL:
        return PYGEN_ERROR
    return PYGEN_RETURN if done else PYGEN_NEXT


rio_set_am_send(<PyObject *>AioQueueOp, aio_queue_op_am_send)     # it has __await__
_AbcCoroutine.register(AioQueueOp)


cdef destructor aio_queue_op_cython_dealloc = rio_type_dealloc(<PyObject *>AioQueueOp)


cdef void aio_queue_op_dealloc(PyObject *o) noexcept:
    dealloc_awaitable(o, (<AioQueueOp>o).state == QOP_CREATED,
                      "Queue.get" if (<AioQueueOp>o).getting else "Queue.put",
                      &live_aio_queue_ops_count, aio_queue_op_cython_dealloc)


rio_set_type_dealloc(<PyObject *>AioQueueOp, aio_queue_op_dealloc)


def _debug_live_aio_queue_ops():
    """Live AioQueueOps, the spare not counted."""
    return live_aio_queue_ops_count - (spare_queue_op != NULL)


def install_queue():
    """Make this module's put and get asyncio.Queue's (rio_rt does it on
    import, unless RIO_ASYNCIO_TASKS=1). Coroutine functions to asyncio,
    inspect and mock."""
    for function, original in ((queue_put, _queue_put), (queue_get, _queue_get)):
        answer_as(function, original)
        mark_coroutine_function(function)
        setattr(_Queue, original.__name__, function)


if default_task_kind() == "rio":
    install_queue()


# --------------------------------------------------------------------------- asyncio.gather
#
# asyncio.gather in Python costs, per child, an ensure_future call (two
# frames), a Python done callback (a frame and four method calls) and three
# method calls in the final loop: on 3.11 about half of a create_task +
# gather program's time on rio's loop. Inside a rio task on a rio loop, when
# every argument is a rio task or loop future of this loop, or a coroutine,
# rio's gather runs the same steps in C (the callback is a GatherState), in
# asyncio's order for each Python version; the outer future is asyncio's own
# _GatheringFuture. Anything else goes to asyncio's gather, unchanged.

cdef object _asyncio_gather = _asyncio_tasks.gather
cdef object _GatheringFuture = _asyncio_tasks._GatheringFuture
# 3.12+: children already done at the call are handled before gather returns
# (3.11 adds a done callback to them too, which runs from the ready queue)
cdef bint _gather_done_at_once = _sys.version_info >= (3, 12)
# 3.14: gather records the calling task as awaiting each child (call graph)
cdef bint _gather_awaited_by = _sys.version_info >= (3, 14)


cdef inline bint gather_fast_arg(object arg, LoopCore loop):
    """Whether gather may run in C with this argument: a rio task or loop
    future of ``loop``, or a coroutine (made a task by loop.create_task)."""
    cdef type t = type(arg)
    if t is Task:
        return (<Task>arg).loop_ is loop
    if t is LoopFuture:
        return (<LoopFuture>arg).loop_ is loop
    return PyCoro_CheckExact(arg) or t is AioSleep


def gather(*coros_or_futures, return_exceptions=False):
    """Return a future aggregating results from the given coroutines/futures.

    asyncio.gather on a rio loop (rio_rt installs it as asyncio.gather): in C
    inside a rio task when every argument is a rio task or future of that loop
    or a coroutine; elsewhere asyncio's own gather."""
    cdef LoopCore loop = sleeping_loop()
    cdef GatherState st
    cdef list children, done_futs
    cdef dict arg_to_fut
    if loop is None or not coros_or_futures:
        return _asyncio_gather(*coros_or_futures, return_exceptions=return_exceptions)
    for arg in coros_or_futures:
        if not gather_fast_arg(arg, loop):
            return _asyncio_gather(*coros_or_futures, return_exceptions=return_exceptions)
    st = GatherState.__new__(GatherState)
    st.return_exceptions = bool(return_exceptions)
    if _gather_awaited_by:
        st.cur_task = current_task_or_none()
    children = []
    done_futs = []
    arg_to_fut = {}
    context = loop.wake_context     # the callback reads no context variable
    for arg in coros_or_futures:
        fut = arg_to_fut.get(arg)
        if fut is None:
            if type(arg) is Task or type(arg) is LoopFuture:
                fut = arg
            else:
                # asyncio's ensure_future(coro, loop=loop)
                try:
                    fut = loop.create_task(arg)
                except RuntimeError:
                    arg.close()
                    raise
                fut._log_destroy_pending = False
            st.nfuts += 1
            arg_to_fut[arg] = fut
            if _gather_done_at_once and fut.done():
                done_futs.append(fut)
            else:
                if st.cur_task is not None:
                    _asyncio_futures.future_add_to_awaited_by(fut, st.cur_task)
                if type(fut) is Task and (<Task>fut).state != TASK_DONE:
                    (<Task>fut).push_callback(st, context)
                elif type(fut) is LoopFuture and (<LoopFuture>fut).state == AIO_PENDING:
                    (<LoopFuture>fut).push_callback(st, context)
                else:
                    fut.add_done_callback(st, context=context)
        children.append(fut)
    st.children = children
    st.outer = _GatheringFuture(children, loop=loop)
    for fut in done_futs:
        st(fut)
    return st.outer


@cython.final
cdef class GatherState:
    """asyncio.gather's done callback, with its closure (rio's gather)."""

    def __call__(self, fut):
        cdef object outer = self.outer
        cdef object exc
        cdef list results
        self.nfinished += 1
        if self.cur_task is not None:
            _asyncio_futures.future_discard_from_awaited_by(fut, self.cur_task)
        if outer is None or outer.done():
            if not future_is_cancelled(fut):
                future_exception(fut)       # marks it retrieved
            return
        if not self.return_exceptions:
            if future_is_cancelled(fut):
                exc = fut._make_cancelled_error()
                self.discard_awaited_by()
                outer.set_exception(exc)
                return
            exc = future_exception(fut)
            if exc is not None:
                self.discard_awaited_by()
                outer.set_exception(exc)
                return
        if self.nfinished == self.nfuts:
            results = []
            for child in self.children:
                if future_is_cancelled(child):
                    message = child._cancel_message
                    res = _CancelledError("" if message is None else message)
                else:
                    res = future_exception(child)
                    if res is None:
                        res = future_result(child)
                results.append(res)
            if outer._cancel_requested:
                # asyncio's loop above rebinds `fut`: the error comes from the
                # last child, whatever its state
                exc = child._make_cancelled_error()
                outer.set_exception(exc)
            else:
                outer.set_result(results)

    cdef int discard_awaited_by(self) except -1:
        if self.cur_task is not None:
            for child in self.children:
                _asyncio_futures.future_discard_from_awaited_by(child, self.cur_task)
        return 0


cdef inline bint future_is_cancelled(object fut) except -1:
    if type(fut) is Task:
        return (<Task>fut).outcome == OUTCOME_CANCELLED
    return bool(fut.cancelled())


cdef inline object future_exception(object fut):
    """fut.exception(): for a rio task that returned, None (marked retrieved)."""
    if type(fut) is Task and (<Task>fut).outcome == OUTCOME_RESULT:
        (<Task>fut).exception_retrieved = True
        return None
    return fut.exception()


cdef inline object future_result(object fut):
    if type(fut) is Task and (<Task>fut).outcome == OUTCOME_RESULT:
        (<Task>fut).exception_retrieved = True
        return (<Task>fut).result_value
    return fut.result()


def install_gather():
    """Make this module's gather asyncio.gather (rio_rt does it on import,
    unless RIO_ASYNCIO_TASKS=1)."""
    install_as_asyncios(gather, _asyncio_gather)


if default_task_kind() == "rio":
    install_gather()


# --------------------------------------------------------------------------- asyncio.all_tasks
#
# asyncio lists the tasks that are not its C Task's in a WeakSet: one weak
# reference made and added at every spawn, and a callback at every task's
# death. For rio's tasks that was about 1,400 instructions a task (a native
# spawn + join ran three times slower). The live list of each loop already
# holds every rio task from spawn to done, so rio's tasks stay out of the set,
# and the set itself lists them: rio turns asyncio's WeakSet into a
# TaskRegistry (the same object, its class changed), whose iteration adds the
# live rio tasks of every rio loop. asyncio's all_tasks, whichever name it is
# reached by (anyio imports it by name, possibly before rio), reads the set
# through that iteration and keeps the tasks of the loop it is asked about.
# Where the set cannot be found, asyncio.all_tasks is replaced instead.

cdef PyObject *loops_head = NULL     # every LoopCore alive (no reference held)


cdef void link_loop(LoopCore loop) noexcept:
    global loops_head
    loop.loop_next = loops_head
    if loops_head != NULL:
        (<LoopCore>loops_head).loop_prev = <PyObject *>loop
    loops_head = <PyObject *>loop


cdef void unlink_loop(LoopCore loop) noexcept:
    global loops_head
    if loop.loop_prev != NULL:
        (<LoopCore>loop.loop_prev).loop_next = loop.loop_next
    elif loops_head == <PyObject *>loop:
        loops_head = loop.loop_next
    if loop.loop_next != NULL:
        (<LoopCore>loop.loop_next).loop_prev = loop.loop_prev
    loop.loop_prev = NULL
    loop.loop_next = NULL


cdef int add_live_tasks(list tasks, PyObject *loop) except -1:
    """Append the rio tasks of ``loop`` (every loop: NULL) that are not done.
    No Python code runs on the walk: another thread sees each list whole."""
    cdef PyObject *rt = loops_head if loop == NULL else loop
    cdef PyObject *p
    while rt != NULL:
        p = (<Runtime>rt).live_head
        while p != NULL:
            if (<Task>p).state != TASK_DONE:
                tasks.append(<Task>p)
            p = (<Task>p).live_next
        rt = (<LoopCore>rt).loop_next if loop == NULL else NULL
    return 0


def live_rio_tasks(loop=None):
    """The rio tasks alive on ``loop`` (a rio loop), or on every rio loop."""
    cdef list tasks = []
    if loop is not None and not isinstance(loop, LoopCore):
        raise TypeError(f"a rio loop was expected, got {type(loop).__name__}")
    add_live_tasks(tasks, NULL if loop is None else <PyObject *>loop)
    return tasks


class TaskRegistry(_WeakSet):
    """asyncio's WeakSet of the tasks that are not CPython's C Task, which
    also lists the live rio tasks of every rio loop (rio's tasks are never
    added: each loop's live list has them)."""

    __slots__ = ()

    def __iter__(self):
        yield from _WeakSet.__iter__(self)
        yield from live_rio_tasks()

    def __len__(self):
        return _WeakSet.__len__(self) + len(live_rio_tasks())

    def __contains__(self, item):
        if type(item) is Task:
            return (<Task>item).state != TASK_DONE and isinstance((<Task>item).rt, LoopCore)
        return _WeakSet.__contains__(self, item)


def find_task_registry():
    """The WeakSet asyncio's _register_task adds to (the one asyncio.all_tasks
    reads), or None. Up to 3.13 asyncio.tasks has it; from 3.14 asyncio's C
    module keeps it (found among the module's references). A probe that
    _register_task registers proves it."""
    import gc
    candidates = [getattr(_asyncio_tasks, name, None)
                  for name in ("_scheduled_tasks", "_all_tasks")]
    module = _sys.modules.get("_asyncio")
    if module is not None and _sys.version_info >= (3, 14):
        candidates += gc.get_referents(module)
    candidates = [obj for obj in candidates if isinstance(obj, _WeakSet)]

    class Probe:
        pass

    probe = Probe()
    _asyncio_tasks._register_task(probe)
    try:
        found = [weak_set for weak_set in candidates if probe in weak_set]
    finally:
        _asyncio_tasks._unregister_task(probe)
    if len(found) != 1 or type(found[0].data) is not set:
        return None
    return found[0]


cdef object _asyncio_all_tasks = _asyncio_tasks.all_tasks
cdef object _get_running_loop = _asyncio.events.get_running_loop


def all_tasks(loop=None):
    """asyncio.all_tasks plus the loop's rio tasks: asyncio.all_tasks where
    asyncio's registry cannot list them."""
    cdef set tasks
    if loop is None:
        loop = _get_running_loop()
    tasks = _asyncio_all_tasks(loop)
    if isinstance(loop, LoopCore):
        tasks.update(live_rio_tasks(loop))
    return tasks


def install_task_registry():
    """Let asyncio.all_tasks see rio's tasks (rio_rt does it on import,
    whatever the task kind: native tasks run on every rio loop). Returns
    "registry" or, where asyncio's registry was not found, "all_tasks"."""
    registry = find_task_registry()
    if registry is not None:
        if type(registry) is not TaskRegistry:
            registry.__class__ = TaskRegistry
        return "registry"
    if _asyncio_tasks.all_tasks is not all_tasks:
        install_as_asyncios(all_tasks, _asyncio_all_tasks)
    return "all_tasks"


TASK_REGISTRY = install_task_registry()
