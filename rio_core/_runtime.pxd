# cython: language_level=3
cimport cython
from libc.stdint cimport int64_t, uint64_t
from cpython.object cimport PyObject

from rio_core._queue cimport Ring, ring_push
from rio_core._time cimport TimeDriver
from rio_core._reactor cimport Reactor

cdef extern from "rio.h":
    bint RIO_DEBUG_ENABLED
    void rio_debug_check(bint condition, const char *message) noexcept
    ctypedef struct rio_dict_slot:
        void *keys
        Py_ssize_t index


cdef enum TaskState:
    # Who may change it: only the runtime's own thread, and only through the
    # transition functions below (other threads append to Runtime.inject and
    # the runtime applies the wake).
    TASK_IDLE        # parked: waits for a wake; in no queue
    TASK_SCHEDULED   # in the ready queue exactly once
    TASK_RUNNING     # being stepped right now
    TASK_NOTIFIED    # woken while running: the step re-queues it if it parks
    TASK_DONE        # finished; `outcome` says how


cdef enum TaskOutcome:
    OUTCOME_PENDING     # not finished
    OUTCOME_RESULT      # returned; result_value is the value
    OUTCOME_EXCEPTION   # raised; result_value is the exception
    OUTCOME_CANCELLED   # raised CancelledError; result_value is that exception


cdef enum NextStep:
    # What a transition asks of its caller.
    DO_NOTHING          # the task is where it belongs
    SUBMIT              # the task is SCHEDULED now: push it on the ready queue


cdef class Runtime


cdef class DoneCallbacks:
    # The done callbacks of a task or a loop future, oldest first: the first
    # in two fields (most get one: the task that awaits them, or gather's),
    # the rest in a list. Invariant: cb0 is None only while callbacks is
    # None. An entry with context None is a rio task parked or joining here,
    # woken in place of a callback.
    cdef object cb0
    cdef object ctx0
    cdef list callbacks
    # 3.14's call graph (asyncio.capture_call_graph): the awaiters asyncio
    # recorded with future_add_to_awaited_by (gather's and TaskGroup's parent
    # task): None, the one awaiter, or a set of them. The rio tasks parked or
    # joining here are awaiters too, read off the entries above (awaiters()).
    cdef object awaited_by

    @cython.final
    cdef int push_callback(self, object fn, object context) except -1

    @cython.final
    cdef object awaiters(self, bint parked_only)

    @cython.final
    cdef list callback_entries(self)

    @cython.final
    cdef int set_callback_entries(self, list entries) except -1

    @cython.final
    cdef Py_ssize_t remove_callbacks(self, object fn, bint rio_tasks_too) except -1


