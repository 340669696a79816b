# cython: language_level=3
"""Cancel scopes: cancellation and deadlines for a block of code.

Design note
-----------
A ``CancelScope`` belongs to the task that enters it. Each task keeps its own
stack of scopes as a linked list, innermost first (a rio Task holds the head
in ``Task.cancel_scope``; an asyncio task's head is a weak entry in
``aio_scopes``, which the outermost exit removes). Child tasks do not inherit their
parent's scopes: a ``TaskGroup`` cancels its children itself.

**Edge-triggered delivery, counted like asyncio's.** Cancelling a scope (its
``cancel()``, or its deadline passing) asks its task to cancel once, with the
task's own ``cancel()`` machinery: the task's ``cancelling()`` count goes up
by one and one ``CancelledError`` is raised at its current await point (or
at its next one). The scope's exit takes the request back (``uncancel()``)
and catches the ``CancelledError`` only when no other request is left above
the count it saw on entry, exactly as ``asyncio.timeout`` decides. So an
outer cancellation (an outer scope, a ``Task.cancel()``, an ``asyncio.timeout``)
passes through inner scopes untouched, and rio scopes, ``asyncio.timeout`` and
``asyncio.TaskGroup`` nest in any order. The level-triggered alternative
(trio's: every await inside a cancelled scope raises again) needs a hook at
every suspension of the task; CPython's own ``asyncio.Task`` has none, and one
rule for both doors is worth more than the re-raise. The cost is asyncio's:
code that swallows ``CancelledError`` inside a cancelled scope keeps running
in it until it leaves the block.

**Delivery only where it lands inside the scope.** A rio task is cancelled
at once; if the exit comes first (``with CancelScope() as s: s.cancel()`` and
no await), the exit takes back the request and the pending throw with it
(``set_must_cancel``/``thrown_mark``/``requests_mark`` tell that it is still
ours and unthrown). CPython's Task cannot un-request a throw before 3.13, so
an asyncio task that cancels its own scope while running gets the request
when it next suspends (``call_soon``), and only if it is still in the scope.

**Shields.** A scope with ``shield=True`` holds back the cancellation of every
scope outside it: ``deliver_if_exposed`` walks from the task's innermost
scope out to the cancelled one and stops at a shield. A rio Task's own
``cancel()`` is held back too (``Task.shield_depth``, ``cancel_deferred``).
When a shield exits (or is switched off), ``release_held`` delivers what it
held. CPython's Task has no such hook: on an asyncio task a shield holds back
rio scopes only, not a direct ``asyncio.Task.cancel()``.

**Deadlines** are callback timers on the runtime's time driver (on a stdlib
asyncio loop, ``loop.call_at``: both clocks are ``time.monotonic``), armed
only while the scope is active and moved when ``deadline`` is set.
"""

from libc.math cimport INFINITY, isinf

from rio_core._runtime cimport (
    Task, Runtime, current_task_or_none, current_runtime_or_none, current_clock_ns,
)
from rio_core._time cimport deadline_ns_from_seconds, checked_seconds

from asyncio import CancelledError
from weakref import KeyedRef
from asyncio import current_task as _asyncio_current_task

# The innermost scope of each asyncio task inside one: id(task) -> a weak
# reference to the scope. Weak, so a pending task dropped inside a scope is
# still collected (and reported by asyncio) instead of kept alive by us; the
# entry goes with the scope (the task's frame holds the scope while it is in it).
cdef dict aio_scopes = {}


def _debug_scoped_asyncio_tasks():
    """How many asyncio tasks are inside a rio cancel scope now (leak check)."""
    return len(aio_scopes)


def _drop_dead_entry(ref):
    if aio_scopes.get(ref.key) is ref:
        del aio_scopes[ref.key]


cdef CancelScope innermost_scope(object task):
    cdef CancelScope scope
    if type(task) is Task:
        return (<Task>task).cancel_scope
    ref = aio_scopes.get(id(task))
    if ref is None:
        return None
    scope = ref()
    if scope is None or scope.task is not task:     # an id reused by a new task
        return None
    return scope


