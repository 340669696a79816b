"""Run CPython's own asyncio test modules with rio's loop as the loop under test.

Two commands:

``python driver.py run --loop rio|asyncio --out FILE MODULE``
    Run one ``test.test_asyncio`` module in this process with unittest and
    append one JSON line per test to FILE (outcome, exception, whether the test
    built a loop of the kind under test). With ``--loop rio`` the driver first
    makes every way those tests construct a "real" loop build a ``rio_rt.Loop``:

    - ``rio_rt.install()``, and the default policy class's ``_loop_factory``
      (``asyncio.new_event_loop()``, ``asyncio.run``, ``asyncio.Runner`` and
      ``unittest.IsolatedAsyncioTestCase``; survives the
      ``set_event_loop_policy(None)`` the modules do in ``tearDownModule``);
    - ``asyncio.SelectorEventLoop`` (the ``create_event_loop`` of the
      loop-generic mixins in test_events, test_sock_lowlevel, test_sendfile,
      ...). Variants that pass a selector (epoll, poll, select) get a rio loop
      too: rio has one reactor, so those classes run the same loop again.

    ``test_utils.TestLoop`` (``new_test_loop()``, a fake-clock loop written
    for unit tests of Future/Task) is left alone: it is test scaffolding, not a
    loop under test. The ``on_loop`` field says which tests really ran on the
    loop under test. With ``--loop asyncio`` nothing is patched: stdlib asyncio
    is the oracle.

``python driver.py sweep [--loops rio,asyncio] [--timeout S] [MODULE ...]``
    Run ``run`` in a fresh subprocess per (module, loop), and print a JSON
    summary to stdout: per module and loop, the counts (passed, failed,
    errors, skipped, ...), how many tests ran on the loop under test, whether
    the subprocess crashed or timed out, and the failing tests with their
    exception. The default module list is the loop-generic set.

This file is a helper of tests/aio_stdlib/test_stdlib_asyncio.py, and a tool:
``python tests/aio_stdlib/driver.py sweep > summary.json``.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest
from typing import Any

DEFAULT_MODULES = [
    "test_events",
    "test_futures",
    "test_tasks",
    "test_base_events",
    "test_streams",
    "test_queues",
    "test_locks",
    "test_timeouts",
    "test_taskgroups",
]
LOOPS = ("rio", "asyncio")

# ------------------------------------------------------------------ run (in-process)

loops_built = 0  # loops of the kind under test, built so far


def count_loops_built(loop_class: Any) -> None:
    """Count the instances of ``loop_class`` (and subclasses) built from now on."""
    original_init = loop_class.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        global loops_built
        loops_built += 1
        original_init(self, *args, **kwargs)

    loop_class.__init__ = counting_init


def platform_events() -> Any:
    """asyncio's platform module: unix_events, or windows_events on Windows."""
    if sys.platform == "win32":
        import asyncio.windows_events as events
    else:
        import asyncio.unix_events as events
    return events


def patch_for_rio() -> None:
    """Make every real-loop constructor the asyncio tests use build a rio loop."""
    import asyncio

    import rio_rt

    unix_events = platform_events()  # named for POSIX; windows_events on Windows
    stdlib_selector_loop = unix_events.SelectorEventLoop

    def rio_loop(selector: Any = None) -> Any:
        if selector is not None:  # rio has one reactor: the selector is not used
            selector.close()
        return rio_rt.Loop()

    class SelectorEventLoop(stdlib_selector_loop):  # type: ignore[misc,valid-type]
        """Stands in for asyncio.SelectorEventLoop(selector=None) and builds a rio loop.

        A factory (``__new__``), not a subclass of rio_rt.Loop: rio_rt.Loop's own
        methods call ``asyncio.SelectorEventLoop.__init__``/``close`` by name, and
        this class inherits those unchanged from the stdlib class.
        """

        def __new__(cls, selector: Any = None) -> Any:
            return rio_loop(selector)

    count_loops_built(rio_rt.Loop)
    rio_rt.install()
    default_policy = (  # by its private name where it has one (3.14 deprecates the public)
        getattr(unix_events, "_UnixDefaultEventLoopPolicy", None)
        or getattr(unix_events, "_DefaultEventLoopPolicy", None)
        or unix_events.DefaultEventLoopPolicy
    )
    default_policy._loop_factory = staticmethod(rio_loop)
    asyncio.SelectorEventLoop = SelectorEventLoop
    unix_events.SelectorEventLoop = SelectorEventLoop
    if hasattr(asyncio, "EventLoop"):  # 3.13+: asyncio.EventLoop is the default loop class
        asyncio.EventLoop = SelectorEventLoop
        unix_events.EventLoop = SelectorEventLoop


