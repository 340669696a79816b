# cython: language_level=3
from libc.stdint cimport int64_t

from rio_core._runtime cimport Task
from rio_core._time cimport TimerHandle


cdef class Future:
    cdef Task bridge                # the hidden rio task polling us for an asyncio awaiter
    cdef object _poll(self, Task task)
    cdef int drop_bridge(self) except -1


cdef class Sleep(Future):
    cdef readonly int64_t deadline_ns
    cdef TimerHandle timer
    cdef int disarm(self) except -1
    cdef int reset_ns(self, int64_t deadline_ns) except -1


# Interval's missed-tick behaviour (tokio's MissedTickBehavior).
cdef enum MissedTick:
    MISSED_BURST      # fire the missed ticks back to back, on the original grid
    MISSED_DELAY      # the next tick is one period after the late tick was taken
    MISSED_SKIP       # the next tick is the next grid point after now


cdef class Interval:
    cdef Sleep delay                # its deadline is the next tick's
    cdef readonly int64_t period_ns
    cdef MissedTick missed
    cdef object _take(self, Task task)


cdef class IntervalTick(Future):
    cdef Interval interval
