"""rio-rt's pytest plugin (``rio_rt.pytest_plugin``, docs/testing.md).

Each test runs an inner pytest session (``pytester``, in this process) on a small
test file and asserts on its outcomes. The plugin reaches the inner session
through its ``pytest11`` entry point, as it reaches users' sessions; so do
pytest-asyncio's and anyio's, which the coexistence and recipe tests use (they are
in the ``test`` extra). Inner sessions turn warnings into errors, as this suite
does, so a plugin that warns about a test fails it.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# pytest-asyncio asks for a setting of its own (as in pyproject.toml)
UNSET_LOOP_SCOPE = 'The configuration option "asyncio_default_fixture_loop_scope"'
INI = f"""
[pytest]
filterwarnings =
    error
    ignore:{UNSET_LOOP_SCOPE}:pytest.PytestDeprecationWarning
{{extra}}
"""


def run(pytester: pytest.Pytester, source: str, *args: str, ini: str = "") -> pytest.RunResult:
    """Run ``source`` as the inner session's only test file."""
    pytester.makeini(INI.format(extra=ini))
    pytester.makepyfile(test_inner=source)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", *args)
    # The outcomes are read from the output. The recorded hook calls hold the
    # inner failures' tracebacks, whose frames hold that session's tasks: drop
    # them, so the debug build's leak check sees only real leaks.
    recorder = getattr(result, "reprec", None)
    if recorder is not None:
        recorder.calls.clear()
    return result


@pytest.fixture(autouse=True)
def _plugin_installed(pytester: pytest.Pytester) -> None:
    from importlib.metadata import entry_points

    if not any(ep.value == "rio_rt.pytest_plugin" for ep in entry_points(group="pytest11")):
        pytest.skip("rio-rt is not installed with its pytest11 entry point")


# ------------------------------------------------------------------ markers and modes


def test_marked_test_runs_as_the_main_task_of_a_fresh_rio_loop(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import asyncio
        import pytest
        import rio_core
        import rio_rt as rio

        seen = []

        @pytest.mark.rio
        async def test_native(rio_runtime):
            assert isinstance(rio_runtime, rio.Loop)
            assert rio_core.current_runtime() is rio_runtime
            assert asyncio.get_running_loop() is rio_runtime   # asyncio works inside
            assert rio.current_task() is not None
            assert asyncio.current_task() is rio.current_task()  # one kind of task
            await asyncio.sleep(0)
            assert await rio.spawn(asyncio.sleep(0, "joined")) == "joined"
            assert rio_runtime.clock is None                   # real time by default
            seen.append(rio_runtime)

        @pytest.mark.rio
        async def test_another(rio_runtime):
            seen.append(rio_runtime)

        def test_one_loop_per_test():
            assert len(seen) == 2 and seen[0] is not seen[1]
            assert all(loop.is_closed() for loop in seen)
        """,
    )
    result.assert_outcomes(passed=3)


def test_asyncio_style_runs_an_asyncio_task_on_a_rio_loop(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import asyncio
        import pytest
        import rio_core
        import rio_rt as rio

        async def answer():
            await rio.sleep(0)
            return 42

        @pytest.mark.rio(asyncio=True)
        async def test_asyncio_task(rio_runtime):
            assert rio_core.current_runtime() is rio_runtime
            assert asyncio.get_running_loop() is rio_runtime
            assert isinstance(asyncio.current_task(), asyncio.Task)
            lock = asyncio.Lock()
            async with asyncio.timeout(5), lock:           # needs an asyncio task
                async with asyncio.TaskGroup() as group:
                    task = group.create_task(answer())
            assert task.result() == 42
            assert await rio.spawn(answer()) == 42             # and native tasks
        """,
    )
    result.assert_outcomes(passed=1)


def test_strict_mode_leaves_unmarked_async_tests_alone(pytester: pytest.Pytester) -> None:
    source = """
        import pytest

        async def test_unmarked():
            pass

        @pytest.mark.rio
        async def test_marked():
            pass
        """
    result = run(pytester, source, "-p", "no:asyncio", "-p", "no:anyio")
    # pytest itself fails an async test no plugin ran
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*_ test_unmarked _*", "async def functions are not natively*"])


@pytest.mark.parametrize("how", ["ini", "option"])
def test_auto_mode_runs_unmarked_async_tests(pytester: pytest.Pytester, how: str) -> None:
    source = """
        import pytest
        import rio_core

        async def test_unmarked(rio_runtime):
            assert rio_core.current_runtime() is rio_runtime

        class TestInAClass:
            async def test_method(self, rio_runtime):
                assert rio_core.current_runtime() is rio_runtime

        def test_sync_tests_stay_sync():
            assert rio_core.current_runtime() is None
        """
    if how == "ini":
        result = run(pytester, source, "-p", "no:asyncio", ini="rio_mode = auto")
    else:
        result = run(pytester, source, "-p", "no:asyncio", "--rio-mode=auto")
    result.assert_outcomes(passed=3)


