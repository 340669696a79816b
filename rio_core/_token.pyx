# cython: language_level=3
"""CancellationToken: a cancellation signal shared by many tasks, in a tree.

Design note
-----------
- **A primitive of rio_core._sync.** A token is a ``Primitive`` with one
  ``WaitQueue``: ``cancelled()`` returns a ``Waiter`` that completes at once
  when the token is cancelled and otherwise parks (rio tasks, asyncio tasks
  on any loop: the waiter machinery's three wake kinds). ``cancel()`` sets
  the flag and grants every parked waiter, as ``Event.set()`` does; a
  cancelled wait leaves the queue in O(1) and takes nothing.
- **Safe from any thread.** ``cancel()``, ``child_token()`` and the waits are
  C code under the GIL. The places where Python code could run in between
  (an allocation may start a garbage collection, whose finalizers may let
  another thread in) come before the check they race with: ``cancel()``
  allocates its work list, ``child_token()`` its child and a wait its queue,
  and only then read the flag, so no waiter is parked on, and no child linked
  to, a token already cancelled. ``cancel()`` first marks the whole subtree
  (no Python code), then wakes the waiters.
- **The tree.** A child owns a reference to its parent (a grandparent's
  cancel must reach a grandchild whose parent the program dropped); a parent
  holds its children in an intrusive list of borrowed pointers, so it keeps
  no child alive: a child unlinks itself in ``__dealloc__``, in O(1), and the
  parent is alive then because the child owns it. ``no_gc_clear``: the
  collector must never drop a child's parent before that unlink (a cycle
  through a token is broken at its queue, its waiters or their tasks).
  Cancelling unlinks a token from its parent and from its children (it
  needs neither any more), and drops its queue, so cancelled trees free
  themselves; a child of a cancelled token is born cancelled. The walk is
  iterative (no recursion limit on deep chains) and skips what is already
  cancelled, so every token is cancelled once, in O(size of the subtree).
- **Any runtime.** Unlike the locks, a token is not bound to one runtime:
  tasks of several runtimes (and threads' asyncio loops) may wait on it at
  once. Its state changes are GIL-atomic and each waiter is woken through its
  own wake target (``wake_task`` hands a task of another thread's runtime to
  that runtime's inject list; an asyncio future of another loop is completed
  through ``call_soon_threadsafe``), so nothing ties the queue to one runtime.
- **run_until_cancelled(aw)** awaits ``aw`` in the current task inside a
  ``CancelScope`` (rio_core._scope) and cancels that scope when the token is
  cancelled; the scope's exit takes back exactly that cancellation, so a
  cancellation from anyone else still propagates, counts stay balanced, and
  a shield around the call does not hold the token back. ``cancel()`` may
  run on any thread, but the scope must be cancelled on the task's own
  thread; the request (``CancelRequest``) parks a waiter in the token's queue
  whose wake brings it there:
  - in a rio task, the waiter is awaited by a small watcher task spawned on
    the same runtime (``wake_task`` is the thread-safe wake); when granted,
    the watcher cancels the scope. A task per call was preferred to a new
    engine hook: the scheduler offers no "run this on the runtime's thread"
    for a bare ``Runtime``, and a watcher costs one spawn and one step;
  - in an asyncio task (rio's loop or another), no task is spawned: the
    waiter's wake target is a future of the task's loop (``WAKE_FUTURE``,
    completed at once on the loop's thread, or through
    ``call_soon_threadsafe`` from another), and the future's done-callback
    is the request, which cancels the scope on the loop's thread.
  Leaving ``run_until_cancelled`` disarms the request first (a wake already
  on its way then does nothing), takes the waiter out of the queue and
  cancels the watcher. A token already cancelled returns None at once and
  closes ``aw`` unstarted (a coroutine), so it is never "never awaited".
"""

cimport cython
from cpython.object cimport PyObject

from rio_core._runtime cimport Task
from rio_core._scope cimport CancelScope, current_any_task
from rio_core._sync cimport (
    Primitive, WaitQueue, Waiter, make_waiter, OP_WAIT, WAITER_GRANTED, WAKE_FUTURE,
)

from collections.abc import Coroutine as _AbcCoroutine

cdef extern from "Python.h":
    bint PyCoro_CheckExact(object obj) noexcept


