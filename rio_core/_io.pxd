# cython: language_level=3
from libc.stdint cimport uint32_t

from rio_core._runtime cimport Future, Task
from rio_core._reactor cimport Registration


cdef class IoWait(Future):
    cdef readonly int fd
    cdef uint32_t direction       # RIO_IN or RIO_OUT
    cdef bint owned               # the fd belongs to a rio object that calls notify_closing
    cdef Registration reg         # set while parked on the reactor
    cdef Task task

    cdef int leave(self) except -1


cdef IoWait wait_fd(int fd, bint writable, bint owned=*)
cdef int fileno_of(object fd_or_socket) except -1
cdef int adopt_fd(int fd) except -1
