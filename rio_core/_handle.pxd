# cython: language_level=3
"""What the drivers hand to the scheduler: a ``Handle`` to queue, a waiter to wake.

The time driver and the reactor sit below the scheduler (``_runtime``), so
they cannot name its ``Task``. They hold waiters through these two:

- ``Handle``: a callback the scheduler runs from the ready queue (asyncio's
  Handle; timer and reader/writer handles derive from it or are one). A
  driver queues it with ``ring_push`` on the ready queue it is given.
- a parked waiter (a ``Task``, held as an ``object``), woken through the
  ``WakeFn`` the scheduler gives each driver when it makes it: the task's
  wake transition. (A base class for tasks was rejected: a cdef class whose
  base lives in another module allocates through a generic call, and that
  cost 3% on spawning.)
"""


from cpython.contextvars cimport PyContext_CopyCurrent


ctypedef int (*WakeFn)(object waiter) except -1


cdef class Handle:
    """A callback queued on the ready queue (the asyncio door's Handle)."""
    cdef object callback
    cdef tuple args
    cdef object context     # contextvars.Context or None
    cdef bint cancelled_flag
    cdef bint persistent       # a reactor reader/writer: runs on every event, keeps its callback
    cdef object source_traceback    # debug mode: where the handle was made (else None)
    cdef object __weakref__

    cdef int run(self) except -1
    cdef list repr_info(self, object callback, tuple args)
    cdef str describe(self, object callback, tuple args)


cdef inline Handle make_handle(object callback, tuple args, object context, bint persistent):
    """A handle for ``callback(*args)``; ``context`` None takes a copy of the
    current context, as asyncio's call_soon does. (Inline: call_soon's hot path.)"""
    cdef Handle handle = Handle.__new__(Handle)
    handle.callback = callback
    handle.args = args
    handle.context = PyContext_CopyCurrent() if context is None else context
    handle.persistent = persistent
    return handle
