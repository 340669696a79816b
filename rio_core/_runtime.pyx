# cython: language_level=3
"""The scheduler: tasks, wakers, the ready queue and the tick.

Design note
-----------
One way to suspend: a task's coroutine parks by yielding ``PENDING`` out of a
leaf future's ``__next__`` (rio_core._future); everything that blocks (sleep,
join, I/O readiness, custom futures) goes through that single trap. A bare
``yield`` (``None``) means "yield now": re-queue at the back. An asyncio
future (``_asyncio_future_blocking``) parks the task until its done-callback
wakes it.

The waker is a view of the task, not data stored in it: ``cx.waker`` is one
small object per task, made on first use, and ``wake()`` is a state
transition. Every change of ``Task.state`` is one of the transition functions
in ``_runtime.pxd``; this is their table:

    transition_to_scheduled  spawned (IDLE), or yielded (RUNNING/NOTIFIED)
                             -> SCHEDULED; the caller pushes it (SUBMIT)
    transition_to_running    SCHEDULED -> RUNNING, popped to be stepped
    transition_to_idle       the step parked: RUNNING -> IDLE, or
                             NOTIFIED -> SCHEDULED (SUBMIT: woken meanwhile)
    transition_to_notified   the wake: IDLE -> SCHEDULED (SUBMIT);
                             RUNNING -> NOTIFIED; SCHEDULED, NOTIFIED and
                             DONE unchanged (no double enqueue, late wakes
                             do nothing)
    transition_to_complete   RUNNING/NOTIFIED -> DONE

Wakes from another thread are appended to ``Runtime.inject`` (a list append is
atomic under the GIL) and the reactor's self-pipe is written once, so a
runtime blocked in epoll wakes at once. The runtime applies them at the start
of the next tick.

A tick (``Runtime.tick``) is four calls, each into the subsystem that owns
the step:
  1. ``apply_injected()``: wakes and handles from other threads;
  2. ``time_driver.fire_due(&ready)``: the time driver wakes the waiters of
     due timers and queues their handles (rio_core._time); skipped when the
     driver's inline ``has_timers`` says the heap is empty;
  3. ``run_batch(n)``: run exactly the entries that were ready when the tick
     began (fairness: a task that re-queues itself runs again only in the
     next tick);
  4. ``turn_reactor()``: the reactor waits and turns readiness into wakes and
     queued handles (rio_core._reactor). It blocks until the next deadline
     when nothing is ready; otherwise it polls without blocking, only when
     fds are watched and at most every IO_POLL_INTERVAL_NS or
     IO_POLL_EVERY_TICKS ticks, and ``run_polled`` runs what that poll
     reported at once, ahead of what the batch queued (libuv's order: I/O
     callbacks run in the poll phase). What they queue waits for the next
     tick, so ready work is never starved: one poll reports at most
     ``max_events`` fds.

Rejected: queueing what a busy poll reports behind the batch's entries, to
run in the next tick (asyncio's order, and rio's before). Every I/O hop then
costs two ticks instead of one, and code whose work depends on how steps
interleave does more of it: httpx against uvicorn in one loop ran 33% more
ticks, and httpcore's pool (which offers every queued request the first idle
connection, claimed only a step later) retried 37% more requests, for 0.88x
uvloop's throughput (benchmarks/README.md, ``aio_httpx``).

Task stepping resumes the coroutine with ``PyIter_Send`` inside the task's
``contextvars`` context (PyContext_Enter/Exit: no Context.run call, no bound
method). Cancellation is a flag: the CancelledError is thrown in at the
task's current await point on its next step, so the leaf future it waits on
sees ``throw()`` and can drop its timer or waiter registration.

Observability (rio_core._observe reads it; docs/design.md has the costs):
each task keeps its parent's id, its spawn time (one clock
read per spawn) and poll/wake counts. Step timing, the poll hooks and the
stuck-step watchdog are opt-in: any of them sets ``Runtime.observed``, the
one flag ``run_batch`` tests before taking ``run_batch_timed``, which times,
publishes (for the watchdog thread) and traces each entry.

Rejected: a Python deque for the ready queue (a Python call per push/pop);
storing the waker in the task per poll (an allocation per wake); a set of
live tasks (hashing per spawn: an intrusive list is O(1) with no allocation).
"""

cimport cython
from libc.stdint cimport int64_t, uint64_t
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.contextvars cimport PyContext_CopyCurrent, PyContext_Enter, PyContext_Exit
from cpython.exc cimport PyErr_CheckSignals

from rio_core._queue cimport (
    ring_init, ring_push, ring_pop, ring_clear, ring_move_back_to_front,
)
from rio_core._handle cimport Handle, make_handle
from rio_core._time cimport (
    TimeDriver, MockClock, deadline_ns_of, has_timers, checked_seconds, DEADLINE_NEVER_NS,
)
from rio_core._reactor cimport Reactor, fds_watched

import sys
from asyncio import CancelledError, InvalidStateError, Task as _AsyncioTask
from asyncio import base_tasks as _base_tasks
from asyncio import base_futures as _base_futures
from asyncio import Future as _AsyncioFuture
from asyncio import futures as _asyncio_futures
from asyncio.events import get_event_loop as _get_event_loop
from asyncio.coroutines import iscoroutine as _aio_iscoroutine
from asyncio.format_helpers import extract_stack as _extract_stack
from types import GenericAlias as _GenericAlias, TracebackType
from contextvars import Context as _ContextVarsContext
from collections.abc import Coroutine as _AbcCoroutine
from asyncio.events import _get_running_loop
from warnings import warn as _warn

from rio_core._process import SigintGuard, at_fork_in_child

cdef extern from "rio.h":
    int64_t rio_monotonic_ns() nogil
    void *rio_get_current_runtime() noexcept
    void rio_set_current_runtime(void *rt) noexcept
    void *rio_get_current_task() noexcept
    void rio_set_current_task(void *t) noexcept
    PyObject *rio_fetch_exception() noexcept
    void rio_set_stop_value_cached(PyObject **cache, object value) noexcept
    void rio_clear_stop_cache(PyObject *cache) noexcept
    int rio_dict_slot_put(object d, object key, object value, rio_dict_slot *slot) except -1
    bint rio_dict_slots_probe() noexcept

from cpython.dict cimport PyDict_GetItem
from cpython.exc cimport PyErr_Clear

cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    PySendResult PyIter_Send(object iter, object arg, PyObject **presult) noexcept
    # (-1 with KeyError when absent; the step clears that: user code may have
    # left the task itself with asyncio's _leave_task)
    int dict_del_item "PyDict_DelItem"(object d, object key) noexcept
    bint PyCoro_CheckExact(object obj) noexcept

cdef extern from "rio.h":
    ctypedef PySendResult (*sendfunc)(PyObject *, PyObject *, PyObject **) noexcept
    ctypedef struct PyAsyncMethods:
        sendfunc am_send
    void rio_set_am_send_only(PyObject *type, PyAsyncMethods *slots,
                              sendfunc am_send) noexcept
    void rio_drop_empty_dict(PyObject *obj) noexcept

# Reactor cadence while work is ready (see the tick in the design note).
# Bound: a readable fd is seen within one tick plus this interval, and within
# IO_POLL_EVERY_TICKS ticks.
cdef enum IoPollCadence:
    IO_POLL_INTERVAL_NS = 50_000
    IO_POLL_EVERY_TICKS = 16        # a power of two: `ticks % N` is a mask

cdef uint64_t next_task_id = 1

# Debug-build leak counter (rio_core.debug_counters()).
cdef Py_ssize_t live_tasks_count = 0

# One StopIteration reused by every __next__ of the engine's awaitables that
# ends with a value (rio.h, rio_set_stop_value_cached); each step lets go of
# the value it holds.
cdef PyObject *stop_cache = NULL


cdef void set_stop_value(object value) noexcept:
    """Set StopIteration(value) for a ``__next__`` that then raises a bare
    StopIteration (returns NULL)."""
    rio_set_stop_value_cached(&stop_cache, value)


# --------------------------------------------------------------------------- the trap

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


cdef object reraise(object typ, object val, object tb):
    """Raise what a coroutine's ``throw(typ, val, tb)`` was given."""
    if val is None:
        if isinstance(typ, BaseException):
            raise typ
        raise typ()
    if tb is not None:
        raise val.with_traceback(tb)
    raise val


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

    def will_wake(self, other):
        """True when ``other`` wakes the same task."""
        return isinstance(other, Waker) and (<Waker>other).task is self.task

    def __repr__(self):
        return f"<Waker of {self.task!r}>"


@cython.final
cdef class FutureDone:
    """The done callback of the asyncio futures a task parks on (one per task).
    It runs as a handle of the ready queue and steps the task right there
    when it can, as asyncio's Task steps inside its wake-up callback (same
    order, and no extra trip through the queue)."""

    def __call__(self, future):
        cdef Task task = self.task
        cdef Runtime rt = task.rt
        if (rt is not None and task.state == TASK_IDLE
                and rio_get_current_task() == NULL
                and rio_get_current_runtime() == <void *>rt):
            rt.step_woken(task)
        else:
            wake_task(task)

    @property
    def __qualname__(self):
        # what asyncio's future repr shows for it: cb=[Task.task_wakeup()], as
        # for CPython's Task (a repr naming the task would recurse through it)
        return "Task.task_wakeup"

    def __repr__(self):
        return f"<Task.task_wakeup of task {self.task.id}>"


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


cdef Runtime enter_runtime(Runtime rt):
    """Make ``rt`` this thread's running runtime; returns the one to restore
    with leave_runtime (None, or ``rt`` itself when re-entered)."""
    cdef void *previous = rio_get_current_runtime()
    if previous != NULL and previous != <void *>rt:
        raise RuntimeError("another rio runtime is running in this thread")
    rio_set_current_runtime(<void *>rt)
    return <Runtime>previous if previous != NULL else None