cdef class Task(DoneCallbacks):
    cdef Runtime rt                 # None once done (breaks the rt <-> task cycle)
    cdef object coro                # None once done (frees the frame)
    cdef object context             # the contextvars.Context the task runs in
    cdef TaskState state            # Invariant: changed only by the transitions below
    cdef TaskOutcome outcome
    cdef object result_value
    cdef object name_
    cdef readonly uint64_t id
    # Invariant: must_cancel is set by cancel() and cleared when the
    # CancelledError is thrown in (or by uncancel() reaching zero).
    cdef bint must_cancel
    cdef object cancel_msg
    cdef int cancel_requests
    cdef Py_ssize_t cancels_thrown  # CancelledErrors thrown in for must_cancel so far
    # Cancel scopes (rio_core._scope): the innermost one this task is in (each
    # links to its parent), and how many of them shield. Invariant: while
    # shield_depth > 0, cancel() only counts the request and sets
    # cancel_deferred; the exit of the last shield delivers it.
    cdef object cancel_scope
    cdef int shield_depth
    cdef bint cancel_deferred      # its message waits in cancel_msg
    cdef object throw_exc           # an exception to throw in on the next step
    cdef bint exception_retrieved
    cdef Waker waker_               # created on first use; one per task
    cdef Context cx_                # created on first use; one per task
    cdef object fut_waiter          # the asyncio future this task parks on, or None
    # Done callbacks, two kinds. done_hooks: the engine's own (JoinSet,
    # TaskGroup), called with the task inside finish(). The callback slots
    # (DoneCallbacks): asyncio's add_done_callback, as (fn, context) pairs,
    # queued as handles on the ready queue when the task finishes (asyncio's
    # order and context rules), and the rio tasks parked in `await self`, as
    # (task, None), woken in place.
    cdef list done_hooks
    # The asyncio Future side (the task is an asyncio.Task to asyncio code):
    # loop_ is the runtime that runs it (an asyncio loop on the asyncio door),
    # kept once done for get_loop(); future_blocking is _asyncio_future_blocking.
    cdef object loop_
    cdef bint future_blocking
    cdef object source_traceback    # debug mode: where it was created
    cdef bint quiet_destroy         # asyncio's _log_destroy_pending = False
    cdef bint cancelled_exc_taken   # _cancelled_error() gave out the task's own CancelledError
    # Intrusive list of live tasks, owned by the runtime (one reference).
    cdef PyObject *live_prev
    cdef PyObject *live_next
    cdef object __weakref__
    cdef dict __dict__              # attributes libraries set on tasks (made on first use)
    # Observability (rio_core._observe). parent_id: the id of the task that
    # spawned this one, 0 for none. An id, not a reference: no reference count
    # and no weakref per spawn (a weakref.ref cost ~1.5% on spawn_join); the
    # parent is found by a scan of the live tasks while it lives.
    cdef readonly uint64_t parent_id
    cdef int64_t spawned_ns         # the runtime clock when spawned (one read per spawn)
    cdef readonly uint64_t polls    # steps taken
    cdef readonly uint64_t wakes    # wakes applied on the runtime's thread (schedule())
    cdef int64_t step_ns            # real time spent in steps (instrumented runtimes only)

    cdef Context get_cx(self)
    cdef int request_cancel(self, object msg) except -1
    cdef int deliver_deferred_cancel(self) except -1
    cdef object report_to_loop(self, dict context)
    cdef object join_step(self)
    cdef int leave_join(self) except -1
    cdef bint has_joiner(self, Task joiner) noexcept


cdef enum AioFutureState:
    # asyncio's Future states, in asyncio's names ("PENDING", ...)
    AIO_PENDING
    AIO_CANCELLED
    AIO_FINISHED


cdef class LoopFuture(DoneCallbacks):
    # An asyncio future of rio's loop (loop.create_future()). A rio task
    # parked on it is kept in the callback slots as (task, None) and is
    # woken in place of a callback; everything else is asyncio's Future.
    cdef object loop_
    cdef Runtime rt                 # loop_ when it is a rio runtime, else None
    cdef AioFutureState state
    cdef bint blocking              # _asyncio_future_blocking
    cdef bint log_tb                # _log_traceback
    cdef object result_value
    cdef object exc
    cdef object exc_tb
    cdef object cancel_msg
    cdef object source_traceback
    cdef object __weakref__

    cdef int schedule_callbacks(self) except -1
    cdef int run_callback(self, object fn, object context) except -1
    cdef int check_initialized(self) except -1
    cdef object make_cancelled_error(self)
    cdef object get_result(self)
    cdef tuple callback_pair(self, object fn, object context)


cdef class LoopFutureIter:
    cdef LoopFuture fut

# ---- task transitions: every change of Task.state is one of these (the table
# is in the opening note of _runtime.pyx). Each checks its precondition in a
# RIO_DEBUG=1 build.

cdef inline NextStep transition_to_scheduled(Task task) noexcept:
    """Spawned, or the step yielded (a bare yield): queue it at the back."""
    rio_debug_check(task.state == TASK_IDLE or task.state == TASK_RUNNING
                    or task.state == TASK_NOTIFIED,
                    "transition_to_scheduled: the task is queued or done")
    task.state = TASK_SCHEDULED
    return SUBMIT


cdef inline NextStep transition_to_running(Task task) noexcept:
    """Popped off the ready queue to be stepped."""
    rio_debug_check(task.state == TASK_SCHEDULED, "transition_to_running: not scheduled")
    task.state = TASK_RUNNING
    return DO_NOTHING


cdef inline NextStep transition_to_idle(Task task) noexcept:
    """The step parked: IDLE, or SCHEDULED again when it was woken meanwhile."""
    rio_debug_check(task.state == TASK_RUNNING or task.state == TASK_NOTIFIED,
                    "transition_to_idle: not running")
    if task.state == TASK_NOTIFIED:
        task.state = TASK_SCHEDULED
        return SUBMIT
    task.state = TASK_IDLE
    return DO_NOTHING


