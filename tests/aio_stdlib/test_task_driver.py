"""CPython's own Task tests against a chosen Task class (task_driver.py beside this file).

With ``asyncio.tasks._PyTask`` as the candidate the driver must find no
difference from ``_CTask``, on CPython's TestLoop and on rio's loop: this proves
the driver (and today's rio loop with CPython's Tasks) before it judges a new
Task class. ``python tests/aio_stdlib/task_driver.py compare --task MOD:ATTR
--loops testloop,rio`` is the command for any other candidate.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DRIVER = Path(__file__).with_name("task_driver.py")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("test.test_asyncio") is None,
    reason="this CPython has no test.test_asyncio package (e.g. a distro python without tests)",
)


@pytest.fixture
def own_time_limits() -> Any:
    """The driver bounds itself (per test and per run): switch off the suite's
    SIGALRM watchdog and pytest's faulthandler dump for the length of a run."""
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)
    faulthandler.cancel_dump_traceback_later()
    yield


def compare(task: str, loops: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    command = [sys.executable, str(DRIVER), "compare", "--task", task, "--loops", loops,
               "--timeout", "300", "--test-timeout", "20", "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500, cwd=cwd, env=env)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout)


def test_pure_python_task_matches_the_c_task(own_time_limits, tmp_path):
    returncode, report = compare("asyncio.tasks:_PyTask", "testloop,rio", tmp_path)
    for loop in ("testloop", "rio"):
        per_loop = report["loops"][loop]
        cand, base = per_loop["candidate"], per_loop["baseline"]
        assert cand["status"] == base["status"] == "ok", per_loop
        assert base["tests"] > 300 and cand["tests"] == base["tests"], (loop, cand, base)
        # most of CPython's Task tests pass with asyncio's own Task on either loop
        assert base["pass"] >= base["tests"] - 10, (loop, base)
        assert per_loop["differences"] == [], (loop, per_loop["differences"])
    assert returncode == 0


BROKEN_TASK = """
import asyncio


class BrokenTask(asyncio.Task):
    def cancelling(self):
        return 0  # forgets the cancel requests
"""


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("RIO_STDLIB_TESTS") != "1", reason="a second driver run: RIO_STDLIB_TESTS=1"
)
def test_driver_reports_a_broken_task(own_time_limits, tmp_path):
    (tmp_path / "broken_task.py").write_text(BROKEN_TASK)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    returncode, report = compare("broken_task:BrokenTask", "testloop", tmp_path, env)
    assert returncode == 1
    differences = {item["test"] for item in report["loops"]["testloop"]["differences"]}
    assert "Task_Tests.test_cancelling" in differences
    assert "Task_Tests.test_uncancel_basic" in differences


# rio's Task on rio's loop: CPython's Task tests that pass with _CTask and not
# with it, each for a reason docs/native-api.md gives (the note of the change
# that made rio's Task the default lists them too). Any other difference fails.
RIO_TASK_DIFFERENCES = {
    # the constructor does not go through loop.call_soon (the engine queues it)
    "test_error_in_call_soon",
    # a pending task is kept alive by its loop until the loop closes
    "test_log_destroyed_pending_task",
    # not a subclass of _asyncio.Future: Future.set_result(task, ...) refuses it
    "test_set_exception_causes_invalid_state",
    "test_set_result_causes_invalid_state",
    # (3.14) subclasses the Task class under test: rio's Task is final
    "test_task_not_crash_without_finalization",
}


def test_rio_task_passes_cpythons_task_tests_but_the_listed_ones(own_time_limits, tmp_path):
    _, report = compare("rio_core._runtime:Task", "rio", tmp_path)
    per_loop = report["loops"]["rio"]
    cand, base = per_loop["candidate"], per_loop["baseline"]
    assert cand["status"] == base["status"] == "ok", per_loop
    unexpected = []
    for difference in per_loop["differences"]:
        case, test = difference["test"].split(".", 1)
        if case == "Task_SubclassTests" and difference["outcome"] == "missing":
            continue  # rio's Task is final: the subclass variants are not built
        if test not in RIO_TASK_DIFFERENCES:
            unexpected.append(difference)
    assert unexpected == []
    assert cand["tests"] > 200 and cand["pass"] >= cand["tests"] - 12, cand
