"""Regressions found in the asyncio door, each run on stdlib asyncio (the oracle) and on rio."""

import asyncio

import pytest

import rio_rt

LOOPS = {"asyncio": asyncio.SelectorEventLoop, "rio": rio_rt.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request):
    def runner(coro):
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as r:
            return r.run(asyncio.wait_for(coro, 10))

    return runner


def test_reader_callbacks_run_on_every_event_not_only_the_first(run):
    """A reader handle is persistent: the protocol must see every message of a
    multi-round exchange (the engine once dropped a handle's callback after its
    first run)."""
    received = []

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    class Client(asyncio.Protocol):
        def __init__(self, done):
            self.done = done

        def connection_made(self, transport):
            self.transport = transport
            transport.write(b"0")

        def data_received(self, data):
            received.append(data)
            if len(received) == 5:
                self.done.set_result(None)
            else:
                self.transport.write(str(len(received)).encode())

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        done = loop.create_future()
        transport, _ = await loop.create_connection(lambda: Client(done), "127.0.0.1", port)
        await done
        transport.close()
        server.close()
        await server.wait_closed()

    run(main())
    assert received == [b"0", b"1", b"2", b"3", b"4"]


def test_a_cancelled_task_lets_go_of_its_cancelled_error(run):
    """asyncio's Task gives the CancelledError it ended with out once (result(),
    await) and keeps no reference to it: its traceback holds the task's frames,
    and wait_for's frame holds the task, a cycle that kept everything those
    frames held until the GC ran (CPython 3.11's test_ssl checks an SSLContext
    this way). rio's Task kept it as long as the task lived."""
    import gc
    import weakref

    class Marker:
        pass

    async def inner(marker):
        await asyncio.sleep(30)

    async def main():
        marker = Marker()
        ref = weakref.ref(marker)
        task = asyncio.create_task(inner(marker))
        del marker
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return task, ref

    enabled = gc.isenabled()
    gc.disable()
    try:
        task, ref = run(main())
        assert task.cancelled()
        assert ref() is None  # the task lives on; what its frames held does not
    finally:
        if enabled:
            gc.enable()


def test_make_cancelled_error_of_a_task_that_was_not_cancelled(run):
    """asyncio's gather calls it on whichever child its loop ended on; a task
    that raised or returned gives a new CancelledError (rio's handed out the
    task's own exception)."""

    async def main():
        async def boom():
            raise ValueError("boom")

        failed = asyncio.ensure_future(boom())
        returned = asyncio.ensure_future(asyncio.sleep(0, "r"))
        await asyncio.gather(failed, returned, return_exceptions=True)
        return [
            (type(e).__name__, e.args)
            for e in (failed._make_cancelled_error(), returned._make_cancelled_error())
        ]

    assert run(main()) == [("CancelledError", ()), ("CancelledError", ())]