cdef inline NextStep transition_to_notified(Task task) noexcept:
    """A wake (on the runtime's thread): only a parked task is queued; a
    running one is marked to be re-queued; any other state stays."""
    if task.state == TASK_IDLE:
        task.state = TASK_SCHEDULED
        return SUBMIT
    if task.state == TASK_RUNNING:
        task.state = TASK_NOTIFIED
    return DO_NOTHING


cdef inline NextStep transition_to_complete(Task task) noexcept:
    """The coroutine returned or raised."""
    rio_debug_check(task.state == TASK_RUNNING or task.state == TASK_NOTIFIED,
                    "transition_to_complete: not running")
    task.state = TASK_DONE
    return DO_NOTHING


cdef class Join:
    cdef readonly Task task


cdef class FutureDone:
    cdef readonly Task task


cdef class Waker:
    cdef readonly Task task
    cdef FutureDone future_done     # made with the waker: the task's asyncio wake-up


cdef class Context:
    cdef readonly Waker waker


cdef class Ready:
    cdef readonly object value


# Buckets of the instrumented step-duration histogram: bucket 0 counts steps
# under 1 us, bucket k steps of [2**(k-1), 2**k) us; the last one takes the rest.
cdef enum:
    STEP_HISTOGRAM_BUCKETS = 32


