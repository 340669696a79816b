# cython: language_level=3
"""Native sockets: TCP, UDP and Unix streams over the engine's reactor.

Every read and write first makes the non-blocking system call here, in C
(``recv``/``send`` on the fd, no Python socket method on the hot path), and
parks the task through ``IoWait`` only when the call would block (EAGAIN).
So a stream that has data waiting costs one system call per read and no trip
through the reactor.

- ``read`` receives into a per-stream 64 KiB buffer and copies the bytes
  received: a small read allocates only its result, never 64 KiB. After a
  large read it receives straight into the result (``_sockio.RecvBuffer``).
- After a short read (the socket was drained), and after a write unless the
  last read was large, the next read parks first: the reactor's retained,
  level-triggered interest reports data that is already there, and a
  request/response exchange saves the recv that would fail (a reply takes a
  round trip: a read right after a write is the client's EAGAIN, once per
  request).
- ``write_all`` loops until every byte is sent or an error is raised; a
  partial write is never reported as success.
- TCP streams set TCP_NODELAY (as asyncio does): request/response traffic is
  not delayed by Nagle's algorithm.
- ``accept`` survives descriptor exhaustion (EMFILE/ENFILE/ENOBUFS/ENOMEM):
  the listening socket stays readable, so instead of waiting on it (which
  would spin) it sleeps with exponential back-off (10 ms to 100 ms) and retries.
- Errors are the standard exceptions (ConnectionResetError, BrokenPipeError,
  ConnectionRefusedError, ...) with the address in the message; using a
  closed stream raises ``ClosedResourceError``.
"""

import errno as _errno
import logging
import os
import socket as _socket
import sys
from asyncio import IncompleteReadError

from libc.errno cimport errno
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE

from rio_core._io cimport wait_fd, adopt_fd, FD_OWNED, FD_FOREIGN
from rio_core._reactor cimport RIO_IN, RIO_OUT
from rio_core._sockio cimport (
    rio_recv, rio_send, would_block, retryable, recv_buffer_read, recv_buffer_release,
)
from rio_core._io import ClosedResourceError, notify_closing
from rio_core._future import sleep
from rio_core._blocking import spawn_blocking

cdef Py_ssize_t READ_BUFFER_SIZE = 65536     # the scratch buffer; larger reads go to read_into
cdef tuple ACCEPT_EXHAUSTED = (_errno.EMFILE, _errno.ENFILE, _errno.ENOBUFS, _errno.ENOMEM)
# accept() back-off while descriptors are exhausted: 10 ms doubling to 100 ms, so a
# freed descriptor is used within 0.1 s and the retries cost nothing measurable.
cdef double ACCEPT_BACKOFF_MAX = 0.1
cdef tuple ACCEPT_RETRY = (_errno.ECONNABORTED, _errno.EPROTO, _errno.EINTR)

logger = logging.getLogger("rio_rt.net")


cdef object os_error(int err, str what, object address):
    """OSError(err) of the right subclass, naming what failed and where."""
    return OSError(err, f"{strerror(err)} ({what} {format_address(address)})")


def strerror(int err):
    """The message for an errno value; on Windows also for the Winsock codes
    (10000 and up) that rio_sock.h passes through, which os.strerror does not know."""
    if err >= 10000 and sys.platform == "win32":
        return getattr(_socket, "errorTab", {}).get(err, f"Winsock error {err}")
    return os.strerror(err)


def format_address(address):
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return repr(address)


# --------------------------------------------------------------------------- DNS

def _numeric(host, port, int family, int socktype):
    """Addresses for a numeric host, without a thread; None when not numeric."""
    if host is None or host == "":
        return None
    for fam in (_socket.AF_INET, _socket.AF_INET6):
        if family not in (0, fam):
            continue
        try:
            _socket.inet_pton(fam, host)
        except (OSError, ValueError):
            continue
        if fam == _socket.AF_INET:
            return [(fam, (host, port))]
        return [(fam, (host, port, 0, 0))]
    return None


async def lookup_host(host, port, *, family=0, socktype=_socket.SOCK_STREAM):
    """Resolve ``host`` to a list of ``(family, sockaddr)``.

    Numeric addresses are answered at once; names go to getaddrinfo in the
    blocking thread pool, so the runtime never blocks on DNS.
    """
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    if host is not None and not isinstance(host, str):
        raise TypeError(f"host must be a str or None, got {type(host).__name__}")
    fast = _numeric(host, port, family, socktype)
    if fast is not None:
        return fast
    infos = await spawn_blocking(_socket.getaddrinfo, host, port, family, socktype)
    result = []
    for fam, _type, _proto, _canon, sockaddr in infos:
        entry = (fam, sockaddr)
        if entry not in result:
            result.append(entry)
    if not result:
        raise OSError(f"no addresses for {host!r}")
    return result


