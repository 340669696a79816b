# cython: language_level=3
"""Synchronisation: waiter queues, and the locks and signals built on them.

Design note
-----------
Every operation that can wait (``acquire``, ``wait``, ``notified``, and the
channels' ``send``/``recv`` in rio_core._channel) returns a ``Waiter``: a
native leaf future, polled in C like ``Oneshot``. Its first poll asks its
primitive to ``attempt`` it: the primitive either completes it at once (the
fast path: no queue, no wake) or parks it at the back of a ``WaitQueue``.

- **The fast path does not touch the runtime.** While no task is parked on
  the primitive, the first ``__next__`` of a waiter asks it ``try_now``: an
  operation that can complete at once (a send with room, a recv with an
  item) completes there, with no task lookup, no binding and no wake. An
  operation stays lazy (nothing happens until it is awaited), and a handle
  that makes many operations (a channel's ``Sender``/``Receiver``) keeps its
  last waiter and makes it new again when nothing else refers to it
  (``reuse_waiter``), so a send or recv that completes at once allocates
  nothing.
- **FIFO hand-offs, not notifications.** When a lock is released, a permit
  freed or a signal given, the primitive hands it to the first parked waiter
  directly (``grant``) and wakes it; the waiter does not race for it again.
  A queued waiter blocks later arrivals (no barging), so the order is FIFO.
- **Cancel-safe.** A waiter cancelled (or whose await is abandoned) while
  queued leaves the queue in O(1) (an intrusive doubly linked list). A waiter
  that was already granted but cancelled before it ran passes what it got on
  (``reclaim``): the lock to the next waiter, the permits back to the
  semaphore, a notify_one to the next waiter. Nothing is lost, nobody hangs.
- **Three kinds of waiter, one queue.** A rio task (``wake_task``: safe from
  any thread), an asyncio task on an asyncio loop (it parks on a future of
  its loop, which the grant completes: no bridge task), or a thread blocked
  in a ``*_blocking`` call (on a lock the grant releases). The wake target is
  set before the waiter can be granted, so a grant from another thread is
  never missed.
- **One runtime at a time.** While tasks wait on a primitive it is bound to
  their runtime (a ``Runtime``, or the asyncio loop); a task of another
  runtime that would park there gets RuntimeError. Threads may always wait.
- **Threads.** The methods documented as safe from any thread (``Event.set``,
  ``Notify.notify_*``, the channels' ``*_blocking``) are C code that changes
  the primitive and wakes its waiters under the GIL, as ``Waker.wake`` does.
"""

cimport cython
from cpython.object cimport PyObject

from asyncio import CancelledError, InvalidStateError
from asyncio.events import _get_running_loop
from _thread import allocate_lock as _allocate_lock

from rio_core._runtime cimport (
    Task, Ready, Context, wake_task, PENDING_, reraise,
    current_task_or_none, current_runtime_or_none, set_stop_value,
)
from rio_core._future cimport Future
from rio_core._scope cimport current_any_task

cdef extern from "rio.h":
    bint RIO_DEBUG_ENABLED
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    ctypedef PySendResult (*sendfunc)(PyObject *, PyObject *, PyObject **) noexcept
    void rio_set_am_send(PyObject *type, sendfunc am_send) noexcept

# Debug-build leak counter (rio_core.debug_counters()).
cdef Py_ssize_t live_waiters_count = 0


def _debug_live_waiters():
    return live_waiters_count


class SemaphoreClosed(RuntimeError):
    """The semaphore was closed: waiting and later acquires fail."""


class ChannelClosed(Exception):
    """The other side of the channel is closed (or this handle is).
    (Defined here: a receiver's ``async for`` ends on it.)"""


# --------------------------------------------------------------------------- waiters

cdef object current_holder():
    """Who is asking: the rio task, or the asyncio task; RuntimeError outside both."""
    holder = current_any_task()
    if holder is not None:
        return holder
    raise RuntimeError("this operation needs a task: call it inside rio_rt.block_on() "
                       "or an asyncio task")


def _set_if_pending(future):
    if not future.done():
        future.set_result(None)


