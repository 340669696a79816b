# cython: language_level=3
"""Native leaf futures for handing a value from one task (or thread) to another.

``Oneshot`` is the engine's equivalent of a pure-Python ``Future`` subclass
with ``poll(cx)``: the same protocol, but polled in C, so a hand-off costs no
Python frame. It remembers one waiter (the task that polled it last), as a
leaf future keeps the last waker it was given.
"""

from asyncio import InvalidStateError

from rio_core._runtime cimport Task, Ready, Context, wake_task, PENDING_
from rio_core._future cimport Future


cdef class Oneshot(Future):
    """A value set once and awaited: ``o = Oneshot(); ...; o.set(v)``;
    ``await o`` gives ``v`` (or raises what ``set_exception`` stored).
    ``set`` is safe from any thread."""

    def set(self, value=None):
        """Complete with ``value``; wakes the waiting task."""
        if self.is_set_:
            raise InvalidStateError("Oneshot is already set")
        self.value = value
        self.is_set_ = True
        self._wake()

    def set_exception(self, exc):
        """Complete with an exception raised into the awaiting task."""
        if self.is_set_:
            raise InvalidStateError("Oneshot is already set")
        if isinstance(exc, type):
            exc = exc()
        if not isinstance(exc, BaseException):
            raise TypeError(f"set_exception() expects an exception, got {type(exc).__name__}")
        self.error = exc
        self.is_set_ = True
        self._wake()

    cdef int _wake(self) except -1:
        cdef Task waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            wake_task(waiter)
        return 0

    def is_set(self):
        return self.is_set_

    cdef object _poll(self, Task task):
        if self.is_set_:
            if self.error is not None:
                raise self.error
            return Ready(self.value)
        self.waiter = task
        return PENDING_

    def poll(self, cx):
        if not isinstance(cx, Context):
            raise TypeError(f"poll() expects a rio Context, got {type(cx).__name__}")
        return self._poll((<Context>cx).waker.task)

    def __repr__(self):
        return f"<rio Oneshot {'set' if self.is_set_ else 'pending'}>"
