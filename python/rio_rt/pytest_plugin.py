"""rio-rt's pytest plugin: ``async def`` tests and fixtures on rio.

Loaded automatically once rio-rt is installed (the ``pytest11`` entry point
``rio_rt``); ``-p no:rio_rt`` turns it off. The guide is ``docs/testing.md``.

- ``@pytest.mark.rio``: the ``async def`` test runs as the main task of a fresh
  rio loop (``rio_rt.new_event_loop()``), as ``rio_rt.block_on`` runs it: a
  native rio task, with rio's loop as the running asyncio loop.
  ``@pytest.mark.rio(asyncio=True)``: the test runs as an ``asyncio.Task`` on
  that loop (``asyncio.Runner``), for code that needs ``asyncio.current_task()``
  (``asyncio.timeout``, ``asyncio.TaskGroup``, anyio).
- ``rio_mode = auto`` (ini) or ``--rio-mode=auto``: every ``async def`` test
  without an ``asyncio``, ``anyio`` or ``trio`` marker is a rio test. The default,
  ``strict``, takes only marked tests.
- Async fixtures (``async def``, with ``yield`` for teardown) that a rio test
  requests run in the test's main task, before the body and in pytest's setup
  order, and are torn down after it in reverse order. They must be
  function-scoped; a sync fixture cannot depend on one.
- Fixtures: ``rio_runtime`` (the test's loop, a ``rio_rt.Loop``, also
  ``rio_core.current_runtime()`` inside the test) and ``rio_clock`` (a
  ``rio_rt.testing.MockClock``: when a test or its fixtures request it, the
  test's loop runs on it, so sleeps take no real time).
- A task that fails and is never joined fails its test: when it is collected
  the engine reports it through the loop's exception handler ("Task exception
  was never retrieved", as asyncio does; a task of a bare ``rio_rt.Runtime``
  through ``sys.unraisablehook``); the plugin collects garbage when the test's
  main task ends and raises those exceptions.
- ``rio_asyncio_loop = true`` (ini) or ``--rio-asyncio``: asyncio's loops in the
  session are rio loops: pytest-asyncio's loop factory (its
  ``pytest_asyncio_loop_factories`` hook) and asyncio's event loop policy
  (``asyncio.run``, ``asyncio.new_event_loop``).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import traceback
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from rio_rt._loop import EventLoopPolicy, Loop, new_event_loop
from rio_rt.testing import MockClock

__all__ = ["rio_clock", "rio_runtime"]

NEVER_RETRIEVED = "rio task exception was never retrieved"
TASK_NEVER_RETRIEVED = "Task exception was never retrieved"  # asyncio's report

# Markers of other async test plugins: in auto mode their tests are left to them.
_OTHER_FRAMEWORKS = ("asyncio", "anyio", "trio")

_MARKER_HELP = (
    "rio: run the async test on rio-rt, as the main task of a fresh rio loop; "
    "rio(asyncio=True): as an asyncio task on that loop"
)


@dataclass
class _AsyncFixture:
    """What pytest holds as the value of an async fixture of a rio test until
    the test's main task has set it up."""

    name: str
    func: Callable[..., Any]
    kwargs: dict[str, Any]

    def __repr__(self) -> str:
        return f"<async fixture {self.name!r}, set up in the rio test's main task>"


@dataclass
class _RioTest:
    function: Callable[..., Any]  # the test's own coroutine function
    asyncio_task: bool
    error: str | None = None  # a bad marker: the test fails at setup
    fixtures: list[_AsyncFixture] = field(default_factory=list)


_RIO_TEST = pytest.StashKey[_RioTest]()
_POLICY = pytest.StashKey[Any]()


# ------------------------------------------------------------------ options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rio", "rio-rt")
    group.addoption(
        "--rio-mode",
        dest="rio_mode",
        default=None,
        choices=("strict", "auto"),
        help="auto: run every unmarked async def test on rio; strict: only @pytest.mark.rio",
    )
    group.addoption(
        "--rio-asyncio",
        dest="rio_asyncio_loop",
        action="store_true",
        default=None,
        help="make asyncio's loops in this session rio loops (pytest-asyncio, asyncio.run)",
    )
    parser.addini("rio_mode", "default for --rio-mode (strict or auto)", default="strict")
    parser.addini(
        "rio_asyncio_loop",
        "default for --rio-asyncio: asyncio's loops are rio loops",
        type="bool",
        default=False,
    )


