# cython: language_level=3
"""The scheduler: runtime, tasks, wakers, leaf futures and the tick.

Design note
-----------
One way to suspend: a task's coroutine parks by yielding ``PENDING`` out of a
leaf future's ``__next__``; everything that blocks (Sleep, join, custom
futures, later the reactor) goes through that single trap. A bare ``yield``
(``None``) means "yield now": re-queue at the back.

The waker is a view of the task, not data stored in it: ``cx.waker`` is one
small object per task, made on first use, and ``wake()`` is this state
transition (``TaskState`` in the .pxd):

    IDLE       -> SCHEDULED, pushed on the ready queue
    SCHEDULED  -> unchanged (no double enqueue)
    RUNNING    -> NOTIFIED: the step re-queues the task if it parks
    NOTIFIED   -> unchanged
    DONE       -> unchanged (a late wake does nothing)

Wakes from another thread are appended to ``Runtime.inject`` (a list append is
atomic under the GIL) and the reactor's self-pipe is written once, so a
runtime blocked in epoll wakes at once. The runtime applies them at the start
of the next tick.

A tick (``Runtime.tick``):
  1. apply injected wakes;
  2. move due timers to the ready queue (wake their task or queue their handle);
  3. run exactly the entries that were ready when the tick began (fairness:
     a task that re-queues itself runs again only in the next tick);
  4. poll the reactor: block until the next deadline when nothing is ready;
     otherwise poll without blocking, only when fds are registered and at
     most every IO_POLL_INTERVAL_NS or IO_POLL_EVERY_TICKS ticks.

Task stepping resumes the coroutine with ``PyIter_Send`` inside the task's
``contextvars`` context (PyContext_Enter/Exit: no Context.run call, no bound
method). Cancellation is a flag: the CancelledError is thrown in at the
task's current await point on its next step, so the leaf future it waits on
sees ``throw()`` and can drop its timer or waiter registration.

Rejected: a Python deque for the ready queue (a Python call per push/pop);
storing the waker in the task per poll (an allocation per wake); a set of
live tasks (hashing per spawn: an intrusive list is O(1) with no allocation).
"""

cimport cython
from libc.stdint cimport int64_t, uint64_t
from libc.math cimport isnan
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.contextvars cimport PyContext_CopyCurrent, PyContext_Enter, PyContext_Exit
from cpython.exc cimport PyErr_CheckSignals

from rio_core._queue cimport ring_init, ring_push, ring_pop, ring_clear
from rio_core._timers cimport (
    Handle, TimerHandle, TimerHeap, TIMER_ARMED, TIMER_FIRED, ACTION_WAKE, ACTION_CALLBACK,
    DEADLINE_NEVER_NS, deadline_ns_from_seconds,
)
from rio_core._reactor cimport Reactor, Registration, RIO_IN, RIO_OUT, RIO_ERR, RIO_HUP

import sys
import signal as _signal
import threading as _threading
from asyncio import CancelledError, InvalidStateError
from collections.abc import Coroutine as _AbcCoroutine
from asyncio.events import _get_running_loop

cdef extern from "rio.h":
    bint RIO_DEBUG_ENABLED
    int64_t rio_monotonic_ns() nogil
    void *rio_get_current_runtime() noexcept
    void rio_set_current_runtime(void *rt) noexcept
    void *rio_get_current_task() noexcept
    void rio_set_current_task(void *t) noexcept
    PyObject *rio_fetch_exception() noexcept
    void rio_set_stop_value(object value) noexcept

cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    PySendResult PyIter_Send(object iter, object arg, PyObject **presult) noexcept
    bint PyCoro_CheckExact(object obj) noexcept
    Py_ssize_t PyDict_GET_SIZE(object d) noexcept

# Reactor cadence while work is ready (see the tick in the design note).
# Bound: a readable fd is seen within one tick plus this interval, and within
# IO_POLL_EVERY_TICKS ticks.
cdef enum IoPollCadence:
    IO_POLL_INTERVAL_NS = 50_000
    IO_POLL_EVERY_TICKS = 16        # a power of two: `ticks % N` is a mask

cdef uint64_t next_task_id = 1

# Debug-build leak counters (rio_core.debug_counters()).
cdef Py_ssize_t live_tasks_count = 0
cdef Py_ssize_t live_sleeps_count = 0


@cython.final
cdef class _Pending:
    """The single value a leaf future's poll() returns when it is not ready."""
    def __repr__(self):
        return "rio_rt.PENDING"

    def __reduce__(self):
        return "PENDING"


PENDING = _Pending()
cdef object PENDING_ = PENDING


@cython.final
@cython.freelist(64)
cdef class Ready:
    """A leaf future's poll() result when it is ready: ``Ready(value)``."""
    def __init__(self, value=None):
        self.value = value

    def __repr__(self):
        return f"Ready({self.value!r})"

    def __eq__(self, other):
        return isinstance(other, Ready) and (<Ready>other).value == self.value

    __hash__ = None


cdef Ready READY_NONE = Ready(None)


# --------------------------------------------------------------------------- wakers

@cython.final
cdef class Waker:
    """Wakes one task. A view of the task: ``wake()`` is a state transition."""

    def __init__(self):
        raise TypeError("Waker objects come from cx.waker; they cannot be created directly")

    def wake(self):
        """Schedule the task to be polled again. Safe from any thread."""
        wake_task(self.task)

    wake_by_ref = wake

    def _future_done(self, future):
        """Done-callback for an asyncio future a native task awaits."""
        wake_task(self.task)

    def will_wake(self, other):
        """True when ``other`` wakes the same task."""
        return isinstance(other, Waker) and (<Waker>other).task is self.task

    def __repr__(self):
        return f"<Waker of {self.task!r}>"


