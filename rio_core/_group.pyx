# cython: language_level=3
"""Task groups: ``JoinSet`` (spawn, then join in completion order) and
``TaskGroup`` (structured concurrency: asyncio.TaskGroup's contract, plus
trio's ``start``). Built on the waiter queues of rio_core._sync.

Design note
-----------
- **Children are rio Tasks; the group hears of them in C.** A child gets one
  done callback, the group's ``ChildDone`` (a cdef class with ``__call__``,
  one per group), which ``Runtime.finish`` calls when the child finishes:
  no Python frame, no asyncio future, no helper task per child.
- **Waiting is a Waiter.** ``join_next``, ``join_all``, ``shutdown``, leaving
  the block and ``start`` park on ``_sync`` waiter queues (``joiners``,
  ``settled``, a TaskStatus's queue), so they park rio tasks, and asyncio
  tasks on rio's loop (on a future of that loop), with FIFO grants and
  O(1) removal when cancelled. The group is their ``Primitive``.
- **Cancel-safe join.** A finished child is handed to the first parked
  ``join_next`` (``dispatch``) and leaves ``children`` only when that waiter
  runs (``complete``). A waiter cancelled after the hand-off gives the task
  back to the front of ``done`` (``reclaim``): the next call returns it.
  ``join_all`` joins nothing until every child is done (or one failed), so
  a cancelled ``join_all`` leaves every task in the set.
- **Settled wakes.** ``settled`` waiters are woken together when the last
  running child finishes and (JoinSet) when a child fails; each waiting
  coroutine re-checks its own condition in a loop, so a spurious wake costs
  one more park, never a wrong answer.
- **Memory.** A joined task is in no structure of the set (the ``children``
  dict and the ``done`` deque drop it), so a long-lived JoinSet stays flat.
  ``done`` is a deque, not a C ring of ``PyObject*``: a finished task's result
  may refer back to its set, and only a container the garbage collector can
  traverse lets such a cycle be collected.
- **Runtime binding.** A JoinSet is bound to the runtime of its tasks while it
  holds any (unbound when empty); a TaskGroup to the runtime it was entered
  in. Spawning or waiting from another runtime raises RuntimeError.

States (``GroupState`` in the .pxd), and their transitions:

    NEW      -> OPEN      __aenter__ (a JoinSet also takes tasks while NEW)
    OPEN     -> CLOSING   __aexit__ begins: children cancelled (JoinSet; a
                          TaskGroup only when aborting), their ends awaited
    CLOSING  -> CLOSED    every child finished; errors raised; nothing can be
                          spawned again

TaskGroup follows CPython 3.13's asyncio.TaskGroup: the first child failure
cancels the siblings and, once, the parent task (``parent_cancel_requested``);
``__aexit__`` waits for every child and then takes that request back exactly
once, so the parent's ``cancelling()`` is balanced and an enclosing
``asyncio.timeout``/``rio.timeout`` still recognises its own cancellation.
The request goes through the body's own cancel scope (``body_scope``, entered
and exited with the group; rio_core._scope), not a bare ``Task.cancel()``: a
rio task's ``cancel()`` is held back while it is in a shielded scope, and a
group inside a shield must still be able to cancel its body.

A child that fails before ``task_status.started()`` is not a group failure:
its exception goes to the ``start()`` caller (as in trio).
"""

cimport cython

from rio_core._runtime cimport (
    Task, Runtime, current_runtime_or_none, TASK_DONE,
    OUTCOME_RESULT, OUTCOME_EXCEPTION, OUTCOME_CANCELLED,
)
from rio_core._sync cimport (
    Primitive, WaitQueue, Waiter, make_waiter, current_holder,
    WAITER_GRANTED, WAITER_CLOSED, OP_WAIT, OP_RECV,
)

from rio_core._queue cimport ring_push
from rio_core._handle cimport make_handle
from rio_core._scope cimport CancelScope

from asyncio import CancelledError
from collections import deque

cdef extern from "rio.h":
    bint RIO_DEBUG_ENABLED

cdef extern from "Python.h":
    bint PyCoro_CheckExact(object obj) noexcept

