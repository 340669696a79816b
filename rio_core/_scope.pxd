# cython: language_level=3
from rio_core._runtime cimport Task


cdef enum ScopeState:
    SCOPE_NEW           # made, not entered yet (cancel() and the deadline may be set)
    SCOPE_ACTIVE        # entered: the innermost scope of its task, or inside it
    SCOPE_EXITED        # left; cancel() and the deadline no longer do anything


cdef enum ScopeOwnCatch:
    # What the scope's exit makes of its own cancellation when it catches it.
    CATCH_QUIETLY       # CancelScope, move_on_*: the block just ends
    FAIL_ON_DEADLINE    # fail_*, timeout: TimeoutError when the deadline did it


cdef class CancelScope:
    cdef ScopeState state
    cdef ScopeOwnCatch own_catch
    cdef double deadline_s          # seconds of the runtime clock; +inf: none
    cdef bint shield_
    cdef bint cancel_called_
    cdef bint cancelled_caught_
    cdef bint deadline_fired        # the deadline made the cancellation
    # Invariant: delivered <=> the task's cancel count holds one request of
    # ours that the exit must take back (uncancel).
    cdef bint delivered
    cdef bint delivery_queued       # an asyncio task's delivery waits for it to suspend
    # For a rio task, to take back a request never thrown in (see exit_scope).
    cdef bint set_must_cancel
    cdef Py_ssize_t thrown_mark
    cdef int requests_mark
    cdef int cancelling_at_entry
    cdef object task                # the task that entered it, until it exits
    cdef CancelScope parent         # the scope around it in the same task
    cdef object timer               # the deadline's timer handle, or None
    cdef object __weakref__

    cdef int enter_scope(self) except -1
    cdef bint exit_scope(self, object exc) except -1
    cdef int cancel_now(self) except -1
    cdef int arm(self) except -1
    cdef int disarm(self) except -1
    cdef int deliver_if_exposed(self) except -1
    cdef int deliver(self) except -1
    cdef int take_back(self, object exc) except -1


cdef class Timeout(CancelScope):
    pass


cdef object current_any_task()
cdef CancelScope innermost_scope(object task)
cdef int release_held(object task) except -1