@cython.final
cdef class Context:
    """What ``poll(cx)`` gets: ``cx.waker`` wakes the task being polled."""

    def __init__(self):
        raise TypeError("Context objects are made by the runtime")

    def __repr__(self):
        return f"<Context of {self.waker.task!r}>"


cdef Task current_task_or_none():
    cdef void *p = rio_get_current_task()
    if p == NULL:
        return None
    return <Task>p


cdef Runtime current_runtime_or_none():
    cdef void *p = rio_get_current_runtime()
    if p == NULL:
        return None
    return <Runtime>p


cdef int wake_task(Task task) except -1:
    """The wake transition, from any thread."""
    cdef Runtime rt = task.rt
    if rt is None or task.state == TASK_DONE:
        return 0
    if rio_get_current_runtime() != <void *>rt:
        # Another thread (or the runtime is not running): hand it over.
        rt.inject.append(task)
        rt.reactor.notify()
        return 0
    return rt.schedule(task)


# --------------------------------------------------------------------------- tasks

cdef object _never_retrieved_hook_args(Task task):
    exc = task.result_value
    return _UnraisableInfo(
        type(exc), exc, exc.__traceback__,
        f"rio task exception was never retrieved: {task!r}", task)


class _UnraisableInfo:
    """The argument sys.unraisablehook expects (it reads these attributes)."""
    __slots__ = ("exc_type", "exc_value", "exc_traceback", "err_msg", "object")

    def __init__(self, exc_type, exc_value, exc_traceback, err_msg, obj):
        self.exc_type = exc_type
        self.exc_value = exc_value
        self.exc_traceback = exc_traceback
        self.err_msg = err_msg
        self.object = obj


cdef int report_unraisable(object info) except -1:
    try:
        sys.unraisablehook(info)
    except BaseException:
        pass
    return 0


@cython.final
cdef class Task:
    """A spawned coroutine. Await it to join: you get its result or its exception."""

    def __cinit__(self):
        if RIO_DEBUG_ENABLED:
            global live_tasks_count
            live_tasks_count += 1

    def __init__(self):
        raise TypeError("tasks are created with rio_rt.spawn()")

    def __dealloc__(self):
        if RIO_DEBUG_ENABLED:
            global live_tasks_count
            live_tasks_count -= 1
            assert self.live_prev == NULL and self.live_next == NULL, "task freed while linked"

    def __del__(self):
        if (self.outcome == OUTCOME_EXCEPTION and not self.exception_retrieved):
            self.exception_retrieved = True
            report_unraisable(_never_retrieved_hook_args(self))

    cdef Context get_cx(self):
        cdef Waker waker
        cdef Context cx
        if self.cx_ is None:
            waker = Waker.__new__(Waker)
            waker.task = self
            cx = Context.__new__(Context)
            cx.waker = waker
            self.waker_ = waker
            self.cx_ = cx
        return self.cx_

    @property
    def name(self):
        if self.name_ is None:
            self.name_ = f"Task-{self.id}"
        return self.name_

    @name.setter
    def name(self, value):
        self.name_ = str(value)

    def get_name(self):
        return self.name

    def set_name(self, value):
        self.name = value

    def get_context(self):
        return self.context

    def done(self):
        return self.state == TASK_DONE

    def cancelled(self):
        return self.outcome == OUTCOME_CANCELLED

    def result(self):
        """The return value; raises the task's exception, CancelledError, or
        InvalidStateError when it is not done."""
        if self.state != TASK_DONE:
            raise InvalidStateError(f"{self.name} is not done")
        self.exception_retrieved = True
        if self.outcome == OUTCOME_RESULT:
            return self.result_value
        if self.outcome == OUTCOME_CANCELLED:
            raise self._cancelled_error()
        raise self.result_value

    def exception(self):
        """The exception the task raised, or None; raises CancelledError or
        InvalidStateError."""
        if self.state != TASK_DONE:
            raise InvalidStateError(f"{self.name} is not done")
        if self.outcome == OUTCOME_CANCELLED:
            raise self._cancelled_error()
        self.exception_retrieved = True
        if self.outcome == OUTCOME_EXCEPTION:
            return self.result_value
        return None

    def _cancelled_error(self):
        exc = self.result_value
        msg = exc.args[0] if isinstance(exc, BaseException) and exc.args else None
        err = CancelledError() if msg is None else CancelledError(msg)
        err.__context__ = exc
        return err

    def cancel(self, msg=None):
        """Ask the task to stop: CancelledError is raised at its current await
        point on its next step. Returns False if the task is already done."""
        if self.state == TASK_DONE:
            return False
        self.cancel_requests += 1
        waiter = self.fut_waiter
        if waiter is not None and waiter.cancel(msg):
            # the awaited asyncio future raises CancelledError into the task
            return True
        self.must_cancel = True
        self.cancel_msg = msg
        wake_task(self)
        return True

    def cancelling(self):
        return self.cancel_requests

    def uncancel(self):
        if self.cancel_requests > 0:
            self.cancel_requests -= 1
            if self.cancel_requests == 0:
                self.must_cancel = False
        return self.cancel_requests

    def get_coro(self):
        return self.coro

    def add_done_callback(self, fn):
        """Call ``fn(task)`` when the task finishes (at once if it has)."""
        if self.state == TASK_DONE:
            fn(self)
        elif self.done_callbacks is None:
            self.done_callbacks = [fn]
        else:
            self.done_callbacks.append(fn)

    def remove_done_callback(self, fn):
        if self.done_callbacks is None:
            return 0
        before = len(self.done_callbacks)
        self.done_callbacks = [cb for cb in self.done_callbacks if cb != fn]
        return before - len(self.done_callbacks)

    def __repr__(self):
        if self.state != TASK_DONE:
            state = ("idle", "scheduled", "running", "running")[<int>self.state]
        elif self.outcome == OUTCOME_CANCELLED:
            state = "cancelled"
        elif self.outcome == OUTCOME_EXCEPTION:
            state = f"failed {type(self.result_value).__name__}"
        else:
            state = "done"
        return f"<rio Task {self.name!r} {state}>"

    # Joining: the task is its own awaitable iterator, so `await task`
    # allocates nothing. __next__ registers the current task as a join waiter.

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        cdef Task cur
        if self.state == TASK_DONE:
            self.exception_retrieved = True
            if self.outcome == OUTCOME_RESULT:
                if self.result_value is not None:
                    rio_set_stop_value(self.result_value)
                raise StopIteration     # returns NULL with the value set above
            if self.outcome == OUTCOME_CANCELLED:
                raise self._cancelled_error()
            raise self.result_value
        cur = current_task_or_none()
        if cur is None:
            return asyncio_join_future(self)
        if cur is self:
            raise RuntimeError(f"{self!r} cannot await itself")
        if self.join_waiters is None:
            self.join_waiters = [cur]
        elif cur not in self.join_waiters:
            self.join_waiters.append(cur)
        return PENDING_

    def send(self, value):
        return self.__next__()

    def throw(self, typ, val=None, tb=None):
        """The joiner is being cancelled (or thrown into): stop waiting, re-raise."""
        cdef Task cur = current_task_or_none()
        if cur is not None and self.join_waiters is not None:
            try:
                self.join_waiters.remove(cur)
            except ValueError:
                pass
        _reraise(typ, val, tb)

    def close(self):
        cdef Task cur = current_task_or_none()
        if cur is not None and self.join_waiters is not None and cur in self.join_waiters:
            self.join_waiters.remove(cur)