def _rio_mode(config: pytest.Config) -> str:
    mode = config.getoption("rio_mode") or config.getini("rio_mode")
    if mode not in ("strict", "auto"):
        raise pytest.UsageError(f"rio_mode must be 'strict' or 'auto', not {mode!r}")
    return str(mode)


def _rio_asyncio_loop(config: pytest.Config) -> bool:
    option = config.getoption("rio_asyncio_loop")
    return bool(option if option is not None else config.getini("rio_asyncio_loop"))


class _PytestAsyncioLoopFactories:
    """pytest-asyncio's hook (1.x): its tests and fixtures run on rio loops."""

    @staticmethod
    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
        return {"rio": new_event_loop}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)
    _rio_mode(config)  # a bad value is a usage error at once
    if not _rio_asyncio_loop(config):
        return
    hook = getattr(config.hook, "pytest_asyncio_loop_factories", None)
    if hook is not None and hook.spec is not None:  # pytest-asyncio with the hook
        config.pluginmanager.register(_PytestAsyncioLoopFactories(), "rio_rt-asyncio-loop")
    with warnings.catch_warnings():  # the policy API is deprecated from 3.14
        warnings.simplefilter("ignore", DeprecationWarning)
        config.stash[_POLICY] = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(EventLoopPolicy())


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(_POLICY, None)
    if previous is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(previous)
        del config.stash[_POLICY]


def pytest_report_header(config: pytest.Config) -> str:
    return f"rio-rt: mode={_rio_mode(config)}, asyncio_loop={_rio_asyncio_loop(config)}"


# ------------------------------------------------------------------ collection


def _not_a_coroutine_function(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("a rio test is run by rio-rt's pytest plugin (is it disabled?)")


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    # trylast: the innermost wrapper, so rio's tests are claimed before other
    # plugins' wrappers (pytest-asyncio's auto mode) look at the items.
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Function):
            _claim(item)
    return result


def _claim(item: pytest.Function) -> None:
    function = item.obj
    if not inspect.iscoroutinefunction(function):
        return
    marker = item.get_closest_marker("rio")
    if marker is None:
        if _rio_mode(item.config) != "auto":
            return
        if any(item.get_closest_marker(name) for name in _OTHER_FRAMEWORKS):
            return
        test = _RioTest(function, asyncio_task=False)
    else:
        test = _RioTest(function, asyncio_task=bool(marker.kwargs.get("asyncio", False)))
        unknown = set(marker.kwargs) - {"asyncio"}
        if marker.args or unknown:
            test.error = (
                "@pytest.mark.rio takes only the keyword 'asyncio' "
                f"(got {marker.args!r} {sorted(unknown)!r})"
            )
    item.stash[_RIO_TEST] = test

    # To other plugins the test is no coroutine function any more: pytest-asyncio
    # in auto mode would run it as well. Reports still find the source.
    def shim(*args: Any, **kwargs: Any) -> None:
        _not_a_coroutine_function(*args, **kwargs)

    shim.__name__ = getattr(function, "__name__", item.name)
    shim.__qualname__ = getattr(function, "__qualname__", item.name)
    shim.__doc__ = function.__doc__
    shim.__wrapped__ = function  # type: ignore[attr-defined]
    item.obj = shim


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def rio_clock() -> MockClock:
    """A ``MockClock()`` (standing still, autojump at once); a test that requests
    it (or whose fixtures do) runs on it."""
    return MockClock()


@pytest.fixture
def rio_runtime(request: pytest.FixtureRequest) -> Iterator[Loop]:
    """The rio loop the test runs on (closed after the test)."""
    clock = request.getfixturevalue("rio_clock") if "rio_clock" in request.fixturenames else None
    loop = new_event_loop(clock=clock)
    try:
        yield loop
    finally:
        loop.close()