cdef class Primitive:
    """What waiters wait on. Subclasses implement attempt, reclaim and left."""

    cdef int attempt(self, Waiter waiter) except -1:
        """Complete ``waiter`` now (grant or close it), or park it."""
        raise NotImplementedError

    cdef object try_now(self, Waiter waiter):
        """The fast path: complete the NEW ``waiter`` at once and return what its
        await returns (it is DONE then), or NOT_NOW and change nothing. Called
        only while no task is parked here (so no binding is at stake)."""
        return NOT_NOW

    cdef int reclaim(self, Waiter waiter) except -1:
        """``waiter`` was granted but abandoned before it ran: pass it on."""
        return 0

    cdef int left(self, Waiter waiter) except -1:
        """A queued ``waiter`` was cancelled and left its queue."""
        return 0

    cdef object complete(self, Waiter waiter):
        """A granted waiter runs: what its await returns."""
        return waiter.granted

    cdef int release_for(self, Waiter waiter) except -1:
        raise TypeError(f"{type(self).__name__}'s operations are not context managers")

    cdef int bind(self, object runtime) except -1:
        if self.parked > 0 and self.bound is not runtime:
            raise RuntimeError(
                f"{type(self).__name__} is in use by tasks of another runtime "
                f"({self.bound!r}); one object cannot be shared by two runtimes at once")
        self.bound = runtime
        return 0

    def _waiting(self):
        """How many waiters are parked (for tests and debugging)."""
        return self.parked


@cython.final
cdef class WaitQueue:
    """FIFO of parked waiters (see the .pxd)."""

    def __cinit__(self, Primitive owner):
        self.owner = owner

    def __len__(self):
        return self.count

    cdef int push(self, Waiter waiter) except -1:
        """Park ``waiter`` at the back."""
        if RIO_DEBUG_ENABLED:
            assert waiter.queue is None and waiter.state == WAITER_NEW, "waiter queued twice"
        waiter.state = WAITER_QUEUED
        waiter.queue = self
        waiter.prev = self.tail
        waiter.next = None
        if self.tail == NULL:
            self.head = waiter
        else:
            (<Waiter>self.tail).next = waiter
        self.tail = <void *>waiter
        self.count += 1
        if waiter.wake_kind != WAKE_THREAD:
            self.owner.parked += 1
        return 0

    cdef Waiter pop(self):
        """Take the front waiter out of the queue (None when empty)."""
        cdef Waiter waiter = self.head
        if waiter is not None:
            self.remove(waiter)
        return waiter

    cdef int remove(self, Waiter waiter) except -1:
        if RIO_DEBUG_ENABLED:
            assert waiter.queue is self, "waiter not in this queue"
        if waiter.prev == NULL:
            self.head = waiter.next
        else:
            (<Waiter>waiter.prev).next = waiter.next
        if waiter.next is None:
            self.tail = waiter.prev
        else:
            waiter.next.prev = waiter.prev
        waiter.next = None
        waiter.prev = NULL
        waiter.queue = None
        self.count -= 1
        if waiter.wake_kind != WAKE_THREAD:
            self.owner.parked -= 1
            if self.owner.parked == 0:
                self.owner.bound = None     # keep no runtime alive once nobody waits
        return 0

    cdef int grant_all(self, object value) except -1:
        """Grant every waiter parked now."""
        cdef Waiter waiter
        while self.head is not None:
            waiter = self.pop()
            waiter.grant(value)
        return 0

    cdef int close_all(self, object error) except -1:
        """Fail every waiter parked now with ``error`` (an exception instance)."""
        cdef Waiter waiter
        while self.head is not None:
            waiter = self.pop()
            waiter.close_with(error)
        return 0


cdef Waiter make_waiter(Primitive owner, Op op):
    cdef Waiter waiter = Waiter.__new__(Waiter)
    waiter.owner = owner
    waiter.op = op
    waiter.amount = 1
    return waiter


@cython.final
cdef class _NotNow:
    pass


cdef object NOT_NOW = _NotNow()


