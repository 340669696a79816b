"""Seeing what runs: task listings, await-chain stacks, the dump, the watchdog.

Design note
-----------
Everything here reads what the scheduler (``rio_core._runtime``) already
keeps, so none of it costs the step path anything:

- the live tasks are the runtime's intrusive list (``Runtime.all_tasks``);
- a task's parent is the id stored at spawn (no reference), found, like its
  children, by a scan of the live list;
- a task's stack is its coroutine's await chain: ``cr_await`` (coroutines)
  and ``gi_yieldfrom`` (generators) are followed from the task's coroutine to
  the leaf, the object the innermost frame waits on (a ``Sleep``, a
  ``_sync`` Waiter, a joined Task, an asyncio Future). An asyncio Future is
  awaited through an iterator that hides it, so the task's ``_fut_waiter``
  names it instead.

The watchdog is a thread that reads what a step publishes when (and only
when) ``slow_poll`` is set: the step's number and start time
(``Runtime._step_probe``). A step still running after the threshold is
reported once, with the runtime thread's current Python stack
(``sys._current_frames``). The thread needs the GIL to look, so a step that
holds the GIL in C code for its whole length is reported when it releases
it; Python code and blocking calls (``time.sleep``, I/O) release it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import traceback
from dataclasses import dataclass, field
from typing import IO, Any

from rio_core._runtime import Join, Runtime, Task, _real_monotonic_ns, current_runtime

logger = logging.getLogger("rio_rt")

# An await chain longer than this is cut (a cycle cannot happen, a very deep
# recursion can).
MAX_CHAIN = 1000


@dataclass(frozen=True)
class TaskStack:
    """Where a task is suspended: ``frames``, outermost first (the task's own
    coroutine first), and ``leaf``, what the innermost frame waits on (None for
    a task that is running, new, or done)."""

    frames: list[traceback.FrameSummary]
    leaf: Any = None

    def format(self) -> list[str]:
        lines = [f"{frame.name}() at {frame.filename}:{frame.lineno}" for frame in self.frames]
        if self.leaf is not None:
            lines.append(f"waiting on {_describe_leaf(self.leaf)}")
        return lines


def _summary(frame: Any) -> traceback.FrameSummary:
    code = frame.f_code
    return traceback.FrameSummary(
        code.co_filename, frame.f_lineno or code.co_firstlineno, code.co_name, line=None
    )


def _describe_leaf(leaf: Any) -> str:
    try:
        return repr(leaf)
    except Exception as exc:  # a broken __repr__ must not stop a dump
        return f"<{type(leaf).__name__} (repr failed: {exc!r})>"


def _coro_of(task: Any) -> Any:
    get_coro = getattr(task, "get_coro", None)
    return get_coro() if get_coro is not None else None


def task_stack(task: Any) -> TaskStack:
    """The await chain of a rio or asyncio task, as a :class:`TaskStack`."""
    frames: list[traceback.FrameSummary] = []
    obj = _coro_of(task)
    leaf = None
    for _ in range(MAX_CHAIN):
        if obj is None:
            break
        frame = getattr(obj, "cr_frame", None)
        if frame is None:
            frame = getattr(obj, "gi_frame", None)
        if frame is None:
            frame = getattr(obj, "ag_frame", None)
        if type(obj) is Join:
            leaf = obj.task  # `await task`: the task it joins
            break
        if frame is None and not hasattr(obj, "cr_await") and not hasattr(obj, "gi_yieldfrom"):
            leaf = obj  # not a coroutine or generator: what the chain waits on
            break
        if frame is not None:
            frames.append(_summary(frame))
        if hasattr(obj, "cr_await"):
            obj = obj.cr_await
        elif hasattr(obj, "gi_yieldfrom"):
            obj = obj.gi_yieldfrom
        else:
            obj = getattr(obj, "ag_await", None)
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is not None and (leaf is None or not isinstance(leaf, asyncio.Future)):
        leaf = waiter  # the asyncio future, which its awaiting iterator hides
    if task.done():
        leaf = None
    return TaskStack(frames, leaf)


def all_tasks(runtime: Runtime | None = None) -> list[Task[Any]]:
    """The live rio tasks of ``runtime`` (default: the running one), oldest first."""
    rt = runtime if runtime is not None else current_runtime()
    if rt is None:
        raise RuntimeError("all_tasks() needs a running rio runtime or a runtime argument")
    return rt.all_tasks()


def _asyncio_tasks(rt: Runtime) -> list[Any]:
    if not isinstance(rt, asyncio.AbstractEventLoop):
        return []
    try:
        foreign = [task for task in asyncio.all_tasks(rt) if type(task) is not Task]
        return sorted(foreign, key=lambda task: task.get_name())
    except RuntimeError:  # the task set changed size while we looked
        return []


def format_tasks(runtime: Runtime | None = None) -> str:
    """The text :func:`dump_tasks` writes."""
    rt = runtime if runtime is not None else current_runtime()
    if rt is None:
        return "rio: no runtime is running in this thread\n"
    native = rt.all_tasks()
    foreign = _asyncio_tasks(rt)
    out = [
        f"rio runtime {type(rt).__name__}: {len(native)} rio tasks, {len(foreign)} asyncio tasks"
    ]
    for task in native:
        parent = task.parent
        out.append(
            f"rio task {task.name!r} id={task.id} state={task._sched_state} age={task.age:.3f}s "
            f"polls={task.polls} wakes={task.wakes}"
            + (f" step_time={task.step_time:.6f}s" if rt.instrumented else "")
            + (f" parent={parent.name!r}" if parent is not None else "")
            + (f" parent_id={task.parent_id} (done)" if parent is None and task.parent_id else "")
        )
        out.extend(f"    {line}" for line in task_stack(task).format())
    for task in foreign:
        state = "done" if task.done() else "pending"
        out.append(f"asyncio task {task.get_name()!r} state={state}")
        out.extend(f"    {line}" for line in task_stack(task).format())
    return "\n".join(out) + "\n"


def dump_tasks(file: IO[str] | None = None, runtime: Runtime | None = None) -> None:
    """Write every task of ``runtime`` (default: the running one): rio tasks and
    asyncio tasks on rio's loop, each with its name, id, state, age and await chain,
    to ``file`` (default ``sys.stderr``)."""
    stream = file if file is not None else sys.stderr
    stream.write(format_tasks(runtime))
    stream.flush()


# --------------------------------------------------------------------------- watchdog


@dataclass(frozen=True)
class SlowPoll:
    """A step that has run longer than ``slow_poll``, seen while it still runs.

    ``entry``: the rio Task being stepped (on rio's loop: the asyncio Task whose
    step it is, or the callback's Handle); ``description``: its repr when seen;
    ``seconds``: how long the step had run when it was seen;
    ``started``/``reported_at``: real monotonic seconds (``time.monotonic()`` on
    Linux and macOS); ``stack``: the runtime thread's Python stack at that
    moment, outermost first."""

    entry: Any
    description: str
    seconds: float
    started: float
    reported_at: float
    stack: list[traceback.FrameSummary] = field(default_factory=list)

    def format(self) -> str:
        lines = [
            f"rio: {self.description} has been running one step for {self.seconds:.3f} s; it is in:"
        ]
        lines.extend(traceback.format_list(self.stack))
        return "\n".join(line.rstrip("\n") for line in lines)


def _step_owner(entry: Any) -> Any:
    """The asyncio Task whose step (or wakeup) a Handle runs, else the entry."""
    owner = getattr(getattr(entry, "_callback", None), "__self__", None)
    return owner if isinstance(owner, asyncio.Task) else entry


def log_slow_poll(report: SlowPoll) -> None:
    """The default ``on_slow_poll``: a warning on the ``rio_rt`` logger."""
    logger.warning("%s", report.format())


class Watchdog:
    """The thread that watches one runtime's steps while it runs."""

    def __init__(self, runtime: Runtime, threshold_ns: int, callback: Any) -> None:
        self.runtime = runtime
        self.threshold_ns = threshold_ns
        self.callback = callback if callback is not None else log_slow_poll
        self.thread_id = threading.get_ident()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="rio-watchdog", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=5.0)

    def run(self) -> None:
        interval = max(self.threshold_ns / 2e9, 0.001)
        reported = 0
        while not self.stopping.wait(interval):
            probe = self.runtime._step_probe()
            if probe is None:
                continue
            seq, started_ns, entry = probe
            del probe
            elapsed = _real_monotonic_ns() - started_ns
            if seq != reported and elapsed >= self.threshold_ns:
                reported = seq
                self.report(entry, started_ns, elapsed)
            del entry  # hold no task between looks

    def report(self, entry: Any, started_ns: int, elapsed: int) -> None:
        frame = sys._current_frames().get(self.thread_id)
        stack = traceback.extract_stack(frame) if frame is not None else []
        del frame
        now = _real_monotonic_ns() / 1e9
        entry = _step_owner(entry)
        report = SlowPoll(entry, _describe_leaf(entry), elapsed / 1e9, started_ns / 1e9, now, stack)
        try:
            self.callback(report)
        except Exception:
            # formatted here: a logged traceback object would keep the report's task alive
            logger.error("rio: the on_slow_poll callback failed:\n%s", traceback.format_exc())