def test_marker_arguments_are_checked(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.rio(trio=True)
        async def test_bad():
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*mark.rio takes only the keyword 'asyncio'*trio*"])


def test_failures_skips_and_xfails_are_reported_as_usual(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        import rio_rt as rio

        @pytest.mark.rio
        async def test_fails():
            await rio.sleep(0)
            assert 1 + 1 == 3

        @pytest.mark.rio(asyncio=True)
        async def test_skips():
            pytest.skip("not today")

        @pytest.mark.rio
        @pytest.mark.xfail(raises=KeyError, strict=True)
        async def test_xfails():
            raise KeyError("k")
        """,
    )
    result.assert_outcomes(failed=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*assert (1 + 1) == 3*"])


# ------------------------------------------------------------------ fixtures


FIXTURES = """
import asyncio
import pytest
import rio_core
import rio_rt as rio

log = []

@pytest.fixture
def sync_resource():
    log.append("sync up")
    yield "s"
    log.append("sync down")

@pytest.fixture
async def outer(sync_resource, rio_runtime):
    assert rio_core.current_runtime() is rio_runtime
    task = rio.spawn(asyncio.sleep(3600))     # a background task that lives until teardown
    log.append("outer up")
    yield (sync_resource + "o", task)
    assert not task.done()                # still alive: same main task
    task.cancel()
    log.append("outer down")

@pytest.fixture
async def inner(outer, rio_runtime):
    assert rio_core.current_runtime() is rio_runtime
    await rio.sleep(0)
    log.append("inner up")
    yield outer[0] + "i"
    log.append("inner down")

@pytest.fixture
async def plain(inner):
    log.append("plain")
    return inner + "p"
"""


@pytest.mark.parametrize("style", ["", "(asyncio=True)"])
def test_async_fixtures_run_in_the_tests_runtime_and_tear_down_in_reverse(
    pytester: pytest.Pytester, style: str
) -> None:
    result = run(
        pytester,
        FIXTURES
        + f"""
@pytest.mark.rio{style}
async def test_uses_them(plain, inner, rio_runtime):
    assert rio_core.current_runtime() is rio_runtime
    assert (plain, inner) == ("soip", "soi")
    log.append("test")

@pytest.mark.rio{style}
async def test_teardown_runs_after_a_failure(inner):
    log.append("failing test")
    raise RuntimeError("test body failed")

def test_order():
    run = ["sync up", "outer up", "inner up"]
    down = ["inner down", "outer down", "sync down"]
    assert log == run + ["plain", "test"] + down + run + ["failing test"] + down
""",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: test body failed*"])


def test_fixture_errors(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.fixture(scope="module")
        async def shared():
            return 1

        @pytest.fixture
        async def async_value():
            return 1

        @pytest.fixture
        def sync_on_async(async_value):
            return async_value

        @pytest.fixture
        async def broken_teardown():
            yield
            raise OSError("teardown failed")

        @pytest.mark.rio
        async def test_module_scoped(shared):
            pass

        @pytest.mark.rio
        async def test_sync_on_async(sync_on_async):
            pass

        @pytest.mark.rio
        async def test_teardown(broken_teardown):
            pass
        """,
    )
    result.assert_outcomes(failed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*async fixture 'shared' has scope 'module'*function-scoped*",
            "*sync fixture 'sync_on_async' depends on async fixture 'async_value'*",
            "*OSError: teardown failed*",
        ]
    )


# ------------------------------------------------------------------ the clock