cdef class Runtime:
    cdef Ring ready                 # the ready queue: Tasks and Handles
    cdef TimeDriver time_driver
    cdef Reactor reactor
    cdef list inject                # wakes and handles from other threads, drained each tick
    cdef bint running
    cdef int64_t last_io_poll_ns
    cdef PyObject *live_head        # intrusive list of live tasks
    cdef readonly Py_ssize_t tasks_alive
    cdef readonly uint64_t polls
    cdef readonly uint64_t ticks
    cdef object pending_base_exc    # KeyboardInterrupt/SystemExit raised by a task
    # Invariant: stop_requested is set when the main task finishes (or every task
    # has during shutdown), or the asyncio door's loop stops; the tick then never
    # blocks in the reactor.
    cdef Task main
    cdef bint stop_requested
    cdef public object exception_handler
    # Debug mode: entries running longer than slow_ns are reported to slow_hook
    # (callable(entry, callback, args, seconds)); 0 disables the timing entirely.
    cdef int64_t slow_ns
    cdef object slow_hook
    # Invariant: observed == (slow_ns != 0 or timed_steps or watch_steps or a
    # poll hook is set), kept by update_observed(): the one test run_batch makes
    # before taking the observed path (run_batch_timed).
    cdef bint observed
    cdef bint timed_steps             # time every step: busy_ns, the histogram, Task.step_ns
    cdef int64_t busy_ns
    cdef uint64_t step_histogram[STEP_HISTOGRAM_BUCKETS]
    # Tracing hooks: callables taking the Task, or None (one pointer test each).
    cdef object on_spawn_hook
    cdef object before_poll_hook
    cdef object after_poll_hook
    cdef object on_exit_hook
    # The stuck-step watchdog (rio_core._observe.Watchdog). While watch_steps,
    # each step publishes its sequence number, its start (rio_monotonic_ns) and
    # its entry; step_started_ns is 0 between steps.
    cdef bint watch_steps
    cdef int64_t slow_poll_ns
    cdef object on_slow_poll
    cdef object watchdog            # the running Watchdog, or None
    cdef uint64_t step_seq
    cdef int64_t step_started_ns
    cdef object step_entry
    # Test time: blocking-pool jobs in flight (the test clock never jumps
    # while one runs), and the waiters of wait_all_tasks_blocked as
    # (cushion_ns, Oneshot) pairs.
    cdef Py_ssize_t blocking_jobs
    cdef list idle_waiters
    # The asyncio door: tasks of this runtime are asyncio tasks of it (it is an
    # asyncio loop). Each step makes the task asyncio's current task of the
    # loop (aio_current is asyncio's own current-tasks dict). From CPython 3.14
    # asyncio keeps the current task in the thread state: there aio_swap is
    # asyncio's _swap_current_task and the dict goes unused (None before 3.14).
    # asyncio.all_tasks() sees the tasks through the live list (rio_core._loop's
    # TaskRegistry), so a spawn registers nothing with asyncio.
    #
    # Within one batch, a step that ends on a path running no Python code
    # (parked in a loop future or a leaf, a bare yield) leaves its task as
    # asyncio's current task, stale (aio_stale): the next step overwrites it
    # in place, and the batch clears it (aio_flush) before a handle runs and
    # when it ends. A delete and a fresh insert per step cost a third of an
    # asyncio.sleep(0) loop. Only run_batch's steps defer (step's `defer`; a
    # nested, eager step never does).
    cdef bint aio_tasks
    # The context the done callbacks of asyncio futures that tasks park on run
    # in: empty, one per runtime (so never entered twice at once), and no copy
    # of the current context per park.
    cdef object wake_context
    cdef dict aio_current
    cdef rio_dict_slot aio_slot       # where this loop's entry in aio_current is
    cdef object aio_swap
    cdef bint aio_stale
    # asyncio.sleep() inside this runtime's rio tasks is rio's AioSleep: set
    # by rio's loop (LoopCore.sync_aio_sleep) while it makes rio tasks and is
    # not in debug mode; False for a native runtime.
    cdef bint aio_sleep_in_c

    @cython.final
    cdef object swap_aio_current(self, object task)

    @cython.final
    cdef int aio_flush(self) except -1

    cdef int64_t now_ns(self) noexcept

    @cython.final
    cdef Task spawn_task(self, object coro, object name, object context=*, bint eager=*,
                         Task task=*)

    @cython.final
    cdef int step_eagerly(self, Task task) except -1

    @cython.final
    cdef int queue_callback(self, object fn, object arg, object context) except -1

    @cython.final
    cdef int schedule(self, Task task) except -1

    @cython.final
    cdef int step(self, Task task, bint defer=*) except -1

    @cython.final
    cdef int step_woken(self, Task task) except -1
    cdef tuple throw_into(self, Task task)
    cdef object bad_future(self, Task task, object value)
    cdef int cancel_waiter(self, Task task) except -1
    cdef object bad_yield(self, Task task, object value)

    @cython.final
    cdef int finish(self, Task task, TaskOutcome outcome, object value) except -1
    cdef int run_done_callback(self, Task task, object fn, object context) except -1
    cdef list live_tasks(self)
    cdef int drop_live_tasks(self) except -1

    @cython.final
    cdef void unlink_live(self, Task task) noexcept
    cdef int shutdown_tasks(self) except -1

    # the tick and its steps; final: direct C calls, no vtable
    @cython.final
    cdef int tick(self) except -1

    @cython.final
    cdef int apply_injected(self) except -1

    @cython.final
    cdef int run_batch(self, Py_ssize_t n) except -1

    @cython.final
    cdef int run_batch_timed(self, Py_ssize_t n) except -1

    @cython.final
    cdef int run_entry(self, object entry) except -1

    @cython.final
    cdef void count_step(self, object entry, bint is_task, int64_t elapsed) noexcept

    @cython.final
    cdef int call_hook(self, object hook, object task) except -1
    cdef void update_observed(self) noexcept
    cdef int start_watchdog(self) except -1
    cdef int stop_watchdog(self) except -1

    @cython.final
    cdef int turn_reactor(self) except -1

    @cython.final
    cdef int run_polled(self, Py_ssize_t n) except -1

    @cython.final
    cdef int park_idle(self) except -1

    @cython.final
    cdef int64_t smallest_cushion(self) except? -2

    @cython.final
    cdef int wake_idle_waiters(self, int64_t elapsed) except -1

    @cython.final
    cdef int poll_io_now(self) except -1

    @cython.final
    cdef int raise_pending_base_exc(self) except -1
    cdef int enter(self) except -1
    cdef int run_until_done(self, Task main) except -1
    cdef int report_handle_error(self, object handle, object exc) except -1


cdef int wake_task(Task task) except -1
cdef Task current_task_or_none()
cdef Runtime current_runtime_or_none()
cdef Runtime enter_runtime(Runtime rt)
cdef void leave_runtime(Runtime previous) noexcept
cdef int64_t current_clock_ns() noexcept
cdef object PENDING_
cdef Ready READY_NONE
cdef object reraise(object typ, object val, object tb)
cdef object asyncio_join_future(Task task)
cdef LoopFuture new_loop_future(Runtime rt, bint debug)


# StopIteration(value) for an awaitable's __next__ (one object reused, 3.12+)
cdef void set_stop_value(object value) noexcept
