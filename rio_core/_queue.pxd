# cython: language_level=3
"""The ready queue: a growable ring buffer of owned ``PyObject*``.

Design note
-----------
The hot loop pops one entry per step and pushes one back per yield, so push and
pop must be a handful of instructions with no allocation: a power-of-two ring
buffer indexed by ``head`` and ``count`` (mask instead of modulo). It grows by
doubling (amortised O(1)) and never shrinks while running; ``ring_clear`` frees
it. ``collections.deque`` was rejected: every operation is a Python call, and
its blocks are allocated per 64 entries.

Invariant: entries ``[head, head + count)`` (mod capacity) are owned
references; every other slot is garbage. Only the runtime's own thread touches
a ring (other threads go through the runtime's inject list).
"""

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.mem cimport PyMem_Malloc, PyMem_Free


cdef struct Ring:
    PyObject **items
    Py_ssize_t head
    Py_ssize_t count
    Py_ssize_t mask     # capacity - 1; capacity is a power of two


cdef inline int ring_init(Ring *ring, Py_ssize_t capacity) except -1:
    cdef Py_ssize_t cap = 16
    while cap < capacity:
        cap <<= 1
    ring.items = <PyObject **>PyMem_Malloc(cap * sizeof(PyObject *))
    if ring.items == NULL:
        raise MemoryError()
    ring.head = 0
    ring.count = 0
    ring.mask = cap - 1
    return 0


cdef inline int ring_grow(Ring *ring) except -1:
    cdef Py_ssize_t old_cap = ring.mask + 1
    cdef Py_ssize_t new_cap = old_cap * 2
    cdef Py_ssize_t i
    cdef PyObject **items = <PyObject **>PyMem_Malloc(new_cap * sizeof(PyObject *))
    if items == NULL:
        raise MemoryError()
    for i in range(ring.count):
        items[i] = ring.items[(ring.head + i) & ring.mask]
    PyMem_Free(ring.items)
    ring.items = items
    ring.head = 0
    ring.mask = new_cap - 1
    return 0


cdef inline int ring_push(Ring *ring, object obj) except -1:
    """Append a new reference to ``obj`` at the back."""
    if ring.count > ring.mask:
        ring_grow(ring)
    Py_INCREF(obj)
    ring.items[(ring.head + ring.count) & ring.mask] = <PyObject *>obj
    ring.count += 1
    return 0


cdef inline int ring_push_front(Ring *ring, object obj) except -1:
    """Put a new reference to ``obj`` at the front (it is popped next)."""
    if ring.count > ring.mask:
        ring_grow(ring)
    Py_INCREF(obj)
    ring.head = (ring.head - 1) & ring.mask
    ring.items[ring.head] = <PyObject *>obj
    ring.count += 1
    return 0


cdef inline void ring_move_back_to_front(Ring *ring, Py_ssize_t n) noexcept:
    """Move the last ``n`` entries to the front, in their order: they are popped
    next. No reference changes hands; O(n), whatever the ring holds.

    Precondition: ``0 <= n <= ring.count``.
    """
    cdef Py_ssize_t _moved
    cdef PyObject *obj
    for _moved in range(n):
        obj = ring.items[(ring.head + ring.count - 1) & ring.mask]
        ring.head = (ring.head - 1) & ring.mask
        ring.items[ring.head] = obj


cdef inline PyObject *ring_pop(Ring *ring) noexcept:
    """Take the front entry; the caller owns the returned reference.

    Precondition: ``ring.count > 0``.
    """
    cdef PyObject *obj = ring.items[ring.head]
    ring.head = (ring.head + 1) & ring.mask
    ring.count -= 1
    return obj


cdef inline void ring_clear(Ring *ring) noexcept:
    """Drop every entry and free the buffer."""
    while ring.count > 0:
        Py_XDECREF(ring_pop(ring))
    if ring.items != NULL:
        PyMem_Free(ring.items)
        ring.items = NULL
    ring.mask = 0