# Debug-build leak counter: live JoinSet and TaskGroup objects.
cdef Py_ssize_t live_groups_count = 0


def _debug_live_groups():
    return live_groups_count


cdef tuple STATE_NAMES = ("new", "open", "closing", "closed")
cdef object NOT_STARTED = "child exited without calling task_status.started()"


cdef inline bint is_bad(Task task) noexcept:
    """The finished task did not return a value (it failed or was cancelled)."""
    return task.outcome != OUTCOME_RESULT


cdef int close_coro(object coro) except -1:
    """A coroutine refused by a closed group: close it (no 'never awaited' warning)."""
    if PyCoro_CheckExact(coro):
        coro.close()
    return 0


@cython.final
cdef class ChildFailed:
    """Runs a TaskGroup's reaction to a failed child one tick later (engine-internal)."""

    def __init__(self):
        raise TypeError("ChildFailed objects are made by task groups")

    def __call__(self, task):
        if self.owner is not None and type(task) is Task:
            self.owner.child_failed(<Task>task)


@cython.final
cdef class ChildDone:
    """The done callback of a group's children (engine-internal)."""

    def __init__(self):
        raise TypeError("ChildDone objects are made by task groups")

    def __call__(self, task):
        if self.owner is not None and type(task) is Task:
            self.owner.child_done(<Task>task)


cdef class Group(Primitive):
    """What JoinSet and TaskGroup share: children, the done callback, the
    settled waiters, the runtime binding."""

    def __cinit__(self):
        cdef ChildDone on_done = ChildDone.__new__(ChildDone)
        on_done.owner = self
        self.on_done = on_done
        self.children = {}
        self.settled = WaitQueue(self)
        if RIO_DEBUG_ENABLED:
            global live_groups_count
            live_groups_count += 1

    def __dealloc__(self):
        if RIO_DEBUG_ENABLED:
            global live_groups_count
            live_groups_count -= 1

    cdef int check_runtime(self, str what) except -1:
        if self.rt is not None and current_runtime_or_none() is not self.rt:
            raise RuntimeError(
                f"{type(self).__name__}.{what}(): this group's tasks run on another "
                f"runtime ({self.rt!r}); a group is used from one runtime at a time")
        return 0

    cdef Runtime spawn_runtime(self, object coro):
        """The running runtime, where this group may spawn (a refused ``coro``
        is closed)."""
        cdef Runtime rt = current_runtime_or_none()
        if rt is None:
            close_coro(coro)
            raise RuntimeError(f"{type(self).__name__}.spawn() needs a running rio runtime")
        if self.rt is not None and self.rt is not rt:
            close_coro(coro)
            self.check_runtime("spawn")
        return rt

    cdef Task adopt(self, Runtime rt, Task task, object status):
        """``task``, just spawned on ``rt``, becomes a child of this group."""
        self.rt = rt
        # a fresh task has no callback yet: the list is ours to make
        task.done_hooks = [self.on_done]
        self.children[task] = status
        self.running += 1
        return task

    cdef Task spawn_child(self, object coro, object name, object status):
        """Spawn ``coro`` on the running runtime as a child of this group."""
        cdef Runtime rt = self.spawn_runtime(coro)
        return self.adopt(rt, rt.spawn_task(coro, name), status)    # TypeError: no coroutine

    cdef int child_done(self, Task task) except -1:
        raise NotImplementedError

    cdef int cancel_children(self) except -1:
        cdef Task task
        for task in list(self.children):
            if task.state != TASK_DONE:
                task.cancel()
        return 0

    cdef Waiter wait_settled(self):
        return make_waiter(self, OP_WAIT)

    cdef int attempt(self, Waiter waiter) except -1:
        # OP_WAIT: until no child runs
        if self.running == 0:
            waiter.state = WAITER_GRANTED
            waiter.granted = True
        else:
            self.settled.push(waiter)
        return 0

    def __len__(self):
        return len(self.children)


# --------------------------------------------------------------------------- JoinSet