@cython.final
@cython.freelist(256)
cdef class Waiter:
    """One operation waiting on a primitive: await it (or ``async with`` it).

    A leaf future polled in C, but not a ``rio_rt.Future`` subclass: it has no
    ``poll(cx)`` for Python code, and as a base class of its own it allocates
    from a freelist."""

    def __cinit__(self):
        if RIO_DEBUG_ENABLED:
            global live_waiters_count
            live_waiters_count += 1

    def __dealloc__(self):
        if RIO_DEBUG_ENABLED:
            global live_waiters_count
            live_waiters_count -= 1

    def __init__(self):
        raise TypeError("waiters are made by the operations of rio primitives")

    # ---- transitions (the primitive's side)

    cdef int grant(self, object value) except -1:
        """Hand the waiter what it waited for (it is out of any queue) and wake it."""
        self.granted = value
        self.state = WAITER_GRANTED
        return self.wake()

    cdef int close_with(self, object error) except -1:
        self.error = error
        self.state = WAITER_CLOSED
        return self.wake()

    cdef int wake(self) except -1:
        cdef object future
        if self.wake_kind == WAKE_TASK:
            wake_task(<Task>self.wake_target)
        elif self.wake_kind == WAKE_FUTURE:
            future = self.wake_target
            if future is not None and not future.done():
                loop = future.get_loop()
                if loop is _get_running_loop():
                    future.set_result(None)
                else:
                    loop.call_soon_threadsafe(_set_if_pending, future)
        elif self.wake_kind == WAKE_THREAD:
            self.wake_target.release()
        return 0

    cdef object finish(self):
        """The outcome of a granted or closed waiter; it is done afterwards."""
        cdef object value
        if self.wake_kind == WAKE_TASK:
            self.wake_target = None     # keep no task alive (a reused waiter lives on)
        if self.state == WAITER_GRANTED:
            self.state = WAITER_DONE
            try:
                value = self.owner.complete(self)
            finally:
                self.granted = None
            return value
        if RIO_DEBUG_ENABLED:
            assert self.state == WAITER_CLOSED, "finish() of a waiter still waiting"
        self.state = WAITER_DONE
        if self.for_anext and isinstance(self.error, ChannelClosed):
            raise StopAsyncIteration
        raise self.error

    # ---- the awaiting side

    cdef object poll_task(self, Task task):
        """Polled by a rio task: PENDING_, or the outcome (returned or raised)."""
        if self.state == WAITER_NEW:
            self.wake_kind = WAKE_TASK
            self.wake_target = task
            if self.owner.bound is not task.rt:
                self.owner.bind(task.rt)
            self.owner.attempt(self)
        elif self.state == WAITER_QUEUED:
            self.wake_target = task     # perhaps another task polls it now
            if self.wake_kind != WAKE_TASK:
                raise RuntimeError("a waiter is awaited by one task at a time")
        if self.state == WAITER_QUEUED:
            return PENDING_
        if self.state == WAITER_DONE:
            raise RuntimeError("this operation was already awaited; call it again")
        return self.finish()

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        cdef bint done = False
        cdef object value = waiter_step(self, &done)
        if not done:
            return value
        if value is not None:
            set_stop_value(value)
        raise StopIteration

    cdef object poll_asyncio(self):
        """Awaited by an asyncio task (no rio task is current): park it on a
        future of its loop, which the grant completes. The future is made only
        when the waiter has to park (a grant before then finds none to complete,
        and this poll sees the waiter granted)."""
        cdef object loop
        if self.state == WAITER_NEW:
            # rio's loop is this thread's running runtime (a TLS read); any
            # other asyncio loop is asked for (a Python call)
            loop = current_runtime_or_none()
            if loop is None:
                loop = _get_running_loop()
            if loop is None:
                raise RuntimeError(f"{type(self.owner).__name__}'s operations are awaited "
                                   "in a rio task or an asyncio task")
            self.wake_kind = WAKE_FUTURE
            if self.owner.bound is not loop:
                self.owner.bind(loop)
            self.owner.attempt(self)
            if self.state == WAITER_QUEUED:
                self.wake_target = loop.create_future()
        if self.state == WAITER_QUEUED:
            if self.wake_target.done():     # woken with nothing granted: park again
                self.wake_target = self.wake_target.get_loop().create_future()
            self.wake_target._asyncio_future_blocking = True
            return PENDING_
        if self.state == WAITER_DONE:
            raise RuntimeError("this operation was already awaited; call it again")
        self.wake_target = None
        return self.finish()

    cdef object block_thread(self):
        """Wait in a thread that runs no runtime (the *_blocking calls)."""
        cdef object lock = _allocate_lock()
        lock.acquire()
        self.wake_target = lock
        self.wake_kind = WAKE_THREAD
        self.owner.attempt(self)
        if self.state == WAITER_QUEUED:
            try:
                lock.acquire()          # released by the grant (drops the GIL meanwhile)
            except BaseException:       # a signal handler raised: stop waiting
                self.abandon()
                raise
        self.wake_target = None
        return self.finish()

    cdef int abandon(self) except -1:
        """The awaiting task was cancelled, or dropped the await."""
        cdef WaiterState state = self.state
        self.state = WAITER_DONE
        if state == WAITER_QUEUED and self.queue is not None:
            self.queue.remove(self)
            self.owner.left(self)
        elif state == WAITER_GRANTED:
            self.owner.reclaim(self)
        self.granted = None
        self.wake_target = None
        return 0

    def send(self, value):
        return self.__next__()

    def throw(self, typ, val=None, tb=None):
        self.abandon()
        reraise(typ, val, tb)

    def close(self):
        self.abandon()

    # ---- `async with primitive.operation():`

    def __aenter__(self):
        return self

    def __aexit__(self, exc_type, exc, tb):
        (<Primitive>self.owner).release_for(self)
        return COMPLETED

    def __repr__(self):
        states = ("new", "queued", "granted", "closed", "done")
        return f"<rio waiter of {type(self.owner).__name__} {states[<int>self.state]}>"


