# cython: language_level=3
"""The asyncio door's socket transport: TCP and Unix streams in Cython.

Behaviour follows asyncio's ``_SelectorSocketTransport`` (the oracle the tests
compare with), with the data path in C:

- reading: a persistent reader handle on the engine's reactor calls
  ``read_ready``, which ``recv``s into a per-transport buffer (or, after a
  large read, into the result: ``_sockio.RecvBuffer``) and hands ``bytes`` to
  ``data_received`` (or fills ``get_buffer()`` of a BufferedProtocol);
- writing: write first, buffer the rest. ``write`` calls ``send`` at once
  when nothing is buffered; what does not fit goes to a bytearray and a writer
  handle flushes it when the socket is writable. Flow control (pause_writing /
  resume_writing at the high/low water marks) is asyncio's.
- TCP_NODELAY is set on TCP sockets, as asyncio does.
"""

import socket as _socket
import sys

from asyncio import BufferedProtocol, Transport, constants, futures
from asyncio.log import logger

from libc.errno cimport errno
from libc.string cimport memcpy
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE

from rio_core._loop cimport LoopCore
from rio_core._sockio cimport (
    rio_recv, rio_send, retryable, recv_buffer_read, recv_buffer_release,
)

cdef Py_ssize_t MAX_READ = 256 * 1024       # asyncio's max_size for recv(): each read asks this
cdef bint SERVER_ATTACH_TAKES_TRANSPORT = sys.version_info >= (3, 13)


