"""The asyncio door's entry points: ``rio_rt.run``, ``rio_rt.install`` and
``python -m rio_rt``.

``rio_rt.run`` is held to ``asyncio.run`` (the oracle): same return value,
same exceptions, same cleanup of leftover tasks and async generators, same
Ctrl-C behaviour. ``python -m rio_rt`` is tested in subprocesses against its
contract: ``python -m rio_rt script.py [args]`` runs an unmodified asyncio
script as ``__main__`` with ``sys.argv == [script.py, *args]``, and
``asyncio.run``, ``asyncio.new_event_loop`` and ``asyncio.Runner`` in it make
rio loops; ``python -m rio_rt -m module [args]`` does the same for a module.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rio_rt as rio

SUBPROCESS_TIMEOUT = 60


# ------------------------------------------------------------------ rio_rt.run


def test_run_returns_the_value_on_a_rio_loop():
    async def main() -> tuple[str, type]:
        await asyncio.sleep(0)
        return "value", type(asyncio.get_running_loop())

    value, loop_type = rio.run(main())
    assert value == "value"
    assert loop_type is rio.Loop


@pytest.mark.parametrize("runner", [asyncio.run, rio.run], ids=["asyncio", "rio"])
def test_run_propagates_the_exception(runner):
    async def main() -> None:
        await asyncio.sleep(0)
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        runner(main())


@pytest.mark.parametrize("runner", [asyncio.run, rio.run], ids=["asyncio", "rio"])
def test_run_cancels_leftover_tasks_and_closes_async_generators(runner):
    log: list[str] = []
    keep: list[Any] = []

    async def leftover(name: str) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            log.append(f"{name}-cancelled")
            await asyncio.sleep(0)  # cleanup may await
            log.append(f"{name}-cleaned")
            raise

    async def agen() -> Any:
        try:
            yield 1
            yield 2
        finally:
            log.append("agen-closed")

    async def main() -> str:
        keep.append(asyncio.create_task(leftover("a")))
        keep.append(asyncio.create_task(leftover("b")))
        gen = agen()
        await gen.__anext__()
        keep.append(gen)
        await asyncio.sleep(0)
        return "main-done"

    assert runner(main()) == "main-done"
    assert sorted(log) == sorted(["a-cancelled", "a-cleaned", "b-cancelled", "b-cleaned",
                                  "agen-closed"])  # fmt: skip
    assert all(task.cancelled() for task in keep[:2])


@pytest.mark.parametrize("runner", [asyncio.run, rio.run], ids=["asyncio", "rio"])
def test_run_debug_flag(runner):
    async def debug_on() -> bool:
        return asyncio.get_running_loop().get_debug()

    assert runner(debug_on(), debug=True) is True
    assert runner(debug_on(), debug=False) is False


@pytest.mark.parametrize("runner", [asyncio.run, rio.run], ids=["asyncio", "rio"])
def test_run_refuses_a_non_coroutine(runner):
    # 3.14's Runner.run takes any awaitable, and refuses the rest with TypeError
    with pytest.raises(TypeError if sys.version_info >= (3, 14) else ValueError):
        runner(42)


@pytest.mark.parametrize("runner", [asyncio.run, rio.run], ids=["asyncio", "rio"])
def test_run_refuses_to_nest_in_a_running_loop(runner):
    async def inner() -> None:
        pass

    async def outer() -> str:
        coro = inner()
        try:
            runner(coro)
        except RuntimeError as exc:
            return str(exc)
        finally:
            coro.close()
        return "nested run was allowed"

    message = rio.run(outer())
    gc.collect()  # a coroutine left unawaited by the refused run warns here, inside the test
    assert "cannot be called from a running event loop" in message


@pytest.mark.parametrize("runner", [asyncio.run, rio.run], ids=["asyncio", "rio"])
def test_run_shuts_down_the_default_executor(runner):
    import threading

    async def main() -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: threading.current_thread().name)

    before = {t.name for t in threading.enumerate()}
    assert runner(main()).startswith(("asyncio_", "ThreadPoolExecutor"))
    after = {t.name for t in threading.enumerate()}
    assert after <= before  # the executor's worker threads are joined


# ------------------------------------------------------------------ Ctrl-C

CTRL_C_PROGRAM = """
import asyncio, sys
import rio_rt

async def main():
    try:
        print("ready", flush=True)
        await asyncio.sleep(60)
    finally:
        print("finally-ran", flush=True)