cdef object waiter_step(Waiter waiter, bint *done):
    """One poll of ``waiter``: what its await yields (PENDING_, or the asyncio
    future it parks on), or, with ``*done`` set, what it returns."""
    cdef Task task
    cdef object value
    if waiter.state == WAITER_NEW and waiter.owner.parked == 0:
        value = waiter.owner.try_now(waiter)
        if value is not NOT_NOW:
            done[0] = True
            return value
    task = current_task_or_none()
    if task is not None:
        value = waiter.poll_task(task)
        if value is PENDING_:
            return PENDING_
    else:
        value = waiter.poll_asyncio()
        if value is PENDING_:
            return waiter.wake_target
    done[0] = True
    return value


# waiter_step, seen as C: a new reference or NULL with the exception set
ctypedef PyObject *(*raw_step_fn)(PyObject *waiter, bint *done) noexcept
cdef raw_step_fn raw_waiter_step = <raw_step_fn><void *>waiter_step


cdef PySendResult waiter_am_send(PyObject *waiter, PyObject *arg,
                                 PyObject **result) noexcept:
    """Waiter's am_send: ``await`` on 3.11 resumes it here, with no StopIteration."""
    cdef bint done = False
    result[0] = raw_waiter_step(waiter, &done)
    if result[0] == NULL:
        return PYGEN_ERROR
    return PYGEN_RETURN if done else PYGEN_NEXT


rio_set_am_send(<PyObject *>Waiter, waiter_am_send)


@cython.final
cdef class Completed:
    """An awaitable that is already done (``__aexit__`` of the primitives)."""

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration

    def send(self, value):
        raise StopIteration

    def throw(self, typ, val=None, tb=None):
        reraise(typ, val, tb)

    def close(self):
        pass


cdef Completed COMPLETED = Completed()


# --------------------------------------------------------------------------- Oneshot

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


# --------------------------------------------------------------------------- locks

cdef object RELEASE_UNHELD = "release() of a lock this task does not hold"


cdef class Lock(Primitive):
    """A FIFO mutex for tasks: ``async with lock:``, or ``await lock.acquire()``
    then ``lock.release()`` in the same task."""

    def __cinit__(self):
        self.waiters = WaitQueue(self)

    def acquire(self):
        """Wait until this task holds the lock; returns True. Cancel-safe."""
        return make_waiter(self, OP_ACQUIRE)

    cdef int attempt(self, Waiter waiter) except -1:
        # the holder is the task that awaits the acquire (polling it now)
        waiter.holder = current_holder()
        if self.holder_ is None and self.waiters.count == 0:
            self.holder_ = waiter.holder
            waiter.state = WAITER_GRANTED
            waiter.granted = True
        else:
            if waiter.holder is self.holder_:
                raise RuntimeError("the lock is already held by this task (it is not reentrant)")
            self.waiters.push(waiter)
        return 0

    def release(self):
        """Release the lock held by this task; the first waiter gets it."""
        if self.holder_ is None:
            raise RuntimeError("release() of an unlocked Lock")
        if current_holder() is not self.holder_:
            raise RuntimeError(RELEASE_UNHELD)
        self.hand_off()

    cdef int hand_off(self) except -1:
        cdef Waiter waiter = self.waiters.pop()
        if waiter is None:
            self.holder_ = None
        else:
            self.holder_ = waiter.holder
            waiter.grant(True)
        return 0

    cdef int reclaim(self, Waiter waiter) except -1:
        return self.hand_off()      # granted, then cancelled: the next waiter gets it

    cdef int release_for(self, Waiter waiter) except -1:
        if self.holder_ is not waiter.holder:
            raise RuntimeError(RELEASE_UNHELD)
        return self.hand_off()

    def locked(self):
        return self.holder_ is not None

    def __aenter__(self):
        return self.acquire()

    def __aexit__(self, exc_type, exc, tb):
        self.release()
        return COMPLETED

    def __repr__(self):
        state = "locked" if self.holder_ is not None else "unlocked"
        return f"<rio Lock {state}, {self.waiters.count} waiting>"


