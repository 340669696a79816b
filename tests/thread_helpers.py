"""Helpers for tests that wake a runtime from plain threads, every wait bounded.

Test modules are imported with ``--import-mode=importlib``; ``conftest.py``
puts this folder on ``sys.path`` so they can ``from thread_helpers import ...``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

REAL_GUARD = 10.0  # real seconds a cross-thread step may take before the test fails


def wait_until(predicate: Callable[[], object], seconds: float = REAL_GUARD) -> None:
    """In a plain thread: poll ``predicate`` until it is true (bounded)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


def start_thread(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread) -> None:
    thread.join(REAL_GUARD)
    assert not thread.is_alive(), "thread did not finish"
