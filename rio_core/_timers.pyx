# cython: language_level=3
"""Timers: one binary min-heap for ``Sleep`` and for ``call_later``/``call_at``.

Design note
-----------
- Entries are ``(deadline_ns, seq)`` keys in a flat C array of structs, so a
  sift compares integers in contiguous memory and never touches a Python
  object. ``seq`` breaks ties in insertion order (FIFO for equal deadlines).
- Insert is O(log n). Cancel is O(1): it only marks the handle
  ``TIMER_CANCELLED`` and counts it. Most timers are cancelled before they fire
  (timeouts that did not expire, sleeps of cancelled tasks), so removing them
  eagerly would pay O(log n) plus an index map for nothing. Cancelled entries
  are dropped when they reach the top, and ``compact()`` rebuilds the heap
  (O(n) heapify) once more than half of a large heap is dead, so memory stays
  bounded by twice the live timers.
- Deadlines are nanoseconds of CLOCK_MONOTONIC (int64: ~292 years). A timer
  fires only when ``now_ns >= deadline_ns``: never early.
"""

cimport cython
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.object cimport PyObject
from cpython.contextvars cimport PyContext_Enter, PyContext_Exit

cdef extern from "rio.h":
    bint RIO_DEBUG_ENABLED
    int64_t rio_monotonic_ns() nogil

cdef extern from "Python.h":
    object PyObject_Call(object callable, object args, PyObject *kwargs)

cdef Py_ssize_t COMPACT_MIN_SIZE = 64

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


# Debug-build leak counter (see rio_core.debug_counters()).
cdef Py_ssize_t rio_live_timer_handles = 0


def _debug_timer_handles():
    return rio_live_timer_handles


# Handles stay visible to the cyclic GC: a loop dropped without close() is a
# cycle through its self-pipe reader handle (loop -> reactor -> handle -> bound
# method -> loop) that only the GC can free. (Untracking them made call_soon
# ~10% faster and leaked such loops.) A one-shot handle still drops its
# callback and arguments once it has run or been cancelled.
@cython.freelist(256)
cdef class Handle:
    def __cinit__(self):
        if RIO_DEBUG_ENABLED:
            global rio_live_timer_handles
            rio_live_timer_handles += 1

    def __dealloc__(self):
        if RIO_DEBUG_ENABLED:
            global rio_live_timer_handles
            rio_live_timer_handles -= 1

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


# (No freelist: Cython keeps freelists for base classes only; Handle has one.)
cdef class TimerHandle(Handle):
    def cancel(self):
        """Cancel the timer. O(1): the heap drops the entry lazily."""
        if self.state == TIMER_ARMED:
            self.state = TIMER_CANCELLED
            if self.heap is not None:
                self.heap.cancelled += 1
                # The heap still owns this handle until it drops it lazily; the
                # back-reference is not needed any more, and keeping it would
                # make a cycle (heap -> handle -> heap) that no GC can see.
                self.heap = None
        elif self.state == TIMER_IDLE:
            self.state = TIMER_CANCELLED
        self.cancelled_flag = True
        self.target = None
        self.callback = None
        self.args = None

    def when(self):
        """The deadline, in seconds of the runtime clock."""
        if self.when_seconds != 0.0:
            return self.when_seconds
        return self.deadline_ns / 1e9

    cdef list repr_info(self, object callback, tuple args):
        info = Handle.repr_info(self, callback, args)
        info.insert(2 if self.cancelled_flag else 1, f"when={self.when()}")
        return info


cdef inline bint slot_less(HeapSlot *a, HeapSlot *b) noexcept:
    if a.deadline_ns != b.deadline_ns:
        return a.deadline_ns < b.deadline_ns
    return a.seq < b.seq


cdef inline void sift_up(HeapSlot *slots, Py_ssize_t pos) noexcept:
    cdef HeapSlot item = slots[pos]
    cdef Py_ssize_t parent
    while pos > 0:
        parent = (pos - 1) >> 1
        if slot_less(&item, &slots[parent]):
            slots[pos] = slots[parent]
            pos = parent
        else:
            break
    slots[pos] = item


cdef inline void sift_down(HeapSlot *slots, Py_ssize_t size, Py_ssize_t pos) noexcept:
    cdef HeapSlot item = slots[pos]
    cdef Py_ssize_t child
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and slot_less(&slots[child + 1], &slots[child]):
            child += 1
        if slot_less(&slots[child], &item):
            slots[pos] = slots[child]
            pos = child
        else:
            break
    slots[pos] = item