cdef class JoinSet(Group):
    """A set of tasks joined in the order they finish: ``spawn``, then
    ``await join_next()`` (or ``async for task in js``). As an async context
    manager, leaving the block cancels the tasks left and waits for them."""

    def __cinit__(self):
        self.done = deque()
        self.joiners = WaitQueue(self)

    # ---- spawning

    def spawn(self, coro, *, name=None):
        """Spawn ``coro`` as a rio task in this set; returns the Task."""
        if self.state >= GROUP_CLOSING:
            close_coro(coro)
            raise RuntimeError("spawn() on a JoinSet that was closed (its block was left)")
        return self.spawn_child(coro, name, None)

    def spawn_blocking(self, fn, *args):
        """Run ``fn(*args)`` in the blocking thread pool as a task of this set."""
        if self.state >= GROUP_CLOSING:
            raise RuntimeError("spawn_blocking() on a JoinSet that was closed")
        cdef Runtime rt = self.spawn_runtime(None)
        from rio_core._blocking import spawn_blocking   # a Python module: no cimport
        return self.adopt(rt, spawn_blocking(fn, *args), None)

    # ---- the children's side

    cdef int child_done(self, Task task) except -1:
        if task not in self.children:
            return 0
        self.running -= 1
        self.done.append(task)
        if is_bad(task):
            self.done_bad += 1
        self.dispatch()
        if self.running == 0 or is_bad(task):
            self.settled.grant_all(True)
        return 0

    cdef int dispatch(self) except -1:
        """Hand finished tasks to parked join_next calls, front first; once the
        set is empty, the parked calls get None (``async for``: the end)."""
        cdef Waiter waiter
        cdef Task task
        while self.joiners.head is not None:
            if self.done:
                task = self.done.popleft()
                if is_bad(task):
                    self.done_bad -= 1
                self.joiners.pop().grant(task)
            elif not self.children:
                waiter = self.joiners.pop()
                if waiter.for_anext:
                    waiter.close_with(StopAsyncIteration())
                else:
                    waiter.grant(None)
            else:
                break
        return 0

    cdef int take(self, Task task) except -1:
        """``task`` is joined: it leaves the set."""
        self.children.pop(task, None)
        if not self.children:
            self.rt = None
            self.dispatch()
        return 0

    cdef int forget_all(self) except -1:
        """Every task leaves the set (they are all done, or detached)."""
        self.children.clear()
        self.done.clear()
        self.done_bad = 0
        self.running = 0
        self.rt = None
        self.dispatch()
        self.settled.grant_all(True)
        return 0

    # ---- the waiters' side (Primitive)

    cdef int attempt(self, Waiter waiter) except -1:
        cdef Task task
        if waiter.op != OP_RECV:
            # OP_WAIT: amount 2 (join_all) also wakes on a failure
            if self.running == 0 or (waiter.amount == 2 and self.done_bad > 0):
                waiter.state = WAITER_GRANTED
                waiter.granted = True
            else:
                self.settled.push(waiter)
        elif self.done and self.joiners.count == 0:
            task = self.done.popleft()
            if is_bad(task):
                self.done_bad -= 1
            waiter.state = WAITER_GRANTED
            waiter.granted = task
        elif not self.children:
            if waiter.for_anext:
                waiter.state = WAITER_CLOSED
                waiter.error = StopAsyncIteration()
            else:
                waiter.state = WAITER_GRANTED
                waiter.granted = None
        else:
            self.joiners.push(waiter)
        return 0

    cdef object complete(self, Waiter waiter):
        cdef object task = waiter.granted
        if waiter.op == OP_RECV and task is not None:
            self.take(<Task>task)
        return task

    cdef int reclaim(self, Waiter waiter) except -1:
        """A join_next handed a task was cancelled before it ran: the task goes
        back to the front, for the next call."""
        cdef object task = waiter.granted
        if waiter.op == OP_RECV and task is not None and task in self.children:
            self.done.appendleft(task)
            if is_bad(<Task>task):
                self.done_bad += 1
            self.dispatch()
        return 0

    # ---- joining

    def join_next(self):
        """Await the next task to finish (it is done: call ``result()``), or
        None when the set is empty. Cancel-safe."""
        self.check_runtime("join_next")
        return make_waiter(self, OP_RECV)

    def try_join_next(self):
        """A finished task, or None (no waiting)."""
        cdef Task task
        self.check_runtime("try_join_next")
        if not self.done or self.joiners.count:
            return None
        task = self.done.popleft()
        if is_bad(task):
            self.done_bad -= 1
        self.take(task)
        return task

    async def join_all(self):
        """The results of every task, in spawn order. The first failure (in
        completion order) cancels the others, waits for them and is raised."""
        self.check_runtime("join_all")
        while self.running > 0 and self.done_bad == 0:
            await self.wait_done_or_failed()
        if self.done_bad == 0:
            results = [task.result() for task in self.children]
            self.retrieve_and_forget()
            return results
        first = self.first_failed()
        self.cancel_children()
        while self.running > 0:
            await self.wait_settled()
        self.retrieve_and_forget()
        return first.result()           # raises: its exception, or CancelledError

    cdef Waiter wait_done_or_failed(self):
        cdef Waiter waiter = make_waiter(self, OP_WAIT)
        waiter.amount = 2
        return waiter

    cdef Task first_failed(self):
        cdef object task
        for task in self.done:
            if is_bad(<Task>task):
                return task
        raise AssertionError("done_bad counts a failure that done does not hold")

    cdef int retrieve_and_forget(self) except -1:
        cdef Task task
        for task in self.children:
            if task.outcome == OUTCOME_EXCEPTION:
                task.exception_retrieved = True
        return self.forget_all()

    def abort_all(self):
        """Cancel every task of the set (they stay in it until joined)."""
        self.check_runtime("abort_all")
        self.cancel_children()

    async def shutdown(self):
        """Cancel every task, wait for all of them, and empty the set (their
        results and failures are dropped)."""
        self.check_runtime("shutdown")
        self.cancel_children()
        while self.running > 0:
            await self.wait_settled()
        self.retrieve_and_forget()

    def detach_all(self):
        """Forget every task: the running ones keep running, unjoined."""
        cdef Task task
        for task in self.children:
            if task.state != TASK_DONE and task.done_hooks is not None:
                try:
                    task.done_hooks.remove(self.on_done)
                except ValueError:
                    pass
        self.forget_all()

    # ---- protocols

    def __aiter__(self):
        return self

    def __anext__(self):
        cdef Waiter waiter
        self.check_runtime("__anext__")
        waiter = make_waiter(self, OP_RECV)
        waiter.for_anext = True
        return waiter

    async def __aenter__(self):
        if self.state != GROUP_NEW:
            raise RuntimeError("a JoinSet can be entered only once")
        self.state = GROUP_OPEN
        return self

    async def __aexit__(self, exc_type, exc, tb):
        cancelled = None
        self.state = GROUP_CLOSING
        if self.running > 0:
            self.check_runtime("__aexit__")
            self.cancel_children()
        while self.running > 0:
            try:
                await self.wait_settled()
            except CancelledError as error:
                cancelled = error       # the children are cancelled already: keep waiting
        self.state = GROUP_CLOSED
        if exc_type is not None:
            self.forget_all()           # the body's exception propagates
            return None
        if cancelled is not None:
            self.forget_all()
            raise cancelled
        failures = [(<Task>task).result_value for task in self.children
                    if (<Task>task).outcome == OUTCOME_EXCEPTION]
        self.retrieve_and_forget()
        if failures:
            raise BaseExceptionGroup("unjoined tasks of a JoinSet failed", failures)
        return None

    def __repr__(self):
        return (f"<rio JoinSet {STATE_NAMES[<int>self.state]}, {len(self.children)} tasks, "
                f"{self.running} running>")


