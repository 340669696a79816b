# cython: language_level=3
from libc.stdint cimport uint32_t

from rio_core._runtime cimport Task
from rio_core._future cimport Future
from rio_core._reactor cimport Registration


cdef class IoWait(Future):
    cdef readonly int fd
    cdef uint32_t direction       # RIO_IN or RIO_OUT
    cdef bint owned               # the fd belongs to a rio object that calls notify_closing
    cdef object fileobj           # what the user passed (a socket), or None for an int fd
    cdef Registration reg         # set while parked on the reactor
    cdef unsigned int generation  # reg's generation when we parked
    cdef Task task

    cdef int leave(self) except -1


cdef enum FdOwnership:
    FD_FOREIGN      # not rio's: it may be closed and its number reused behind our back
    FD_OWNED        # a rio socket, which calls notify_closing before it closes the fd


# direction: RIO_IN (readable) or RIO_OUT (writable), from rio_core._reactor
cdef IoWait wait_fd(int fd, uint32_t direction, FdOwnership ownership)
cdef int fileno_of(object fd_or_socket) except -1
cdef int adopt_fd(int fd) except -1