cdef class TimerHeap:
    def __cinit__(self):
        self.capacity = 64
        self.slots = <HeapSlot *>PyMem_Malloc(self.capacity * sizeof(HeapSlot))
        if self.slots == NULL:
            raise MemoryError()
        self.size = 0
        self.next_seq = 0
        self.cancelled = 0

    def __dealloc__(self):
        self.clear()
        PyMem_Free(self.slots)

    def __len__(self):
        return self.size - self.cancelled

    cdef int push(self, TimerHandle handle) except -1:
        cdef HeapSlot *grown
        if handle.state != TIMER_IDLE:
            raise RuntimeError("timer handle is already armed or finished")
        if self.size == self.capacity:
            grown = <HeapSlot *>PyMem_Realloc(self.slots, 2 * self.capacity * sizeof(HeapSlot))
            if grown == NULL:
                raise MemoryError()
            self.slots = grown
            self.capacity *= 2
        if self.cancelled * 2 > self.size and self.size >= COMPACT_MIN_SIZE:
            # Timers armed and cancelled in a burst, with no tick in between
            # (a timeout per request, call_later(...).cancel() churn): drop the
            # dead half now, so memory and the GC's work stay bounded by the
            # live timers. Amortised O(1): every pass halves the heap at least.
            self.compact()
        Py_INCREF(handle)
        self.slots[self.size].deadline_ns = handle.deadline_ns
        self.slots[self.size].seq = self.next_seq
        self.slots[self.size].handle = <PyObject *>handle
        self.next_seq += 1
        self.size += 1
        sift_up(self.slots, self.size - 1)
        handle.state = TIMER_ARMED
        handle.heap = self
        return 0

    cdef PyObject *_pop_top(self) noexcept:
        """Remove the top slot; the caller owns the returned reference."""
        cdef PyObject *top = self.slots[0].handle
        self.size -= 1
        if self.size > 0:
            self.slots[0] = self.slots[self.size]
            sift_down(self.slots, self.size, 0)
        return top

    cdef TimerHandle pop_due(self, int64_t now_ns):
        """Pop the earliest live handle whose deadline is <= now_ns, or None.

        Cancelled handles met on the way are dropped.
        """
        cdef PyObject *top
        cdef TimerHandle handle
        while self.size > 0:
            top = self.slots[0].handle
            if (<TimerHandle>top).state == TIMER_CANCELLED:
                self._pop_top()
                self.cancelled -= 1
                (<TimerHandle>top).heap = None
                Py_DECREF(<object>top)
                continue
            if self.slots[0].deadline_ns > now_ns:
                return None
            self._pop_top()
            handle = <TimerHandle>top
            Py_DECREF(<object>top)      # `handle` holds its own reference now
            handle.state = TIMER_FIRED
            handle.heap = None
            return handle
        return None

    cdef int64_t next_deadline(self) noexcept:
        """The earliest live deadline, or -1 when no timer is armed."""
        cdef PyObject *top
        while self.size > 0:
            top = self.slots[0].handle
            if (<TimerHandle>top).state != TIMER_CANCELLED:
                return self.slots[0].deadline_ns
            self._pop_top()
            self.cancelled -= 1
            (<TimerHandle>top).heap = None
            Py_DECREF(<object>top)
        return -1

    cdef int compact(self) except -1:
        """Drop every cancelled entry when they are the majority of a large heap.

        The dropped handles are released only once the heap is whole again: the
        last reference to a handle can free its context, and with it objects whose
        finalizers may arm timers on this very heap.
        """
        cdef Py_ssize_t i, kept = 0, dropped = 0
        cdef PyObject *h
        cdef PyObject **dead
        if self.size < COMPACT_MIN_SIZE or self.cancelled * 2 <= self.size:
            return 0
        dead = <PyObject **>PyMem_Malloc(self.size * sizeof(PyObject *))
        if dead == NULL:
            raise MemoryError()
        for i in range(self.size):
            h = self.slots[i].handle
            if (<TimerHandle>h).state == TIMER_CANCELLED:
                (<TimerHandle>h).heap = None
                dead[dropped] = h
                dropped += 1
            else:
                self.slots[kept] = self.slots[i]
                kept += 1
        self.size = kept
        self.cancelled = 0
        i = kept // 2 - 1
        while i >= 0:
            sift_down(self.slots, self.size, i)
            i -= 1
        if RIO_DEBUG_ENABLED:
            for i in range(1, self.size):
                assert not slot_less(&self.slots[i], &self.slots[(i - 1) >> 1]), "heap order"
        for i in range(dropped):
            Py_DECREF(<object>dead[i])
        PyMem_Free(dead)
        return 0

    cdef void clear(self) noexcept:
        cdef PyObject *h
        while self.size > 0:
            self.size -= 1
            h = self.slots[self.size].handle
            (<TimerHandle>h).state = TIMER_CANCELLED
            (<TimerHandle>h).heap = None
            (<TimerHandle>h).cancelled_flag = True
            (<TimerHandle>h).callback = None
            (<TimerHandle>h).args = None
            (<TimerHandle>h).target = None
            Py_DECREF(<object>h)
        self.cancelled = 0