cdef void leave_runtime(Runtime previous) noexcept:
    rio_set_current_runtime(<void *>previous if previous is not None else NULL)


cdef int64_t current_clock_ns() noexcept:
    """The running runtime's clock, or CLOCK_MONOTONIC outside one."""
    cdef Runtime rt = current_runtime_or_none()
    if rt is not None:
        return rt.time_driver.now_ns()
    return rio_monotonic_ns()


cdef int wake_task(Task task) except -1:
    """The wake, from any thread."""
    cdef Runtime rt = task.rt
    if rt is None or task.state == TASK_DONE:
        return 0
    if rio_get_current_runtime() != <void *>rt:
        # Another thread (or the runtime is not running): hand it over.
        rt.inject.append(task)
        rt.reactor.notify()
        return 0
    return rt.schedule(task)


cdef int wake_waiter(object task) except -1:
    """The WakeFn the drivers get: their waiters are this runtime's tasks."""
    return wake_task(<Task>task)


# --------------------------------------------------------------------------- tasks

cdef tuple STATE_NAMES = ("IDLE", "SCHEDULED", "RUNNING", "NOTIFIED", "DONE")


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


cdef class DoneCallbacks:
    """The done-callback slots a Task and a LoopFuture share (see the .pxd)."""

    @cython.final
    cdef int push_callback(self, object fn, object context) except -1:
        """Add a done callback (context None: a rio task), after the others."""
        if self.cb0 is None:
            self.cb0 = fn
            self.ctx0 = context
        elif self.callbacks is None:
            self.callbacks = [(fn, context)]
        else:
            self.callbacks.append((fn, context))
        return 0

    @cython.final
    cdef list callback_entries(self):
        """Every (fn, context) entry, oldest first (a new list)."""
        cdef list entries = [] if self.cb0 is None else [(self.cb0, self.ctx0)]
        if self.callbacks is not None:
            entries.extend(self.callbacks)
        return entries

    @cython.final
    cdef int set_callback_entries(self, list entries) except -1:
        self.cb0 = self.ctx0 = None
        self.callbacks = None
        for fn, context in entries:
            self.push_callback(fn, context)
        return 0

    @cython.final
    cdef Py_ssize_t remove_callbacks(self, object fn, bint rio_tasks_too) except -1:
        """Remove every entry whose callback equals ``fn`` (asyncio's
        remove_done_callback); the rio tasks' entries only if
        ``rio_tasks_too``. Returns how many."""
        cdef list entries = self.callback_entries()
        cdef list kept = [
            entry for entry in entries
            if not ((rio_tasks_too or (<tuple>entry)[1] is not None)
                    and (<tuple>entry)[0] == fn)]
        cdef Py_ssize_t removed = len(entries) - len(kept)
        if removed:
            self.set_callback_entries(kept)
        return removed

    @cython.final
    cdef object awaiters(self, bint parked_only):
        """``_asyncio_awaited_by``: a frozenset of what awaits this (the rio
        tasks joining or parked here, with ``parked_only`` only those whose
        fut_waiter this is, and what asyncio recorded), or None."""
        cdef set found
        cdef tuple entry
        if self.awaited_by is None:
            found = set()
        elif type(self.awaited_by) is set:
            found = set(self.awaited_by)
        else:
            found = {self.awaited_by}
        for entry in self.callback_entries():
            if entry[1] is None and type(entry[0]) is Task and (
                    not parked_only or (<Task>entry[0]).fut_waiter is self):
                found.add(entry[0])
        return frozenset(found) if found else None

    @property
    def _asyncio_awaited_by(self):
        """What awaits this, for asyncio's call graph (3.14): a frozenset, or
        None."""
        return self.awaiters(type(self) is LoopFuture)


# asyncio's own future_add_to_awaited_by and future_discard_from_awaited_by
# (3.14), which record edges only between CPython's Futures and Tasks
cdef object _c_future_add_to_awaited_by = getattr(
    _asyncio_futures, "future_add_to_awaited_by", None)
cdef object _c_future_discard_from_awaited_by = getattr(
    _asyncio_futures, "future_discard_from_awaited_by", None)


def future_add_to_awaited_by(fut, waiter, /):
    """asyncio's ``future_add_to_awaited_by`` (3.14) for rio's Tasks and
    loop futures too: record that ``waiter`` awaits ``fut``. gather and
    TaskGroup call it for their children; rio_rt installs it in asyncio."""
    cdef DoneCallbacks slots
    if isinstance(fut, DoneCallbacks):     # a rio Task or LoopFuture
        if isinstance(waiter, _AsyncioFuture):
            slots = <DoneCallbacks>fut
            if slots.awaited_by is None:
                slots.awaited_by = waiter       # most have one: no set
            elif type(slots.awaited_by) is set:
                slots.awaited_by.add(waiter)
            elif slots.awaited_by is not waiter:
                slots.awaited_by = {slots.awaited_by, waiter}
    elif _c_future_add_to_awaited_by is not None:
        _c_future_add_to_awaited_by(fut, waiter)


def future_discard_from_awaited_by(fut, waiter, /):
    """asyncio's ``future_discard_from_awaited_by`` (3.14), for rio's Tasks
    and loop futures too."""
    cdef DoneCallbacks slots
    if isinstance(fut, DoneCallbacks):     # a rio Task or LoopFuture
        slots = <DoneCallbacks>fut
        if slots.awaited_by is waiter:
            slots.awaited_by = None
        elif type(slots.awaited_by) is set:
            slots.awaited_by.discard(waiter)
            if not slots.awaited_by:
                slots.awaited_by = None
    elif _c_future_discard_from_awaited_by is not None:
        _c_future_discard_from_awaited_by(fut, waiter)