cdef object asyncio_join_future(Task task):
    """Awaiting a rio Task from asyncio code (an asyncio Task on rio's loop):
    hand the asyncio Task a future of the running loop that completes when
    the rio task finishes; it then resumes us and __next__ gives the result."""
    loop = _get_running_loop()
    if loop is None:
        raise RuntimeError(
            f"{task!r} can only be awaited inside a rio task or on a running event loop")
    future = loop.create_future()
    task.add_done_callback(_AsyncioWakeup(future))
    future._asyncio_future_blocking = True
    return future


class _AsyncioWakeup:
    """Completes an asyncio future (if still pending) when a rio task finishes."""
    __slots__ = ("future",)

    def __init__(self, future):
        self.future = future

    def __call__(self, task):
        future = self.future
        if not future.done():
            loop = future.get_loop()
            if loop is _get_running_loop():
                future.set_result(None)
            else:
                loop.call_soon_threadsafe(_set_if_pending, future)


def _set_if_pending(future):
    if not future.done():
        future.set_result(None)


cdef object _reraise(typ, val, tb):
    if val is None:
        if isinstance(typ, BaseException):
            raise typ
        raise typ()
    if tb is not None:
        raise val.with_traceback(tb)
    raise val


# --------------------------------------------------------------------------- leaf futures

cdef class Future:
    """Base class for leaf futures: implement ``poll(cx)`` returning
    ``Ready(value)`` or ``PENDING``; keep ``cx.waker`` and wake it when
    the future may have become ready.

    A Future is its own awaitable iterator: awaiting it polls it.
    """

    def poll(self, cx):
        raise NotImplementedError(f"{type(self).__name__} must implement poll(cx)")

    cdef object _poll(self, Task task):
        return self.poll(task.get_cx())

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        cdef Task task = current_task_or_none()
        cdef Task bridge
        cdef Runtime rt
        if task is None:
            # awaited by asyncio code on rio's loop: a hidden rio task polls us
            bridge = self.bridge
            if bridge is None:
                rt = current_runtime_or_none()
                if rt is None:
                    raise RuntimeError(
                        f"{type(self).__name__} can only be awaited inside a rio task "
                        "or on a running rio event loop")
                bridge = rt.spawn_task(_await_it(self), None)
                self.bridge = bridge
            if bridge.state != TASK_DONE:
                return asyncio_join_future(bridge)
            self.bridge = None
            value = bridge.result()
            if value is not None:
                rio_set_stop_value(value)
            raise StopIteration
        r = self._poll(task)
        if r is PENDING_:
            return PENDING_
        if type(r) is Ready:
            if (<Ready>r).value is not None:
                rio_set_stop_value((<Ready>r).value)
            raise StopIteration     # returns NULL with the value set above
        raise TypeError(
            f"{type(self).__name__}.poll() must return rio_rt.Ready(value) or "
            f"rio_rt.PENDING, got {r!r}")

    def send(self, value):
        return self.__next__()

    def throw(self, typ, val=None, tb=None):
        self.drop_bridge()
        _reraise(typ, val, tb)

    def close(self):
        self.drop_bridge()

    cdef int drop_bridge(self) except -1:
        """The asyncio awaiter went away: stop the hidden task polling us."""
        cdef Task bridge = self.bridge
        if bridge is not None:
            self.bridge = None
            bridge.cancel()
        return 0


