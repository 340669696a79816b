"""A minimal HTTP/1.1 "hello" server with keep-alive, on rio's native sockets.

python examples/http_hello.py [port]          then: curl http://127.0.0.1:8080/
"""

import sys

import rio_rt as rio
from rio_rt.net import TcpListener, TcpStream

BODY = b"Hello, world!\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MAX_HEADER = 64 * 1024


async def serve(stream: TcpStream) -> None:
    async with stream:
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                if len(pending) > MAX_HEADER:
                    await stream.write_all(BAD_REQUEST)
                    return
                data = await stream.read(65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            request_line, *header_lines = head.split(b"\r\n")
            if len(request_line.split(b" ")) != 3:
                await stream.write_all(BAD_REQUEST)
                return
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(b":") for line in header_lines)
            }
            length_field = headers.get(b"content-length", b"0") or b"0"
            if not length_field.isdigit():  # no sign, no spaces: RFC 9110's 1*DIGIT
                await stream.write_all(BAD_REQUEST)
                return
            length = int(length_field)
            while len(pending) < length:  # discard a request body
                data = await stream.read(65536)
                if not data:
                    return
                pending += data
            pending = pending[length:]
            await stream.write_all(RESPONSE)
            if headers.get(b"connection", b"").lower() == b"close":
                return


async def main(port: int) -> None:
    async with await TcpListener.bind("127.0.0.1", port) as listener:
        print(f"http://{listener.local_address[0]}:{listener.local_address[1]}/", flush=True)
        async for stream, _address in listener:
            rio.spawn(serve(stream))


if __name__ == "__main__":
    try:
        rio.block_on(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8080))
    except KeyboardInterrupt:
        pass