@cython.final
cdef class Task(DoneCallbacks):
    """A spawned coroutine. Await it to join: you get its result or its exception."""

    def __cinit__(self, *args, **kwargs):
        rio_drop_empty_dict(<PyObject *>self)   # made on first use instead
        if RIO_DEBUG_ENABLED:
            global live_tasks_count
            live_tasks_count += 1

    def __init__(self, coro, *, loop=None, name=None, context=None, eager_start=False):
        """asyncio's constructor, ``Task(coro, *, loop=None, name=None,
        context=None, eager_start=False)``, for code that builds tasks itself:
        the task is spawned on ``loop`` (default: the running loop), which must
        be a rio runtime. ``rio_rt.spawn`` and ``loop.create_task`` are the
        usual ways."""
        cdef Runtime rt
        if self.loop_ is not None:
            raise RuntimeError("this task is already initialized")
        if loop is None:
            loop = _get_running_loop()
            if loop is None:
                loop = current_runtime_or_none()
        if not isinstance(loop, Runtime):
            raise TypeError(
                f"rio's Task runs on a rio loop or runtime, not on {type(loop).__name__}")
        rt = <Runtime>loop
        if rt.aio_tasks and loop.get_debug():
            self.source_traceback = _extract_stack(sys._getframe())
        # eager only while the loop runs (else queued, as asyncio does)
        eager = bool(eager_start) and rio_get_current_runtime() == <void *>rt
        rt.spawn_task(coro, name, context, eager, self)
        if eager:
            rt.step_eagerly(self)

    def __dealloc__(self):
        if RIO_DEBUG_ENABLED:
            global live_tasks_count
            live_tasks_count -= 1
            assert self.live_prev == NULL and self.live_next == NULL, "task freed while linked"

    def __del__(self):
        if self.outcome == OUTCOME_EXCEPTION and not self.exception_retrieved:
            self.exception_retrieved = True
            exc = self.result_value
            if self.report_to_loop({"message": "Task exception was never retrieved",
                                    "exception": exc, "future": self}) is None:
                report_unraisable(_never_retrieved_hook_args(self))
        elif self.state != TASK_DONE and self.loop_ is not None and not self.quiet_destroy:
            # only a task its runtime dropped (the loop was closed) gets here:
            # the live list holds every live task
            self.report_to_loop({"message": "Task was destroyed but it is pending!",
                                 "task": self})

    cdef object report_to_loop(self, dict context):
        """asyncio's reports from a task's finalizer, through its loop's
        exception handler; None when the runtime is not an asyncio loop."""
        handler = getattr(self.loop_, "call_exception_handler", None)
        if handler is None:
            return None
        if self.source_traceback is not None:
            context["source_traceback"] = self.source_traceback
        try:
            handler(context)
        except BaseException:
            pass
        return True

    cdef Context get_cx(self):
        cdef Waker waker
        cdef Context cx
        if self.cx_ is None:
            waker = Waker.__new__(Waker)
            waker.task = self
            waker.future_done = FutureDone.__new__(FutureDone)
            waker.future_done.task = self
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

    @name.deleter
    def name(self):
        raise_cannot_delete()

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
            raise InvalidStateError("Result is not set.")
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
            raise InvalidStateError("Exception is not set.")
        if self.outcome == OUTCOME_CANCELLED:
            raise self._cancelled_error()
        self.exception_retrieved = True
        if self.outcome == OUTCOME_EXCEPTION:
            return self.result_value
        return None

    def _cancelled_error(self):
        """What result(), exception() and ``await`` raise for a cancelled task,
        as asyncio does: the first time the CancelledError the task ended
        with, then a new one with the cancel message (None once the
        coroutine itself raised CancelledError)."""
        cdef object exc = self.result_value
        if (self.outcome == OUTCOME_CANCELLED and not self.cancelled_exc_taken
                and isinstance(exc, BaseException)):
            # given out once and no longer held, as asyncio's Task does: its
            # traceback holds frames that may hold this task (wait_for's),
            # a cycle that would keep everything they reach until the GC runs
            self.cancelled_exc_taken = True
            self.result_value = None
            return exc
        return CancelledError() if self.cancel_msg is None else CancelledError(self.cancel_msg)

    def cancel(self, msg=None):
        """Ask the task to stop: CancelledError is raised at its current await
        point on its next step. Returns False if the task is already done.
        Inside a shielded cancel scope the request is counted and held back
        until the last shield exits."""
        if self.state == TASK_DONE:
            self.exception_retrieved = True     # asyncio: _log_traceback = False
            return False
        if self.shield_depth > 0:
            self.cancel_requests += 1
            self.cancel_deferred = True
            self.cancel_msg = msg
            return True
        self.request_cancel(msg)
        return True

    cdef int request_cancel(self, object msg) except -1:
        """Count a cancellation request and deliver it: through the asyncio
        future the task waits on, else thrown in at its next step. (Cancel
        scopes call this directly: they do their own shield checks.)"""
        self.cancel_requests += 1
        waiter = self.fut_waiter
        if waiter is not None and waiter.cancel(msg):
            # the awaited asyncio future raises CancelledError into the task
            return 0
        self.must_cancel = True
        self.cancel_msg = msg
        wake_task(self)
        return 0

    cdef int deliver_deferred_cancel(self) except -1:
        """The last shield exited: deliver a cancel() it held back (already counted)."""
        if not self.cancel_deferred or self.state == TASK_DONE:
            return 0
        self.cancel_deferred = False
        self.must_cancel = True
        wake_task(self)
        return 0

    def cancelling(self):
        return self.cancel_requests

    def uncancel(self):
        if self.cancel_requests > 0:
            self.cancel_requests -= 1
            if self.cancel_requests == 0:
                self.must_cancel = False
                self.cancel_deferred = False
        return self.cancel_requests

    def get_coro(self):
        return self.coro

    def add_done_callback(self, fn, *, context=None):
        """Call ``fn(task)`` once the task is done, in ``context`` (default: a
        copy of the current one), as asyncio does: through the ready queue,
        never from inside this call, in the order they were added."""
        if context is None:
            context = PyContext_CopyCurrent()
        if self.state == TASK_DONE:
            (<Runtime>self.loop_).queue_callback(fn, self, context)
        else:
            self.push_callback(fn, context)

    def remove_done_callback(self, fn):
        """Remove every registration of ``fn``; returns how many."""
        return self.remove_callbacks(fn, True)

    # ---- the asyncio Future side: asyncio code sees an asyncio.Task

    __class_getitem__ = classmethod(_GenericAlias)

    @property
    def __class__(self):
        # isinstance() consults __class__ when the real type does not match:
        # isinstance(task, asyncio.Task) and asyncio.isfuture(task) are true,
        # and type(task) is still this class.
        return _AsyncioTask

    @property
    def _asyncio_future_blocking(self):
        return self.future_blocking

    @_asyncio_future_blocking.setter
    def _asyncio_future_blocking(self, value):
        self.future_blocking = bool(value)

    @_asyncio_future_blocking.deleter
    def _asyncio_future_blocking(self):
        raise_cannot_delete()

    def get_loop(self):
        """The runtime that runs the task: its asyncio loop on the asyncio door."""
        return self.loop_

    @property
    def _loop(self):
        return self.loop_

    def set_result(self, result):
        raise RuntimeError("Task does not support set_result operation")

    def set_exception(self, exception):
        raise RuntimeError("Task does not support set_exception operation")

    @property
    def _coro(self):
        return self.coro

    @property
    def _must_cancel(self):
        return self.must_cancel

    @property
    def _num_cancels_requested(self):
        return self.cancel_requests

    @property
    def _cancel_message(self):
        """The message cancel() was given (None once the coroutine itself
        raised CancelledError: asyncio's Task then cancels its Future side
        without one)."""
        return self.cancel_msg

    @_cancel_message.setter
    def _cancel_message(self, value):
        self.cancel_msg = value

    @_cancel_message.deleter
    def _cancel_message(self):
        raise_cannot_delete()

    def _make_cancelled_error(self):
        """The CancelledError to raise for this cancelled task (asyncio's name;
        a task that did not end cancelled gets a new one, as in asyncio)."""
        return self._cancelled_error()

    @property
    def _log_destroy_pending(self):
        return not self.quiet_destroy

    @_log_destroy_pending.setter
    def _log_destroy_pending(self, value):
        self.quiet_destroy = not value

    @_log_destroy_pending.deleter
    def _log_destroy_pending(self):
        raise_cannot_delete()

    @property
    def _source_traceback(self):
        return self.source_traceback

    @property
    def _result(self):
        return self.result_value if self.outcome == OUTCOME_RESULT else None

    @property
    def _exception(self):
        return self.result_value if self.outcome == OUTCOME_EXCEPTION else None

    @property
    def _log_traceback(self):
        return self.outcome == OUTCOME_EXCEPTION and not self.exception_retrieved

    @_log_traceback.setter
    def _log_traceback(self, value):
        if value:
            raise ValueError("_log_traceback can only be set to False")
        self.exception_retrieved = True

    @_log_traceback.deleter
    def _log_traceback(self):
        raise_cannot_delete()

    @property
    def _callbacks(self):
        """The asyncio done callbacks as (fn, context) pairs (joining tasks left out)."""
        return [entry for entry in self.callback_entries() if entry[1] is not None]

    def get_stack(self, *, limit=None):
        """The frames of the task's coroutine (asyncio's get_stack)."""
        return _base_tasks._task_get_stack(self, limit)

    def print_stack(self, *, limit=None, file=None):
        return _base_tasks._task_print_stack(self, limit, file)

    # ---- observability (rio_core._observe has the functions built on these)

    @property
    def parent(self):
        """The task that spawned this one while that task is alive; None once
        it is done, or when spawned outside a task (``parent_id`` stays). A
        scan of the runtime's live tasks: O(number of live tasks)."""
        cdef Runtime rt = self.rt if self.rt is not None else current_runtime_or_none()
        cdef Task task
        if self.parent_id == 0 or rt is None:
            return None
        for task in rt.live_tasks():
            if task.id == self.parent_id:
                return task
        return None

    def children(self):
        """The live tasks this one spawned, oldest first (a scan of the
        runtime's live tasks: O(number of live tasks), for debugging)."""
        cdef Runtime rt = self.rt if self.rt is not None else current_runtime_or_none()
        cdef Task task
        if rt is None:
            return []
        # the live list is newest first
        return [task for task in reversed(rt.live_tasks()) if task.parent_id == self.id]

    @property
    def spawned_at(self):
        """When the task was spawned, in seconds of its runtime's clock."""
        return self.spawned_ns / 1e9

    @property
    def age(self):
        """Seconds since the task was spawned (its runtime's clock)."""
        cdef int64_t now = self.rt.now_ns() if self.rt is not None else current_clock_ns()
        return (now - self.spawned_ns) / 1e9

    @property
    def step_time(self):
        """Seconds spent in this task's steps, counted while its runtime is
        instrumented (Runtime(instrument=True)); 0.0 otherwise."""
        return self.step_ns / 1e9

    @property
    def _fut_waiter(self):
        """The asyncio future the task is parked on, or None."""
        return self.fut_waiter

    @property
    def _state(self):
        """asyncio's state of the task: PENDING, CANCELLED or FINISHED."""
        if self.state != TASK_DONE:
            return "PENDING"
        return "CANCELLED" if self.outcome == OUTCOME_CANCELLED else "FINISHED"

    @property
    def _sched_state(self):
        """The scheduler's state of the task: IDLE, SCHEDULED, RUNNING, NOTIFIED or DONE."""
        return STATE_NAMES[<int>self.state]

    def __repr__(self):
        if self.loop_ is not None and (<Runtime>self.loop_).aio_tasks:
            return _asyncio_task_repr(self)
        if self.state != TASK_DONE:
            state = STATE_NAMES[<int>self.state].lower()
        elif self.outcome == OUTCOME_CANCELLED:
            state = "cancelled"
        elif self.outcome == OUTCOME_EXCEPTION:
            state = f"failed {type(self.result_value).__name__}"
        else:
            state = "done"
        return f"<rio Task {self.name!r} {state}>"

    # Joining: ``await task`` iterates a small Join (from a free list), not
    # the task itself: a task with send/throw/close would pass for a
    # coroutine (collections.abc.Coroutine checks those names), and asyncio
    # refuses coroutines where it wants tasks.

    def __await__(self):
        cdef Join join = Join.__new__(Join)
        join.task = self
        return join

    __iter__ = __await__

    cdef object join_step(self):
        """One step of ``await task`` while the task is not done: PENDING_ with
        the current rio task registered as a join waiter, or the task itself
        for another kind of awaiter (the asyncio future protocol)."""
        cdef Task cur
        cur = current_task_or_none()
        if cur is None:
            # awaited by another kind of task (CPython's asyncio.Task): it
            # adds a done callback and resumes us when we are done
            self.future_blocking = True
            return self
        if cur is self:
            raise RuntimeError(f"Task cannot await on itself: {self!r}")
        # a joiner is a done callback like asyncio's wake-up callback, in the
        # same list, so it runs in registration order with the others
        if not self.has_joiner(cur):
            self.push_callback(cur, None)
        if cur.rt is not None and cur.rt.aio_tasks:
            # asyncio's rule: cancelling a task that awaits another task
            # cancels that task (it is the awaiter's _fut_waiter)
            cur.fut_waiter = self
        return PENDING_

    cdef int leave_join(self) except -1:
        """The joiner is being cancelled, thrown into or closed: stop waiting."""
        cdef Task cur = current_task_or_none()
        if cur is not None and self.has_joiner(cur):
            self.set_callback_entries([
                entry for entry in self.callback_entries()
                if not (entry[0] is cur and entry[1] is None)])
        return 0

    cdef bint has_joiner(self, Task joiner) noexcept:
        cdef tuple entry
        if self.cb0 is joiner and self.ctx0 is None:
            return True
        if self.callbacks is not None:
            for entry in self.callbacks:
                if entry[0] is joiner and entry[1] is None:
                    return True
        return False