cdef inline void unlink_child(CancellationToken parent, PyObject *child) noexcept:
    """Take ``child`` out of ``parent``'s list of children: pointer updates
    only, no reference kept or dropped, so it is safe in ``__dealloc__``."""
    cdef CancellationToken c = <CancellationToken>child
    if c.prev_sibling == NULL:
        parent.first_child = c.next_sibling
    else:
        (<CancellationToken>c.prev_sibling).next_sibling = c.next_sibling
    if c.next_sibling != NULL:
        (<CancellationToken>c.next_sibling).prev_sibling = c.prev_sibling
    c.prev_sibling = NULL
    c.next_sibling = NULL
    parent.children -= 1


# Ancestors released by the __dealloc__ lower in the stack (see __dealloc__).
cdef list releasing = []
cdef bint release_running = False


@cython.final
@cython.no_gc_clear
cdef class CancellationToken(Primitive):
    """A cancellation signal: ``cancel()`` (safe from any thread, idempotent)
    cancels this token and every child token; ``await cancelled()`` returns
    once it is; ``child_token()`` makes a token cancelled with this one;
    ``await run_until_cancelled(aw)`` awaits ``aw`` unless the token is
    cancelled first."""

    def __dealloc__(self):
        global release_running
        # no children are left: each owns a reference to us
        if self.parent is None:
            return
        unlink_child(self.parent, <PyObject *>self)
        # Dropping the parent may free it, and its parent, ...: a long chain
        # would recurse once per token and overflow the C stack. The first
        # token freed releases the ancestors in a loop instead; the ones freed
        # meanwhile only hand their parent over (no Python code runs here).
        # (Not the trashcan: it defers a freed object that is still linked.)
        if release_running:
            releasing.append(self.parent)
            self.parent = None
            return
        release_running = True
        try:
            self.parent = None
            while len(releasing):
                releasing.pop()
        finally:
            release_running = False

    def is_cancelled(self):
        """True once the token (or an ancestor) was cancelled."""
        return self.cancelled_

    def cancel(self):
        """Cancel this token and every child token (recursively); wake every
        waiter. Safe from any thread; cancelling twice does nothing."""
        cdef list marked
        cdef CancellationToken token
        cdef WaitQueue queue
        cdef object keep
        if self.cancelled_:
            return
        marked = []         # allocated before the check below (see the design note)
        if self.cancelled_:
            return
        keep = self.parent  # alive until the waiters are woken
        if keep is not None:
            unlink_child(self.parent, <PyObject *>self)
            self.parent = None
        self.mark(marked)
        # every token of the subtree is marked (no Python code ran since the
        # check): now wake the waiters; a wake may run Python code
        for token in marked:
            queue = token.waiters
            if queue is not None:
                queue.grant_all(None)
                token.waiters = None    # breaks the token <-> queue cycle

    cdef int mark(self, list marked) except -1:
        """Set the flag of this token and of its whole subtree, unlinking each
        child from its parent; append them to ``marked`` (which keeps them
        alive). Breadth first, without recursion; no Python code runs."""
        cdef CancellationToken token, child
        cdef Py_ssize_t i = len(marked)
        self.cancelled_ = True
        marked.append(self)
        while i < len(marked):
            token = marked[i]
            i += 1
            while token.first_child != NULL:
                child = <CancellationToken>token.first_child
                unlink_child(token, <PyObject *>child)
                child.parent = None     # `token` stays alive in `marked`
                child.cancelled_ = True     # a linked child is never cancelled yet
                marked.append(child)
        return 0

    def child_token(self):
        """A new token cancelled when this one is (at once, if it already
        is). Cancelling the child never cancels this token. This token does
        not keep the child alive; the child keeps this token alive."""
        cdef CancellationToken child = CancellationToken.__new__(CancellationToken)
        # allocated: from here on no Python code runs until it is linked
        if self.cancelled_:
            child.cancelled_ = True
            return child
        child.parent = self
        child.next_sibling = self.first_child
        if self.first_child != NULL:
            (<CancellationToken>self.first_child).prev_sibling = <void *>child
        self.first_child = <void *>child
        self.children += 1
        return child

    def cancelled(self):
        """Wait until the token is cancelled (returns None; at once when it
        is). Cancel-safe: a cancelled wait leaves the queue."""
        return make_waiter(self, OP_WAIT)

    cdef int make_queue(self) except -1:
        cdef WaitQueue queue
        if self.waiters is None:
            queue = WaitQueue(self)     # may run Python code: check again after
            if self.waiters is None and not self.cancelled_:
                self.waiters = queue
        return 0

    cdef int attempt(self, Waiter waiter) except -1:
        if not self.cancelled_:
            self.make_queue()
        if self.cancelled_:
            waiter.state = WAITER_GRANTED
            waiter.granted = None
        else:
            self.waiters.push(waiter)
        return 0

    cdef int bind(self, object runtime) except -1:
        return 0        # any runtime: see "Any runtime" in the design note

    def run_until_cancelled(self, aw):
        """Await ``aw`` in the current task and return its value; or, if the
        token is cancelled first, cancel ``aw`` (CancelledError at its await
        point, its ``finally`` blocks run) and return None. An already
        cancelled token returns None without starting ``aw``. Another
        cancellation of the task still raises CancelledError."""
        return until_cancelled(self, aw)

    def _children(self):
        """How many children are linked (for tests and debugging)."""
        return self.children

    def __repr__(self):
        if self.cancelled_:
            return "<rio CancellationToken cancelled>"
        return f"<rio CancellationToken not cancelled, {self.parked} waiting>"


