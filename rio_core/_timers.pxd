# cython: language_level=3
from libc.stdint cimport int64_t, uint64_t
from cpython.object cimport PyObject


# The heap's "never": far beyond any real deadline, with room to add to it.
cdef enum:
    DEADLINE_NEVER_NS = 0x3FFFFFFFFFFFFFFF      # INT64_MAX // 2


cdef inline int64_t deadline_ns_from_seconds(double seconds) noexcept:
    """Seconds of a runtime clock -> a heap deadline: rounded up (a timer never
    fires early), 0 for any time not after the clock's zero (-inf included), and
    DEADLINE_NEVER_NS from 9.2e9 s (292 years; +inf included). NaN is the
    caller's to refuse first."""
    if seconds >= 9.2e9:
        return DEADLINE_NEVER_NS
    if seconds <= 0:
        return 0
    return <int64_t>(seconds * 1e9 + 0.999999)


cdef enum TimerState:
    TIMER_IDLE        # created, not in any heap
    TIMER_ARMED       # in a heap, waiting for its deadline
    TIMER_FIRED       # deadline passed; its action ran or was queued
    TIMER_CANCELLED   # cancelled while armed; the heap drops it lazily


cdef enum TimerAction:
    ACTION_WAKE       # wake ``target`` (a Task) through the runtime
    ACTION_CALLBACK   # queue the handle; the runtime calls target(*args)


cdef class Handle:
    """A callback queued on the ready queue (the asyncio door's Handle)."""
    cdef object callback
    cdef tuple args
    cdef object context     # contextvars.Context or None
    cdef bint cancelled_flag
    cdef bint persistent       # a reactor reader/writer: runs on every event, keeps its callback
    cdef object source_traceback    # debug mode: where the handle was made (else None)
    cdef object __weakref__

    cdef int run(self) except -1
    cdef list repr_info(self, object callback, tuple args)
    cdef str describe(self, object callback, tuple args)


cdef class TimerHandle(Handle):
    # Invariant: deadline_ns is fixed once the handle is armed (heap order).
    cdef readonly int64_t deadline_ns
    cdef double when_seconds        # the asyncio door's `when`, exactly as given
    cdef TimerState state
    cdef TimerAction action
    cdef object target          # Task for ACTION_WAKE
    # Set while armed, for the cancelled count. Invariant: never set on a
    # cancelled or fired handle (heap -> handle -> heap would be an invisible cycle);
    # the heap clears it when it drops an armed handle (clear()).
    cdef TimerHeap heap

    cdef list repr_info(self, object callback, tuple args)


cdef struct HeapSlot:
    int64_t deadline_ns
    uint64_t seq                # FIFO among equal deadlines
    PyObject *handle            # owned reference to a TimerHandle


cdef class TimerHeap:
    cdef HeapSlot *slots
    cdef Py_ssize_t size
    cdef Py_ssize_t capacity
    cdef uint64_t next_seq
    # Invariant: cancelled == number of slots whose handle is TIMER_CANCELLED.
    cdef Py_ssize_t cancelled

    cdef int push(self, TimerHandle handle) except -1
    cdef PyObject *_pop_top(self) noexcept
    cdef TimerHandle pop_due(self, int64_t now_ns)
    cdef int64_t next_deadline(self) noexcept
    cdef int compact(self) except -1
    cdef void clear(self) noexcept
