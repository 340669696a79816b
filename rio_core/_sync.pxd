# cython: language_level=3
from rio_core._runtime cimport Task
from rio_core._future cimport Future


cdef class Oneshot(Future):
    # Invariant: once is_set_ is true, value/error never change.
    cdef bint is_set_
    cdef object value
    cdef object error
    cdef Task waiter          # the task parked on us (the last poller), or None

    cdef int _wake(self) except -1
