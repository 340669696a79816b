# cython: language_level=3
from rio_core._runtime cimport Runtime
from rio_core._timers cimport Handle


cdef class LoopCore(Runtime):
    cdef bint closed_flag           # asyncio's loop._closed
    cdef bint debug_flag            # asyncio's loop._debug

    cdef int check_closed(self) except -1
    cdef int check_call(self, object callback, str method) except -1
    cdef Handle io_handle(self, object callback, tuple args)