cdef int set_innermost(object task, CancelScope scope) except -1:
    if type(task) is Task:
        (<Task>task).cancel_scope = scope
    elif scope is None:
        aio_scopes.pop(id(task), None)
    else:
        aio_scopes[id(task)] = KeyedRef(scope, _drop_dead_entry, id(task))
    return 0


cdef object current_any_task():
    """The running rio task, else the running asyncio task, else None."""
    cdef Task task = current_task_or_none()
    if task is not None:
        return task
    try:
        return _asyncio_current_task()
    except RuntimeError:        # no running loop
        return None


cdef int release_held(object task) except -1:
    """A shield went away: deliver the cancellations of the scopes it held
    back, out to the next shield; with none left, a held-back Task.cancel()."""
    cdef CancelScope scope = innermost_scope(task)
    while scope is not None:
        if scope.cancel_called_ and not scope.delivered and not scope.delivery_queued:
            scope.deliver()
        if scope.shield_:
            return 0
        scope = scope.parent
    if type(task) is Task and (<Task>task).shield_depth == 0:
        (<Task>task).deliver_deferred_cancel()
    return 0


cdef double seconds_now():
    return current_clock_ns() / 1e9


cdef class CancelScope:
    """``with rio.CancelScope() as scope:`` (or ``async with``): a block of
    code that can be cancelled as a unit, by ``scope.cancel()`` or when
    ``deadline`` (seconds of ``rio_rt.monotonic()``) passes. Its own
    cancellation ends the block quietly (``cancelled_caught`` is then True);
    anyone else's passes through. ``shield=True`` holds back cancellations from
    outside the block until it exits."""

    def __init__(self, *, deadline=None, shield=False):
        self.deadline_s = INFINITY if deadline is None else checked_seconds(deadline, "deadline")
        self.shield_ = bool(shield)

    # ---- the user's side

    def cancel(self):
        """Cancel the block (at once when it is active; on entry otherwise).
        Idempotent; does nothing once the scope has exited."""
        if self.cancel_called_ or self.state == SCOPE_EXITED:
            return
        self.cancel_now()

    @property
    def cancel_called(self):
        """Whether ``cancel()`` was called or the deadline passed."""
        return self.cancel_called_

    @property
    def cancelled_caught(self):
        """Whether the exit caught this scope's own cancellation."""
        return self.cancelled_caught_

    @property
    def deadline(self):
        """The deadline in seconds of ``rio_rt.monotonic()``; ``math.inf`` for none.
        Set it (a number, or None for none) to move it, also while the block runs."""
        return self.deadline_s

    @deadline.setter
    def deadline(self, value):
        self.deadline_s = INFINITY if value is None else checked_seconds(value, "deadline")
        if self.state == SCOPE_ACTIVE and not self.cancel_called_:
            self.disarm()
            self.arm()

    @property
    def shield(self):
        return self.shield_

    @shield.setter
    def shield(self, value):
        cdef bint shield = bool(value)
        if shield == self.shield_:
            return
        self.shield_ = shield
        if self.state != SCOPE_ACTIVE:
            return
        if type(self.task) is Task:
            (<Task>self.task).shield_depth += 1 if shield else -1
        if not shield:
            release_held(self.task)

    def __enter__(self):
        self.enter_scope()
        return self

    def __exit__(self, exc_type, exc, tb):
        return self.exit_scope(exc)

    async def __aenter__(self):
        self.enter_scope()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        return self.exit_scope(exc)

    def __repr__(self):
        words = ["active" if self.state == SCOPE_ACTIVE else
                 "exited" if self.state == SCOPE_EXITED else "new"]
        if self.cancel_called_:
            words.append("cancelled")
        if not isinf(self.deadline_s):
            words.append(f"deadline={self.deadline_s:.6f}")
        if self.shield_:
            words.append("shield")
        return f"<rio {type(self).__name__} {' '.join(words)}>"

    # ---- the machinery

    cdef int enter_scope(self) except -1:
        cdef Task rio_task
        if self.state != SCOPE_NEW:
            raise RuntimeError(f"{self!r} can be entered only once")
        task = current_any_task()
        if task is None:
            raise RuntimeError(
                f"{type(self).__name__} must be used inside a task (a rio task, or an "
                "asyncio task on a running loop)")
        self.task = task
        self.parent = innermost_scope(task)
        set_innermost(task, self)
        self.state = SCOPE_ACTIVE
        if type(task) is Task:
            rio_task = <Task>task
            self.cancelling_at_entry = rio_task.cancel_requests
            if self.shield_:
                rio_task.shield_depth += 1
        else:
            self.cancelling_at_entry = task.cancelling()
        if self.cancel_called_:
            self.deliver_if_exposed()
        else:
            self.arm()
        return 0

    cdef int cancel_now(self) except -1:
        self.cancel_called_ = True
        if self.state == SCOPE_ACTIVE:
            self.disarm()
            self.deliver_if_exposed()
        return 0

    def _deadline_passed(self):
        self.timer = None
        if self.state == SCOPE_ACTIVE and not self.cancel_called_:
            self.deadline_fired = True
            self.cancel_now()

    cdef int arm(self) except -1:
        """Arm the deadline's timer (an active scope, not cancelled yet)."""
        cdef Runtime rt
        if isinf(self.deadline_s):
            return 0
        if self.deadline_s <= seconds_now():
            self.deadline_fired = True
            return self.cancel_now()
        rt = current_runtime_or_none()
        if rt is not None:
            self.timer = rt.time_driver.arm_callback(
                deadline_ns_from_seconds(self.deadline_s), self._deadline_passed, (), None)
        else:
            self.timer = self.task.get_loop().call_at(self.deadline_s, self._deadline_passed)
        return 0

    cdef int disarm(self) except -1:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return 0

    cdef int deliver_if_exposed(self) except -1:
        """Deliver our cancellation unless a shield inside us holds it back."""
        cdef CancelScope scope = innermost_scope(self.task)
        while scope is not self and scope is not None:
            if scope.shield_:
                return 0            # release_held delivers it when that shield goes
            scope = scope.parent
        return self.deliver()

    cdef int deliver(self) except -1:
        cdef Task rio_task
        if self.delivered or self.delivery_queued:
            return 0
        task = self.task
        if type(task) is Task:
            rio_task = <Task>task
            self.set_must_cancel = not rio_task.must_cancel
            self.thrown_mark = rio_task.cancels_thrown
            rio_task.request_cancel(None)
            self.requests_mark = rio_task.cancel_requests
            self.delivered = True
        elif _asyncio_current_task() is task:
            # running now: ask when it suspends, if it is still in the scope
            self.delivery_queued = True
            task.get_loop().call_soon(self._deliver_queued)
        else:
            task.cancel()
            self.delivered = True
        return 0

    def _deliver_queued(self):
        self.delivery_queued = False
        if self.state == SCOPE_ACTIVE and not self.delivered and not self.task.done():
            self.task.cancel()
            self.delivered = True

    cdef int take_back(self, object exc) except -1:
        """Withdraw our request from the task's count (the exit's first step).
        A rio task's throw that never happened is withdrawn with it, unless
        somebody asked for a cancellation since."""
        cdef Task rio_task
        task = self.task
        self.delivered = False
        if type(task) is Task:
            rio_task = <Task>task
            if (self.set_must_cancel and rio_task.must_cancel
                    and rio_task.cancels_thrown == self.thrown_mark
                    and rio_task.cancel_requests == self.requests_mark):
                rio_task.must_cancel = False
            rio_task.uncancel()
        else:
            task.uncancel()
        return 0

    cdef bint exit_scope(self, object exc) except -1:
        cdef CancelScope scope
        cdef bint caught = False
        if self.state != SCOPE_ACTIVE:
            raise RuntimeError(f"{self!r} is not active: it was never entered, or has exited")
        task = self.task
        # A coroutine closed outside its task (by the GC) just unwinds.
        unwinding = current_any_task() is not task
        if unwinding and not isinstance(exc, GeneratorExit):
            raise RuntimeError(f"{self!r} must be exited in the task that entered it")
        self.state = SCOPE_EXITED
        self.disarm()
        out_of_order = innermost_scope(task) is not self and not unwinding
        if out_of_order:
            # unlink it wherever it is, so the stack stays a stack
            scope = innermost_scope(task)
            while scope is not None and scope.parent is not self:
                scope = scope.parent
            if scope is not None:
                scope.parent = self.parent
        elif innermost_scope(task) is self:
            set_innermost(task, self.parent)
        if self.shield_ and type(task) is Task:
            (<Task>task).shield_depth -= 1
        if self.delivered:
            self.take_back(exc)
            remaining = (<Task>task).cancel_requests if type(task) is Task else task.cancelling()
            if isinstance(exc, CancelledError) and remaining <= self.cancelling_at_entry:
                caught = True
                self.cancelled_caught_ = True
        self.delivery_queued = False
        self.parent = None
        self.task = None            # no cycle through the coroutine's frame
        if self.shield_ and not unwinding:
            release_held(task)
        if out_of_order:
            raise RuntimeError(
                f"{self!r} exited out of order: a scope entered inside it is still active")
        if caught and self.own_catch == FAIL_ON_DEADLINE and self.deadline_fired:
            raise TimeoutError(self.timeout_message()) from exc
        return caught

    def timeout_message(self):
        return f"deadline {self.deadline_s:.6f} passed"