@cython.final
@cython.freelist(32)
cdef class Join:
    """The iterator of ``await task``."""

    def __iter__(self):
        return self

    def __next__(self):
        cdef Task task = self.task
        if task.state != TASK_DONE:
            return task.join_step()
        task.exception_retrieved = True
        if task.outcome == OUTCOME_RESULT:
            if task.result_value is not None:
                set_stop_value(task.result_value)
            raise StopIteration     # returns NULL with the value set above
        if task.outcome == OUTCOME_CANCELLED:
            raise task._cancelled_error()
        raise task.result_value

    def send(self, value):
        return self.__next__()

    def throw(self, typ, val=None, tb=None):
        self.task.leave_join()
        reraise(typ, val, tb)

    def close(self):
        self.task.leave_join()


cdef object future_loop(object future):
    """The loop of an asyncio future, as asyncio's Task finds it: get_loop(),
    else the ``_loop`` attribute (futures from before get_loop existed)."""
    try:
        get_loop = future.get_loop
    except AttributeError:
        return future._loop
    return get_loop()


cdef bint future_cancelled(object future) except -1:
    if type(future) is LoopFuture:
        return (<LoopFuture>future).state == AIO_CANCELLED
    return bool(future.cancelled())


def _gen_probe():
    yield


cdef object _asyncio_task_repr(Task task):
    """asyncio's repr of a task (the asyncio door shows its tasks as asyncio does)."""
    if hasattr(_base_tasks, "_task_repr"):
        return _base_tasks._task_repr(task)
    return f"<Task {' '.join(_base_tasks._task_repr_info(task))}>"


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


# --------------------------------------------------------------------------- the loop's futures

cdef tuple AIO_STATE_NAMES = ("PENDING", "CANCELLED", "FINISHED")
# 3.13 stores a RuntimeError in place of a StopIteration given to
# set_exception(); earlier versions refuse it with a TypeError.
cdef bint _stop_iteration_becomes_runtime_error = sys.version_info >= (3, 13)
cdef bint _throw_signature_deprecated = sys.version_info >= (3, 12)
cdef Py_ssize_t live_loop_futures_count = 0


cdef LoopFuture new_loop_future(Runtime rt, bint debug):
    """``loop.create_future()`` on a rio loop, without a Python frame."""
    cdef LoopFuture fut = LoopFuture.__new__(LoopFuture)
    fut.loop_ = rt
    fut.rt = rt
    if debug:
        fut.source_traceback = _extract_stack(sys._getframe())
    return fut


@cython.final
cdef class LoopFuture:
    """asyncio's Future, made by rio's loop for ``loop.create_future()``.

    It is an ``asyncio.Future`` to asyncio code (``isinstance``, ``isfuture``,
    the whole API, asyncio's messages and repr), and any asyncio task can
    await it. A rio task that awaits it parks in the future itself: no
    done-callback, no handle and no keyword call per wait; when the future
    completes, the task is queued where asyncio queues the wake-up callback,
    so the order of callbacks and wake-ups is asyncio's.
    """

    def __cinit__(self):
        if RIO_DEBUG_ENABLED:
            global live_loop_futures_count
            live_loop_futures_count += 1

    def __init__(self, *, loop=None):
        if loop is None:
            loop = _get_event_loop()
        self.loop_ = loop
        self.rt = loop if isinstance(loop, Runtime) else None
        if loop.get_debug():
            self.source_traceback = _extract_stack(sys._getframe())

    def __dealloc__(self):
        if RIO_DEBUG_ENABLED:
            global live_loop_futures_count
            live_loop_futures_count -= 1

    def __del__(self):
        if not self.log_tb:
            return
        self.log_tb = False
        context = {"message": "Future exception was never retrieved",
                   "exception": self.exc, "future": self}
        if self.source_traceback is not None:
            context["source_traceback"] = self.source_traceback
        try:
            self.loop_.call_exception_handler(context)
        except BaseException as error:
            report_unraisable(_UnraisableInfo(
                type(error), error, error.__traceback__,
                f"Exception in the exception handler of {self!r}", self))

    # ---- state

    def done(self):
        return self.state != AIO_PENDING

    def cancelled(self):
        return self.state == AIO_CANCELLED

    def result(self):
        return self.get_result()

    cdef object get_result(self):
        """``result()`` without a method look-up (what ``await`` returns)."""
        if self.state == AIO_CANCELLED:
            raise self.make_cancelled_error()
        if self.state != AIO_FINISHED:
            raise InvalidStateError("Result is not set.")
        self.log_tb = False
        if self.exc is not None:
            raise self.exc.with_traceback(self.exc_tb)
        return self.result_value

    def exception(self):
        if self.state == AIO_CANCELLED:
            raise self.make_cancelled_error()
        if self.state != AIO_FINISHED:
            raise InvalidStateError("Exception is not set.")
        self.log_tb = False
        return self.exc

    cdef inline int check_initialized(self) except -1:
        if self.loop_ is None:
            raise RuntimeError("Future object is not initialized.")
        return 0

    cdef object make_cancelled_error(self):
        return CancelledError() if self.cancel_msg is None else CancelledError(self.cancel_msg)

    def _make_cancelled_error(self):
        return self.make_cancelled_error()

    def get_loop(self):
        return self.loop_

    # ---- completing it

    def set_result(self, result):
        self.check_initialized()
        if self.state != AIO_PENDING:
            raise InvalidStateError("invalid state")
        self.result_value = result
        self.state = AIO_FINISHED
        self.schedule_callbacks()

    def set_exception(self, exception):
        self.check_initialized()
        if self.state != AIO_PENDING:
            raise InvalidStateError("invalid state")
        if isinstance(exception, type) and issubclass(exception, BaseException):
            exception = exception()
        if not isinstance(exception, BaseException):
            raise TypeError("invalid exception object")
        if type(exception) is StopIteration or (
                _stop_iteration_becomes_runtime_error and isinstance(exception, StopIteration)):
            message = ("StopIteration interacts badly with generators and cannot be "
                       "raised into a Future")
            if not _stop_iteration_becomes_runtime_error:
                raise TypeError(message)
            error = RuntimeError(message)
            error.__cause__ = exception
            error.__context__ = exception
            exception = error
        self.exc = exception
        self.exc_tb = exception.__traceback__
        self.state = AIO_FINISHED
        self.schedule_callbacks()
        self.log_tb = True

    def cancel(self, msg=None):
        self.check_initialized()
        self.log_tb = False
        if self.state != AIO_PENDING:
            return False
        self.state = AIO_CANCELLED
        self.cancel_msg = msg
        self.schedule_callbacks()
        return True

    # ---- callbacks

    def add_done_callback(self, fn, *, context=None):
        self.check_initialized()
        if context is None:
            context = PyContext_CopyCurrent()
        if self.state != AIO_PENDING:
            self.run_callback(fn, context)
        else:
            self.push_callback(fn, context)

    def remove_done_callback(self, fn):
        self.check_initialized()
        return self.remove_callbacks(fn, False)

    cdef int schedule_callbacks(self) except -1:
        """The future is done: queue its callbacks and wake its rio tasks, in
        the order they came."""
        cdef object fn = self.cb0
        cdef list rest = self.callbacks
        if fn is not None:
            context = self.ctx0
            self.cb0 = self.ctx0 = None
            self.run_callback(fn, context)
        if rest is not None:
            self.callbacks = None
            for fn, context in rest:
                self.run_callback(fn, context)
        return 0

    cdef int run_callback(self, object fn, object context) except -1:
        cdef Task task
        if context is None:
            # a rio task parked here (and still parked here: a task that left
            # for another await is not woken by this one)
            task = <Task>fn
            if task.fut_waiter is self:
                wake_task(task)
        elif self.rt is not None:
            ring_push(&self.rt.ready, make_handle(fn, (self,), context, False))
        else:
            self.loop_.call_soon(fn, self, context=context)
        return 0

    # ---- await

    def __await__(self):
        cdef LoopFutureIter it = LoopFutureIter.__new__(LoopFutureIter)
        it.fut = self
        return it

    def __iter__(self):
        cdef LoopFutureIter it = LoopFutureIter.__new__(LoopFutureIter)
        it.fut = self
        return it

    # ---- what asyncio code reads

    __class_getitem__ = classmethod(_GenericAlias)

    @property
    def __class__(self):
        # isinstance(fut, asyncio.Future) and asyncio.isfuture(fut) are true;
        # type(fut) is still this class
        return _AsyncioFuture

    @property
    def _asyncio_future_blocking(self):
        return self.blocking

    @_asyncio_future_blocking.setter
    def _asyncio_future_blocking(self, value):
        self.blocking = bool(value)

    @_asyncio_future_blocking.deleter
    def _asyncio_future_blocking(self):
        raise_cannot_delete()

    @property
    def _state(self):
        return AIO_STATE_NAMES[<int>self.state]

    @property
    def _loop(self):
        return self.loop_

    @property
    def _result(self):
        return self.result_value

    @property
    def _exception(self):
        return self.exc

    @property
    def _cancel_message(self):
        return self.cancel_msg

    @_cancel_message.setter
    def _cancel_message(self, value):
        self.cancel_msg = value

    @_cancel_message.deleter
    def _cancel_message(self):
        raise_cannot_delete()

    @property
    def _source_traceback(self):
        return self.source_traceback

    @property
    def _log_traceback(self):
        return self.log_tb

    @_log_traceback.setter
    def _log_traceback(self, value):
        if value:
            raise ValueError("_log_traceback can only be set to False")
        self.log_tb = False

    @_log_traceback.deleter
    def _log_traceback(self):
        raise_cannot_delete()

    @property
    def _callbacks(self):
        """asyncio's (callback, context) pairs; a parked rio task shows as
        its wake-up callback in its own context."""
        if self.cb0 is None:
            return None
        return [self.callback_pair(fn, context) for fn, context in self.callback_entries()]

    cdef tuple callback_pair(self, object fn, object context):
        if context is None:
            return ((<Task>fn).get_cx().waker.future_done, (<Task>fn).context)
        return (fn, context)

    def __repr__(self):
        if hasattr(_base_futures, "_future_repr"):
            return _base_futures._future_repr(self)
        return f"<Future {' '.join(_base_futures._future_repr_info(self))}>"