runner = asyncio.run if sys.argv[1] == "asyncio" else rio_rt.run
try:
    runner(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(42)
print("returned normally", flush=True)
"""


def run_ctrl_c_program(which: str) -> tuple[int, list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_PROGRAM, which],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),  # outside the source tree: import the installed package
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, stdout.split()


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_ctrl_c_in_run_cancels_main_then_raises_keyboard_interrupt():
    oracle = run_ctrl_c_program("asyncio")
    assert oracle == (42, ["finally-ran", "KeyboardInterrupt"])
    assert run_ctrl_c_program("rio") == oracle


# ------------------------------------------------------------------ install / policy


@pytest.fixture
def restore_policy() -> Iterator[None]:
    """Put back whatever event loop policy was installed before the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        previous = asyncio.get_event_loop_policy()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(previous)


def test_install_makes_asyncio_run_use_a_rio_loop(restore_policy):
    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert asyncio.run(loop_type()) is not rio.Loop
    rio.install()
    assert asyncio.run(loop_type()) is rio.Loop
    with asyncio.Runner() as runner:
        assert runner.run(loop_type()) is rio.Loop
    loop = asyncio.new_event_loop()
    try:
        assert type(loop) is rio.Loop
    finally:
        loop.close()


def test_restoring_the_policy_undoes_install(restore_policy):
    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    rio.install()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(None)
    assert asyncio.run(loop_type()) is not rio.Loop


def test_event_loop_policy_makes_rio_loops():
    policy = rio.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        assert type(loop) is rio.Loop
    finally:
        loop.close()


# ------------------------------------------------------------------ python -m rio_rt

HAS_MAIN = importlib.util.find_spec("rio_rt.__main__") is not None
needs_main = pytest.mark.xfail(
    not HAS_MAIN,
    reason="python/rio_rt/__main__.py (the `python -m rio_rt` runner) does not exist yet",
    strict=True,
)

PROBE_SOURCE = textwrap.dedent(
    """
    import asyncio
    import json
    import sys


    def describe(loop):
        return [type(loop).__module__, type(loop).__qualname__]


    async def running_loop():
        await asyncio.sleep(0)
        return describe(asyncio.get_running_loop())


    if __name__ == "__main__":
        report = {"name": __name__, "argv": sys.argv}
        report["asyncio.run"] = asyncio.run(running_loop())
        loop = asyncio.new_event_loop()
        try:
            report["new_event_loop"] = describe(loop)
        finally:
            loop.close()
        with asyncio.Runner() as runner:
            report["Runner"] = runner.run(running_loop())
        print(json.dumps(report))
        sys.exit(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 0)
    """
)


def run_rio_main(args: list[str], cwd: Path, extra_path: Path | None = None) -> Any:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "rio_rt", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


def assert_ran_on_rio(report: dict[str, Any]) -> None:
    assert report["name"] == "__main__"
    for api in ("asyncio.run", "new_event_loop", "Runner"):
        module, qualname = report[api]
        assert module.split(".")[0] == "rio_rt", f"{api} made a {module}.{qualname}"
        assert qualname == "Loop"


@needs_main
def test_python_m_rio_rt_runs_a_script_on_rio(tmp_path):
    script = tmp_path / "probe_script.py"
    script.write_text(PROBE_SOURCE)
    result = run_rio_main([str(script), "alpha", "--beta", "gamma"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["argv"] == [str(script), "alpha", "--beta", "gamma"]
    assert_ran_on_rio(report)


@needs_main
def test_python_m_rio_rt_passes_on_the_script_exit_status(tmp_path):
    script = tmp_path / "probe_script.py"
    script.write_text(PROBE_SOURCE)
    result = run_rio_main([str(script), "7"], cwd=tmp_path)
    assert result.returncode == 7, result.stderr


@needs_main
def test_python_m_rio_rt_script_imports_its_sibling_modules(tmp_path):
    """As with ``python script.py``: the script's directory is sys.path[0]."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "rio_sibling_helper.py").write_text("VALUE = 'from-sibling'\n")
    (scripts / "uses_sibling.py").write_text(
        "import asyncio, rio_sibling_helper\n"
        "async def main():\n"
        "    return rio_sibling_helper.VALUE\n"
        "print(asyncio.run(main()))\n"
    )
    result = run_rio_main([str(scripts / "uses_sibling.py")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-sibling"


@needs_main
def test_python_m_rio_rt_runs_a_module_on_rio(tmp_path):
    package = tmp_path / "site"
    package.mkdir()
    (package / "rio_probe_module.py").write_text(PROBE_SOURCE)
    result = run_rio_main(
        ["-m", "rio_probe_module", "one", "two"], cwd=tmp_path, extra_path=package
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # as with `python -m module`: argv[0] is the module's file
    assert Path(report["argv"][0]).name == "rio_probe_module.py"
    assert report["argv"][1:] == ["one", "two"]
    assert_ran_on_rio(report)


def test_probe_script_reports_stdlib_loops_without_rio(tmp_path):
    """The probe itself is honest: plain ``python script.py`` reports asyncio's loop."""
    script = tmp_path / "probe_script.py"
    script.write_text(PROBE_SOURCE)
    result = subprocess.run(
        [sys.executable, str(script), "x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["argv"] == [str(script), "x"]
    assert report["asyncio.run"][0].startswith("asyncio")
