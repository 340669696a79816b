# cython: language_level=3
"""Handles and wakeables: see the opening note of ``_handle.pxd``.

A ``Handle`` is asyncio's Handle on the rio engine: a callback, its
arguments and the ``contextvars`` context it runs in. One-shot handles
(``call_soon``, timers) drop their callback once run or cancelled;
persistent ones (readers and writers in the reactor) run on every event.
"""

cimport cython
from cpython.object cimport PyObject
from cpython.contextvars cimport PyContext_Enter, PyContext_Exit

cdef extern from "rio.h":
    bint RIO_DEBUG_ENABLED

cdef extern from "Python.h":
    object PyObject_Call(object callable, object args, PyObject *kwargs)

from asyncio.format_helpers import _format_callback_source

# Python 3.13+ shows a callback's arguments only in debug mode (``debug=``).
try:
    _format_callback_source(len, (), debug=True)
    _SOURCE_HAS_DEBUG = True
except TypeError:
    _SOURCE_HAS_DEBUG = False


def callback_source(callback, args, bint debug):
    """``cb(args) at file:line`` as asyncio formats a handle's callback (on 3.13+
    the arguments only in debug mode)."""
    if _SOURCE_HAS_DEBUG:
        return _format_callback_source(callback, args or (), debug=debug)
    return _format_callback_source(callback, args or ())


# Debug-build leak counter (see rio_core.debug_counters()): handles of every
# kind, timer handles included.
cdef Py_ssize_t live_handles_count = 0


def _debug_live_handles():
    return live_handles_count


# Handles stay visible to the cyclic GC: a loop dropped without close() is a
# cycle through its self-pipe reader handle (loop -> reactor -> handle -> bound
# method -> loop) that only the GC can free. (Untracking them made call_soon
# ~10% faster and leaked such loops.) A one-shot handle still drops its
# callback and arguments once it has run or been cancelled.
@cython.freelist(256)
cdef class Handle:
    def __cinit__(self):
        if RIO_DEBUG_ENABLED:
            global live_handles_count
            live_handles_count += 1

    def __dealloc__(self):
        if RIO_DEBUG_ENABLED:
            global live_handles_count
            live_handles_count -= 1

    def cancel(self):
        """Cancel the callback; does nothing if it already ran."""
        self.cancelled_flag = True
        self.callback = None
        self.args = None

    def cancelled(self):
        return self.cancelled_flag

    def get_context(self):
        return self.context

    def _run(self):
        self.run()

    @property
    def _source_traceback(self):
        return self.source_traceback

    @property
    def _callback(self):
        return self.callback

    @property
    def _args(self):
        return self.args

    cdef int run(self) except -1:
        """Call the callback in its context. Exceptions propagate to the runtime."""
        cdef object callback = self.callback
        if self.cancelled_flag or callback is None:
            return 0
        cdef tuple args = self.args if self.args is not None else ()
        cdef object context = self.context
        if context is None:
            PyObject_Call(callback, args, NULL)
        else:
            PyContext_Enter(context)
            try:
                PyObject_Call(callback, args, NULL)
            finally:
                PyContext_Exit(context)
        if not self.persistent:
            # a one-shot handle that ran drops its references: never part of a
            # cycle (kept when the call raised, for the error report)
            self.callback = None
            self.args = None
            self.context = None
        return 0

    cdef list repr_info(self, object callback, tuple args):
        """The words of asyncio's repr, for this handle running ``callback(*args)``
        (passed in: a one-shot handle drops its own once it has run)."""
        info = [type(self).__name__]
        if self.cancelled_flag:
            info.append("cancelled")
        if callback is not None:    # made in debug mode: show the arguments
            info.append(callback_source(callback, args, self.source_traceback is not None))
        if self.source_traceback:
            frame = self.source_traceback[len(self.source_traceback) - 1]
            info.append(f"created at {frame[0]}:{frame[1]}")
        return info

    def __repr__(self):
        # asyncio's format: <Handle [cancelled] callback(args) at file:line [created at ...]>
        return self.describe(self.callback, self.args)

    cdef str describe(self, object callback, tuple args):
        return "<{}>".format(" ".join(self.repr_info(callback, args)))