cdef int64_t seconds_to_ns(object seconds, str what) except? -1:
    cdef double s
    try:
        s = seconds
    except TypeError:
        raise TypeError(f"{what} must be a number of seconds, "
                        f"got {type(seconds).__name__} {seconds!r}") from None
    if isnan(s):
        raise ValueError(f"{what} must not be NaN")
    return deadline_ns_from_seconds(s)


cdef int64_t clock_now_ns() noexcept:
    cdef Runtime rt = current_runtime_or_none()
    if rt is not None:
        return rt.now_ns()
    return rio_monotonic_ns()


cdef class Sleep(Future):
    """A leaf future ready ``seconds`` after it was created.

    Cancellation-safe: when the awaiting task is cancelled (or the await is
    abandoned) the timer entry is cancelled, so nothing wakes the task later.
    """

    def __cinit__(self):
        if RIO_DEBUG_ENABLED:
            global live_sleeps_count
            live_sleeps_count += 1

    def __dealloc__(self):
        if RIO_DEBUG_ENABLED:
            global live_sleeps_count
            live_sleeps_count -= 1

    def __init__(self, seconds):
        cdef int64_t delta = seconds_to_ns(seconds, "seconds")
        self.deadline_ns = clock_now_ns() + delta
        if self.deadline_ns < 0:      # overflow guard for "forever"
            self.deadline_ns = DEADLINE_NEVER_NS

    @staticmethod
    def until(deadline):
        """A Sleep ready at ``deadline`` (seconds of ``rio_rt.monotonic()``)."""
        cdef Sleep s = Sleep.__new__(Sleep)
        cdef double d
        try:
            d = deadline
        except TypeError:
            raise TypeError(f"deadline must be a number, got {type(deadline).__name__}") from None
        if isnan(d):
            raise ValueError("deadline must not be NaN")
        s.deadline_ns = deadline_ns_from_seconds(d)
        return s

    @property
    def deadline(self):
        return self.deadline_ns / 1e9

    cdef object _poll(self, Task task):
        cdef Runtime rt = task.rt
        cdef TimerHandle timer = self.timer
        if timer is not None and timer.state == TIMER_FIRED:
            return READY_NONE
        if rt.now_ns() >= self.deadline_ns:
            self.disarm()
            return READY_NONE
        if timer is not None and timer.state == TIMER_ARMED:
            timer.target = task          # re-target if a different task awaits now
            return PENDING_
        self.timer = rt.add_timer(self.deadline_ns, task, None, None, None)
        return PENDING_

    def poll(self, cx):
        if not isinstance(cx, Context):
            raise TypeError(f"poll() expects a rio Context, got {type(cx).__name__}")
        return self._poll((<Context>cx).waker.task)

    cdef int disarm(self) except -1:
        cdef TimerHandle timer = self.timer
        if timer is not None:
            self.timer = None
            if timer.state == TIMER_ARMED:
                timer.cancel()
        return 0

    def throw(self, typ, val=None, tb=None):
        self.disarm()
        self.drop_bridge()
        _reraise(typ, val, tb)

    def close(self):
        self.disarm()
        self.drop_bridge()

    def __repr__(self):
        return f"<rio Sleep until {self.deadline_ns / 1e9:.6f}>"


@cython.final
@cython.freelist(64)
cdef class YieldNow:
    """Awaitable that yields to the runtime once (re-queued at the back)."""
    cdef bint yielded

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if self.yielded:
            raise StopIteration
        self.yielded = True
        return None


def yield_now():
    """Let every other ready task run once, then continue."""
    return YieldNow.__new__(YieldNow)


def sleep(seconds):
    """Sleep for ``seconds`` (never less). ``seconds <= 0`` yields once."""
    cdef int64_t delta = seconds_to_ns(seconds, "seconds")
    if delta == 0:
        return YieldNow.__new__(YieldNow)
    cdef Sleep s = Sleep.__new__(Sleep)
    s.deadline_ns = clock_now_ns() + delta
    if s.deadline_ns < 0:
        s.deadline_ns = DEADLINE_NEVER_NS
    return s


def sleep_until(deadline):
    """Sleep until ``deadline`` (seconds of ``rio_rt.monotonic()``)."""
    return Sleep.until(deadline)


def monotonic():
    """The runtime clock in seconds: time.monotonic()'s clock, ahead of it only
    while an autojump test clock has jumped. (On Windows it is
    QueryPerformanceCounter, which time.monotonic() reads from CPython 3.13 on;
    earlier versions read a 15.6 ms tick of the same clock.)"""
    return clock_now_ns() / 1e9


def monotonic_ns():
    return clock_now_ns()


# --------------------------------------------------------------------------- runtime