# --------------------------------------------------------------------------- TaskGroup

cdef inline bint is_base_error(object exc) except -1:
    return isinstance(exc, (KeyboardInterrupt, SystemExit))


cdef class TaskGroup(Group):
    """``async with rio.TaskGroup() as tg: tg.spawn(coro)``: asyncio.TaskGroup's
    contract (the first failure cancels the rest and the body; failures are
    raised together in an ExceptionGroup), with ``cancel()`` and ``start()``."""

    def __cinit__(self):
        self.errors = []

    cdef int abort(self) except -1:
        self.aborting = True
        return self.cancel_children()

    cdef Task spawn_checked(self, object coro, object name, object status):
        if self.state == GROUP_NEW:
            close_coro(coro)
            raise RuntimeError(f"TaskGroup {self!r} has not been entered")
        if self.state == GROUP_CLOSED or (self.state == GROUP_CLOSING and self.running == 0):
            close_coro(coro)
            raise RuntimeError(f"TaskGroup {self!r} is finished")
        if self.aborting:
            close_coro(coro)
            raise RuntimeError(f"TaskGroup {self!r} is shutting down")
        return self.spawn_child(coro, name, status)

    def spawn(self, coro, *, name=None):
        """Spawn ``coro`` as a child task of the group; returns the Task."""
        return self.spawn_checked(coro, name, None)

    create_task = spawn

    def cancel(self):
        """Cancel the children and the body; the group then exits without error."""
        if self.state == GROUP_NEW:
            raise RuntimeError(f"TaskGroup {self!r} has not been entered")
        if self.state == GROUP_CLOSED:
            return
        if not self.aborting:
            self.abort()
        if (self.state == GROUP_OPEN and not self.parent_cancel_requested
                and not self.parent.done()):
            self.parent_cancel_requested = True
            self.body_scope.cancel()

    async def start(self, fn, *args, name=None):
        """Run ``fn(*args, task_status=status)`` as a child and wait until it
        calls ``status.started(value)``; returns that value."""
        cdef TaskStatus status = TaskStatus.__new__(TaskStatus)
        coro = fn(*args, task_status=status)
        status.task = self.spawn_checked(coro, name, status)
        return await make_waiter(status, OP_WAIT)

    # ---- the children's side

    cdef int child_done(self, Task task) except -1:
        """A child finished. A failure is handled one tick later (a handle at
        the back of the ready queue), as asyncio runs done callbacks with
        call_soon: siblings that finish in the same tick still fail rather
        than being cancelled, and the ExceptionGroup holds the same errors."""
        cdef object status = self.children.get(task)
        cdef ChildFailed later
        if (status is not None and not (<TaskStatus>status).started_
                and (<TaskStatus>status).child_exited(task)):
            return self.child_left(task)    # its outcome went to the start() caller
        if task.outcome != OUTCOME_EXCEPTION:
            return self.child_left(task)
        later = ChildFailed.__new__(ChildFailed)
        later.owner = self
        ring_push(&self.rt.ready, make_handle(later, (task,), None, False))
        return 0

    cdef int child_left(self, Task task) except -1:
        self.children.pop(task, None)
        self.running -= 1
        if self.running == 0:
            self.settled.grant_all(True)
        return 0

    cdef int child_failed(self, Task task) except -1:
        """The deferred half of child_done for a failed child (asyncio's
        _on_task_done): record the error, cancel the siblings and the body."""
        cdef object exc = task.result_value
        self.child_left(task)
        task.exception_retrieved = True
        self.errors.append(exc)
        if self.base_error is None and is_base_error(exc):
            self.base_error = exc
        if self.parent is None or self.parent.done():
            if self.rt is not None:
                self.rt.report_handle_error(task, exc)
            return 0
        if not self.aborting and not self.parent_cancel_requested:
            self.abort()
            self.parent_cancel_requested = True
            self.body_scope.cancel()
        return 0

    # ---- the block

    async def __aenter__(self):
        if self.state != GROUP_NEW:
            raise RuntimeError(f"TaskGroup {self!r} has been already entered")
        rt = current_runtime_or_none()
        if rt is None:
            raise RuntimeError("rio TaskGroup needs a rio runtime: rio_rt.block_on(), or an "
                               "asyncio task on rio's loop")
        self.parent = current_holder()
        self.body_scope = CancelScope()
        self.body_scope.enter_scope()
        self.rt = rt
        self.state = GROUP_OPEN
        return self

    async def __aexit__(self, exc_type, exc, tb):
        self.state = GROUP_CLOSING
        try:
            return await self._exit(exc_type, exc)
        finally:
            self.state = GROUP_CLOSED
            self.parent = None
            self.body_scope = None
            self.errors = []
            self.base_error = None

    async def _exit(self, exc_type, exc):
        if exc is not None and self.base_error is None and is_base_error(exc):
            self.base_error = exc
        if exc_type is not None and issubclass(exc_type, CancelledError):
            propagate = exc
        else:
            propagate = None
        if exc_type is not None and not self.aborting:
            self.abort()                # the body failed, or was cancelled
        while self.running > 0:
            try:
                await self.wait_settled()
            except CancelledError as error:
                if not self.aborting:   # cancelled from outside while waiting
                    propagate = error
                    self.abort()
        parent = self.parent
        scope = self.body_scope
        self.body_scope = None
        scope.exit_scope(None)          # takes its request back (uncancel) if it made one
        if self.parent_cancel_requested:
            self.parent_cancel_requested = False
            if parent.cancelling() == 0:
                propagate = None        # the group's own request: not for the caller
        if self.base_error is not None:
            raise self.base_error
        if propagate is not None and not self.errors:
            raise propagate
        if exc_type is not None and not issubclass(exc_type, CancelledError):
            self.errors.append(exc)
        if self.errors:
            if parent.cancelling():
                # cancelled from outside too: keep that request pending for the caller
                parent.uncancel()
                parent.cancel()
            errors = self.errors
            self.errors = []
            raise BaseExceptionGroup("unhandled errors in a TaskGroup", errors) from None
        if exc_type is not None:
            return True                 # the body's CancelledError was the group's own
        return None

    def __repr__(self):
        state = "shutting down" if self.aborting else STATE_NAMES[<int>self.state]
        return (f"<rio TaskGroup {state}, {self.running} tasks, "
                f"{len(self.errors)} errors>")


