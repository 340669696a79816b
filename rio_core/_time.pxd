# cython: language_level=3
cimport cython
from libc.stdint cimport int64_t, uint64_t
from cpython.object cimport PyObject

from rio_core._queue cimport Ring
from rio_core._handle cimport Handle, WakeFn


# The heap's "never": far beyond any real deadline, with room to add to it.
cdef enum:
    DEADLINE_NEVER_NS = 0x3FFFFFFFFFFFFFFF      # INT64_MAX // 2


cdef enum TimerState:
    TIMER_IDLE        # created, not armed
    TIMER_ARMED       # in the driver's heap, waiting for its deadline
    TIMER_FIRED       # deadline passed; its waiter was woken or its handle queued
    TIMER_CANCELLED   # cancelled; if it was armed, the heap drops it lazily


cdef enum TimerAction:
    ACTION_WAKE       # wake ``waiter`` (a parked task) with the driver's wake function
    ACTION_CALLBACK   # queue the handle; the scheduler runs callback(*args) (Handle.run)


cdef class MockClock:
    # Test time: virtual = virtual_anchor_ns + (real - real_anchor_ns) * rate.
    # Moving it (jump, a new rate) re-anchors; it never goes backwards.
    cdef double rate_
    cdef double threshold_s         # autojump after this much real idle time; inf: never
    cdef int64_t real_anchor_ns
    cdef int64_t virtual_anchor_ns

    cdef int64_t now_ns(self) noexcept
    cdef int reanchor(self) except -1
    cdef int jump_ns(self, int64_t delta_ns) except -1


cdef class TimerHandle(Handle):
    # Invariant: deadline_ns is fixed once the handle is armed (heap order).
    cdef readonly int64_t deadline_ns
    cdef double when_seconds        # the asyncio door's `when`, exactly as given
    cdef TimerState state
    cdef TimerAction action
    cdef object waiter              # for ACTION_WAKE; dropped when fired or cancelled
    # Set while armed, for the cancelled count. Invariant: never set on a
    # cancelled or fired handle (driver -> handle -> driver would be an invisible
    # cycle); the driver clears it whenever it drops an armed handle.
    cdef TimeDriver driver

    cdef list repr_info(self, object callback, tuple args)


cdef struct HeapSlot:
    int64_t deadline_ns
    uint64_t seq                # FIFO among equal deadlines
    PyObject *handle            # owned reference to a TimerHandle


cdef class TimeDriver:
    # The heap (see the module's opening note).
    cdef HeapSlot *slots
    cdef Py_ssize_t size
    cdef Py_ssize_t capacity
    cdef uint64_t next_seq
    # Invariant: cancelled == number of slots whose handle is TIMER_CANCELLED.
    # Only note_cancelled() raises it; only the heap's own drops lower it.
    cdef readonly Py_ssize_t cancelled
    # The clock: CLOCK_MONOTONIC, or a test clock (None: the real one).
    cdef MockClock clock
    cdef WakeFn wake                # the scheduler's wake transition, set when it makes us

    cdef int64_t now_ns(self) noexcept
    cdef TimerHandle arm_wake(self, int64_t deadline_ns, object waiter)
    cdef TimerHandle arm_callback(self, int64_t deadline_ns, object callback, tuple args,
                                  object context)
    cdef int arm(self, TimerHandle handle) except -1
    cdef int note_cancelled(self, TimerHandle handle) except -1

    @cython.final
    cdef int fire_due(self, Ring *ready) except -1
    cdef int park_timeout_ms(self) except? -2
    cdef bint jump_to_next_deadline(self) except -1
    cdef int64_t next_deadline(self) noexcept
    cdef int compact(self) except -1
    cdef PyObject *pop_top(self) noexcept
    cdef int drop_cancelled_top(self) noexcept
    cdef void clear(self) noexcept


cdef int64_t deadline_ns_from_seconds(double seconds) noexcept
cdef double checked_seconds(object seconds, str what) except? -1.0
cdef int64_t deadline_ns_of(object when, str what) except? -1
cdef int64_t checked_deadline_ns(double when, str what) except? -1


cdef inline bint has_timers(TimeDriver driver) noexcept:
    """Whether any entry (live or cancelled) is in the heap: the tick's cheap
    test before fire_due (inline: no call on a tick with no timers)."""
    return driver.size != 0