cdef class Runtime:
    """An explicit runtime. ``Runtime().block_on(coro)`` runs on this thread.

    ``autojump_clock=True`` makes the clock jump to the next timer when
    nothing is ready and no fd is registered, so timer tests take no real time.
    """

    def __cinit__(self, *args, **kwargs):
        ring_init(&self.ready, 256)
        self.timers = TimerHeap()
        self.reactor = Reactor()
        self.inject = []
        self.live_head = NULL

    def __init__(self, *, autojump_clock=False):
        self.autojump = bool(autojump_clock)

    def __dealloc__(self):
        ring_clear(&self.ready)
        if self.timers is not None:
            self.timers.clear()     # armed handles point back at the heap: break that

    cdef int64_t now_ns(self) noexcept:
        return rio_monotonic_ns() + self.clock_offset_ns

    def time(self):
        return self.now_ns() / 1e9

    def stats(self):
        """Counters of every core structure."""
        return {
            "tasks_alive": self.tasks_alive,
            "ready_depth": self.ready.count,
            "timers": len(self.timers),
            "timers_cancelled": self.timers.cancelled,
            "polls": self.polls,
            "ticks": self.ticks,
            "reactor_waits": self.reactor.waits,
            "fds": len(self.reactor),
            "injected": len(self.inject),
        }

    # ---- spawning and waking (runtime thread)

    cdef Task spawn_task(self, object coro, object name):
        cdef Task task
        global next_task_id
        if not PyCoro_CheckExact(coro) and not isinstance(coro, _AbcCoroutine):
            hint = ""
            if callable(coro):
                hint = " (did you forget to call the async function?)"
            raise TypeError(
                f"spawn() expects a coroutine, got {type(coro).__name__} {coro!r:.60}{hint}")
        task = Task.__new__(Task)
        task.rt = self
        task.coro = coro
        task.context = PyContext_CopyCurrent()
        task.id = next_task_id
        next_task_id += 1
        if name is not None:
            task.name_ = str(name)
        # link into the live list (the list owns one reference)
        Py_INCREF(task)
        task.live_next = self.live_head
        if self.live_head != NULL:
            (<Task>self.live_head).live_prev = <PyObject *>task
        self.live_head = <PyObject *>task
        self.tasks_alive += 1
        task.state = TASK_SCHEDULED
        ring_push(&self.ready, task)
        return task

    cdef int schedule(self, Task task) except -1:
        cdef TaskState state = task.state
        if state == TASK_IDLE:
            task.state = TASK_SCHEDULED
            ring_push(&self.ready, task)
        elif state == TASK_RUNNING:
            task.state = TASK_NOTIFIED
        return 0

    cdef int wake(self, Task task) except -1:
        return wake_task(task)

    cdef TimerHandle add_timer(self, int64_t deadline_ns, object target, object callback,
                               tuple args, object context):
        cdef TimerHandle handle = TimerHandle.__new__(TimerHandle)
        handle.deadline_ns = deadline_ns
        if target is not None:
            handle.action = ACTION_WAKE
            handle.target = target
        else:
            handle.action = ACTION_CALLBACK
            handle.callback = callback
            handle.args = args
            handle.context = context
        self.timers.push(handle)
        return handle

    def call_at(self, when, callback, *args, context=None):
        """Run ``callback(*args)`` at ``when`` (seconds of the runtime clock)."""
        cdef double w
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        try:
            w = when
        except TypeError:
            raise TypeError(f"when must be a number, got {type(when).__name__}") from None
        if isnan(w):
            raise ValueError("when must not be NaN")
        return self.add_timer(deadline_ns_from_seconds(w), None, callback, args,
                              context if context is not None else PyContext_CopyCurrent())

    # ---- stepping

    cdef int step(self, Task task) except -1:
        cdef PyObject *raw = NULL
        cdef PySendResult status
        cdef object value
        task.state = TASK_RUNNING
        task.fut_waiter = None
        self.polls += 1
        rio_set_current_task(<void *>task)
        PyContext_Enter(task.context)
        if task.must_cancel or task.throw_exc is not None:
            status, value = self.throw_into(task)
        else:
            status = PyIter_Send(task.coro, None, &raw)
            if status == PYGEN_ERROR:
                value = <object>rio_fetch_exception()
            else:
                value = <object>raw
            Py_DECREF(value)        # both calls returned a new reference
        PyContext_Exit(task.context)
        rio_set_current_task(NULL)
        if status == PYGEN_NEXT:
            if value is PENDING_:
                # the task parked; a wake during the step (NOTIFIED) re-queues it
                if task.state == TASK_NOTIFIED:
                    task.state = TASK_SCHEDULED
                    ring_push(&self.ready, task)
                else:
                    task.state = TASK_IDLE
                return 0
            if value is not None:
                if getattr(value, "_asyncio_future_blocking", None) is True:
                    # an asyncio future: park until its done-callback wakes us
                    value._asyncio_future_blocking = False
                    value.add_done_callback(task.get_cx().waker._future_done)
                    task.fut_waiter = value
                    if task.state == TASK_NOTIFIED:
                        task.state = TASK_SCHEDULED
                        ring_push(&self.ready, task)
                    else:
                        task.state = TASK_IDLE
                    return 0
                task.throw_exc = TypeError(
                    f"rio task {task.name!r} yielded {value!r:.200}, which the rio runtime "
                    "does not understand: await rio futures, rio tasks, rio_rt.yield_now() "
                    "or rio_rt.sleep(), not a bare yield of a value")
            task.state = TASK_SCHEDULED
            ring_push(&self.ready, task)
            return 0
        if status == PYGEN_RETURN:
            return self.finish(task, OUTCOME_RESULT, value)
        if isinstance(value, CancelledError):
            return self.finish(task, OUTCOME_CANCELLED, value)
        if isinstance(value, (KeyboardInterrupt, SystemExit)):
            self.pending_base_exc = value
        return self.finish(task, OUTCOME_EXCEPTION, value)

    cdef tuple throw_into(self, Task task):
        """Throw the pending cancellation or error into the coroutine (slow path).

        Returns (status, value) with the same meaning as PyIter_Send's; for
        PYGEN_ERROR the value is the exception.
        """
        cdef object exc
        if task.must_cancel:
            task.must_cancel = False
            exc = CancelledError() if task.cancel_msg is None else CancelledError(task.cancel_msg)
        else:
            exc = task.throw_exc
            task.throw_exc = None
        try:
            return (PYGEN_NEXT, task.coro.throw(exc))
        except StopIteration as stop:
            return (PYGEN_RETURN, stop.value)
        except BaseException as error:
            return (PYGEN_ERROR, error)

    cdef int finish(self, Task task, TaskOutcome outcome, object value) except -1:
        cdef list waiters = task.join_waiters
        cdef Task waiter
        task.state = TASK_DONE
        task.outcome = outcome
        task.result_value = value
        task.coro = None
        task.join_waiters = None
        task.must_cancel = False
        task.throw_exc = None
        task.cx_ = None            # the Waker may outlive the task; drop our side
        task.waker_ = None
        # unlink from the live list
        if task.live_prev != NULL:
            (<Task>task.live_prev).live_next = task.live_next
        else:
            self.live_head = task.live_next
        if task.live_next != NULL:
            (<Task>task.live_next).live_prev = task.live_prev
        task.live_prev = NULL
        task.live_next = NULL
        self.tasks_alive -= 1
        task.rt = None
        if task is self.main or self.tasks_alive == 0:
            self.stop_requested = True
        if waiters is not None:
            for waiter in waiters:
                self.schedule(waiter)
        if task.done_callbacks is not None:
            callbacks = task.done_callbacks
            task.done_callbacks = None
            for callback in callbacks:
                try:
                    callback(task)
                except BaseException as exc:
                    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        self.pending_base_exc = exc
                    else:
                        self.report_handle_error(callback, exc)
        Py_DECREF(task)            # the live list's reference
        return 0

    # ---- the tick

    cdef int tick(self) except -1:
        cdef Py_ssize_t n, _batch_index
        cdef PyObject *raw
        cdef object entry
        cdef TimerHandle timer
        cdef int64_t now = 0
        cdef list injected
        self.ticks += 1

        # 1. wakes injected by other threads
        if self.inject:
            injected = self.inject
            self.inject = []
            for entry in injected:
                if type(entry) is Task:
                    if (<Task>entry).rt is self:
                        self.schedule(<Task>entry)
                else:
                    ring_push(&self.ready, entry)

        # 2. due timers
        if self.timers.size > 0:
            now = self.now_ns()
            while True:
                timer = self.timers.pop_due(now)
                if timer is None:
                    break
                if timer.action == ACTION_WAKE:
                    entry = timer.target
                    timer.target = None
                    if entry is not None:
                        wake_task(<Task>entry)
                else:
                    ring_push(&self.ready, timer)
            self.timers.compact()

        # 3. the batch that was ready when the tick began
        n = self.ready.count
        if self.slow_ns:
            return self.run_batch_timed(n)
        for _batch_index in range(n):
            raw = ring_pop(&self.ready)
            entry = <object>raw
            Py_DECREF(entry)        # `entry` owns the queue's reference now
            self.run_entry(entry)
            if self.pending_base_exc is not None:
                return 0

        return self.poll_reactor()

    cdef inline int run_entry(self, object entry) except -1:
        """Step a task or run a handle; a handle's exception goes to the
        exception handler (KeyboardInterrupt and SystemExit propagate)."""
        if type(entry) is Task:
            return self.step(<Task>entry)
        try:
            (<Handle>entry).run()
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self.report_handle_error(entry, exc)
        return 0

    cdef int run_batch_timed(self, Py_ssize_t n) except -1:
        """Step 3 in debug mode: time every entry, report the slow ones."""
        cdef Py_ssize_t _batch_index
        cdef PyObject *raw
        cdef object entry, callback, args
        cdef int64_t started, elapsed
        for _batch_index in range(n):
            raw = ring_pop(&self.ready)
            entry = <object>raw
            Py_DECREF(entry)
            if type(entry) is Task:
                callback = args = None
            else:       # kept: a one-shot handle drops them when it has run
                callback = (<Handle>entry).callback
                args = (<Handle>entry).args
            started = rio_monotonic_ns()
            self.run_entry(entry)
            elapsed = rio_monotonic_ns() - started
            if elapsed >= self.slow_ns and self.slow_hook is not None:
                self.slow_hook(entry, callback, args, elapsed / 1e9)
            if self.pending_base_exc is not None:
                return 0
        return self.poll_reactor()

    cdef int poll_reactor(self) except -1:
        """Step 4 of the tick: block when idle, poll now and then when busy."""
        cdef int64_t now = 0, deadline, delta
        cdef int timeout_ms
        if self.stop_requested:
            return 0
        if self.ready.count == 0 and not self.inject:
            timeout_ms = -1
            deadline = self.timers.next_deadline()
            if deadline >= 0:
                now = self.now_ns()
                delta = deadline - now
                if delta <= 0:
                    timeout_ms = 0
                elif self.autojump and PyDict_GET_SIZE(self.reactor.registrations) == 0:
                    self.clock_offset_ns += delta
                    timeout_ms = 0
                else:
                    delta = (delta + 999_999) // 1_000_000      # round up: never early
                    timeout_ms = <int>delta if delta < 86_400_000 else 86_400_000
            self.reactor.poll(timeout_ms)
            self.last_io_poll_ns = self.now_ns()
            PyErr_CheckSignals()        # run Python handlers of signals that woke us
        elif PyDict_GET_SIZE(self.reactor.registrations) > 0:
            # A clock read per tick (~20 ns) is a tenth of a one-callback tick.
            # Reading it only every few short ticks was measured (call_soon chain
            # 14% faster) and rejected: asyncio polls every iteration, and
            # programs that close a connection just before the loop stops
            # (eof -> close -> connection_lost in a few iterations) then left
            # transports open at loop.close().
            now = self.now_ns()
            if (now - self.last_io_poll_ns < IO_POLL_INTERVAL_NS
                    and self.ticks % IO_POLL_EVERY_TICKS != 0):
                return 0
            self.reactor.poll(0)
            self.last_io_poll_ns = now
        else:
            return 0
        return self.dispatch_io()

    cdef int poll_io_now(self) except -1:
        """Poll the reactor without blocking and queue what it reports."""
        if PyDict_GET_SIZE(self.reactor.registrations) == 0:
            return 0
        self.reactor.poll(0)
        self.last_io_poll_ns = self.now_ns()
        return self.dispatch_io()

    cdef int dispatch_io(self) except -1:
        """Wake the tasks and queue the handles of the last poll's events."""
        cdef Py_ssize_t i
        cdef object entry
        cdef Registration reg
        cdef unsigned int events, stale
        for i in range(self.reactor.nready):
            reg = self.reactor.ready_registration(i)
            events = self.reactor.ready_events(i)
            # Directions watched with no waiter. An error or hangup reaches both
            # waiters, but it makes only a watched direction stale: a writer's
            # hangup must not cost the writer its lazily kept interest (WSAPoll
            # reports a peer's FIN as a hangup on every wait; see rio_poll.h).
            stale = 0
            if events & (RIO_IN | RIO_ERR | RIO_HUP):
                if reg.reader is None:
                    stale |= reg.kernel_events & RIO_IN
                else:
                    entry = reg.reader
                    if type(entry) is Task:        # one-shot waiter
                        reg.reader = None
                        reg.fired |= RIO_IN
                        wake_task(<Task>entry)
                    else:                          # persistent callback handle
                        ring_push(&self.ready, entry)
            if events & (RIO_OUT | RIO_ERR | RIO_HUP):
                if reg.writer is None:
                    stale |= reg.kernel_events & RIO_OUT
                else:
                    entry = reg.writer
                    if type(entry) is Task:
                        reg.writer = None
                        reg.fired |= RIO_OUT
                        wake_task(<Task>entry)
                    else:
                        ring_push(&self.ready, entry)
            if stale:
                # readiness nobody waits for: stop watching that direction
                self.reactor.drop_interest(reg, stale)
        return 0

    cdef int report_handle_error(self, object handle, object exc) except -1:
        if self.exception_handler is not None:
            self.exception_handler({"message": "Exception in callback", "exception": exc,
                                    "handle": handle})
        else:
            report_unraisable(_UnraisableInfo(
                type(exc), exc, exc.__traceback__,
                f"Exception in rio callback {handle!r}", handle))
        return 0

    cdef int run_until_done(self, Task main) except -1:
        cdef object exc
        self.main = main
        self.stop_requested = False
        while main.state != TASK_DONE:
            self.tick()
            if self.pending_base_exc is not None:
                exc = self.pending_base_exc
                self.pending_base_exc = None
                raise exc
        return 0

    cdef list live_tasks(self):
        cdef list tasks = []
        cdef PyObject *p = self.live_head
        while p != NULL:
            tasks.append(<Task>p)
            p = (<Task>p).live_next
        return tasks

    cdef int shutdown_tasks(self) except -1:
        """Cancel every task still alive (once each, as asyncio.run does) and
        run until all are done; cleanup code may still await."""
        cdef Task task
        cdef set cancelled = set()
        cdef object exc
        self.main = None
        self.stop_requested = self.tasks_alive == 0
        while self.tasks_alive > 0:
            for task in self.live_tasks():
                if task.id not in cancelled:
                    cancelled.add(task.id)
                    task.cancel()
            self.tick()
            if self.pending_base_exc is not None:
                exc = self.pending_base_exc
                self.pending_base_exc = None
                raise exc
        return 0

    def block_on(self, awaitable):
        """Run ``awaitable`` to completion on this thread; return its value or
        raise its exception. Tasks still alive afterwards are cancelled and
        awaited. Ctrl-C cancels the main task, then raises KeyboardInterrupt."""
        cdef Task main
        if rio_get_current_runtime() != NULL:
            raise RuntimeError(
                "block_on() cannot be called from a running rio runtime: it would block "
                "the runtime's thread; await the coroutine (or spawn it) instead")
        if self.running:
            raise RuntimeError("this Runtime is already running in another thread")
        coro = _as_coroutine(awaitable)
        self.running = True
        rio_set_current_runtime(<void *>self)
        interrupt = _SigintGuard(self)
        try:
            main = self.spawn_task(coro, "main")
            interrupt.main = main
            interrupt.install()
            try:
                self.run_until_done(main)
            finally:
                try:
                    self.shutdown_tasks()
                finally:
                    interrupt.uninstall()
                    # every task is done: timers still armed (sleeps dropped
                    # without being awaited to the end) can wake nobody now
                    self.timers.clear()
            if interrupt.interrupted and main.outcome == OUTCOME_CANCELLED:
                main.exception_retrieved = True
                if main.cancel_requests <= 1:
                    raise KeyboardInterrupt()
            return main.result()
        finally:
            rio_set_current_runtime(NULL)
            self.running = False

    def spawn(self, coro, *, name=None):
        if rio_get_current_runtime() != <void *>self:
            raise RuntimeError("Runtime.spawn() must be called while this runtime runs")
        return self.spawn_task(coro, name)

    def close(self):
        if self.running:
            raise RuntimeError("cannot close a running Runtime")
        ring_clear(&self.ready)
        ring_init(&self.ready, 16)
        self.timers.clear()
        self.reactor.close()

    def _reactor_backend(self):
        return self.reactor.backend

    def _run_until_stopping(self):
        """Tick until ``stopping`` is set (the asyncio door's run_forever body,
        with the loop in C instead of a Python call per tick)."""
        cdef void *previous = rio_get_current_runtime()
        cdef object exc
        if previous != NULL and previous != <void *>self:
            raise RuntimeError("another rio runtime is running in this thread")
        rio_set_current_runtime(<void *>self)
        try:
            # asyncio's iterations poll I/O first, a tick polls last: poll once
            # now, so the first tick runs what is ready, as asyncio's first
            # iteration does. It matters when that tick is the only one: stop()
            # before run_forever(), or run_until_complete() of a done future.
            self.poll_io_now()
            while True:
                self.stop_requested = self.stopping
                self.tick()
                if self.pending_base_exc is not None:
                    exc = self.pending_base_exc
                    self.pending_base_exc = None
                    raise exc
                if self.stopping:
                    break
        finally:
            rio_set_current_runtime(previous)

    def _run_once(self):
        """One tick as this thread's current runtime (the asyncio door's
        run_forever calls this in a loop). Never blocks once ``stopping``."""
        cdef void *previous = rio_get_current_runtime()
        if previous != NULL and previous != <void *>self:
            raise RuntimeError("another rio runtime is running in this thread")
        rio_set_current_runtime(<void *>self)
        try:
            self.stop_requested = self.stopping
            self.tick()
            if self.pending_base_exc is not None:
                exc = self.pending_base_exc
                self.pending_base_exc = None
                raise exc
        finally:
            rio_set_current_runtime(previous)


