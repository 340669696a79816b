"""Bad input and misuse: each gets a clear exception of the right type."""

from __future__ import annotations

import errno
import os
import sys
import types

import pytest

import rio_rt as rio


async def simple():
    await rio.yield_now()
    return "simple"


@pytest.mark.parametrize(
    ("bad", "type_name"),
    [(42, "int"), ("coro", "str"), (None, "NoneType"), (lambda: None, "function")],
)
def test_spawn_non_coroutine_raises_type_error_naming_the_type(run, bad, type_name):
    async def main():
        with pytest.raises(TypeError) as info:
            rio.spawn(bad)
        return str(info.value)

    assert type_name in run(main)


def test_spawn_generator_raises_type_error(run):
    def generator():
        yield 1

    async def main():
        gen = generator()
        with pytest.raises(TypeError) as info:
            rio.spawn(gen)
        return str(info.value)

    assert "generator" in run(main)


def test_spawn_uncalled_async_function_gives_a_helpful_message(run):
    async def main():
        with pytest.raises(TypeError) as info:
            rio.spawn(simple)
        return str(info.value)

    message = run(main)
    assert "function" in message or "simple" in message
    # it tells the user what went wrong, not just the type
    assert "call" in message or "coroutine" in message


def test_unknown_yield_gets_type_error_thrown_in(run):
    @types.coroutine
    def yields_42():
        try:
            yield 42
        except TypeError as exc:
            return f"caught: {exc}"
        return "not thrown"

    async def main():
        message = await yields_42()
        await rio.yield_now()  # the task keeps working afterwards
        return message

    message = run(main)
    assert message.startswith("caught: ")
    assert "42" in message


def test_unknown_yield_uncaught_fails_the_task(run):
    @types.coroutine
    def yields_object():
        yield {"not": "a marker"}

    async def bad_task():
        await yields_object()

    async def main():
        task = rio.spawn(bad_task())
        with pytest.raises(TypeError) as info:
            await task
        return str(info.value)

    message = run(main)
    assert "dict" in message or "not" in message, message


def test_block_on_inside_a_running_runtime_raises_runtime_error(run):
    async def inner():
        return "inner"

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError):
                rio.block_on(coro)
            with pytest.raises(RuntimeError):
                rio.Runtime(autojump_clock=True).block_on(coro)
        finally:
            coro.close()
        await rio.sleep(1)  # the outer runtime is unharmed
        return "outer"

    assert run(main) == "outer"


def test_block_on_non_awaitable_raises_type_error():
    with pytest.raises(TypeError):
        rio.block_on(42)


def test_spawn_outside_a_runtime_raises_runtime_error():
    coro = simple()
    try:
        with pytest.raises(RuntimeError):
            rio.spawn(coro)
    finally:
        coro.close()


class ReturnsGarbage(rio.Future):
    def __init__(self, value):
        self.value = value

    def poll(self, cx):
        return self.value


@pytest.mark.parametrize("garbage", [42, None, "ready", rio.Ready])
def test_future_poll_returning_something_invalid_raises_type_error(run, garbage):
    async def main():
        with pytest.raises(TypeError) as info:
            await ReturnsGarbage(garbage)
        await rio.yield_now()  # the task keeps working afterwards
        return str(info.value)

    message = run(main)
    assert message
    if garbage == 42:
        assert "42" in message or "int" in message, message


def test_future_poll_exception_propagates_to_the_awaiter(run):
    class Broken(rio.Future):
        def poll(self, cx):
            raise ZeroDivisionError("poll broke")

    async def main():
        with pytest.raises(ZeroDivisionError, match="poll broke"):
            await Broken()
        return "recovered"

    assert run(main) == "recovered"


def test_spawn_blocking_non_callable_raises_type_error(run):
    async def main():
        with pytest.raises(TypeError):
            await rio.spawn_blocking(42)
        return "ok"

    assert run(main) == "ok"


def test_timeout_non_number_raises_type_error(run):
    async def main():
        with pytest.raises(TypeError):
            async with rio.timeout("soon"):
                await rio.sleep(1)
        return "ok"

    assert run(main) == "ok"


def test_ready_and_pending():
    ready = rio.Ready([1, 2])
    assert ready.value == [1, 2]
    assert rio.Ready(None).value is None
    assert rio.PENDING is not None
    assert not isinstance(rio.PENDING, rio.Ready)


def test_error_messages_name_winsock_codes(monkeypatch):
    """rio_sock.h passes Winsock codes (10000 and up) through as errno values on
    Windows, where os.strerror does not know them: the message comes from
    socket.errorTab there, with a plain fallback."""
    import socket as socket_module

    from rio_core._net import strerror

    assert strerror(errno.ENOENT) == os.strerror(errno.ENOENT)  # a C errno value everywhere
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(
        socket_module,
        "errorTab",
        {10054: "An existing connection was forcibly closed by the remote host."},
        raising=False,
    )
    assert strerror(10054) == "An existing connection was forcibly closed by the remote host."
    assert strerror(10099) == "Winsock error 10099"
    assert strerror(errno.EPIPE) == os.strerror(errno.EPIPE)