cdef class Timeout(CancelScope):
    """``rio.timeout(seconds)`` / ``rio.timeout_at(deadline)``: a cancel scope
    that raises the built-in ``TimeoutError`` when its deadline cancels the
    block; ``when()``, ``reschedule(when)`` and ``expired()`` as
    ``asyncio.Timeout`` has them."""

    def __init__(self, when=None, *, shield=False):
        CancelScope.__init__(self, deadline=when, shield=shield)
        self.own_catch = FAIL_ON_DEADLINE

    def when(self):
        """The deadline (seconds of ``rio_rt.monotonic()``), or None."""
        return None if isinf(self.deadline_s) else self.deadline_s

    def reschedule(self, when):
        """Move the deadline (None: no deadline)."""
        if self.deadline_fired:
            raise RuntimeError("cannot reschedule a timeout that already expired")
        self.deadline = when

    def expired(self):
        """Whether the deadline passed while the block ran."""
        return self.deadline_fired

    def timeout_message(self):
        return f"timed out after deadline {self.deadline_s}"


cdef double delay_deadline(object seconds, str what) except? -1.0:
    if seconds is None:
        return INFINITY
    cdef double delay = checked_seconds(seconds, what)
    return seconds_now() + (delay if delay > 0 else 0.0)


def move_on_after(seconds, *, shield=False):
    """A scope whose deadline is ``seconds`` from now: the block ends quietly then."""
    return CancelScope(deadline=delay_deadline(seconds, "seconds"), shield=shield)


