"""TCP echo server on rio's native sockets.

    python examples/echo_server.py [port]        (default 8765, 127.0.0.1)

Try it with ``python examples/echo_client.py``. Ctrl-C stops it.
"""

import sys

import rio_rt as rio
from rio_rt.net import TcpListener, TcpStream


async def echo(stream: TcpStream) -> None:
    async with stream:
        while data := await stream.read(65536):
            await stream.write_all(data)


async def main(port: int) -> None:
    async with await TcpListener.bind("127.0.0.1", port) as listener:
        print(f"echo server on {listener.local_address}", flush=True)
        async for stream, _address in listener:
            rio.spawn(echo(stream))


if __name__ == "__main__":
    try:
        rio.block_on(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8765))
    except KeyboardInterrupt:
        print("bye")
