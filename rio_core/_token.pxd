# cython: language_level=3
from rio_core._sync cimport Primitive, WaitQueue, Waiter
from rio_core._scope cimport CancelScope


cdef class CancellationToken(Primitive):
    # Invariants: once cancelled_ is set it never clears, and then the token
    # has no parent, no children and no waiters. A linked child is never
    # cancelled (cancelling it unlinks it), so every descendant of a
    # cancelled token is cancelled.
    cdef bint cancelled_
    cdef WaitQueue waiters          # made on the first wait that parks; None once cancelled
    cdef CancellationToken parent   # owned: a child keeps its path to the root alive
    # The children, an intrusive doubly linked list of borrowed pointers: a
    # parent keeps no child alive; a child unlinks itself when it is freed
    # (it owns a reference to its parent, so the parent outlives it).
    cdef void *first_child
    cdef void *next_sibling
    cdef void *prev_sibling
    cdef Py_ssize_t children

    cdef int make_queue(self) except -1
    cdef int mark(self, list marked) except -1


cdef class CancelRequest:
    # One run_until_cancelled: cancels ``scope`` (around the awaitable, in
    # ``task``) once its token is cancelled.
    cdef object task                # the rio Task, or the asyncio Task
    cdef CancelScope scope
    cdef Waiter waiter              # parked in the token's queue
    cdef object watcher             # the rio watcher Task, or the asyncio future
    cdef bint armed
    cdef bint fired

    cdef int fire(self) except -1
    cdef bint release(self) except -1