def test_rio_clock_makes_timers_take_no_real_time(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import asyncio
        import time
        import pytest
        import rio_rt as rio
        from rio_rt.testing import MockClock

        @pytest.fixture
        async def waits_an_hour(rio_clock):
            await rio.sleep(3600)

        @pytest.mark.rio
        async def test_native(rio_clock, rio_runtime):
            assert isinstance(rio_clock, MockClock) and rio_runtime.clock is rio_clock
            start, virtual = time.monotonic(), rio.monotonic()
            await rio.sleep(3600)
            # (float seconds: the difference of two readings exactly an hour
            # apart can come out a few picoseconds short, by the clock's value)
            assert rio.monotonic() - virtual >= 3600 - 1e-6
            assert time.monotonic() - start < 5

        @pytest.mark.rio(asyncio=True)
        async def test_asyncio(rio_clock, rio_runtime):
            start, virtual = time.monotonic(), rio_runtime.time()
            await asyncio.sleep(3600)
            async with rio.timeout(7200):
                await asyncio.sleep(3600)
            assert rio_runtime.time() - virtual >= 7200 - 1e-6
            assert time.monotonic() - start < 5

        @pytest.mark.rio
        async def test_through_a_fixture(waits_an_hour, rio_runtime):
            assert rio_runtime.clock is not None
        """,
    )
    result.assert_outcomes(passed=3)
    assert result.duration < 20


# ------------------------------------------------------------------ unjoined tasks


def test_a_failed_task_never_joined_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import asyncio
        import gc
        import sys
        import pytest
        import rio_rt as rio

        async def explode():
            await rio.sleep(0)
            raise ValueError("exploded in a spawned task")

        @pytest.mark.rio
        async def test_unjoined():
            rio.spawn(explode(), name="left-alone")
            await rio.sleep(0.01)

        @pytest.mark.rio(asyncio=True)
        async def test_unjoined_from_an_asyncio_task():
            rio.spawn(explode())
            await asyncio.sleep(0.01)

        @pytest.mark.rio
        async def test_failing_test_and_unjoined():
            rio.spawn(explode())
            await rio.sleep(0.01)
            assert False, "the test's own failure"

        @pytest.mark.rio
        async def test_joined():
            with pytest.raises(ValueError):
                await rio.spawn(explode())

        @pytest.mark.rio
        async def test_other_unraisables_still_reach_pytest():
            class Noisy:
                def __del__(self):
                    raise KeyError("from __del__")
            Noisy()
            gc.collect()
        """,
    )
    result.assert_outcomes(passed=1, failed=4)
    out = result.stdout.str()
    assert out.count("exploded in a spawned task") >= 3
    result.stdout.fnmatch_lines(
        [
            "*test_unjoined*",
            "*rio task exception was never retrieved (1 task(s) of this test)*",
            "*in explode*",
            "*ValueError: exploded in a spawned task*",
        ]
    )
    result.stdout.fnmatch_lines(["*the test's own failure*", "*a rio task failed*"])
    result.stdout.fnmatch_lines(["*test_other_unraisables*", "*KeyError*from __del__*"])


# ------------------------------------------------------------------ pytest-asyncio


