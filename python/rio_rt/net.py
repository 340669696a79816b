"""Native networking: TCP, UDP and Unix sockets, and DNS.

Every class is an async context manager. Reads and writes make the
non-blocking system call in the engine first and park the task only when it
would block::

    import rio_rt as rio
    from rio_rt.net import TcpListener, TcpStream

    async def main():
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            host, port = listener.local_address
            async with await TcpStream.connect(host, port) as client:
                server, _ = await listener.accept()
                await client.write_all(b"ping")
                assert await server.read_exact(4) == b"ping"
                server.close()

    rio.block_on(main())
"""

from rio_core import (
    BusyResourceError,
    ClosedResourceError,
    Listener,
    Stream,
    TcpListener,
    TcpStream,
    UdpSocket,
    UnixListener,
    UnixStream,
    lookup_host,
)

__all__ = [
    "BusyResourceError",
    "ClosedResourceError",
    "Listener",
    "Stream",
    "TcpListener",
    "TcpStream",
    "UdpSocket",
    "UnixListener",
    "UnixStream",
    "lookup_host",
]