# --------------------------------------------------------------------------- streams

cdef class SocketResource:
    """What every rio socket shares: the non-blocking socket, its fd, closing.

    ``close()`` tells the reactor first (``notify_closing``: tasks blocked on
    the fd get ClosedResourceError at once), then closes the socket.
    """

    def __init__(self):
        raise TypeError(f"{type(self).__name__} objects come from connect(), bind() or accept()")

    cdef int attach_socket(self, object sock, str noun) except -1:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.noun = noun
        adopt_fd(self.fd)
        return 0

    cdef int check_open(self, str what) except -1:
        if self.closed:
            raise ClosedResourceError(f"{what} on a closed {self.noun}")
        return 0

    @property
    def local_address(self):
        self.check_open("local_address")
        return self.sock.getsockname()

    @property
    def socket(self):
        """The underlying socket (non-blocking). Do not read from it directly."""
        return self.sock

    def fileno(self):
        return -1 if self.closed else self.fd

    def is_closed(self):
        return self.closed

    def close(self):
        """Close; tasks blocked on it get ClosedResourceError. Idempotent."""
        if self.closed:
            return
        self.closed = True
        notify_closing(self.fd)
        self.sock.close()

    async def aclose(self):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else format_address(self.sock.getsockname())
        return f"<{type(self).__name__} {state}>"


cdef class Stream(SocketResource):
    """A connected byte stream (TCP or Unix). Use ``TcpStream.connect`` /
    ``UnixStream.connect`` or a listener's ``accept`` to get one."""
    def __dealloc__(self):
        recv_buffer_release(&self.recv_buffer)

    cdef int attach(self, object sock, object peer) except -1:
        self.attach_socket(sock, "stream")
        self.peer = peer
        return 0

    @property
    def peer_address(self):
        return self.peer

    async def read(self, n=65536):
        """Read up to ``n`` bytes; ``b""`` means the peer closed its side."""
        cdef Py_ssize_t size = n
        cdef int err
        if size < 0:
            raise ValueError(f"read size must be >= 0, got {n}")
        if size == 0:
            self.check_open("read")
            return b""
        if size > READ_BUFFER_SIZE:
            return await self._read_large(size)
        if self.drained:
            self.drained = False
            await wait_fd(self.fd, RIO_IN, FD_OWNED)
        while True:
            self.check_open("read")
            data = recv_buffer_read(&self.recv_buffer, self.fd, size, READ_BUFFER_SIZE, &err)
            if data is not None:
                self.drained = PyBytes_GET_SIZE(data) < size
                return data
            if would_block(err):
                await wait_fd(self.fd, RIO_IN, FD_OWNED)
            elif not retryable(err):
                raise os_error(err, "read from", self.peer)

    async def _read_large(self, Py_ssize_t size):
        buf = bytearray(size)
        got = await self.read_into(buf)
        del buf[got:]
        return bytes(buf)

    async def read_into(self, buffer):
        """Read into a writable buffer; returns the byte count (0 at EOF)."""
        cdef Py_buffer view
        cdef long got
        cdef int err
        try:
            PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE)
        except (BufferError, TypeError):
            raise TypeError(f"read_into() needs a writable buffer (bytearray, memoryview, "
                            f"array), got {type(buffer).__name__}") from None
        try:
            if view.len == 0:
                self.check_open("read_into")
                return 0
            if self.drained:
                self.drained = False
                await wait_fd(self.fd, RIO_IN, FD_OWNED)
            while True:
                self.check_open("read_into")
                got = rio_recv(self.fd, view.buf, view.len)
                if got >= 0:
                    self.drained = got < view.len
                    return got
                err = errno
                if would_block(err):
                    await wait_fd(self.fd, RIO_IN, FD_OWNED)
                elif not retryable(err):
                    raise os_error(err, "read from", self.peer)
        finally:
            PyBuffer_Release(&view)

    async def read_exact(self, n):
        """Read exactly ``n`` bytes; IncompleteReadError if EOF comes first."""
        cdef Py_ssize_t size = n
        cdef Py_ssize_t have = 0
        if size < 0:
            raise ValueError(f"read size must be >= 0, got {n}")
        if 0 < size <= READ_BUFFER_SIZE:
            first = await self.read(size)       # usually all of it, in one copy
            if len(first) == size:
                return first
            if not first:
                raise IncompleteReadError(b"", size)
            have = len(first)
        buf = bytearray(size)
        if have:
            buf[:have] = first
        view = memoryview(buf)
        try:
            while have < size:
                got = await self.read_into(view[have:])
                if got == 0:
                    raise IncompleteReadError(bytes(buf[:have]), size)
                have += got
        finally:
            view.release()
        return bytes(buf)

    async def write_all(self, data):
        """Send every byte of ``data`` (bytes-like), or raise."""
        cdef Py_buffer view
        cdef Py_ssize_t sent = 0
        cdef long n
        cdef int err
        self.check_open("write_all")
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except (BufferError, TypeError):
            raise TypeError(f"write_all() needs a bytes-like object, got "
                            f"{type(data).__name__}") from None
        try:
            while sent < view.len:
                self.check_open("write_all")
                n = rio_send(self.fd, <char *>view.buf + sent, view.len - sent)
                if n >= 0:
                    sent += n
                    continue
                err = errno
                if would_block(err):
                    await wait_fd(self.fd, RIO_OUT, FD_OWNED)
                elif not retryable(err):
                    raise os_error(err, "write to", self.peer)
            if not self.recv_buffer.bulk:
                # request/response: the reply to what was just sent is not here
                # yet (a stream whose reads are large keeps reading first)
                self.drained = True
        finally:
            PyBuffer_Release(&view)

    def shutdown_write(self):
        """Half-close: the peer reads EOF; this side can still read."""
        self.check_open("shutdown_write")
        try:
            self.sock.shutdown(_socket.SHUT_WR)
        except OSError as exc:
            raise os_error(exc.errno or _errno.ENOTCONN, "shutdown of", self.peer) from None

    def __repr__(self):
        state = "closed" if self.closed else f"fd={self.fd}"
        return f"<{type(self).__name__} {state} peer={format_address(self.peer)}>"


