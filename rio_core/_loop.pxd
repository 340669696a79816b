# cython: language_level=3
from rio_core._runtime cimport Runtime
from rio_core._timers cimport Handle, TimerHandle


cdef class LoopCore(Runtime):
    cdef bint closed_flag           # asyncio's loop._closed
    cdef bint debug_flag            # asyncio's loop._debug
    cdef double slow_seconds        # asyncio's loop.slow_callback_duration

    cdef int check_closed(self) except -1
    cdef int check_call(self, object callback, str method) except -1
    cdef Handle io_handle(self, object callback, tuple args)
    cdef Handle set_io_handle(self, object fd, bint writable, object callback, tuple args)
    cdef bint clear_io_handle(self, object fd, bint writable) except -1
    cdef int update_slow_threshold(self) except -1
    cdef TimerHandle schedule_at(self, double when, object callback, tuple args,
                                 object context, str method)
cdef int fd_of(object fileobj) except -1
