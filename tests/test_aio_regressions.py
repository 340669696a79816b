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


def test_a_timed_out_task_is_freed_without_the_gc(run):
    """A task cancelled by wait_for ends with a CancelledError whose traceback
    holds wait_for's frame, which holds the task: asyncio's Task gives that
    error out once and drops it, so nothing the task's frames held waits for
    the GC (CPython's test_ssl checks an SSLContext this way). rio's Task kept
    it until the GC ran."""
    import gc
    import weakref

    class Marker:
        pass

    async def inner(marker):
        await asyncio.sleep(30)

    async def main():
        marker = Marker()
        ref = weakref.ref(marker)
        try:
            await asyncio.wait_for(inner(marker), 0.001)
        except TimeoutError:
            pass
        del marker
        return ref() is None

    enabled = gc.isenabled()
    gc.disable()
    try:
        assert run(main())
    finally:
        if enabled:
            gc.enable()
