# cython: language_level=3
from cpython.object cimport PyObject
from cpython.ref cimport _Py_REFCNT

from rio_core._runtime cimport Task, Runtime, rio_debug_check
from rio_core._future cimport Future


cdef enum WaiterState:
    WAITER_NEW          # made by an operation, not polled yet
    WAITER_QUEUED       # parked in its primitive's queue
    WAITER_GRANTED      # handed what it waited for (``granted``); out of the queue
    WAITER_CLOSED       # the primitive was closed while it waited; out of the queue
    WAITER_DONE         # its await finished, or it was cancelled or abandoned


cdef enum WakeKind:
    WAKE_NONE           # not parked yet
    WAKE_TASK           # a rio task (``task``)
    WAKE_FUTURE         # an asyncio task on an asyncio loop, parked on ``future``
    WAKE_THREAD         # a thread blocked in a *_blocking call, on its lock


cdef enum Op:
    # What a waiter waits for; each primitive knows its own.
    OP_ACQUIRE          # Lock, Semaphore (``amount`` permits), RwLock write
    OP_ACQUIRE_READ     # RwLock read
    OP_WAIT             # Event, Barrier, Condition
    OP_NOTIFIED         # Notify
    OP_SEND             # channel send (``item``)
    OP_RECV             # channel and broadcast recv, watch changed


cdef class Primitive:
    # The runtime (a Runtime, or an asyncio loop) whose tasks wait here; None
    # once nobody waits. Invariant: every parked task belongs to it.
    cdef object bound
    cdef Py_ssize_t parked          # tasks (not threads) parked in this primitive's queues
    cdef int attempt(self, Waiter waiter) except -1
    cdef object try_now(self, Waiter waiter)
    cdef int reclaim(self, Waiter waiter) except -1
    cdef int left(self, Waiter waiter) except -1
    cdef int release_for(self, Waiter waiter) except -1
    cdef object complete(self, Waiter waiter)
    cdef int bind(self, object runtime) except -1


cdef class WaitQueue:
    # FIFO, intrusive and doubly linked: O(1) push, pop and removal on cancel.
    # Invariant: the queue owns one reference to each waiter in it (through
    # ``head`` and each ``next``); ``prev`` pointers are borrowed.
    cdef Waiter head
    cdef void *tail                 # borrowed: the last waiter
    cdef Py_ssize_t count
    cdef Primitive owner

    cdef int push(self, Waiter waiter) except -1
    cdef Waiter pop(self)
    cdef int remove(self, Waiter waiter) except -1
    cdef int close_all(self, object error) except -1
    cdef int grant_all(self, object value) except -1


cdef class Waiter:
    cdef Primitive owner
    cdef WaitQueue queue            # set while QUEUED
    cdef Waiter next
    cdef void *prev                 # borrowed: the waiter before us in ``queue``
    cdef WaiterState state
    cdef Op op
    cdef Py_ssize_t amount          # permits asked for
    cdef object item                # what a sender brings
    cdef object granted             # what it was handed (an item, a Permit, True, ...)
    cdef object error               # what a CLOSED waiter raises
    cdef object holder              # who asks (the task identity, for lock ownership)
    cdef object receiver            # the handle that asks (broadcast/watch receivers)
    cdef bint for_anext             # `async for`: closing ends the iteration
    cdef WakeKind wake_kind
    # WAKE_TASK: the Task; WAKE_FUTURE: the asyncio future (None until it
    # parks); WAKE_THREAD: the thread's lock
    cdef object wake_target

    cdef int grant(self, object value) except -1
    cdef int close_with(self, object error) except -1
    cdef int wake(self) except -1
    cdef object finish(self)
    cdef object poll_task(self, Task task)
    cdef object poll_asyncio(self)
    cdef object block_thread(self)
    cdef int abandon(self) except -1


cdef Waiter make_waiter(Primitive owner, Op op)
cdef object NOT_NOW                 # try_now(): the operation cannot complete at once


cdef inline Waiter reuse_waiter(PyObject *spare, Primitive owner, Op op):
    """A NEW waiter for ``op`` on ``owner``: ``spare`` (borrowed: the last
    waiter the caller made, or None) made new again when the caller's
    reference is the only one left (its await finished or was dropped; a
    queue, a task or user code still holding it keeps it), else a new one."""
    cdef Waiter waiter
    if spare == <PyObject *>None or _Py_REFCNT(spare) != 1:
        return make_waiter(owner, op)
    waiter = <Waiter>spare
    rio_debug_check(waiter.queue is None and waiter.owner is owner and waiter.op == op,
                    "reuse_waiter: a spare of another operation")
    waiter.state = WAITER_NEW
    waiter.wake_kind = WAKE_NONE
    waiter.for_anext = False
    if waiter.item is not None:
        waiter.item = None
    if waiter.error is not None:
        waiter.error = None
    if waiter.wake_target is not None:
        waiter.wake_target = None
    return waiter


cdef object current_holder()


cdef class Oneshot(Future):
    # Invariant: once is_set_ is true, value/error never change.
    cdef bint is_set_
    cdef object value
    cdef object error
    cdef Task waiter          # the task parked on us (the last poller), or None

    cdef int _wake(self) except -1


cdef class Lock(Primitive):
    cdef object holder_             # the task holding it, None when unlocked
    cdef WaitQueue waiters
    cdef int hand_off(self) except -1


cdef class RwLock(Primitive):
    cdef Py_ssize_t readers         # readers holding it
    cdef bint writing               # a writer holds it
    cdef WaitQueue waiters          # readers and writers, in arrival order
    cdef int grant_next(self) except -1


cdef class Semaphore(Primitive):
    cdef Py_ssize_t permits
    cdef bint closed
    cdef WaitQueue waiters
    cdef int give_back(self, Py_ssize_t amount) except -1
    cdef int grant_waiting(self) except -1


cdef class Permit:
    cdef Semaphore semaphore
    cdef Py_ssize_t amount          # 0 once released or forgotten


cdef class Event(Primitive):
    cdef bint is_set_
    cdef WaitQueue waiters


cdef class Notify(Primitive):
    cdef bint permit                # one notify_one() stored while nobody waited
    cdef WaitQueue waiters
    cdef int notify_first(self) except -1


cdef class Barrier(Primitive):
    cdef Py_ssize_t parties
    cdef Py_ssize_t arrived
    cdef WaitQueue waiters


cdef class Condition(Primitive):
    cdef readonly Lock lock
    cdef WaitQueue waiters
    cdef int check_held(self, str what) except -1
    cdef int notify_n(self, Py_ssize_t n) except -1