class _SigintGuard:
    """Ctrl-C during block_on: cancel the main task, let finally blocks run,
    then raise KeyboardInterrupt (as asyncio.Runner does)."""

    def __init__(self, rt):
        self.rt = rt
        self.main = None
        self.interrupted = False
        self.installed = False
        self.wakeup_installed = False
        self.old_handler = None
        self.old_wakeup_fd = -1

    def install(self):
        if _threading.current_thread() is not _threading.main_thread():
            return
        # Signals that arrive while the runtime sleeps in the OS must wake it.
        try:
            self.old_wakeup_fd = _signal.set_wakeup_fd(_runtime_wakeup_fd(self.rt))
            self.wakeup_installed = True
        except (ValueError, OSError):
            self.old_wakeup_fd = -1
        if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
            self.old_handler = _signal.signal(_signal.SIGINT, self.on_sigint)
            self.installed = True

    def uninstall(self):
        if self.installed:
            self.installed = False
            _signal.signal(_signal.SIGINT, self.old_handler)
        if self.wakeup_installed:
            self.wakeup_installed = False
            try:
                _signal.set_wakeup_fd(self.old_wakeup_fd)
            except (ValueError, OSError):
                pass

    def on_sigint(self, signum, frame):
        if self.interrupted or self.main is None or self.main.done():
            raise KeyboardInterrupt()
        self.interrupted = True
        self.main.cancel()