def move_on_at(deadline, *, shield=False):
    """A scope that ends the block quietly at ``deadline``."""
    return CancelScope(deadline=deadline, shield=shield)


def fail_after(seconds, *, shield=False):
    """A scope that raises the built-in ``TimeoutError`` ``seconds`` from now."""
    cdef CancelScope scope = CancelScope(deadline=delay_deadline(seconds, "seconds"),
                                         shield=shield)
    scope.own_catch = FAIL_ON_DEADLINE
    return scope


def fail_at(deadline, *, shield=False):
    """A scope that raises the built-in ``TimeoutError`` at ``deadline``."""
    cdef CancelScope scope = CancelScope(deadline=deadline, shield=shield)
    scope.own_catch = FAIL_ON_DEADLINE
    return scope


def timeout(seconds):
    """``async with rio.timeout(1.5):`` (or ``with``) raises ``TimeoutError``
    after 1.5 s; None: no deadline."""
    return Timeout(delay_deadline(seconds, "seconds"))


def timeout_at(deadline):
    """Like ``timeout``, with an absolute deadline (``rio_rt.monotonic()`` seconds)."""
    return Timeout(deadline)


def current_effective_deadline():
    """The deadline the current task is under: the earliest of its scopes'
    out to the first shield; ``-math.inf`` if one of them is cancelled;
    ``math.inf`` for none (also outside a task)."""
    cdef CancelScope scope
    cdef double deadline = INFINITY
    task = current_any_task()
    if task is None:
        return deadline
    scope = innermost_scope(task)
    while scope is not None:
        if scope.cancel_called_:
            return -INFINITY
        if scope.deadline_s < deadline:
            deadline = scope.deadline_s
        if scope.shield_:
            break
        scope = scope.parent
    return deadline