async def _connect_socket(sock, address):
    """Non-blocking connect; cancellation-safe (the caller closes the socket)."""
    err = sock.connect_ex(address)
    if err in (_errno.EINPROGRESS, _errno.EAGAIN, _errno.EWOULDBLOCK, _errno.EINTR):
        await wait_fd(sock.fileno(), RIO_OUT, FD_FOREIGN)
        err = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
    if err != 0:
        raise os_error(err, "connect to", address)


cdef class TcpStream(Stream):
    @staticmethod
    async def connect(host, port):
        """Connect to ``host:port`` (each resolved address in turn)."""
        last_error = None
        for family, address in await lookup_host(host, port):
            sock = _socket.socket(family, _socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await _connect_socket(sock, address)
            except BaseException as exc:
                sock.close()
                if isinstance(exc, OSError):
                    last_error = exc
                    continue
                raise
            return make_tcp_stream(sock, address)
        raise last_error

    def set_nodelay(self, enabled=True):
        self.check_open("set_nodelay")
        self.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1 if enabled else 0)

    def nodelay(self):
        self.check_open("nodelay")
        return bool(self.sock.getsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY))


cdef TcpStream make_tcp_stream(object sock, object peer):
    cdef TcpStream stream = TcpStream.__new__(TcpStream)
    stream.attach(sock, peer)
    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
    return stream


cdef class UnixStream(Stream):
    @staticmethod
    async def connect(path):
        """Connect to the Unix socket at ``path``."""
        if not hasattr(_socket, "AF_UNIX"):
            raise NotImplementedError("Unix sockets are not available on this platform")
        path = os.fspath(path)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await _connect_socket(sock, path)
        except BaseException:
            sock.close()
            raise
        return make_unix_stream(sock, path)


cdef UnixStream make_unix_stream(object sock, object peer):
    cdef UnixStream stream = UnixStream.__new__(UnixStream)
    stream.attach(sock, peer)
    return stream


# --------------------------------------------------------------------------- listeners

cdef class Listener(SocketResource):
    """Accepts connections. ``async for stream, address in listener``."""

    cdef int attach(self, object sock) except -1:
        return self.attach_socket(sock, "listener")

    cdef object wrap(self, object conn, object address):
        raise NotImplementedError

    async def accept(self):
        """Wait for a connection; returns ``(stream, address)``."""
        cdef double backoff = 0.01
        while True:
            if self.closed:
                raise ClosedResourceError("accept on a closed listener")
            try:
                conn, address = self.sock.accept()
            except BlockingIOError:
                await wait_fd(self.fd, RIO_IN, FD_OWNED)
                continue
            except OSError as exc:
                if exc.errno in ACCEPT_EXHAUSTED:
                    self.exhausted_count += 1
                    if self.exhausted_count % 100 == 1:      # the first, then every 100th
                        logger.warning("accept() on %s failed: %s; retrying in %.2f s",
                                       format_address(self.local_address), exc, backoff)
                    await sleep(backoff)
                    backoff = min(backoff * 2, ACCEPT_BACKOFF_MAX)
                    continue
                if exc.errno in ACCEPT_RETRY:
                    continue
                raise
            return self.wrap(conn, address), address

    def __aiter__(self):
        return self

    def __anext__(self):
        return self.accept()