cdef class SocketTransport:
    """asyncio.Transport for a connected stream socket on rio's loop."""
    # asyncio attributes other code reads
    _start_tls_compatible = True
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE   # os.sendfile via sock_sendfile

    def __init__(self, LoopCore loop, sock, protocol, waiter=None, extra=None, server=None):
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.extra = dict(extra) if extra else {}
        self.extra["socket"] = _transport_socket(sock)
        try:
            self.extra["sockname"] = sock.getsockname()
        except OSError:
            self.extra["sockname"] = None
        if "peername" not in self.extra:
            try:
                self.extra["peername"] = sock.getpeername()
            except OSError:
                self.extra["peername"] = None
        self.wbuf = bytearray()
        self.high_water = 64 * 1024
        self.low_water = self.high_water // 4
        self.set_protocol(protocol)
        self.server = server
        if server is not None:
            if SERVER_ATTACH_TAKES_TRANSPORT:
                server._attach(self)
            else:
                server._attach()
        loop._transports[self.fd] = self
        if sock.family in (_socket.AF_INET, _socket.AF_INET6):
            try:
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except OSError:
                pass
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(futures._set_result_unless_cancelled, waiter, None)

    def __dealloc__(self):
        recv_buffer_release(&self.recv_buffer)

    def __del__(self):
        if self.sock is not None:
            import warnings
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.sock.close()

    def __repr__(self):
        info = [type(self).__name__]
        if self.sock is None:
            info.append("closed")
        elif self.closing:
            info.append("closing")
        info.append(f"fd={self.fd}")
        if self.sock is not None:
            info.append("read=" + ("polling" if self.is_reading() else "idle"))
            info.append(f"write=<{'polling' if self.wbuf else 'idle'}, bufsize={len(self.wbuf)}>")
        return "<" + " ".join(info) + ">"

    # ---- BaseTransport

    def get_extra_info(self, name, default=None):
        return self.extra.get(name, default)

    def is_closing(self):
        return self.closing

    def set_protocol(self, protocol):
        self.protocol = protocol
        self.buffered = isinstance(protocol, BufferedProtocol)
        self.protocol_connected = True

    def get_protocol(self):
        return self.protocol

    def close(self):
        if self.closing:
            return
        self.closing = True
        self.loop._remove_reader(self.fd)
        if not self.wbuf:
            self.conn_lost += 1
            self.loop._remove_writer(self.fd)
            self.loop.call_soon(self._call_connection_lost, None)

    def abort(self):
        self._force_close(None)

    # ---- reading

    def is_reading(self):
        return not self.closing and not self.paused

    def pause_reading(self):
        if not self.is_reading():
            return
        self.paused = True
        self.loop._remove_reader(self.fd)

    def resume_reading(self):
        if self.closing or not self.paused:
            return
        self.paused = False
        self._start_reading()

    def _start_reading(self):
        if self.is_reading() and self.conn_lost == 0:
            self.loop._add_reader(self.fd, self._read_ready)

    def _read_ready(self):
        cdef long n
        cdef int err = 0
        cdef Py_buffer view
        if self.conn_lost:
            return
        if self.buffered:
            try:
                buf = self.protocol.get_buffer(-1)
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
                return
            PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
            try:
                n = rio_recv(self.fd, view.buf, view.len)
                err = errno
            finally:
                PyBuffer_Release(&view)
            if n < 0:
                if retryable(err):
                    return
                self._fatal_error(OSError(err, _strerror(err)),
                                  "Fatal read error on socket transport")
                return
            if n == 0:
                self._on_eof()
                return
            try:
                self.protocol.buffer_updated(n)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
            return
        # small reads copy just what arrived; after a large one, recv into the result
        data = recv_buffer_read(&self.recv_buffer, self.fd, MAX_READ, MAX_READ, &err)
        if data is None:
            if retryable(err):
                return
            self._fatal_error(OSError(err, _strerror(err)), "Fatal read error on socket transport")
            return
        if PyBytes_GET_SIZE(data) == 0:
            self._on_eof()
            return
        try:
            self.protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")

    def _on_eof(self):
        try:
            keep_open = self.protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            self.loop._remove_reader(self.fd)
        else:
            self.close()

    # ---- writing

    def write(self, data):
        cdef Py_buffer view
        cdef long n = 0
        cdef int err = 0
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if self.eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self.empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not data:
            return
        if self.conn_lost:
            if self.conn_lost >= constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("socket.send() raised exception.")
            self.conn_lost += 1
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if not self.wbuf:
                # write first: most writes leave nothing to buffer
                n = rio_send(self.fd, view.buf, view.len)
                if n < 0:
                    err = errno
                    if retryable(err):
                        n = 0
                    else:
                        self._fatal_error(OSError(err, _strerror(err)),
                                          "Fatal write error on socket transport")
                        return
                if n == view.len:
                    return
                self.loop._add_writer(self.fd, self._write_ready)
            append_bytes(self.wbuf, <const char *>view.buf + n, view.len - n)
        finally:
            PyBuffer_Release(&view)
        self._maybe_pause_protocol()

    def writelines(self, list_of_data):
        for data in list_of_data:
            self.write(data)

    def _write_ready(self):
        cdef long n
        cdef int err
        cdef const char *start
        if not self.wbuf or self.conn_lost:
            return
        start = self.wbuf
        n = rio_send(self.fd, start, len(self.wbuf))
        if n < 0:
            err = errno
            if retryable(err):
                return
            self.loop._remove_writer(self.fd)
            del self.wbuf[:]
            exc = OSError(err, _strerror(err))
            self._fatal_error(exc, "Fatal write error on socket transport")
            if self.empty_waiter is not None:
                self.empty_waiter.set_exception(exc)
            return
        if n:
            del self.wbuf[:n]
        self._maybe_resume_protocol()
        if not self.wbuf:
            self.loop._remove_writer(self.fd)
            if self.empty_waiter is not None:
                self.empty_waiter.set_result(None)
            if self.closing:
                self._call_connection_lost(None)
            elif self.eof:
                self.sock.shutdown(_socket.SHUT_WR)

    def write_eof(self):
        if self.closing or self.eof:
            return
        self.eof = True
        if not self.wbuf:
            self.sock.shutdown(_socket.SHUT_WR)

    def can_write_eof(self):
        return True

    def get_write_buffer_size(self):
        return len(self.wbuf)

    def get_write_buffer_limits(self):
        return (self.low_water, self.high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self.high_water = high
        self.low_water = low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self):
        if len(self.wbuf) <= self.high_water or self.protocol_paused:
            return
        self.protocol_paused = True
        try:
            self.protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.loop.call_exception_handler({
                "message": "protocol.pause_writing() failed",
                "exception": exc, "transport": self, "protocol": self.protocol})

    def _maybe_resume_protocol(self):
        if self.protocol_paused and len(self.wbuf) <= self.low_water:
            self.protocol_paused = False
            try:
                self.protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.loop.call_exception_handler({
                    "message": "protocol.resume_writing() failed",
                    "exception": exc, "transport": self, "protocol": self.protocol})

    # sendfile fallback support (asyncio's base_events uses these)

    def _make_empty_waiter(self):
        if self.empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self.empty_waiter = self.loop.create_future()
        if not self.wbuf:
            self.empty_waiter.set_result(None)
        return self.empty_waiter

    def _reset_empty_waiter(self):
        self.empty_waiter = None

    # ---- closing

    def _fatal_error(self, exc, message="Fatal error on transport"):
        if isinstance(exc, OSError):
            if self.loop is not None and self.loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        elif self.loop is not None:
            self.loop.call_exception_handler({
                "message": message, "exception": exc,
                "transport": self, "protocol": self.protocol})
        self._force_close(exc)

    def _force_close(self, exc):
        if self.conn_lost:
            return
        if self.wbuf:
            del self.wbuf[:]
            self.loop._remove_writer(self.fd)
        if not self.closing:
            self.closing = True
            self.loop._remove_reader(self.fd)
        self.conn_lost += 1
        self.loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        try:
            if self.protocol_connected:
                self.protocol.connection_lost(exc)
        finally:
            if self.sock is not None:
                self.loop._transports.pop(self.fd, None)
                self.sock.close()
                self.sock = None
            self.protocol = None
            server = self.server
            if server is not None:
                if SERVER_ATTACH_TAKES_TRANSPORT:
                    server._detach(self)
                else:
                    server._detach()
                self.server = None
            if self.empty_waiter is not None:
                self.empty_waiter.set_exception(ConnectionError("Connection is closed by peer"))

    # isinstance(transport, asyncio.Transport) holds, as for asyncio's own
    # transports. A Cython class cannot also derive from asyncio.Transport (the
    # __slots__ layouts conflict), so the instance reports a Python subclass of
    # it as its __class__, which isinstance() consults when the real type does
    # not match (as unittest.mock's spec objects do). type() is unchanged.
    @property
    def __class__(self):
        return _TransportClass

    # asyncio code occasionally reaches for these
    @property
    def _sock(self):
        return self.sock

    @property
    def _sock_fd(self):
        return self.fd

    @property
    def _loop(self):
        return self.loop

    @property
    def _protocol(self):
        return self.protocol

    @property
    def _closing(self):
        return self.closing