cdef int raise_cannot_delete() except -1:
    # asyncio's C Future and Task refuse to delete their settable attributes
    # (a Cython property without a deleter would raise NotImplementedError)
    raise AttributeError("cannot delete attribute")


@cython.final
@cython.freelist(16)
cdef class LoopFutureIter:
    """What ``await fut`` iterates (asyncio's FutureIter): yields the future
    once to park on it, then returns its result."""

    def __iter__(self):
        return self

    def __next__(self):
        cdef bint done = False
        value = loop_future_iter_step(self, &done)
        if not done:
            return value
        if value is not None:
            set_stop_value(value)
        raise StopIteration     # returns NULL with the value set above

    def send(self, value):
        if value is not None:
            raise TypeError("can't send non-None value to a FutureIter")
        return self.__next__()

    def throw(self, *args):
        # a generator's throw() checks the arguments as asyncio's FutureIter
        # does, then raises what it was given (this module's generators are
        # Cython's, which do not warn about the three-argument form)
        if len(args) > 1 and _throw_signature_deprecated:
            _warn("the (type, exc, tb) signature of throw() is deprecated, "
                  "use the single-arg signature instead.", DeprecationWarning, stacklevel=1)
        if throwable(args):
            # as asyncio's FutureIter: once it has raised what it was given,
            # the iterator is finished (a later send() stops at once)
            self.fut = None
        thrower = _gen_probe()
        next(thrower)
        thrower.throw(*args)

    def close(self):
        self.fut = None


cdef bint throwable(tuple args):
    """Whether throw(*args) raises what it was given, not a TypeError about
    its arguments."""
    if not args or len(args) > 3:
        return False
    typ = args[0]
    if len(args) == 3 and args[2] is not None and not isinstance(args[2], TracebackType):
        return False
    if isinstance(typ, BaseException):
        return len(args) == 1 or args[1] is None
    return isinstance(typ, type) and issubclass(typ, BaseException)


cdef object loop_future_iter_step(LoopFutureIter it, bint *done):
    """One resumption of ``await fut``: the future itself (to park on), or,
    with ``*done`` set, its result."""
    cdef LoopFuture fut = it.fut
    if fut is None:
        done[0] = True      # exhausted
        return None
    if fut.state == AIO_PENDING:
        if not fut.blocking:
            fut.blocking = True
            return fut
        raise RuntimeError("await wasn't used with future")
    it.fut = None
    done[0] = True
    return fut.get_result()


# loop_future_iter_step, seen as C: a new reference or NULL with the exception set
ctypedef PyObject *(*raw_iter_step_fn)(PyObject *it, bint *done) noexcept
cdef raw_iter_step_fn raw_loop_future_iter_step = <raw_iter_step_fn><void *>loop_future_iter_step


cdef PySendResult loop_future_iter_am_send(PyObject *it, PyObject *arg,
                                           PyObject **result) noexcept:
    """LoopFutureIter's am_send: ``await`` on 3.11 resumes it here, with no
    StopIteration."""
    cdef bint done = False
    result[0] = raw_loop_future_iter_step(it, &done)
    if result[0] == NULL:
        return PYGEN_ERROR
    return PYGEN_RETURN if done else PYGEN_NEXT


cdef PyAsyncMethods loop_future_iter_async_slots     # zeroed: only am_send is set
rio_set_am_send_only(<PyObject *>LoopFutureIter, &loop_future_iter_async_slots,
                     loop_future_iter_am_send)


def _debug_live_loop_futures():
    return live_loop_futures_count


# --------------------------------------------------------------------------- runtime