# --------------------------------------------------------------------------- run_until_cancelled

@cython.final
cdef class CancelRequest:
    """Cancels one task when a token is cancelled, on the task's own thread
    (see the design note). Called as the asyncio future's done-callback."""

    def __init__(self):
        raise TypeError("cancel requests are made by run_until_cancelled()")

    def __call__(self, future):
        self.fire()

    cdef int fire(self) except -1:
        if self.armed:
            self.armed = False
            self.fired = True
            self.scope.cancel()
        return 0

    cdef bint release(self) except -1:
        """Disarm (a wake on its way does nothing), leave the token's queue,
        stop the watcher. True when the task was cancelled by this request."""
        cdef object watcher = self.watcher
        self.armed = False
        self.watcher = None
        if self.waiter is not None:
            self.waiter.abandon()
            self.waiter = None
        if type(watcher) is Task:
            watcher.cancel()
        return self.fired


async def _watch(Waiter waiter, CancelRequest request):
    """The watcher task of a request made in a rio task."""
    await waiter
    request.fire()


cdef CancelRequest arm(CancellationToken token, CancelScope scope):
    """A request that cancels ``scope`` (in the current task) when ``token``
    is cancelled; None when the token is cancelled already."""
    cdef CancelRequest request = CancelRequest.__new__(CancelRequest)
    request.scope = scope
    cdef object task = current_any_task()
    cdef Waiter waiter
    if task is None:
        raise RuntimeError("run_until_cancelled() is awaited in a rio task or an asyncio task")
    waiter = make_waiter(token, OP_WAIT)
    request.waiter = waiter
    request.armed = True
    request.task = task
    if type(task) is Task:
        # the watcher's first poll parks the waiter, or finds the token cancelled
        request.watcher = (<Task>task).rt.spawn_task(_watch(waiter, request),
                                                     "CancellationToken watcher")
    else:
        future = task.get_loop().create_future()
        future.add_done_callback(request)
        request.watcher = future
        waiter.wake_kind = WAKE_FUTURE
        waiter.wake_target = future
        token.attempt(waiter)       # parks it, or grants it when cancelled
    if token.cancelled_:
        request.release()
        return None
    return request


async def until_cancelled(CancellationToken token, aw):
    """run_until_cancelled: ``aw`` awaited inside a cancel scope that the
    token's cancellation cancels; the scope catches exactly that cancellation
    (rio_core._scope: counted with cancelling()/uncancel(), held back by a
    shield inside ``aw``, never by one around it)."""
    cdef CancelRequest request = None
    cdef CancelScope scope = CancelScope()
    try:
        if not token.cancelled_:
            request = arm(token, scope)
    finally:
        if request is None and (PyCoro_CheckExact(aw) or isinstance(aw, _AbcCoroutine)):
            aw.close()          # never started: no "never awaited" warning
    if request is None:
        return None
    try:
        with scope:
            return await aw
    finally:
        request.release()
    return None                 # the scope caught the token's cancellation
