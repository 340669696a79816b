# cython: language_level=3
cimport cython
from libc.stdint cimport uint32_t
from cpython.object cimport PyObject

from rio_core._runtime cimport Runtime
from rio_core._handle cimport Handle
from rio_core._time cimport TimerHandle


cdef class LoopCore(Runtime):
    cdef bint closed_flag           # asyncio's loop._closed
    cdef bint debug_flag            # asyncio's loop._debug
    cdef double slow_seconds        # asyncio's loop.slow_callback_duration
    # asyncio's loop._stopping: stop() was called; run_forever returns after
    # the current tick (which then does not block).
    cdef bint stopping
    # create_task without a task factory makes rio Tasks (the engine steps
    # them); False: CPython's asyncio.Task (tasks="asyncio").
    cdef bint rio_tasks
    # every LoopCore alive, linked from _loop.loops_head (for asyncio.all_tasks)
    cdef PyObject *loop_prev
    cdef PyObject *loop_next

    cdef int check_closed(self) except -1
    cdef int check_call(self, object callback, str method) except -1

    @cython.final
    cdef Handle new_handle(self, object callback, tuple args, object context, str method)
    cdef object thread_safe_handle(self, object callback, tuple args, object context)

    cdef Handle set_io_handle(self, object fileobj, uint32_t direction, object callback,
                              tuple args)
    cdef bint clear_io_handle(self, object fileobj, uint32_t direction) except -1
    cdef int update_slow_threshold(self) except -1
    cdef object new_rio_task(self, object coro, object name, object context, dict kwargs,
                             bint eager_factory)
    cdef TimerHandle schedule_at(self, double when, object callback, tuple args,
                                 object context, str method)
    cdef void sync_aio_sleep(self) noexcept


cdef enum SleepState:
    # asyncio.sleep() inside a rio task (AioSleep): every change is one of
    # the transitions in _loop.pyx's AioSleep section.
    SLEEP_CREATED       # made by asyncio.sleep(), not resumed yet
    SLEEP_YIELDED       # delay <= 0: yielded once; the next resumption returns
    SLEEP_PARKED        # delay > 0: yielded its future; its timer is armed
    SLEEP_DELEGATED     # first resumed outside a rio task: asyncio's own sleep runs
    SLEEP_DONE          # returned or raised; resuming it again is an error


cdef class AioSleep:
    cdef SleepState state
    cdef object delay           # what asyncio.sleep() was given (an exact int or float)
    cdef double seconds         # the same, as a C double (finite)
    cdef object result
    cdef object future          # SLEEP_PARKED: the loop future it waits on (a LoopFuture)
    cdef TimerHandle timer      # SLEEP_PARKED: completes the future at the deadline
    cdef object delegate        # SLEEP_DELEGATED: asyncio's own sleep coroutine

    cdef object resume(self, object arg, bint *done)
    cdef object resume_other(self, object arg, bint *done)
    cdef int finish(self) except -1


cdef enum QueueOpState:
    # asyncio.Queue's put()/get() inside a rio task (AioQueueOp): every
    # change is one of the transitions in _loop.pyx's asyncio.Queue section.
    QOP_CREATED         # made by put()/get(), not resumed yet
    QOP_DELEGATED       # it had to wait (full / empty): asyncio's own coroutine runs
    QOP_DONE            # returned or raised; resuming it again is an error


cdef class AioQueueOp:
    cdef QueueOpState state
    cdef bint getting           # get(), else put()
    cdef object queue           # QOP_CREATED: the queue and (put) the item
    cdef object item
    cdef object delegate        # QOP_DELEGATED: asyncio's own put or get coroutine

    cdef object resume(self, object arg, bint *done)
    cdef int finish(self) except -1


cdef class GatherState:
    # asyncio.gather's closure (its nonlocals), for rio's gather: the done
    # callback of every child, and what it finishes the outer future with.
    cdef object outer               # asyncio's _GatheringFuture; None while gather() runs
    cdef list children              # one entry per argument (a repeated argument repeats)
    cdef Py_ssize_t nfuts           # distinct children
    cdef Py_ssize_t nfinished
    cdef bint return_exceptions
    cdef object cur_task            # 3.14: the task gather() was called in (call graph)

    cdef int discard_awaited_by(self) except -1