cdef class Runtime:
    """An explicit runtime. ``Runtime().block_on(coro)`` runs on this thread.

    ``clock=rio_rt.testing.MockClock()`` runs it on test time: the clock
    stands still and jumps to the next timer as soon as every task is blocked,
    so timer tests take no real time. ``autojump_clock=True`` is short for that.
    """

    def __cinit__(self, *args, **kwargs):
        ring_init(&self.ready, 256)
        self.time_driver = TimeDriver()
        self.time_driver.wake = wake_waiter
        self.reactor = Reactor()
        self.reactor.wake = wake_waiter
        self.inject = []
        self.live_head = NULL
        self.wake_context = _ContextVarsContext()

    def __init__(self, *, clock=None, autojump_clock=False, instrument=False,
                 slow_poll=None, on_slow_poll=None):
        self._use_clock(clock, autojump_clock)
        self._configure_observe(instrument, slow_poll, on_slow_poll)

    def _configure_observe(self, instrument=False, slow_poll=None, on_slow_poll=None):
        """The opt-in observability switches the constructors take."""
        self.instrument(instrument)
        self.set_slow_poll(slow_poll, on_slow_poll)

    # ---- observability: opt-in switches (each makes run_batch take the
    # observed path; off, the step path pays one flag test)

    cdef void update_observed(self) noexcept:
        self.observed = (self.slow_ns != 0 or self.timed_steps or self.watch_steps
                         or self.before_poll_hook is not None
                         or self.after_poll_hook is not None)

    def instrument(self, enabled=True):
        """Time every step (two clock reads per step): Task.step_time, and
        stats()'s busy_time and step_histogram. Turning it on again resets
        nothing; the counters keep what they had."""
        self.timed_steps = bool(enabled)
        self.update_observed()

    @property
    def instrumented(self):
        """Whether steps are timed (instrument())."""
        return self.timed_steps

    def set_hooks(self, *, on_spawn=None, before_poll=None, after_poll=None, on_exit=None):
        """Tracing hooks, each a callable taking the rio Task (None: not
        traced): on_spawn after a task is spawned, before_poll/after_poll
        around each of its steps, on_exit once it is done. Replaces every hook.
        An exception from a hook goes to the exception handler."""
        for hook in (on_spawn, before_poll, after_poll, on_exit):
            if hook is not None and not callable(hook):
                raise TypeError(f"a hook must be callable or None, got {type(hook).__name__}")
        self.on_spawn_hook = on_spawn
        self.before_poll_hook = before_poll
        self.after_poll_hook = after_poll
        self.on_exit_hook = on_exit
        self.update_observed()

    def set_slow_poll(self, seconds, callback=None):
        """The stuck-step watchdog: while the runtime runs, a thread reports
        every step still running after ``seconds`` (once per step) to
        ``callback(report)`` (a rio_core._observe.SlowPoll), by default a
        warning on the ``rio_rt`` logger. None turns it off."""
        cdef double value
        if self.running or self.watchdog is not None:
            raise RuntimeError("slow_poll is set before the runtime runs, not while it runs")
        if callback is not None and not callable(callback):
            raise TypeError(f"on_slow_poll must be callable, got {type(callback).__name__}")
        if seconds is None:
            self.slow_poll_ns = 0
        else:
            value = checked_seconds(seconds, "slow_poll")
            if not 0 < value < 9e9:
                raise ValueError(f"slow_poll must be a positive number of seconds, got {seconds!r}")
            self.slow_poll_ns = max(1000, <int64_t>(value * 1e9))
        self.on_slow_poll = callback
        self.watch_steps = self.slow_poll_ns != 0
        self.update_observed()

    @property
    def slow_poll(self):
        """The watchdog's threshold in seconds, or None."""
        return self.slow_poll_ns / 1e9 if self.slow_poll_ns else None

    cdef int start_watchdog(self) except -1:
        if not self.watch_steps or self.watchdog is not None:
            return 0
        from rio_core._observe import Watchdog
        self.watchdog = Watchdog(self, self.slow_poll_ns, self.on_slow_poll)
        self.watchdog.start()
        return 0

    cdef int stop_watchdog(self) except -1:
        cdef object watchdog = self.watchdog
        if watchdog is not None:
            self.watchdog = None
            watchdog.stop()
        return 0

    def _step_probe(self):
        """For the watchdog thread: (step number, its start in ns of the real
        monotonic clock, the entry) of the step running now, or None."""
        if self.step_started_ns == 0:
            return None
        return (self.step_seq, self.step_started_ns, self.step_entry)

    def all_tasks(self):
        """The live rio tasks of this runtime, oldest first (asyncio tasks on
        rio's loop: asyncio.all_tasks(loop))."""
        cdef list tasks = self.live_tasks()
        tasks.reverse()
        return tasks

    def _call_soon_injected(self, callback):
        """Run ``callback()`` between steps of the next tick; safe from a
        signal handler or another thread (the path of a cross-thread wake)."""
        self.inject.append(make_handle(callback, (), None, False))
        self.reactor.notify()

    def _use_clock(self, clock, autojump_clock=False):
        """Run on ``clock`` (a MockClock; None: the real clock)."""
        if clock is not None and autojump_clock:
            raise TypeError("give clock= or autojump_clock=True, not both")
        if autojump_clock:
            clock = MockClock()
        if clock is not None and not isinstance(clock, MockClock):
            raise TypeError(
                f"clock must be a rio_rt.testing.MockClock, got {type(clock).__name__}")
        if self.running:
            raise RuntimeError("cannot change the clock of a running runtime")
        self.time_driver.clock = clock

    @property
    def clock(self):
        """The test clock this runtime runs on, or None (the real clock)."""
        return self.time_driver.clock

    def _blocking_job_started(self):
        self.blocking_jobs += 1

    def _blocking_job_done(self):
        # from the pool thread, after the job's wake was handed over (inject):
        # the runtime reads this counter before inject, so it never sees both empty
        self.blocking_jobs -= 1

    def _add_idle_waiter(self, cushion, waiter):
        """``waiter.set(None)`` once every task has been blocked for ``cushion``
        seconds of real time (rio_rt.testing.wait_all_tasks_blocked)."""
        cdef double seconds = checked_seconds(cushion, "cushion")
        cdef int64_t cushion_ns = <int64_t>DEADLINE_NEVER_NS
        if seconds < 0:
            raise ValueError(f"cushion must be >= 0, got {cushion!r}")
        if seconds < 9e9:
            cushion_ns = <int64_t>(seconds * 1e9)
        if self.idle_waiters is None:
            self.idle_waiters = []
        self.idle_waiters.append((cushion_ns, waiter))

    def __dealloc__(self):
        ring_clear(&self.ready)
        if self.time_driver is not None:
            self.time_driver.clear()     # armed handles point back at the driver: break that

    cdef int64_t now_ns(self) noexcept:
        return self.time_driver.now_ns()

    def time(self):
        return self.time_driver.now_ns() / 1e9

    def stats(self):
        """Counters of every core structure."""
        return {
            "tasks_alive": self.tasks_alive,
            "ready_depth": self.ready.count,
            "timers": len(self.time_driver),
            "timers_cancelled": self.time_driver.cancelled,
            "polls": self.polls,
            "ticks": self.ticks,
            "reactor_waits": self.reactor.waits,
            "fds": len(self.reactor),
            "injected": len(self.inject),
            "busy_time": self.busy_ns / 1e9,
            "step_histogram": [self.step_histogram[i] for i in range(STEP_HISTOGRAM_BUCKETS)],
        }

    # ---- spawning and waking (runtime thread)

    cdef Task spawn_task(self, object coro, object name, object context=None,
                         bint eager=False, Task task=None):
        """A new task of this runtime, queued; ``eager``: not queued, the
        caller steps it at once (step_eagerly). ``task``: a Task object made
        but not spawned yet (the Task(...) constructor)."""
        global next_task_id
        if (not PyCoro_CheckExact(coro) and not isinstance(coro, _AbcCoroutine)
                and not (self.aio_tasks and _aio_iscoroutine(coro))):
            # (the asyncio door takes what asyncio takes: a generator-based
            # coroutine such as ensure_future's wrapper of an awaitable)
            if self.aio_tasks:
                raise TypeError(f"a coroutine was expected, got {coro!r}")
            hint = ""
            if callable(coro):
                hint = " (did you forget to call the async function?)"
            raise TypeError(
                f"spawn() expects a coroutine, got {type(coro).__name__} {coro!r:.60}{hint}")
        if task is None:
            task = Task.__new__(Task)
        task.rt = self
        task.loop_ = self
        task.coro = coro
        task.context = PyContext_CopyCurrent() if context is None else context
        task.id = next_task_id
        next_task_id += 1
        task.spawned_ns = self.time_driver.now_ns()
        cdef void *parent = rio_get_current_task()
        if parent != NULL:
            task.parent_id = (<Task>parent).id
        if name is not None:
            task.name_ = str(name)
        # link into the live list (the list owns one reference)
        Py_INCREF(task)
        task.live_next = self.live_head
        if self.live_head != NULL:
            (<Task>self.live_head).live_prev = <PyObject *>task
        self.live_head = <PyObject *>task
        self.tasks_alive += 1
        if transition_to_scheduled(task) == SUBMIT and not eager:
            ring_push(&self.ready, task)
        if self.on_spawn_hook is not None:
            self.call_hook(self.on_spawn_hook, task)
        return task

    cdef int schedule(self, Task task) except -1:
        """The wake, on the runtime's own thread."""
        task.wakes += 1
        if transition_to_notified(task) == SUBMIT:
            ring_push(&self.ready, task)
        return 0

    cdef int queue_callback(self, object fn, object arg, object context) except -1:
        """Queue ``fn(arg)`` in ``context`` (a task's done callback)."""
        ring_push(&self.ready, make_handle(fn, (arg,), context, False))
        return 0

    cdef int step_eagerly(self, Task task) except -1:
        """The first step of an eager task (spawn_task(eager=True)), now, inside
        the step or callback that created it (asyncio's eager_start); the task
        that was current is current again afterwards."""
        cdef PyObject *outer = NULL
        cdef object outer_task = None
        if self.aio_tasks and self.aio_swap is None:
            # (with aio_swap, step puts the outer task back itself)
            outer = PyDict_GetItem(self.aio_current, self)
            if outer != NULL:
                outer_task = <object>outer
        try:
            self.step(task)
        finally:
            if outer_task is not None:
                rio_dict_slot_put(self.aio_current, self, outer_task, &self.aio_slot)
        return 0

    cdef object swap_aio_current(self, object task):
        """Make ``task`` (None: no task) asyncio's current task of this loop
        through asyncio's _swap_current_task (3.14+), and return the one it
        replaces. asyncio refuses while this loop is not the thread's running
        loop; then asyncio.current_task() could not see a task of it anyway."""
        try:
            return self.aio_swap(self, task)
        except RuntimeError:
            return None

    cdef int aio_flush(self) except -1:
        """Clear the stale current task a deferred step left (see aio_stale)."""
        self.aio_stale = False
        if self.aio_swap is not None:
            self.swap_aio_current(None)
        elif dict_del_item(self.aio_current, self) < 0:
            PyErr_Clear()
        return 0

    def call_at(self, when, callback, *args, context=None):
        """Run ``callback(*args)`` at ``when`` (seconds of the runtime clock)."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        return self.time_driver.arm_callback(
            deadline_ns_of(when, "when"), callback, args,
            context if context is not None else PyContext_CopyCurrent())

    # ---- stepping

    cdef int step(self, Task task, bint defer=False) except -1:
        cdef PyObject *raw = NULL
        cdef PySendResult status
        cdef object value
        cdef void *outer = rio_get_current_task()    # not NULL: an eager step
        cdef object waiter = task.fut_waiter
        cdef object aio_outer = None
        transition_to_running(task)
        task.fut_waiter = None
        if task.must_cancel and waiter is not None and future_cancelled(waiter):
            # cancelled while the future it waited on was already cancelled
            # (its wake-up queued): as asyncio's Task, it gets that future's
            # own CancelledError, which resuming it raises
            task.must_cancel = False
            task.cancels_thrown += 1
        self.polls += 1
        task.polls += 1
        rio_set_current_task(<void *>task)
        if self.aio_tasks:
            if self.aio_swap is None:
                # asyncio.current_task() reads this dict (asyncio's _enter_task);
                # the value is written in place once the loop's entry exists
                rio_dict_slot_put(self.aio_current, self, task, &self.aio_slot)
            else:
                aio_outer = self.swap_aio_current(task)
                if self.aio_stale:
                    aio_outer = None    # a finished step's task: not an outer one
            # the entry holds a running task now (an eager step inside this
            # one restores it: it is not stale)
            self.aio_stale = False
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
        rio_clear_stop_cache(stop_cache)
        if self.aio_tasks:
            if defer and status == PYGEN_NEXT and not task.must_cancel and (
                    value is None or value is PENDING_ or (
                        type(value) is LoopFuture and (<LoopFuture>value).blocking
                        and (<LoopFuture>value).loop_ is self)):
                # the step ends on a path that runs no Python code: the next
                # step overwrites the entry, the batch clears it
                self.aio_stale = True
            elif self.aio_swap is not None:
                self.swap_aio_current(aio_outer)
            elif dict_del_item(self.aio_current, self) < 0:
                PyErr_Clear()
        rio_set_current_task(outer)
        if status == PYGEN_NEXT:
            if value is PENDING_:
                # parked in a leaf future, which keeps the waker
                if task.must_cancel and task.fut_waiter is not None:
                    self.cancel_waiter(task)
                if transition_to_idle(task) == SUBMIT:
                    ring_push(&self.ready, task)
                return 0
            if value is not None:
                if type(value) is LoopFuture and (<LoopFuture>value).blocking \
                        and (<LoopFuture>value).loop_ is self:
                    # the loop's own future: park in it, no done-callback
                    (<LoopFuture>value).blocking = False
                    (<LoopFuture>value).push_callback(task, None)
                    task.fut_waiter = value
                    if task.must_cancel:
                        self.cancel_waiter(task)
                    if transition_to_idle(task) == SUBMIT:
                        ring_push(&self.ready, task)
                    return 0
                if getattr(value, "_asyncio_future_blocking", None) is True:
                    if value is task or (self.aio_tasks and future_loop(value) is not self):
                        task.throw_exc = self.bad_future(task, value)
                    else:
                        # an asyncio future: park until its done-callback wakes us
                        value._asyncio_future_blocking = False
                        # the waker's bound method, made once per task, in
                        # the runtime's empty wake context: the future copies
                        # no context (the step enters the task's own)
                        value.add_done_callback(task.get_cx().waker.future_done,
                                                context=self.wake_context)
                        task.fut_waiter = value
                        if task.must_cancel:
                            self.cancel_waiter(task)
                        if transition_to_idle(task) == SUBMIT:
                            ring_push(&self.ready, task)
                        return 0
                else:
                    task.throw_exc = self.bad_yield(task, value)
            # a bare yield (or a bad value, thrown in on the next step)
            if transition_to_scheduled(task) == SUBMIT:
                ring_push(&self.ready, task)
            return 0
        if status == PYGEN_RETURN:
            if task.must_cancel:
                # cancelled right before it returned: asyncio's Task ends
                # cancelled then, not with the value
                return self.finish(task, OUTCOME_CANCELLED, CancelledError(
                    *(() if task.cancel_msg is None else (task.cancel_msg,))))
            return self.finish(task, OUTCOME_RESULT, value)
        if isinstance(value, CancelledError):
            task.cancel_msg = None
            return self.finish(task, OUTCOME_CANCELLED, value)
        if isinstance(value, (KeyboardInterrupt, SystemExit)):
            self.pending_base_exc = value
        return self.finish(task, OUTCOME_EXCEPTION, value)

    cdef int step_woken(self, Task task) except -1:
        """Wake and step a parked task at once, from the done callback of the
        asyncio future it waited on (FutureDone). Observed, the task's
        poll hooks and step time are kept as for a step off the queue (the
        handle around it is timed and published as usual)."""
        cdef int64_t started = 0
        task.wakes += 1
        transition_to_notified(task)
        if not self.observed:
            return self.step(task)
        if self.before_poll_hook is not None:
            self.call_hook(self.before_poll_hook, task)
        if self.timed_steps:
            started = rio_monotonic_ns()
        self.step(task)
        if self.timed_steps:
            task.step_ns += rio_monotonic_ns() - started
        if self.after_poll_hook is not None:
            self.call_hook(self.after_poll_hook, task)
        return 0

    cdef int cancel_waiter(self, Task task) except -1:
        """The task was cancelled while it ran, then parked on a future or
        task: cancel that instead, as asyncio's Task does (the cancellation
        then arrives through it)."""
        if task.fut_waiter.cancel(task.cancel_msg):
            task.must_cancel = False
        return 0

    cdef object bad_future(self, Task task, object value):
        """What to throw into a task that awaited itself or another loop's future."""
        if value is task:
            return RuntimeError(f"Task cannot await on itself: {task!r}")
        return RuntimeError(
            f"Task {task!r} got Future {value!r} attached to a different loop")

    cdef object bad_yield(self, Task task, object value):
        """What to throw into a task that yielded a value no waiter protocol covers."""
        if self.aio_tasks:
            # asyncio's messages on the asyncio door
            if getattr(value, "_asyncio_future_blocking", None) is not None:
                return RuntimeError(
                    f"yield was used instead of yield from in task {task!r} with {value!r}")
            if type(value) is type(_gen_probe()):
                return RuntimeError(
                    "yield was used instead of yield from for generator in task "
                    f"{task!r} with {value!r}")
            return RuntimeError(f"Task got bad yield: {value!r}")
        return TypeError(
            f"rio task {task.name!r} yielded {value!r:.200}, which the rio runtime "
            "does not understand: await rio futures, rio tasks, rio_rt.yield_now() "
            "or rio_rt.sleep(), not a bare yield of a value")

    cdef tuple throw_into(self, Task task):
        """Throw the pending cancellation or error into the coroutine (slow path).

        Returns (status, value) with the same meaning as PyIter_Send's; for
        PYGEN_ERROR the value is the exception.
        """
        cdef object exc
        if task.must_cancel:
            task.must_cancel = False
            task.cancels_thrown += 1
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
        transition_to_complete(task)
        task.outcome = outcome
        task.result_value = value
        task.must_cancel = False
        task.cancel_deferred = False
        if task.cancel_scope is not None:
            task.cancel_scope = None
        task.throw_exc = None
        task.cx_ = None            # the Waker may outlive the task; drop our side
        task.waker_ = None
        self.unlink_live(task)
        if task is self.main or self.tasks_alive == 0:
            self.stop_requested = True
        if task.done_hooks is not None:
            hooks = task.done_hooks
            task.done_hooks = None
            for hook in hooks:
                self.call_hook(hook, task)
        if task.cb0 is not None:
            fn = task.cb0
            context = task.ctx0
            task.cb0 = task.ctx0 = None
            self.run_done_callback(task, fn, context)
        if task.callbacks is not None:
            callbacks = task.callbacks
            task.callbacks = None
            for fn, context in callbacks:
                self.run_done_callback(task, fn, context)
        if self.on_exit_hook is not None:
            self.call_hook(self.on_exit_hook, task)
        Py_DECREF(task)            # the live list's reference
        return 0

    cdef int run_done_callback(self, Task task, object fn, object context) except -1:
        """Queue one of a finished task's done callbacks, or wake a joining task."""
        cdef Task waiter
        if context is None:     # a task joining this one (join_step)
            waiter = <Task>fn
            if waiter.rt is self:
                self.schedule(waiter)
        else:
            ring_push(&self.ready, make_handle(fn, (task,), context, False))
        return 0

    # ---- the tick

    cdef int tick(self) except -1:
        """One round of the scheduler: the four steps of the design note."""
        self.ticks += 1
        if self.inject:
            self.apply_injected()
        if has_timers(self.time_driver):
            self.time_driver.fire_due(&self.ready)
        if self.run_batch(self.ready.count) < 1:
            return 0                # a KeyboardInterrupt/SystemExit is pending
        return self.turn_reactor()

    cdef int apply_injected(self) except -1:
        """Step 1: wakes of this runtime's tasks and handles, from other threads."""
        cdef list injected = self.inject
        cdef object entry
        self.inject = []
        for entry in injected:
            if type(entry) is Task:
                if (<Task>entry).rt is self:
                    self.schedule(<Task>entry)
            else:
                ring_push(&self.ready, entry)
        return 0

    cdef int run_batch(self, Py_ssize_t n) except -1:
        """Step 3: run the first ``n`` entries of the ready queue. Returns 1, or
        0 when a KeyboardInterrupt or SystemExit stopped the batch."""
        cdef Py_ssize_t _batch_index
        cdef object entry
        if self.observed:
            return self.run_batch_timed(n)
        try:
            for _batch_index in range(n):
                entry = <object>ring_pop(&self.ready)
                Py_DECREF(entry)        # `entry` owns the queue's reference now
                if type(entry) is Task:
                    self.step(<Task>entry, True)     # may leave it current (aio_stale)
                else:
                    if self.aio_stale:
                        self.aio_flush()
                    self.run_entry(entry)
                if self.pending_base_exc is not None:
                    return 0
            return 1
        finally:
            if self.aio_stale:
                self.aio_flush()

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
        """Step 3, observed (some opt-in switch is on: debug mode's slow
        callbacks, instrument(), the watchdog, poll hooks): the same batch,
        with each entry timed, published and traced as asked."""
        cdef Py_ssize_t _batch_index
        cdef object entry, callback, args
        cdef bint is_task
        cdef bint timed = self.slow_ns != 0 or self.timed_steps or self.watch_steps
        cdef int64_t started = 0
        cdef int64_t elapsed = 0
        for _batch_index in range(n):
            entry = <object>ring_pop(&self.ready)
            Py_DECREF(entry)
            is_task = type(entry) is Task
            if is_task or not self.slow_ns:
                callback = args = None
            else:       # kept: a one-shot handle drops them when it has run
                callback = (<Handle>entry).callback
                args = (<Handle>entry).args
            if is_task and self.before_poll_hook is not None:
                self.call_hook(self.before_poll_hook, entry)
            if timed:
                started = rio_monotonic_ns()
                if self.watch_steps:
                    self.step_entry = entry
                    self.step_seq += 1
                    self.step_started_ns = started
            try:
                self.run_entry(entry)
            finally:
                if timed:
                    elapsed = rio_monotonic_ns() - started
                    self.step_started_ns = 0    # (also when slow_poll went off meanwhile)
                    self.step_entry = None
            if timed and self.timed_steps:
                self.count_step(entry, is_task, elapsed)
            if self.slow_ns and elapsed >= self.slow_ns and self.slow_hook is not None:
                self.slow_hook(entry, callback, args, elapsed / 1e9)
            if is_task and self.after_poll_hook is not None:
                self.call_hook(self.after_poll_hook, entry)
            if self.pending_base_exc is not None:
                return 0
        return 1

    cdef void count_step(self, object entry, bint is_task, int64_t elapsed) noexcept:
        """Instrumented: add one step of ``elapsed`` ns to the counters."""
        cdef int64_t us = elapsed // 1000
        cdef int bucket = 0
        while us > 0 and bucket < STEP_HISTOGRAM_BUCKETS - 1:
            us >>= 1
            bucket += 1
        self.step_histogram[bucket] += 1
        self.busy_ns += elapsed
        if is_task:
            (<Task>entry).step_ns += elapsed

    cdef int call_hook(self, object hook, object task) except -1:
        """``hook(task)``: a done callback or a tracing hook. Its exception goes
        to the exception handler (KeyboardInterrupt/SystemExit stop the
        runtime as a task's would)."""
        try:
            hook(task)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                self.pending_base_exc = exc
            else:
                self.report_handle_error(hook, exc)
        return 0

    cdef int turn_reactor(self) except -1:
        """Step 4: block when idle, poll now and then when busy; what a busy
        poll reports runs at once (``run_polled``)."""
        cdef int64_t now
        cdef int timeout_ms
        cdef Py_ssize_t queued
        if self.stop_requested:
            return 0
        if self.ready.count == 0 and not self.inject:
            if self.idle_waiters or self.time_driver.clock is not None:
                return self.park_idle()
            timeout_ms = self.time_driver.park_timeout_ms()
            self.reactor.turn(timeout_ms, &self.ready)
            self.last_io_poll_ns = self.time_driver.now_ns()
            PyErr_CheckSignals()        # run Python handlers of signals that woke us
        elif fds_watched(self.reactor):
            # A clock read per tick (~20 ns) is a tenth of a one-callback tick.
            # Reading it only every few short ticks was measured (call_soon chain
            # 14% faster) and rejected: asyncio polls every iteration, and
            # programs that close a connection just before the loop stops
            # (eof -> close -> connection_lost in a few iterations) then left
            # transports open at loop.close().
            now = self.time_driver.now_ns()
            if (now - self.last_io_poll_ns < IO_POLL_INTERVAL_NS
                    and self.ticks % IO_POLL_EVERY_TICKS != 0):
                return 0
            queued = self.ready.count
            self.reactor.turn(0, &self.ready)
            self.last_io_poll_ns = now
            if self.ready.count > queued:
                self.run_polled(self.ready.count - queued)
        return 0

    cdef int run_polled(self, Py_ssize_t n) except -1:
        """Step 4, busy: run the ``n`` entries a non-blocking poll has just put at
        the back of the ready queue (readers' and writers' handles, tasks woken by
        I/O) now, ahead of what the batch queued, as libuv runs I/O callbacks in
        its poll phase. What they queue runs in the next tick, behind the batch's
        call_soons, instead of one tick later: request/response chains (a write in
        one callback, the peer's read in the next) then take a tick per hop, not
        two, and the batches stay small. Bounded: a poll reports at most
        ``max_events`` fds, two entries each; the batch behind waits for no more."""
        ring_move_back_to_front(&self.ready, n)
        self.run_batch(n)
        return 0

    cdef int park_idle(self) except -1:
        """Every task is blocked, on test time or with wait_all_tasks_blocked
        waiters (the slow path of step 4). Wait in the reactor, in real time,
        until something happens (I/O, a wake from another thread, a timer on
        a running clock), or until every task has been blocked long enough:
        for the waiters with the smallest cushion (they are woken), or for
        the test clock's autojump threshold (it jumps to the next deadline).
        It never jumps while a blocking-pool job runs, and always polls the
        reactor first, so ready I/O is seen before time moves."""
        cdef MockClock clock = self.time_driver.clock
        cdef int64_t start = rio_monotonic_ns()
        cdef int64_t target, cushion, elapsed, remaining
        cdef int timeout_ms, timer_ms
        while True:
            target = self.smallest_cushion()
            # (blocking_jobs is read before inject: see _blocking_job_done)
            if (clock is not None and clock.threshold_s < 9e9 and self.blocking_jobs == 0
                    and 0 <= self.time_driver.next_deadline() < <int64_t>DEADLINE_NEVER_NS):
                cushion = <int64_t>(clock.threshold_s * 1e9)
                if target < 0 or cushion < target:
                    target = cushion
            timer_ms = self.time_driver.park_timeout_ms()
            timeout_ms = timer_ms
            if target >= 0:
                remaining = target - (rio_monotonic_ns() - start)
                remaining = (remaining + 999_999) // 1_000_000 if remaining > 0 else 0
                if timeout_ms < 0 or remaining < timeout_ms:
                    timeout_ms = <int>remaining
            if self.inject:
                return 0
            self.reactor.turn(timeout_ms, &self.ready)
            self.last_io_poll_ns = self.time_driver.now_ns()
            PyErr_CheckSignals()
            if self.ready.count != 0 or self.inject or self.time_driver.park_timeout_ms() == 0:
                return 0            # something happened: the next tick runs it
            if target < 0:
                continue
            elapsed = rio_monotonic_ns() - start
            if elapsed < target:
                continue
            if self.idle_waiters and self.wake_idle_waiters(elapsed):
                return 0
            if self.blocking_jobs == 0 and self.time_driver.jump_to_next_deadline():
                return 0

    cdef int64_t smallest_cushion(self) except? -2:
        """The smallest cushion (ns) of the idle waiters; -1 when none waits."""
        cdef int64_t smallest = -1
        cdef int64_t cushion
        if self.idle_waiters:
            for entry in self.idle_waiters:
                cushion = entry[0]
                if smallest < 0 or cushion < smallest:
                    smallest = cushion
        return smallest

    cdef int wake_idle_waiters(self, int64_t elapsed) except -1:
        """Wake the idle waiters with the smallest cushion, if it has passed."""
        cdef int64_t smallest = self.smallest_cushion()
        cdef list keep = []
        cdef list due = []
        if smallest < 0 or smallest > elapsed:
            return 0
        for entry in self.idle_waiters:
            (due if entry[0] == smallest else keep).append(entry)
        self.idle_waiters = keep
        for _cushion, waiter in due:
            waiter.set(None)
        return 1

    cdef int poll_io_now(self) except -1:
        """Poll the reactor without blocking and queue what it reports."""
        if fds_watched(self.reactor):
            self.reactor.turn(0, &self.ready)
            self.last_io_poll_ns = self.time_driver.now_ns()
        return 0

    cdef int raise_pending_base_exc(self) except -1:
        """Re-raise a KeyboardInterrupt or SystemExit a task or callback raised."""
        cdef object exc = self.pending_base_exc
        if exc is not None:
            self.pending_base_exc = None
            raise exc
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

    # ---- running

    cdef int enter(self) except -1:
        """Checks before block_on makes this the thread's running runtime."""
        if rio_get_current_runtime() != NULL:
            raise RuntimeError(
                "block_on() cannot be called from a running rio runtime: it would block "
                "the runtime's thread; await the coroutine (or spawn it) instead")
        if self.running:
            raise RuntimeError("this Runtime is already running in another thread")
        return 0

    cdef int run_until_done(self, Task main) except -1:
        self.main = main
        self.stop_requested = False
        while main.state != TASK_DONE:
            self.tick()
            self.raise_pending_base_exc()
        return 0

    cdef list live_tasks(self):
        cdef list tasks = []
        cdef PyObject *p = self.live_head
        while p != NULL:
            tasks.append(<Task>p)
            p = (<Task>p).live_next
        return tasks

    cdef void unlink_live(self, Task task) noexcept:
        """Take ``task`` off the live list (the caller releases the list's
        reference); it belongs to no runtime afterwards."""
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

    cdef int drop_live_tasks(self) except -1:
        """Let go of every live task (the runtime is closing): none of them can
        run again. asyncio reports one that is then collected ("Task was
        destroyed but it is pending!")."""
        cdef Task task
        for task in self.live_tasks():
            self.unlink_live(task)
            Py_DECREF(task)        # the live list's reference
        return 0

    cdef int shutdown_tasks(self) except -1:
        """Cancel every task still alive (once each, as asyncio.run does) and
        run until all are done; cleanup code may still await."""
        cdef Task task
        cdef set cancelled = set()
        self.main = None
        self.stop_requested = self.tasks_alive == 0
        while self.tasks_alive > 0:
            for task in self.live_tasks():
                if task.id not in cancelled:
                    cancelled.add(task.id)
                    task.cancel()
            self.tick()
            self.raise_pending_base_exc()
        return 0

    def block_on(self, awaitable):
        """Run ``awaitable`` to completion on this thread; return its value or
        raise its exception. Tasks still alive afterwards are cancelled and
        awaited. Ctrl-C cancels the main task, then raises KeyboardInterrupt."""
        cdef Task main
        self.enter()
        coro = _as_coroutine(awaitable)
        self.running = True
        rio_set_current_runtime(<void *>self)
        interrupt = SigintGuard(self.reactor.wake_write_fd)
        try:
            self.start_watchdog()
            main = self.spawn_task(coro, "main")
            interrupt.install(main)
            try:
                self.run_until_done(main)
            finally:
                try:
                    self.shutdown_tasks()
                finally:
                    interrupt.uninstall()
                    # every task is done: timers still armed (sleeps dropped
                    # without being awaited to the end) can wake nobody now
                    self.time_driver.clear()
            if interrupt.interrupted and main.outcome == OUTCOME_CANCELLED:
                main.exception_retrieved = True
                if main.cancel_requests <= 1:
                    raise KeyboardInterrupt()
            return main.result()
        finally:
            self.stop_watchdog()
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
        self.time_driver.clear()
        self.reactor.close()
        self.drop_live_tasks()

    def _reactor_backend(self):
        return self.reactor.backend


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

