# cython: language_level=3
from rio_core._runtime cimport Task, Runtime
from rio_core._sync cimport Primitive, WaitQueue, Waiter
from rio_core._scope cimport CancelScope


cdef enum GroupState:
    # Who may change it: only the group's transitions (the pyx's "states" table).
    GROUP_NEW           # made; a JoinSet already takes tasks, a TaskGroup does not
    GROUP_OPEN          # entered (``async with``): takes tasks
    GROUP_CLOSING       # leaving the block: cancelling and/or waiting for the children
    GROUP_CLOSED        # left: takes no task again


cdef class ChildDone:
    # The done callback every child Task of a group holds (one object per group).
    cdef Group owner


cdef class TaskGroup


cdef class ChildFailed:
    # Runs a TaskGroup's reaction to a failed child one tick later (a Handle's callback).
    cdef TaskGroup owner


cdef class Group(Primitive):
    cdef GroupState state
    cdef Runtime rt                 # where the children run; None while the group is unbound
    # The children not yet forgotten, in spawn order (dict: O(1) removal). A
    # JoinSet keeps finished tasks here until they are joined; a TaskGroup
    # drops a child when it finishes. The value is the child's TaskStatus
    # while ``start()`` waits for it, else None.
    cdef dict children
    cdef Py_ssize_t running         # children not finished
    cdef ChildDone on_done
    # Woken (all of them) when the last child finishes, and (JoinSet) when a
    # child fails: the waits of shutdown, join_all and leaving the block.
    cdef WaitQueue settled

    cdef Runtime spawn_runtime(self, object coro)
    cdef Task adopt(self, Runtime rt, Task task, object status)
    cdef Task spawn_child(self, object coro, object name, object status)
    cdef int check_runtime(self, str what) except -1
    cdef int child_done(self, Task task) except -1
    cdef int cancel_children(self) except -1
    cdef Waiter wait_settled(self)


cdef class JoinSet(Group):
    # Finished children not joined yet, in completion order (a deque: the
    # garbage collector sees what it holds, unlike a C ring).
    cdef object done
    cdef Py_ssize_t done_bad        # tasks in ``done`` that did not return a value
    cdef WaitQueue joiners          # parked join_next() calls
    cdef int dispatch(self) except -1
    cdef int take(self, Task task) except -1
    cdef int forget_all(self) except -1
    cdef int retrieve_and_forget(self) except -1
    cdef Waiter wait_done_or_failed(self)
    cdef Task first_failed(self)


cdef class TaskGroup(Group):
    cdef object parent              # the task running the body (rio or asyncio)
    cdef bint aborting              # children cancelled: no new ones
    cdef bint parent_cancel_requested
    # The body's cancel scope, entered with the group: the group cancels its
    # body through it, so a shield around the group does not hold that back
    # (a shield inside the body does, until it exits).
    cdef CancelScope body_scope
    cdef list errors
    cdef object base_error          # a KeyboardInterrupt or SystemExit seen
    cdef int abort(self) except -1
    cdef Task spawn_checked(self, object coro, object name, object status)
    cdef int child_left(self, Task task) except -1
    cdef int child_failed(self, Task task) except -1


cdef class TaskStatus(Primitive):
    # What ``TaskGroup.start`` hands its child as ``task_status``.
    cdef Task task
    cdef bint started_
    cdef object value
    cdef object error               # set when the child exited before started()
    cdef WaitQueue waiters
    cdef int child_exited(self, Task task) except -1
