"""anyio, httpx and pytest-asyncio run unchanged on rio's loop.

These libraries lean on the asyncio Task more than most: anyio's cancel scopes
read ``_must_cancel`` and ``_fut_waiter``, count ``cancelling()``/``uncancel()``
and find the root task through ``_callbacks`` (docs/asyncio-task-attributes.md);
httpx's transport runs on anyio; pytest-asyncio runs fixtures and tests through
``asyncio.Runner`` with copied contexts. Each test runs on rio's loop and on
stdlib asyncio (the oracle), with the same body and the same expected values,
bounded in time, on 127.0.0.1 only. A library that is not installed skips its
tests (test-only dependencies: the ``test`` extra).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

pytest_plugins = ["pytester"]

# ------------------------------------------------------------------ anyio


def test_anyio_task_group_results_and_failure(arun):
    anyio = pytest.importorskip("anyio")

    async def main() -> list[Any]:
        results: list[Any] = []

        async def child(n: int) -> None:
            await anyio.sleep(0)
            results.append(n)

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(child, n, name=f"child-{n}")
        out: list[Any] = [sorted(results)]

        cancelled: list[str] = []

        async def sleeper() -> None:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append("sleeper")
                raise

        async def failing() -> None:
            await anyio.sleep(0)
            raise LookupError("child failed")

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(sleeper)
                tg.start_soon(failing)
        except* LookupError as group:
            out.append([str(e) for e in group.exceptions])
        out.append(cancelled)
        out.append(asyncio.current_task().cancelling())
        return out

    assert arun(main()) == [[0, 1, 2, 3, 4], ["child failed"], ["sleeper"], 0]


def test_anyio_nested_cancel_scopes_and_shielding(arun):
    anyio = pytest.importorskip("anyio")

    async def main() -> list[Any]:
        out: list[Any] = []
        with anyio.CancelScope() as outer:
            with anyio.CancelScope(shield=True) as shielded:
                outer.cancel()
                await anyio.sleep(0)  # shielded: not cancelled here
                out.append("shielded work done")
            with anyio.CancelScope() as inner:
                await anyio.sleep(0)  # the outer cancellation lands here
                out.append("not reached")
        out.append((outer.cancel_called, outer.cancelled_caught))
        out.append((shielded.cancel_called, inner.cancelled_caught))

        with anyio.CancelScope() as scope:
            with anyio.CancelScope() as nested:
                nested.cancel()
                await anyio.sleep(0)
            out.append(("nested caught", nested.cancelled_caught))
            await anyio.sleep(0)
        out.append(("outer untouched", scope.cancel_called))
        out.append(asyncio.current_task().cancelling())
        return out

    assert arun(main()) == [
        "shielded work done",
        (True, True),
        (False, False),
        ("nested caught", True),
        ("outer untouched", False),
        0,
    ]


def test_anyio_deadlines_move_on_after_and_fail_after(arun):
    anyio = pytest.importorskip("anyio")

    async def main() -> list[Any]:
        out: list[Any] = []
        with anyio.move_on_after(0.01) as scope:
            await anyio.sleep(10)
        out.append(("move_on_after", scope.cancelled_caught))
        try:
            with anyio.fail_after(0.01):
                await anyio.sleep(10)
        except TimeoutError:
            out.append("fail_after raised")
        with anyio.CancelScope(deadline=anyio.current_time() + 0.01) as deadline_scope:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.02)  # the deadline passes while shielded
                out.append("shield outlived the deadline")
            await anyio.sleep(10)
        out.append(("deadline", deadline_scope.cancelled_caught))
        with anyio.move_on_after(5) as roomy:
            await anyio.sleep(0)
        out.append(("not expired", roomy.cancelled_caught))
        out.append(asyncio.current_task().cancelling())
        return out

    assert arun(main()) == [
        ("move_on_after", True),
        "fail_after raised",
        "shield outlived the deadline",
        ("deadline", True),
        ("not expired", False),
        0,
    ]


def test_anyio_task_group_cancelled_from_outside(arun):
    anyio = pytest.importorskip("anyio")

    async def main() -> list[Any]:
        out: list[Any] = []
        started = anyio.Event()

        async def worker(tag: str) -> None:
            try:
                started.set()
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                out.append(f"{tag} cancelled")
                raise

        # through the group's cancel scope, from another task
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker, "a")
            await started.wait()

            async def canceller() -> None:
                tg.cancel_scope.cancel()

            await asyncio.create_task(canceller())
        out.append(("scope", tg.cancel_scope.cancelled_caught))

        # by cancelling the asyncio task that hosts the group
        async def host() -> None:
            async with anyio.create_task_group() as tg2:
                tg2.start_soon(worker, "b")
                await anyio.sleep_forever()

        started = anyio.Event()
        task = asyncio.create_task(host())
        await started.wait()
        await anyio.wait_all_tasks_blocked()  # reads every task's _fut_waiter
        task.cancel("from outside")
        try:
            await task
        except asyncio.CancelledError as exc:
            out.append(("host", exc.args, task.cancelled()))
        return out

    assert arun(main()) == [
        "a cancelled",
        ("scope", True),
        "b cancelled",
        ("host", ("from outside",), True),
    ]


def test_anyio_start_with_task_status_and_task_info(arun):
    anyio = pytest.importorskip("anyio")

    async def main() -> list[Any]:
        async def service(port_base: int, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            info = anyio.get_current_task()
            task_status.started((port_base + 1, info.name))
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            value, name = await tg.start(service, 8000, name="the-service")
            running = {t.name for t in anyio.get_running_tasks()}
            me = anyio.get_current_task()
            tg.cancel_scope.cancel()
        return [
            value,
            name,
            "the-service" in running,
            me.id == id(asyncio.current_task()),
        ]

    assert arun(main()) == [8001, "the-service", True, True]


def test_anyio_to_thread_and_from_thread_find_the_loop(arun):
    """Worker threads call back through the root task's loop (find_root_task:
    run_until_complete's callback in `task._callbacks`, then `task._loop`)."""
    anyio = pytest.importorskip("anyio")
    from anyio import from_thread, to_thread

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()

        async def on_loop() -> bool:
            return asyncio.get_running_loop() is loop

        def in_thread() -> tuple[bool, bool]:
            return from_thread.run(on_loop), from_thread.run_sync(lambda: True)

        results = await to_thread.run_sync(in_thread)
        limiter = anyio.CapacityLimiter(2)
        doubled = []
        async with anyio.create_task_group() as tg:
            for n in range(4):

                async def work(n: int = n) -> None:
                    doubled.append(await to_thread.run_sync(lambda: n * 2, limiter=limiter))

                tg.start_soon(work)
        return [results, sorted(doubled)]

    assert arun(main()) == [(True, True), [0, 2, 4, 6]]


