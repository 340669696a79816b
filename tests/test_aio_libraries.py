"""Popular asyncio libraries run unchanged on rio's loop.

Each test runs the library on rio's loop and on stdlib asyncio (the oracle),
with the same body and the same expected values. Everything stays on
127.0.0.1 with ports chosen by the kernel, and every body is bounded by
``asyncio.timeout``. A library that is not installed skips its tests (they
are test-only dependencies: see the ``test`` extra).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

import rio_rt as rio

# ------------------------------------------------------------------ two loops


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """A minimal HTTP/1.1 GET over asyncio streams (no client library involved)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


# ------------------------------------------------------------------ aiohttp


def test_aiohttp_server_and_client(arun):
    aiohttp = pytest.importorskip("aiohttp")
    web = pytest.importorskip("aiohttp.web")

    async def main() -> list[Any]:
        async def hello(request: Any) -> Any:
            return web.json_response(
                {"name": request.match_info["name"], "query": dict(request.query)}
            )

        async def echo(request: Any) -> Any:
            return web.Response(body=await request.read())

        async def stream(request: Any) -> Any:
            response = web.StreamResponse()
            await response.prepare(request)
            for i in range(5):
                await response.write(b"chunk%d;" % i)
                await asyncio.sleep(0)
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_get("/hello/{name}", hello)
        app.router.add_post("/echo", echo)
        app.router.add_get("/stream", stream)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/hello/rio", params={"x": "1"}) as response:
                    hello_status, hello_body = response.status, await response.json()
                payload = bytes(range(256)) * 1024
                async with session.post(f"{base}/echo", data=payload) as response:
                    echoed = await response.read()
                async with session.get(f"{base}/stream") as response:
                    streamed = await response.read()
                async with session.get(f"{base}/missing") as response:
                    missing = response.status
                # concurrent requests over the session's connection pool
                responses = await asyncio.gather(
                    *(session.get(f"{base}/hello/n{i}") for i in range(20))
                )
                names = []
                for response in responses:
                    names.append((await response.json())["name"])
                    response.release()
            raw = await http_get(port, "/hello/raw")
            return [
                hello_status,
                hello_body,
                echoed == payload,
                streamed,
                missing,
                names,
                raw[0],
                json.loads(raw[2]),
            ]
        finally:
            await runner.cleanup()

    assert arun(main()) == [
        200,
        {"name": "rio", "query": {"x": "1"}},
        True,
        b"chunk0;chunk1;chunk2;chunk3;chunk4;",
        404,
        [f"n{i}" for i in range(20)],
        200,
        {"name": "raw", "query": {}},
    ]


def test_aiohttp_websocket_echo(arun):
    aiohttp = pytest.importorskip("aiohttp")
    web = pytest.importorskip("aiohttp.web")

    async def main() -> list[Any]:
        async def ws_echo(request: Any) -> Any:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str("echo:" + message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(message.data[::-1])
            return ws

        app = web.Application()
        app.router.add_get("/ws", ws_echo)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws,
            ):
                await ws.send_str("hi")
                text = await ws.receive_str()
                await ws.send_bytes(b"abc")
                data = await ws.receive_bytes()
                await ws.close()
            return [text, data]
        finally:
            await runner.cleanup()

    assert arun(main()) == ["echo:hi", b"cba"]


# ------------------------------------------------------------------ uvicorn


async def tiny_asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    body = json.dumps(
        {"path": scope["path"], "loop": type(asyncio.get_running_loop()).__qualname__}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_uvicorn_serves_an_asgi_app(arun, loop_factory):
    uvicorn = pytest.importorskip("uvicorn")

    async def main() -> list[Any]:
        port = free_port()
        config = uvicorn.Config(
            tiny_asgi_app,
            host="127.0.0.1",
            port=port,
            loop="none",  # run on the loop we are already in
            lifespan="on",
            log_level="warning",
            access_log=False,
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if serving.done():
                    serving.result()  # startup failed: raise its error
                await asyncio.sleep(0.005)
            results = [await http_get(port, f"/path/{i}") for i in range(3)]
            concurrent = await asyncio.gather(*(http_get(port, "/c") for _ in range(10)))
        finally:
            server.should_exit = True
            await serving
        return [
            [(status, json.loads(body)["path"]) for status, _headers, body in results],
            {json.loads(body)["loop"] for _status, _headers, body in concurrent},
            [status for status, _headers, _body in concurrent],
        ]

    paths, loop_names, statuses = arun(main())
    assert paths == [(200, "/path/0"), (200, "/path/1"), (200, "/path/2")]
    assert loop_names == {
        "Loop" if loop_factory is rio.new_event_loop else asyncio.SelectorEventLoop.__name__
    }
    assert statuses == [200] * 10


# ------------------------------------------------------------------ websockets


def test_websockets_server_and_client_echo(arun):
    connect = pytest.importorskip("websockets.asyncio.client").connect  # websockets >= 13
    serve = pytest.importorskip("websockets.asyncio.server").serve

    async def main() -> list[Any]:
        async def echo(connection: Any) -> None:
            async for message in connection:
                await connection.send(message)

        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as client:
                replies = []
                for message in ("hello", b"\x00\x01binary", "x" * 200_000):
                    await client.send(message)
                    replies.append(await client.recv())
                await client.ping()
                return [
                    replies[0],
                    replies[1],
                    len(replies[2]),
                ]

    assert arun(main()) == ["hello", b"\x00\x01binary", 200_000]


def test_websockets_many_clients_broadcast(arun):
    connect = pytest.importorskip("websockets.asyncio.client").connect  # websockets >= 13
    server_module = pytest.importorskip("websockets.asyncio.server")
    broadcast, serve = server_module.broadcast, server_module.serve

    async def main() -> list[str]:
        connected: set[Any] = set()
        all_in = asyncio.Event()

        async def handler(connection: Any) -> None:
            connected.add(connection)
            if len(connected) == 5:
                all_in.set()
            await connection.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            clients = [await connect(f"ws://127.0.0.1:{port}") for _ in range(5)]
            try:
                await all_in.wait()
                broadcast(connected, "to-everyone")
                return [await client.recv() for client in clients]
            finally:
                for client in clients:
                    await client.close()

    assert arun(main()) == ["to-everyone"] * 5