def _rio_test_of(request: pytest.FixtureRequest) -> _RioTest | None:
    item: pytest.Item | None = getattr(request, "_pyfuncitem", None)
    if item is None:
        return None
    return item.stash.get(_RIO_TEST, None)


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: Any, request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    test = _rio_test_of(request)
    func = fixturedef.func
    if test is None:
        return (yield)
    name = fixturedef.argname
    if not _is_async(func):
        for argname in fixturedef.argnames:
            if isinstance(request.getfixturevalue(argname), _AsyncFixture):
                pytest.fail(
                    f"sync fixture {name!r} depends on async fixture {argname!r}: in a rio "
                    "test, async fixtures are set up in the test's main task, after the sync "
                    "ones; make it async as well",
                    pytrace=False,
                )
        return (yield)
    if fixturedef.scope != "function":
        pytest.fail(
            f"async fixture {name!r} has scope {fixturedef.scope!r}: rio runs each test on "
            "its own loop, so the async fixtures of rio tests must be function-scoped",
            pytrace=False,
        )
    # Bind a fixture method to the test's instance, as pytest does.
    instance = getattr(request, "instance", None)
    bound = func
    if instance is not None and inspect.ismethod(func):
        if isinstance(instance, type(func.__self__)):
            bound = func.__func__.__get__(instance)

    def placeholder(**kwargs: Any) -> _AsyncFixture:
        fixture = _AsyncFixture(name, bound, kwargs)
        test.fixtures.append(fixture)
        return fixture

    # pytest calls fixturedef.func: it makes the placeholder, and other
    # plugins' wrappers (pytest-asyncio's) see a sync fixture and leave it.
    fixturedef.func = placeholder
    try:
        return (yield)
    finally:
        fixturedef.func = func


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    test = item.stash.get(_RIO_TEST, None)
    if test is None:
        return
    if test.error is not None:
        pytest.fail(test.error, pytrace=False)
    test.fixtures.clear()
    assert isinstance(item, pytest.Function)
    if "rio_runtime" not in item.fixturenames:
        item.fixturenames.insert(0, "rio_runtime")


# ------------------------------------------------------------------ running


def _resolve(kwargs: dict[str, Any], values: dict[int, Any]) -> dict[str, Any]:
    return {
        key: values[id(value)] if isinstance(value, _AsyncFixture) else value
        for key, value in kwargs.items()
    }


async def _run_test(test: _RioTest, testargs: dict[str, Any]) -> None:
    __tracebackhide__ = True
    values: dict[int, Any] = {}
    generators: list[tuple[str, Any]] = []
    errors: list[BaseException] = []
    try:
        for fixture in test.fixtures:
            kwargs = _resolve(fixture.kwargs, values)
            if inspect.isasyncgenfunction(fixture.func):
                generator = fixture.func(**kwargs)
                try:
                    value = await generator.__anext__()
                except StopAsyncIteration:
                    raise ValueError(f"{fixture.name} did not yield a value") from None
                generators.append((fixture.name, generator))
            else:
                value = await fixture.func(**kwargs)
            values[id(fixture)] = value
        await test.function(**_resolve(testargs, values))
    except BaseException as exc:
        errors.append(exc)
    for name, generator in reversed(generators):
        try:
            await generator.__anext__()
        except StopAsyncIteration:
            pass
        except BaseException as exc:
            errors.append(exc)
        else:
            await generator.aclose()
            errors.append(ValueError(f"fixture {name} has more than one yield"))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BaseExceptionGroup("errors in the rio test and its fixtures' teardown", errors)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    __tracebackhide__ = True
    test = pyfuncitem.stash.get(_RIO_TEST, None)
    if test is None:
        return None
    loop: Loop = pyfuncitem.funcargs["rio_runtime"]  # type: ignore[assignment]
    testargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    unretrieved: list[BaseException] = []
    previous_hook = sys.unraisablehook
    previous_handler = loop.get_exception_handler()

    def hook(report: Any) -> None:
        if str(report.err_msg or "").startswith(NEVER_RETRIEVED) and report.exc_value is not None:
            unretrieved.append(report.exc_value)
        else:
            previous_hook(report)

    def handler(handler_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") == TASK_NEVER_RETRIEVED and exc is not None:
            unretrieved.append(exc)
        elif previous_handler is not None:
            previous_handler(handler_loop, context)
        else:
            handler_loop.default_exception_handler(context)

    sys.unraisablehook = hook
    loop.set_exception_handler(handler)
    try:
        try:
            if test.asyncio_task:
                with asyncio.Runner(loop_factory=lambda: loop) as runner:
                    runner.run(_run_test(test, testargs))
            else:
                loop.block_on(_run_test(test, testargs))
        finally:
            testargs.clear()
            gc.collect()
            sys.unraisablehook = previous_hook
            loop.set_exception_handler(previous_handler)
    except BaseException as exc:
        for task_error in unretrieved:
            exc.add_note(
                "and a rio task failed, its exception never retrieved:\n"
                + "".join(traceback.format_exception(task_error))
            )
        raise
    if unretrieved:
        raise BaseExceptionGroup(
            f"{NEVER_RETRIEVED} ({len(unretrieved)} task(s) of this test)", unretrieved
        )
    return True