cdef object _as_coroutine(object awaitable):
    if PyCoro_CheckExact(awaitable) or isinstance(awaitable, _AbcCoroutine):
        return awaitable
    if hasattr(awaitable, "__await__"):
        return _await_it(awaitable)
    hint = " (did you forget to call the async function?)" if callable(awaitable) else ""
    raise TypeError(f"block_on() expects a coroutine or awaitable, got "
                    f"{type(awaitable).__name__} {awaitable!r:.60}{hint}")


async def _await_it(awaitable):
    return await awaitable


# --------------------------------------------------------------------------- module API

def _after_fork_in_child():
    """A child forked while a runtime ran on this thread has no running runtime."""
    rio_set_current_runtime(NULL)
    rio_set_current_task(NULL)


import os as _os
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)


def _runtime_wakeup_fd(Runtime rt):
    return rt.reactor.wakeup_fd


def spawn(coro, *, name=None):
    """Spawn ``coro`` as a task on the running runtime and return its Task."""
    cdef Runtime rt = current_runtime_or_none()
    if rt is None:
        if PyCoro_CheckExact(coro):
            coro.close()
        raise RuntimeError("spawn() needs a running rio runtime: call it inside rio_rt.block_on()")
    return rt.spawn_task(coro, name)


def current_task():
    """The task being stepped on this thread, or None."""
    return current_task_or_none()