def test_coexists_with_pytest_asyncio_in_auto_mode(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_asyncio")
    result = run(
        pytester,
        """
        import asyncio
        import pytest
        import pytest_asyncio
        import rio_core
        import rio_rt as rio

        runs = []

        @pytest.fixture
        async def plain_async():
            runs.append(type(asyncio.get_running_loop()))
            return rio_core.current_runtime()

        @pytest_asyncio.fixture
        async def marked_async():
            return rio_core.current_runtime()

        @pytest.mark.rio
        async def test_on_rio(plain_async, marked_async, rio_runtime):
            assert plain_async is marked_async is rio_runtime
            # rio's main task, not pytest-asyncio's
            assert asyncio.current_task().get_name() == "main"
            runs.append("rio")

        async def test_on_pytest_asyncio(plain_async):
            assert plain_async is None
            assert not isinstance(asyncio.get_running_loop(), rio.Loop)
            runs.append("asyncio")

        def test_each_ran_once():
            assert runs[0] is rio.Loop and runs[1] == "rio"
            assert runs[2] is not rio.Loop and runs[3] == "asyncio"
        """,
        ini="asyncio_mode = auto",
    )
    result.assert_outcomes(passed=3)


def test_rio_asyncio_loop_runs_pytest_asyncio_and_asyncio_run_on_rio(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_asyncio")
    source = """
        import asyncio
        import pytest
        import pytest_asyncio
        import rio_rt as rio

        @pytest_asyncio.fixture
        async def fixture_loop():
            return asyncio.get_running_loop()

        @pytest.mark.asyncio
        async def test_pytest_asyncio(fixture_loop):
            assert isinstance(asyncio.get_running_loop(), rio.Loop)
            assert fixture_loop is asyncio.get_running_loop()

        def test_asyncio_run():
            async def main():
                return type(asyncio.get_running_loop())
            assert asyncio.run(main()) is rio.Loop
        """
    run(pytester, source, "--rio-asyncio").assert_outcomes(passed=2)
    run(pytester, source, ini="rio_asyncio_loop = true").assert_outcomes(passed=2)
    # and without the option, the stdlib's loops
    run(pytester, source).assert_outcomes(failed=2)


def test_pytest_asyncio_recipe(pytester: pytest.Pytester) -> None:
    """docs/testing.md: pytest-asyncio's loop factory hook in a conftest."""
    pytest.importorskip("pytest_asyncio")
    pytester.makeconftest(
        """
        import rio_rt

        def pytest_asyncio_loop_factories(config, item):
            return {"rio": rio_rt.new_event_loop}
        """
    )
    result = run(
        pytester,
        """
        import asyncio
        import pytest
        import pytest_asyncio
        import rio_rt as rio

        @pytest_asyncio.fixture
        async def server_loop():
            return asyncio.get_running_loop()

        @pytest.mark.asyncio
        async def test_runs_on_rio(server_loop):
            loop = asyncio.get_running_loop()
            assert isinstance(loop, rio.Loop) and server_loop is loop
            assert await rio.spawn(asyncio.sleep(0, "native")) == "native"
        """,
    )
    result.assert_outcomes(passed=1)


# ------------------------------------------------------------------ anyio


def test_anyio_recipe_and_rio_auto_mode_leaves_anyio_tests_alone(
    pytester: pytest.Pytester,
) -> None:
    """docs/testing.md: anyio's ``anyio_backend`` fixture with rio's loop factory."""
    pytest.importorskip("anyio")
    result = run(
        pytester,
        """
        import asyncio
        import anyio
        import pytest
        import rio_rt as rio

        @pytest.fixture
        def anyio_backend():
            return ("asyncio", {"loop_factory": rio.new_event_loop})

        @pytest.fixture
        async def anyio_fixture():
            return asyncio.get_running_loop()

        @pytest.mark.anyio
        async def test_on_anyio(anyio_fixture):
            assert isinstance(asyncio.get_running_loop(), rio.Loop)
            assert anyio_fixture is asyncio.get_running_loop()
            with anyio.fail_after(5):
                async with anyio.create_task_group() as group:
                    group.start_soon(anyio.sleep, 0)
        """,
        "-p",
        "no:asyncio",
        ini="rio_mode = auto",
    )
    result.assert_outcomes(passed=1)


def test_both_auto_modes_and_rio_asyncio_loop(pytester: pytest.Pytester) -> None:
    """Unmarked tests go to rio; marked asyncio ones to pytest-asyncio (on rio's loop
    under --rio-asyncio); each runs once, with no warning."""
    pytest.importorskip("pytest_asyncio")
    result = run(
        pytester,
        """
        import asyncio
        import pytest
        import rio_core
        import rio_rt as rio

        runs = []

        @pytest.fixture
        async def which():
            return "rio" if asyncio.current_task().get_name() == "main" else "asyncio"

        async def test_unmarked(which, rio_runtime):
            assert rio_core.current_runtime() is rio_runtime
            runs.append(which)

        @pytest.mark.rio
        async def test_rio(which):
            runs.append(which)

        @pytest.mark.asyncio
        async def test_asyncio(which):
            assert isinstance(asyncio.get_running_loop(), rio.Loop)
            runs.append(which)

        def test_runs():
            assert runs == ["rio", "rio", "asyncio"]
        """,
        "--rio-asyncio",
        ini="rio_mode = auto\nasyncio_mode = auto",
    )
    result.assert_outcomes(passed=4)


def test_rio_clock_can_be_overridden(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        import rio_rt as rio
        from rio_rt.testing import MockClock

        @pytest.fixture
        def rio_clock():
            return MockClock(rate=0.0, autojump_threshold=0.5)

        @pytest.mark.rio
        async def test_clock(rio_runtime, rio_clock):
            assert rio_runtime.clock is rio_clock
            assert rio_clock.autojump_threshold == 0.5
            rio_clock.jump(10)
            start = rio.monotonic()
            await rio.sleep(5)
            assert rio.monotonic() - start >= 5
        """,
    )
    result.assert_outcomes(passed=1)


def test_classes_parameters_and_sync_tests(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import asyncio
        import pytest
        import rio_core

        class TestInAClass:
            @pytest.fixture
            async def me(self):
                await asyncio.sleep(0)
                return self

            @pytest.mark.rio
            @pytest.mark.parametrize("n", [1, 2])
            async def test_method(self, me, n):
                assert me is self and n in (1, 2)

        @pytest.mark.rio
        def test_a_marked_sync_test_stays_sync():
            assert rio_core.current_runtime() is None

        def test_sync_test_with_rio_runtime(rio_runtime):
            async def main():
                return rio_core.current_runtime()
            assert rio_runtime.block_on(main()) is rio_runtime
        """,
    )
    result.assert_outcomes(passed=4)