# --------------------------------------------------------------------------- TaskStatus

@cython.final
cdef class TaskStatus(Primitive):
    """What ``TaskGroup.start`` passes its child as ``task_status``: the child
    calls ``started(value)`` once it is ready; ``start`` returns ``value``."""

    def __cinit__(self):
        self.waiters = WaitQueue(self)

    def __init__(self):
        raise TypeError("TaskStatus objects are made by TaskGroup.start()")

    def started(self, value=None):
        """Report that the child is ready: the ``start()`` caller resumes with ``value``."""
        cdef Waiter waiter
        if self.started_:
            raise RuntimeError("task_status.started() was already called")
        self.started_ = True
        self.value = value
        waiter = self.waiters.pop()
        if waiter is not None:
            waiter.grant(value)

    cdef int child_exited(self, Task task) except -1:
        """The child finished before started(): its outcome goes to the
        start() caller. Returns 1 when a caller waits to receive it."""
        cdef Waiter waiter
        if task.outcome == OUTCOME_EXCEPTION:
            self.error = task.result_value
        elif task.outcome == OUTCOME_CANCELLED:
            self.error = RuntimeError(NOT_STARTED + " (it was cancelled)")
            self.error.__cause__ = task.result_value
        else:
            self.error = RuntimeError(NOT_STARTED)
        waiter = self.waiters.pop()
        if waiter is None:
            return 0
        if task.outcome == OUTCOME_EXCEPTION:
            task.exception_retrieved = True
        waiter.close_with(self.error)
        return 1

    cdef int attempt(self, Waiter waiter) except -1:
        if self.started_:
            waiter.state = WAITER_GRANTED
            waiter.granted = self.value
        elif self.error is not None:
            waiter.state = WAITER_CLOSED
            waiter.error = self.error
        else:
            self.waiters.push(waiter)
        return 0

    cdef int left(self, Waiter waiter) except -1:
        """The start() caller was cancelled while it waited: cancel the child."""
        if not self.started_ and self.task is not None and self.task.state != TASK_DONE:
            self.task.cancel()
        return 0

    cdef object complete(self, Waiter waiter):
        self.task = None                # the child runs on in the group
        return waiter.granted

    def __repr__(self):
        return f"<rio TaskStatus {'started' if self.started_ else 'pending'}>"