cdef class RwLock(Primitive):
    """Many readers or one writer: ``async with lock.read():`` /
    ``async with lock.write():``. FIFO: a waiting writer is not overtaken by
    readers that come after it, so a stream of readers cannot starve it."""

    def __cinit__(self):
        self.waiters = WaitQueue(self)

    def read(self):
        """Wait for shared access (``async with lock.read():``)."""
        return make_waiter(self, OP_ACQUIRE_READ)

    def write(self):
        """Wait for exclusive access (``async with lock.write():``)."""
        return make_waiter(self, OP_ACQUIRE)

    cdef int attempt(self, Waiter waiter) except -1:
        if self.waiters.count == 0 and not self.writing and (
                waiter.op == OP_ACQUIRE_READ or self.readers == 0):
            if waiter.op == OP_ACQUIRE_READ:
                self.readers += 1
            else:
                self.writing = True
            waiter.state = WAITER_GRANTED
            waiter.granted = None
        else:
            self.waiters.push(waiter)
        return 0

    cdef int grant_next(self) except -1:
        """Grant waiters from the front while they fit: a run of readers, or one writer."""
        cdef Waiter head
        while self.waiters.head is not None and not self.writing:
            head = self.waiters.head
            if head.op == OP_ACQUIRE_READ:
                self.readers += 1
            elif self.readers == 0:
                self.writing = True
            else:
                break
            self.waiters.pop()
            head.grant(None)
        return 0

    cdef int release_for(self, Waiter waiter) except -1:
        if waiter.op == OP_ACQUIRE_READ:
            if self.readers <= 0:
                raise RuntimeError("RwLock read guard released twice")
            self.readers -= 1
        else:
            if not self.writing:
                raise RuntimeError("RwLock write guard released twice")
            self.writing = False
        return self.grant_next()

    cdef int reclaim(self, Waiter waiter) except -1:
        return self.release_for(waiter)

    cdef int left(self, Waiter waiter) except -1:
        return self.grant_next()     # a writer at the front may have held readers back

    def __repr__(self):
        state = "writing" if self.writing else f"{self.readers} readers"
        return f"<rio RwLock {state}, {self.waiters.count} waiting>"


# --------------------------------------------------------------------------- semaphores

cdef Py_ssize_t checked_count(object value, str what, Py_ssize_t minimum) except -1:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r:.40}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