# ------------------------------------------------------------------ httpx + uvicorn/starlette


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_httpx_async_client_against_uvicorn_and_starlette(arun, loop_factory):
    httpx = pytest.importorskip("httpx")
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    anyio = pytest.importorskip("anyio")
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def hello(request: Any) -> Any:
        return JSONResponse(
            {
                "name": request.path_params["name"],
                "loop": type(asyncio.get_running_loop()).__name__,
                "task": isinstance(asyncio.current_task(), asyncio.Task),
            }
        )

    async def echo(request: Any) -> Any:
        return JSONResponse({"got": await request.json()})

    async def stream(request: Any) -> Any:
        async def chunks() -> Any:
            for i in range(5):
                yield b"chunk%d;" % i
                await asyncio.sleep(0)

        return StreamingResponse(chunks())

    released: dict[str, asyncio.Event] = {}

    async def slow(request: Any) -> Any:
        await released["slow"].wait()  # until the client has timed out
        return JSONResponse({})

    app = Starlette(
        routes=[
            Route("/hello/{name}", hello),
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            Route("/slow", slow),
        ]
    )

    async def main() -> list[Any]:
        port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            loop="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            http="h11",
        )
        server = uvicorn.Server(config)
        released["slow"] = asyncio.Event()
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.005)
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base) as client:
                first = await client.get("/hello/rio")
                posted = await client.post("/echo", json={"a": [1, 2]})
                streamed = b""
                async with client.stream("GET", "/stream") as response:
                    async for chunk in response.aiter_bytes():
                        streamed += chunk
                missing = await client.get("/missing")
                try:
                    await client.get("/slow", timeout=0.05)
                except httpx.ReadTimeout:
                    timed_out = True
                else:
                    timed_out = False
                released["slow"].set()
                # many requests, at most 5 at a time, in an anyio task group
                limiter = anyio.CapacityLimiter(5)
                names: list[str] = []

                async def fetch(n: int) -> None:
                    async with limiter:
                        response = await client.get(f"/hello/n{n}")
                        names.append(response.json()["name"])

                async with anyio.create_task_group() as tg:
                    for n in range(40):
                        tg.start_soon(fetch, n)
        finally:
            server.should_exit = True
            await serving
        body = first.json()
        return [
            first.status_code,
            body["name"],
            body["loop"],
            body["task"],
            posted.json(),
            streamed,
            missing.status_code,
            timed_out,
            sorted(names) == sorted(f"n{n}" for n in range(40)),
        ]

    from rio_rt import new_event_loop

    expected_loop = "Loop" if loop_factory is new_event_loop else asyncio.SelectorEventLoop.__name__
    assert arun(main(), seconds=30) == [
        200,
        "rio",
        expected_loop,
        True,
        {"got": {"a": [1, 2]}},
        b"chunk0;chunk1;chunk2;chunk3;chunk4;",
        404,
        True,
        True,
    ]