def _forget_running_runtime():
    """After fork, in the child: no runtime runs on this thread any more."""
    rio_set_current_runtime(NULL)
    rio_set_current_task(NULL)


at_fork_in_child(_forget_running_runtime)

# Whether the step writes asyncio's current task in place (rio.h's dict
# slots: CPython 3.11-3.13, with the dict layout checked here).
DICT_SLOTS = bool(rio_dict_slots_probe())


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
    from rio_core._handle import _debug_live_handles
    from rio_core._future import _debug_live_sleeps
    from rio_core._sync import _debug_live_waiters
    from rio_core._scope import _debug_scoped_asyncio_tasks
    from rio_core._group import _debug_live_groups
    from rio_core._loop import _debug_live_aio_sleeps, _debug_live_aio_queue_ops
    return {"tasks": live_tasks_count, "sleeps": _debug_live_sleeps(),
            "handles": _debug_live_handles(), "waiters": _debug_live_waiters(),
            "scoped_asyncio_tasks": _debug_scoped_asyncio_tasks(),
            "groups": _debug_live_groups(), "loop_futures": live_loop_futures_count,
            "aio_sleeps": _debug_live_aio_sleeps(),
            "aio_queue_ops": _debug_live_aio_queue_ops()}


def debug_build():
    return bool(RIO_DEBUG_ENABLED)


def _real_monotonic_ns():
    """The real monotonic clock the engine times steps with (ns)."""
    return rio_monotonic_ns()