class _TransportClass(Transport):
    """What a ``SocketTransport`` reports as its ``__class__``: an asyncio.Transport."""
    __slots__ = ()


_TransportClass.__name__ = _TransportClass.__qualname__ = "SocketTransport"


cdef int append_bytes(bytearray buffer, const char *data, Py_ssize_t size) except -1:
    """buffer += data[:size] with one copy."""
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(buffer)
    if PyByteArray_Resize(buffer, old + size) < 0:
        return -1
    memcpy(PyByteArray_AS_STRING(buffer) + old, data, size)
    return 0


from rio_core._net import strerror as _strerror


from asyncio import trsock as _trsock


class _TransportSocket(_trsock.TransportSocket):
    """asyncio's TransportSocket (what ``get_extra_info("socket")`` gives),
    with family, type and proto, which never change over a socket's life,
    kept as slots, and fileno, getpeername and getsockname bound to the
    socket's own C methods: the same answers with no Python frame. anyio
    reads the family and the peer name on every ``extra()`` call, and
    httpcore asks for the raw socket before each request it sends over a
    pooled connection (62,000 times for 1,000 requests in aio_httpx)."""

    __slots__ = ("family", "type", "proto", "fileno", "getpeername", "getsockname")

    def __init__(self, sock):
        self._sock = sock
        self.family = sock.family
        self.type = sock.type
        self.proto = sock.proto
        self.fileno = sock.fileno
        self.getpeername = sock.getpeername
        self.getsockname = sock.getsockname


_TransportSocket.__name__ = _TransportSocket.__qualname__ = "TransportSocket"


def _transport_socket(sock):
    return _TransportSocket(sock)