# ------------------------------------------------------------------ pytest-asyncio

UNSET_LOOP_SCOPE = 'The configuration option "asyncio_default_fixture_loop_scope"'
INI = f"""
[pytest]
filterwarnings =
    error
    ignore:{UNSET_LOOP_SCOPE}:pytest.PytestDeprecationWarning
"""

PYTEST_ASYNCIO_MODULE = """
import asyncio
import contextvars

import pytest
import pytest_asyncio

import rio_rt

request_id = contextvars.ContextVar("request_id", default=None)
events = []


@pytest_asyncio.fixture
async def resource():
    task = asyncio.current_task()
    request_id.set("from-fixture")  # copied back into the test's context
    events.append(("setup", isinstance(task, asyncio.Task)))
    yield {"loop": asyncio.get_running_loop()}
    events.append("teardown")


@pytest.mark.asyncio
async def test_fixture_context_and_loop(resource):
    assert request_id.get() == "from-fixture"
    assert resource["loop"] is asyncio.get_running_loop()
    assert isinstance(asyncio.get_running_loop(), rio_rt.Loop) is ON_RIO


@pytest.mark.asyncio
async def test_tasks_cancel_and_timeouts():
    me = asyncio.current_task()
    assert me is not None and me in asyncio.all_tasks()
    child = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    child.cancel("stop")
    with pytest.raises(asyncio.CancelledError):
        await child
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)
    assert me.cancelling() == 0
    async with asyncio.TaskGroup() as tg:
        results = [tg.create_task(asyncio.sleep(0, n)) for n in range(3)]
    assert [r.result() for r in results] == [0, 1, 2]


@pytest.mark.asyncio
@pytest.mark.parametrize("n", [1, 2])
async def test_parametrized(n):
    assert await asyncio.gather(*(asyncio.sleep(0, i) for i in range(n))) == list(range(n))


def test_teardown_ran():
    assert events == [("setup", True), "teardown"]
"""


@pytest.mark.parametrize("on_rio", [False, True], ids=["asyncio", "rio"])
def test_pytest_asyncio_module_on_the_loop(pytester: pytest.Pytester, on_rio: bool) -> None:
    pytest.importorskip("pytest_asyncio")
    from importlib.metadata import entry_points

    if not any(ep.value == "rio_rt.pytest_plugin" for ep in entry_points(group="pytest11")):
        pytest.skip("rio-rt is not installed with its pytest11 entry point")
    pytester.makeini(INI)
    pytester.makepyfile(test_inner=f"ON_RIO = {on_rio}\n" + PYTEST_ASYNCIO_MODULE)
    args = ["-p", "no:cacheprovider", "-q"] + (["--rio-asyncio"] if on_rio else [])
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=5)