cdef class Semaphore(Primitive):
    """``n`` permits, handed out in FIFO order. ``permit = await sem.acquire(k)``
    (``with permit:`` gives them back), ``try_acquire``, ``add_permits``, ``close``."""

    def __cinit__(self, *args, **kwargs):
        self.waiters = WaitQueue(self)

    def __init__(self, permits=1):
        self.permits = checked_count(permits, "permits", 0)

    def acquire(self, k=1):
        """Wait for ``k`` permits; returns a ``Permit``. Cancel-safe: a cancelled
        acquire takes no permit. Raises SemaphoreClosed once closed."""
        cdef Waiter waiter = make_waiter(self, OP_ACQUIRE)
        waiter.amount = checked_count(k, "k", 1)
        return waiter

    cdef int attempt(self, Waiter waiter) except -1:
        cdef Permit permit
        if self.closed:
            waiter.state = WAITER_CLOSED
            waiter.error = SemaphoreClosed("the semaphore is closed")
        elif self.waiters.count == 0 and self.permits >= waiter.amount:
            permit = Permit.__new__(Permit)
            permit.semaphore = self
            permit.amount = waiter.amount
            self.permits -= waiter.amount
            waiter.state = WAITER_GRANTED
            waiter.granted = permit
        else:
            self.waiters.push(waiter)
        return 0

    def try_acquire(self, k=1):
        """``k`` permits now, or None (also when others already wait: FIFO)."""
        cdef Py_ssize_t amount = checked_count(k, "k", 1)
        cdef Permit permit
        if self.closed:
            raise SemaphoreClosed("the semaphore is closed")
        if self.waiters.count != 0 or self.permits < amount:
            return None
        permit = Permit.__new__(Permit)
        permit.semaphore = self
        permit.amount = amount
        self.permits -= amount
        return permit

    def add_permits(self, k):
        """Add ``k`` permits (waiters are served first, in order)."""
        self.give_back(checked_count(k, "k", 0))

    cdef int give_back(self, Py_ssize_t amount) except -1:
        self.permits += amount
        return self.grant_waiting()

    cdef int grant_waiting(self) except -1:
        cdef Waiter head
        cdef Permit permit
        while self.waiters.head is not None and self.permits >= self.waiters.head.amount:
            permit = Permit.__new__(Permit)
            head = self.waiters.pop()
            permit.semaphore = self
            permit.amount = head.amount
            self.permits -= head.amount
            head.grant(permit)
        return 0

    cdef int reclaim(self, Waiter waiter) except -1:
        cdef Permit permit = waiter.granted
        if permit is not None and permit.amount:
            self.give_back(permit.amount)
            permit.amount = 0
        return 0

    cdef int left(self, Waiter waiter) except -1:
        return self.grant_waiting()   # it may have been the one that did not fit

    cdef int release_for(self, Waiter waiter) except -1:
        raise TypeError("use `async with semaphore:`, or `with await semaphore.acquire():`")

    def available_permits(self):
        return self.permits

    def close(self):
        """Close: every waiter, and every later acquire, raises SemaphoreClosed."""
        self.closed = True
        self.waiters.close_all(SemaphoreClosed("the semaphore is closed"))

    def is_closed(self):
        return self.closed

    def __aenter__(self):
        return self.acquire(1)

    def __aexit__(self, exc_type, exc, tb):
        self.give_back(1)
        return COMPLETED

    def __repr__(self):
        closed = " closed" if self.closed else ""
        return (f"<rio Semaphore{closed} permits={self.permits}, "
                f"{self.waiters.count} waiting>")


@cython.final
cdef class Permit:
    """Permits taken from a Semaphore: ``release()`` gives them back (also on
    leaving ``with permit:``), ``forget()`` drops them for good."""

    def __init__(self):
        raise TypeError("permits come from Semaphore.acquire() or try_acquire()")

    @property
    def amount(self):
        return self.amount

    def release(self):
        cdef Py_ssize_t amount = self.amount
        self.amount = 0
        if amount:
            self.semaphore.give_back(amount)

    def forget(self):
        self.amount = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.release()

    def __repr__(self):
        return f"<rio Permit of {self.amount}>"


# --------------------------------------------------------------------------- signals

cdef class Event(Primitive):
    """A flag tasks wait for: ``set()`` (safe from any thread) wakes them all."""

    def __cinit__(self):
        self.waiters = WaitQueue(self)

    def set(self):
        self.is_set_ = True
        self.waiters.grant_all(True)

    def clear(self):
        self.is_set_ = False

    def is_set(self):
        return self.is_set_

    def wait(self):
        """Wait until the event is set; returns True."""
        return make_waiter(self, OP_WAIT)

    cdef int attempt(self, Waiter waiter) except -1:
        if self.is_set_:
            waiter.state = WAITER_GRANTED
            waiter.granted = True
        else:
            self.waiters.push(waiter)
        return 0

    def __repr__(self):
        return f"<rio Event {'set' if self.is_set_ else 'unset'}, {self.waiters.count} waiting>"


cdef object NOTIFIED_ONE = "notify_one"
cdef object NOTIFIED_ALL = "notify_waiters"