def count_stdlib_loops() -> None:
    """The oracle run: count the stdlib selector loops the tests build (no behaviour change)."""
    count_loops_built(platform_events().SelectorEventLoop)


def describe(err: Any) -> dict[str, str]:
    exc_type, exc_value, tb = err
    frames = traceback.extract_tb(tb)
    where = ""
    for frame in reversed(frames):  # innermost frame outside unittest's own machinery
        if "/unittest/" not in frame.filename:
            where = f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
            break
    message = str(exc_value).strip().splitlines()[0][:300] if str(exc_value).strip() else ""
    return {"exc_type": exc_type.__name__, "message": message, "where": where}


class JsonLinesResult(unittest.TestResult):
    """Writes a JSON line when a test starts and one when it finishes.

    A test that hangs leaves a "start" line with no result: the sweep kills the
    process, records the test as timed out and runs the module again without
    the tests already recorded. ``faulthandler`` writes every thread's stack to
    ``traceback_file`` shortly before the sweep gives up on a test.
    """

    def __init__(self, out: Any, traceback_file: Any, test_timeout: float) -> None:
        super().__init__()
        self.out = out
        self.traceback_file = traceback_file
        self.test_timeout = test_timeout
        self.current: dict[str, Any] = {}
        self.loops_at_start = 0

    def emit(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def startTest(self, test: unittest.TestCase) -> None:  # noqa: N802 (unittest API)
        super().startTest(test)
        self.loops_at_start = loops_built
        self.current = {"test": test.id(), "outcome": "pass", "started": time.monotonic()}
        self.emit({"event": "start", "test": test.id()})
        if self.traceback_file is not None:
            self.traceback_file.seek(0)
            self.traceback_file.truncate()
            self.traceback_file.write(f"while running {test.id()}:\n")
            self.traceback_file.flush()
            faulthandler.dump_traceback_later(self.test_timeout, file=self.traceback_file)

    def stopTest(self, test: unittest.TestCase) -> None:  # noqa: N802
        super().stopTest(test)
        faulthandler.cancel_dump_traceback_later()
        record = self.current
        if record.get("test") != test.id() or "started" not in record:
            # a skipped test that never started (3.12.1 calls stopTest for it too);
            # addSkip recorded it
            return
        record["seconds"] = round(time.monotonic() - record.pop("started"), 3)
        record["on_loop"] = loops_built > self.loops_at_start
        self.emit(record)

    def _fail(self, kind: str, err: Any) -> None:
        if self.current.get("outcome") in ("fail", "error"):
            return  # keep the first problem of a test (subtests, cleanups)
        self.current.update({"outcome": kind, **describe(err)})

    def addFailure(self, test: Any, err: Any) -> None:  # noqa: N802
        super().addFailure(test, err)
        self._fail("fail", err)

    def addError(self, test: Any, err: Any) -> None:  # noqa: N802
        super().addError(test, err)
        if not isinstance(test, unittest.TestCase):  # setUpClass / setUpModule failures
            self.emit({"test": str(test), "outcome": "error", "on_loop": False, **describe(err)})
            return
        self._fail("error", err)

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:  # noqa: N802
        super().addSubTest(test, subtest, err)
        if err is not None:
            failure = issubclass(err[0], test.failureException)
            self._fail("fail" if failure else "error", err)

    def addSkip(self, test: Any, reason: str) -> None:  # noqa: N802
        super().addSkip(test, reason)
        if isinstance(test, unittest.TestCase) and self.current.get("test") == test.id():
            self.current.update({"outcome": "skip", "message": reason[:200]})
        else:  # a skipped class never starts its tests
            self.emit({"test": str(test), "outcome": "skip", "on_loop": False})

    def addExpectedFailure(self, test: Any, err: Any) -> None:  # noqa: N802
        super().addExpectedFailure(test, err)
        self.current["outcome"] = "xfail"

    def addUnexpectedSuccess(self, test: Any) -> None:  # noqa: N802
        super().addUnexpectedSuccess(test)
        self.current["outcome"] = "xpass"


def without(suite: unittest.TestSuite, excluded: set[str]) -> unittest.TestSuite:
    """``suite`` less the tests whose id is in ``excluded`` (keeps class/module fixtures)."""
    kept = unittest.TestSuite()
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            kept.addTest(without(item, excluded))
        elif item.id() not in excluded:
            kept.addTest(item)
    return kept


def end_with_parent() -> None:
    """If the sweep that started this process dies (killed by a timeout), end this
    process group too: it is its own session, so nothing else would end it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def run_module(
    loop: str,
    module: str,
    out_path: str,
    exclude_path: str | None = None,
    traceback_path: str | None = None,
    test_timeout: float = 60.0,
) -> int:
    if (
        hasattr(os, "getpgrp") and os.getpgrp() == os.getpid()
    ):  # started by the sweep, in a session of its own
        end_with_parent()
    if loop == "rio":
        patch_for_rio()
    else:
        count_stdlib_loops()
    # a bare CPython module name ("test_events") or any importable module name
    name = f"test.test_asyncio.{module}" if "." not in module else module
    if "." not in module and importlib.util.find_spec(name) is None:
        name = module
    with open(out_path, "a", encoding="utf-8") as out:
        try:
            importlib.import_module(name)
        except unittest.SkipTest as skip:
            out.write(json.dumps({"test": name, "outcome": "module-skip", "message": str(skip)}))
            out.write("\n")
            return 0
        suite = unittest.defaultTestLoader.loadTestsFromName(name)
        if exclude_path is not None:
            with open(exclude_path, encoding="utf-8") as exclude:
                suite = without(suite, {line.strip() for line in exclude if line.strip()})
        traceback_file = open(traceback_path, "w") if traceback_path else None  # noqa: SIM115
        try:
            suite.run(JsonLinesResult(out, traceback_file, test_timeout))
        finally:
            if traceback_file is not None:
                traceback_file.close()
    return 0


# ------------------------------------------------------------------ sweep (subprocesses)

OUTCOMES = ("pass", "fail", "error", "skip", "xfail", "xpass")


def read_records(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as file:
        lines = file.read().splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a kill
    return records


def main_thread_stack(dump: str, depth: int = 8) -> str:
    """The innermost frames of the main thread in a faulthandler dump."""
    blocks = dump.split("\n\n")
    for block in blocks:
        if "Current thread" in block or "Thread 0x" in block and block is blocks[-1]:
            frames = [line.strip() for line in block.splitlines()[1:] if line.strip()]
            return " <- ".join(frames[:depth])
    return ""


def run_once(
    command: list[str], work: str, out_path: str, deadline: float, test_timeout: float
) -> tuple[int | None, str]:
    """Run the driver subprocess until it exits, hangs on one test, or passes the deadline.

    Returns (exit code or None when killed, stderr tail).
    """
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    stderr_path = os.path.join(work, "stderr.txt")
    with open(stderr_path, "wb") as stderr:
        # its own session, so that the processes the tests start (subprocess and
        # process-pool tests) can be ended with it as one group
        process = subprocess.Popen(
            command, cwd=work, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )  # fmt: skip
        seen, last_progress = 0, time.monotonic()
        gave_up = False
        try:
            while process.poll() is None:
                time.sleep(0.2)
                size = os.path.getsize(out_path) if os.path.exists(out_path) else 0
                now = time.monotonic()
                if size != seen:
                    seen, last_progress = size, now
                if now > deadline or now - last_progress > test_timeout + 10:
                    gave_up = True
                    break
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the driver and what its tests left
            except ProcessLookupError:
                pass
            process.wait()
    with open(stderr_path, "rb") as stderr:
        stderr_tail = stderr.read().decode(errors="replace")[-3000:]
    return (None if gave_up else process.returncode), stderr_tail


def run_in_subprocess(
    loop: str, module: str, timeout: float, test_timeout: float = 60.0
) -> dict[str, Any]:
    """Run one module on one loop in subprocesses; a test that hangs or crashes the
    process is recorded as an error and the module goes on without it."""
    records: list[dict[str, Any]] = []
    done: set[str] = set()
    status, stderr_tail, restarts = "ok", "", 0
    started = time.monotonic()
    deadline = started + timeout
    with tempfile.TemporaryDirectory(prefix="rio-stdlib-") as work:
        out_path = os.path.join(work, "results.jsonl")
        exclude_path = os.path.join(work, "exclude.txt")
        traceback_path = os.path.join(work, "traceback.txt")
        while True:
            with open(exclude_path, "w", encoding="utf-8") as exclude:
                exclude.write("\n".join(sorted(done)))
            if os.path.exists(out_path):
                os.remove(out_path)
            command = [sys.executable, os.path.abspath(__file__), "run", "--loop", loop,
                       "--out", out_path, "--exclude", exclude_path,
                       "--traceback", traceback_path, "--test-timeout", str(test_timeout),
                       module]  # fmt: skip
            returncode, stderr_tail = run_once(command, work, out_path, deadline, test_timeout)
            running = None
            for record in read_records(out_path):
                if record.get("event") == "start":
                    running = record["test"]
                    continue
                records.append(record)
                done.add(record["test"])
                if record["test"] == running:
                    running = None
            if running is None:
                if returncode is None and time.monotonic() > deadline:
                    status = f"timeout after {time.monotonic() - started:.0f}s"
                elif returncode is None:
                    status = "hung after its last test result (killed)"
                elif returncode != 0:
                    status = f"exit {returncode}"
                break
            # the running test hung or took the process down: record it and go on
            if returncode is None:
                dump = ""
                if os.path.exists(traceback_path):
                    with open(traceback_path, encoding="utf-8", errors="replace") as file:
                        dump = file.read()
                failure = {"exc_type": "Hang", "message": f"no result in {test_timeout:.0f}s",
                           "where": main_thread_stack(dump)}  # fmt: skip
            else:
                last_line = (stderr_tail.strip().splitlines() or [""])[-1]
                failure = {"exc_type": f"Crash (exit {returncode})", "message": last_line[:300],
                           "where": ""}  # fmt: skip
            records.append({"test": running, "outcome": "error", "on_loop": True, **failure})
            done.add(running)
            restarts += 1
            if time.monotonic() > deadline:
                status = f"timeout after {time.monotonic() - started:.0f}s"
                break
    counts = dict.fromkeys(OUTCOMES, 0)
    on_loop = dict.fromkeys(OUTCOMES, 0)
    failing = []
    for record in records:
        outcome = record["outcome"]
        if outcome == "module-skip":
            status = "module skipped: " + record.get("message", "")
            continue
        counts[outcome] += 1
        if record.get("on_loop"):
            on_loop[outcome] += 1
        if outcome in ("fail", "error"):
            keys = ("test", "outcome", "exc_type", "message", "where", "on_loop")
            failing.append({key: record.get(key, "") for key in keys})
    summary: dict[str, Any] = {
        "status": status,
        "seconds": round(time.monotonic() - started, 1),
        "tests": sum(counts.values()),
        **counts,
        "on_loop": on_loop,
        "restarts": restarts,
        "failing": failing,
    }
    if status != "ok":
        summary["stderr_tail"] = stderr_tail
    return summary


def sweep(
    modules: list[str], loops: list[str], timeout: float, test_timeout: float
) -> dict[str, Any]:
    report: dict[str, Any] = {"python": sys.version.split()[0], "modules": {}}
    for module in modules:
        report["modules"][module] = {
            loop: run_in_subprocess(loop, module, timeout, test_timeout) for loop in loops
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one module in this process")
    run.add_argument("--loop", choices=LOOPS, required=True)
    run.add_argument("--out", required=True)
    run.add_argument("--exclude", help="file of test ids not to run")
    run.add_argument("--traceback", help="file for faulthandler's dump of a hung test")
    run.add_argument("--test-timeout", type=float, default=60.0)
    run.add_argument("module")
    sweep_cmd = commands.add_parser("sweep", help="run modules in subprocesses, print JSON")
    sweep_cmd.add_argument("--loops", default=",".join(LOOPS))
    sweep_cmd.add_argument("--timeout", type=float, default=900.0, help="per module and loop")
    sweep_cmd.add_argument("--test-timeout", type=float, default=60.0, help="per test")
    sweep_cmd.add_argument("--brief", action="store_true", help="omit the failing-test lists")
    sweep_cmd.add_argument("modules", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_module(
            args.loop, args.module, args.out, args.exclude, args.traceback, args.test_timeout
        )
    modules = args.modules or DEFAULT_MODULES
    report = sweep(modules, args.loops.split(","), args.timeout, args.test_timeout)
    if args.brief:
        for per_loop in report["modules"].values():
            for summary in per_loop.values():
                summary.pop("failing")
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
