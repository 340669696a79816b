# cython: language_level=3
from libc.stdint cimport int64_t, uint64_t
from cpython.object cimport PyObject

from rio_core._queue cimport Ring
from rio_core._timers cimport TimerHeap, TimerHandle
from rio_core._reactor cimport Reactor


cdef enum TaskState:
    # Who may change it: only the runtime's own thread (other threads append
    # to Runtime.inject and the runtime applies the wake).
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


cdef class Runtime


cdef class Task:
    cdef Runtime rt                 # None once done (breaks the rt <-> task cycle)
    cdef object coro                # None once done (frees the frame)
    cdef object context             # the contextvars.Context the task runs in
    cdef TaskState state
    cdef TaskOutcome outcome
    cdef object result_value
    cdef object name_
    cdef readonly uint64_t id
    cdef list join_waiters          # tasks parked in `await self`; None when empty
    # Invariant: must_cancel is set by cancel() and cleared when the
    # CancelledError is thrown in (or by uncancel() reaching zero).
    cdef bint must_cancel
    cdef object cancel_msg
    cdef int cancel_requests
    cdef object throw_exc           # an exception to throw in on the next step
    cdef bint exception_retrieved
    cdef Waker waker_               # created on first use; one per task
    cdef Context cx_                # created on first use; one per task
    cdef object fut_waiter          # the asyncio future this task parks on, or None
    cdef list done_callbacks        # callables run with the task when it finishes
    # Intrusive list of live tasks, owned by the runtime (one reference).
    cdef PyObject *live_prev
    cdef PyObject *live_next
    cdef object __weakref__

    cdef Context get_cx(self)


cdef class Waker:
    cdef readonly Task task


cdef class Context:
    cdef readonly Waker waker


cdef class Ready:
    cdef readonly object value


cdef class Future:
    cdef Task bridge                # the hidden rio task polling us for an asyncio awaiter
    cdef object _poll(self, Task task)
    cdef int drop_bridge(self) except -1


cdef class Sleep(Future):
    cdef readonly int64_t deadline_ns
    cdef TimerHandle timer
    cdef int disarm(self) except -1


cdef class Runtime:
    cdef Ring ready                 # the ready queue: Tasks and Handles
    cdef TimerHeap timers
    cdef Reactor reactor
    cdef list inject                # wakes from other threads, drained each tick
    cdef bint running
    cdef bint autojump
    cdef int64_t clock_offset_ns    # the autojump clock's lead over CLOCK_MONOTONIC
    cdef int64_t last_io_poll_ns
    cdef PyObject *live_head        # intrusive list of live tasks
    cdef readonly Py_ssize_t tasks_alive
    cdef readonly uint64_t polls
    cdef readonly uint64_t ticks
    cdef object pending_base_exc    # KeyboardInterrupt/SystemExit raised by a task
    # Invariant: stop_requested is set when the main task finishes (or every task
    # has during shutdown); the tick then never blocks in the reactor.
    cdef Task main
    cdef bint stop_requested
    cdef bint stopping              # the asyncio door's loop.stop() was called
    cdef public object exception_handler
    # Debug mode: entries running longer than slow_ns are reported to slow_hook
    # (callable(entry_or_callback, seconds)); 0 disables the timing entirely.
    cdef int64_t slow_ns
    cdef object slow_hook

    cdef int64_t now_ns(self) noexcept
    cdef Task spawn_task(self, object coro, object name)
    cdef int schedule(self, Task task) except -1
    cdef int wake(self, Task task) except -1
    cdef int step(self, Task task) except -1
    cdef tuple throw_into(self, Task task)
    cdef list live_tasks(self)
    cdef int shutdown_tasks(self) except -1
    cdef int finish(self, Task task, TaskOutcome outcome, object value) except -1
    cdef int tick(self) except -1
    cdef int run_entry(self, object entry) except -1
    cdef int run_batch_timed(self, Py_ssize_t n) except -1
    cdef int poll_reactor(self) except -1
    cdef int poll_io_now(self) except -1
    cdef int dispatch_io(self) except -1
    cdef int run_until_done(self, Task main) except -1
    cdef int report_handle_error(self, object handle, object exc) except -1
    cdef TimerHandle add_timer(self, int64_t deadline_ns, object target, object callback,
                               tuple args, object context)


cdef int wake_task(Task task) except -1
cdef Task current_task_or_none()
cdef object PENDING_
cdef Runtime current_runtime_or_none()
cdef Ready READY_NONE