cdef class Notify(Primitive):
    """Wake tasks without a value: ``notify_one()`` wakes the first waiter (or
    stores one permit when nobody waits), ``notify_waiters()`` wakes all that
    wait now. Both are safe from any thread."""

    def __cinit__(self):
        self.waiters = WaitQueue(self)

    def notified(self):
        """Wait for a notification. Cancel-safe: a notify_one that reached a
        cancelled waiter goes to the next one."""
        return make_waiter(self, OP_NOTIFIED)

    def notify_one(self):
        self.notify_first()

    cdef int notify_first(self) except -1:
        cdef Waiter waiter = self.waiters.pop()
        if waiter is None:
            self.permit = True
        else:
            waiter.grant(NOTIFIED_ONE)
        return 0

    def notify_waiters(self):
        self.waiters.grant_all(NOTIFIED_ALL)

    cdef int attempt(self, Waiter waiter) except -1:
        if self.permit:
            self.permit = False
            waiter.state = WAITER_GRANTED
            waiter.granted = None
        else:
            self.waiters.push(waiter)
        return 0

    cdef int reclaim(self, Waiter waiter) except -1:
        if waiter.granted is NOTIFIED_ONE:
            self.notify_first()
        return 0

    def __repr__(self):
        return f"<rio Notify permit={self.permit}, {self.waiters.count} waiting>"


cdef class Barrier(Primitive):
    """``parties`` tasks meet: ``await barrier.wait()`` returns once all have
    arrived, True in exactly one of them (the last to arrive) per generation.
    A waiter cancelled before the generation completes leaves it."""

    def __cinit__(self, *args, **kwargs):
        self.waiters = WaitQueue(self)

    def __init__(self, parties):
        self.parties = checked_count(parties, "parties", 1)

    def wait(self):
        return make_waiter(self, OP_WAIT)

    cdef int attempt(self, Waiter waiter) except -1:
        self.arrived += 1
        if self.arrived < self.parties:
            self.waiters.push(waiter)
            return 0
        self.arrived = 0
        self.waiters.grant_all(False)
        waiter.state = WAITER_GRANTED
        waiter.granted = True
        return 0

    cdef int left(self, Waiter waiter) except -1:
        self.arrived -= 1
        return 0

    @property
    def parties(self):
        return self.parties

    def __repr__(self):
        return f"<rio Barrier {self.arrived}/{self.parties}>"


cdef class Condition(Primitive):
    """Wait for a state change under a lock (a rio Lock, made when not given):
    ``async with cond: await cond.wait_for(predicate)``; ``notify(n)``,
    ``notify_all()`` with the lock held. FIFO."""

    def __cinit__(self, *args, **kwargs):
        self.waiters = WaitQueue(self)

    def __init__(self, lock=None):
        if lock is None:
            lock = Lock()
        elif not isinstance(lock, Lock):
            raise TypeError(f"lock must be a rio_rt.Lock, got {type(lock).__name__}")
        self.lock = lock

    cdef int check_held(self, str what) except -1:
        if self.lock.holder_ is None or self.lock.holder_ is not current_holder():
            raise RuntimeError(f"{what} needs the condition's lock held by this task")
        return 0

    async def wait(self):
        """Release the lock, wait for a notify, take the lock again (also when
        cancelled: the lock is held again when this returns or raises)."""
        cdef Waiter waiter
        self.check_held("wait()")
        waiter = make_waiter(self, OP_WAIT)
        self.lock.release()
        try:
            await waiter
        finally:
            await _reacquire(self.lock)
        return True

    async def wait_for(self, predicate):
        """Wait until ``predicate()`` is true (checked with the lock held); returns it."""
        result = predicate()
        while not result:
            await self.wait()
            result = predicate()
        return result

    def notify(self, n=1):
        self.check_held("notify()")
        self.notify_n(checked_count(n, "n", 0))

    def notify_all(self):
        self.check_held("notify_all()")
        self.notify_n(self.waiters.count)

    cdef int notify_n(self, Py_ssize_t n) except -1:
        cdef Waiter waiter
        while n > 0 and self.waiters.head is not None:
            waiter = self.waiters.pop()
            waiter.grant(True)
            n -= 1
        return 0

    cdef int attempt(self, Waiter waiter) except -1:
        self.waiters.push(waiter)
        return 0

    cdef int reclaim(self, Waiter waiter) except -1:
        return self.notify_n(1)     # notified, then cancelled: the next waiter gets it

    def locked(self):
        return self.lock.locked()

    def __aenter__(self):
        return self.lock.acquire()

    def __aexit__(self, exc_type, exc, tb):
        self.lock.release()
        return COMPLETED

    def __repr__(self):
        return f"<rio Condition {self.waiters.count} waiting>"


async def _reacquire(Lock lock):
    """Take ``lock`` again even when cancelled meanwhile; the cancellation is
    re-raised once the lock is held (as asyncio.Condition.wait does)."""
    cancelled = None
    while True:
        try:
            await lock.acquire()
            break
        except CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled
