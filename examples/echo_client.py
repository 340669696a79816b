"""TCP echo client: sends a few messages to examples/echo_server.py and checks the echo.

python examples/echo_client.py [port] [count]
"""

import sys

import rio_rt as rio
from rio_rt.net import TcpStream


async def main(port: int, count: int) -> None:
    async with await TcpStream.connect("127.0.0.1", port) as stream:
        started = rio.monotonic()
        for i in range(count):
            message = f"message {i}\n".encode()
            await stream.write_all(message)
            echoed = await stream.read_exact(len(message))
            assert echoed == message, (echoed, message)
        elapsed = rio.monotonic() - started
        print(f"{count} round trips in {elapsed:.3f} s ({count / elapsed:,.0f}/s)")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    rio.block_on(main(port, count))
