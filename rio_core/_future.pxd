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
