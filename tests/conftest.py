"""Shared fixtures for the rio-rt suite.

Test modules are imported with ``--import-mode=importlib``, so they cannot
``import conftest``: helpers are handed out as fixtures instead, or live in a
plain module of this folder, which is put on ``sys.path`` here
(``thread_helpers``: bounded waits and joins for tests that use threads).

- ``run``: the ``run(coro_fn, autojump=True)`` helper. It calls ``coro_fn()``
  and drives the coroutine on a fresh ``rio.Runtime(autojump_clock=autojump)``,
  so timer-heavy tests take no real time.
- ``unraisable``: collects everything reported through ``sys.unraisablehook``
  during the test (pytest would otherwise turn it into an error because of
  ``filterwarnings = error``).
- An autouse fixture that, in a ``RIO_DEBUG=1`` build, checks after every test
  that the engine freed all the objects the test made
  (``rio_core.debug_counters()`` back to zero once garbage is collected).
- An autouse watchdog: a test still running after ``TEST_TIME_LIMIT`` seconds
  gets ``TestTookTooLong`` raised from SIGALRM, so a lost wake-up fails one test
  instead of hanging the suite (the runtime must let signal handlers run while
  it waits in the OS, as it must for Ctrl-C).
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import rio_core

sys.path.insert(0, str(Path(__file__).resolve().parent))  # thread_helpers

import rio_rt as rio
from rio_rt.testing import LOOP_FACTORIES, run_on_loop


def run(coro_fn: Callable[[], Coroutine[Any, Any, Any]], autojump: bool = True) -> Any:
    """Run ``coro_fn()`` as the main task of a fresh runtime and return its value."""
    return rio.Runtime(autojump_clock=autojump).block_on(coro_fn())


@pytest.fixture(name="run")
def run_fixture() -> Callable[..., Any]:
    return run


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ``sys.unraisablehook`` report made while the test runs."""
    reports: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)
    yield reports
    # Reports triggered by the test's own garbage still belong to it; then let
    # go of them (a report holds the failed task).
    gc.collect()
    reports.clear()


TEST_TIME_LIMIT = 30.0


class TestTookTooLong(Exception):
    __test__ = False  # not a test class, whatever its name says


@pytest.fixture(autouse=True)
def watchdog() -> Any:
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TestTookTooLong(f"test still running after {TEST_TIME_LIMIT} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIME_LIMIT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def engine_objects_freed() -> Any:
    """In a debug build, every engine object must be gone once garbage is collected.

    The check is against the counts when the test began (zero unless an earlier
    test already leaked and was reported), so one leak fails one test.
    """
    if not rio_core.debug_build():
        yield
        return
    gc.collect()
    before = rio_core.debug_counters()
    yield
    # a failed in-process test (pytester) leaves its traceback here for
    # post-mortem debugging; its frames would hold that test's tasks
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            delattr(sys, name)
    gc.collect()
    after = rio_core.debug_counters()
    leaked = {
        name: count - before.get(name, 0)
        for name, count in after.items()
        if count > before.get(name, 0)
    }
    assert not leaked, f"engine objects left alive by this test: {leaked} (all counters: {after})"


# ---- the asyncio door: the same test body on stdlib asyncio (the oracle) and on rio


@pytest.fixture(params=["asyncio", "rio"])
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], Any]:
    return LOOP_FACTORIES[request.param]


@pytest.fixture
def arun(loop_factory: Callable[[], Any]) -> Callable[..., Any]:
    """``arun(coro, seconds=..., debug=...)``: run a coroutine on a fresh loop of the
    parametrized kind, bounded in time."""
    return lambda coro, **kw: run_on_loop(loop_factory, coro, **kw)
