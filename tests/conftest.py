"""Shared fixtures for the rio-rt suite.

Test modules are imported with ``--import-mode=importlib``, so they cannot
``import conftest``: helpers are handed out as fixtures instead.

- ``run``: the ``run(coro_fn, autojump=True)`` helper. It calls ``coro_fn()``
  and drives the coroutine on a fresh ``rio.Runtime(autojump_clock=autojump)``,
  so timer-heavy tests take no real time.
- ``unraisable``: collects everything reported through ``sys.unraisablehook``
  during the test (pytest would otherwise turn it into an error because of
  ``filterwarnings = error``).
- An autouse fixture that, in a ``RIO_DEBUG=1`` build, checks after every test
  that the engine freed all its objects (``rio_core.debug_counters()``).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import rio_core

import rio_rt as rio


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
    # Reports triggered by the test's own garbage still belong to it.
    gc.collect()


@pytest.fixture(autouse=True)
def engine_objects_freed() -> Any:
    """In a debug build, every engine object must be gone once garbage is collected."""
    yield
    if rio_core.debug_build():
        gc.collect()
        counters = rio_core.debug_counters()
        leaked = {name: count for name, count in counters.items() if count != 0}
        assert not leaked, f"engine objects still alive after the test: {leaked}"