def current_runtime():
    """The runtime running on this thread, or None."""
    return current_runtime_or_none()


def call_at(when, callback, *args, context=None):
    """Run ``callback(*args)`` at ``when`` on the running runtime; returns a
    TimerHandle with ``cancel()``."""
    cdef Runtime rt = current_runtime_or_none()
    if rt is None:
        raise RuntimeError("call_at() needs a running rio runtime")
    return rt.call_at(when, callback, *args, context=context)


def block_on(awaitable):
    """Run ``awaitable`` on a fresh Runtime on this thread (see Runtime.block_on)."""
    if rio_get_current_runtime() != NULL:
        if PyCoro_CheckExact(awaitable):
            awaitable.close()
        raise RuntimeError(
            "block_on() cannot be called from a running rio runtime: it would block "
            "the runtime's thread; await the coroutine (or spawn it) instead")
    return Runtime().block_on(awaitable)


def debug_counters():
    """Live engine objects (RIO_DEBUG=1 builds only; empty otherwise)."""
    if not RIO_DEBUG_ENABLED:
        return {}
    from rio_core._timers import _debug_timer_handles
    return {"tasks": live_tasks_count, "sleeps": live_sleeps_count,
            "timer_handles": _debug_timer_handles()}


def debug_build():
    return bool(RIO_DEBUG_ENABLED)