cdef class TcpListener(Listener):
    @staticmethod
    async def bind(host, port, *, backlog=1024, reuse_port=False):
        """Listen on ``host:port`` (port 0 picks a free one: see local_address)."""
        cdef TcpListener listener
        if not isinstance(backlog, int) or backlog < 0:
            raise ValueError(f"backlog must be an int >= 0, got {backlog!r}")
        family, address = (await lookup_host(host, port))[0]
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            if os.name == "posix":
                # rebind while old connections sit in TIME_WAIT. Not on Windows,
                # where SO_REUSEADDR lets another socket take a port that is in
                # use (asyncio's create_server makes the same choice).
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            if reuse_port:
                if not hasattr(_socket, "SO_REUSEPORT"):
                    raise NotImplementedError("SO_REUSEPORT is not available on this platform")
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
            if family == _socket.AF_INET6:
                sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise os_error(exc.errno, "bind to", address) from None
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        listener = TcpListener.__new__(TcpListener)
        listener.attach(sock)
        return listener

    cdef object wrap(self, object conn, object address):
        return make_tcp_stream(conn, address)


cdef class UnixListener(Listener):
    @staticmethod
    async def bind(path, *, backlog=1024):
        """Listen on the Unix socket ``path`` (which must not exist)."""
        cdef UnixListener listener
        if not hasattr(_socket, "AF_UNIX"):
            raise NotImplementedError("Unix sockets are not available on this platform")
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(path))
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        listener = UnixListener.__new__(UnixListener)
        listener.attach(sock)
        return listener

    cdef object wrap(self, object conn, object address):
        return make_unix_stream(conn, address)


# --------------------------------------------------------------------------- UDP

cdef class UdpSocket(SocketResource):
    """A UDP socket: ``bind``, then ``send_to``/``recv_from``, or ``connect``
    then ``send``/``recv``."""
    @staticmethod
    async def bind(host, port):
        cdef UdpSocket udp
        family, address = (await lookup_host(host, port, socktype=_socket.SOCK_DGRAM))[0]
        sock = _socket.socket(family, _socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            try:
                sock.bind(address)
            except OSError as exc:
                raise os_error(exc.errno, "bind to", address) from None
        except BaseException:
            sock.close()
            raise
        udp = UdpSocket.__new__(UdpSocket)
        udp.attach_socket(sock, "UDP socket")
        return udp

    @property
    def peer_address(self):
        return self.peer

    async def connect(self, host, port):
        """Fix the peer: ``send``/``recv`` then talk only to it."""
        self.check_open("connect")
        _family, address = (await lookup_host(host, port, socktype=_socket.SOCK_DGRAM,
                                              family=self.sock.family))[0]
        self.sock.connect(address)
        self.peer = address

    async def send_to(self, data, address):
        """Send one datagram to ``address``; returns the bytes sent."""
        while True:
            self.check_open("send_to")
            try:
                return self.sock.sendto(data, address)
            except BlockingIOError:
                await wait_fd(self.fd, RIO_OUT, FD_OWNED)
            except InterruptedError:
                pass

    async def recv_from(self, n=65536):
        """Receive one datagram; returns ``(data, address)``.

        A datagram longer than ``n`` is cut to ``n`` bytes on POSIX; on Windows
        the call raises ``OSError`` (errno ``EMSGSIZE``) and the datagram is
        dropped. Give ``n`` the largest size you expect (the default takes
        any UDP datagram)."""
        while True:
            self.check_open("recv_from")
            try:
                return self.sock.recvfrom(n)
            except BlockingIOError:
                await wait_fd(self.fd, RIO_IN, FD_OWNED)
            except InterruptedError:
                pass

    async def send(self, data):
        if self.peer is None:
            raise OSError(_errno.EDESTADDRREQ, "send() needs connect() first; use send_to()")
        while True:
            self.check_open("send")
            try:
                return self.sock.send(data)
            except BlockingIOError:
                await wait_fd(self.fd, RIO_OUT, FD_OWNED)
            except InterruptedError:
                pass

    async def recv(self, n=65536):
        while True:
            self.check_open("recv")
            try:
                return self.sock.recv(n)
            except BlockingIOError:
                await wait_fd(self.fd, RIO_IN, FD_OWNED)
            except InterruptedError:
                pass
