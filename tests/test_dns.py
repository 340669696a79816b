"""Name resolution (rio_rt.net.lookup_host): the numeric fast path, getaddrinfo
in the blocking pool for names, and argument checks. No network: numeric
addresses and ``localhost`` only."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import rio_core._net

from rio_rt.net import TcpListener, TcpStream, lookup_host
from rio_rt.testing import run_with_timeout as run_io


class ThreadUsed(Exception):
    pass


@pytest.fixture
def no_blocking_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any trip to the blocking thread pool from lookup_host fail loudly."""

    def refuse(fn: Any, *args: Any) -> Any:
        raise ThreadUsed(f"lookup_host used the blocking pool: {fn.__name__}{args}")

    monkeypatch.setattr(rio_core._net, "spawn_blocking", refuse)


def test_the_no_blocking_pool_fixture_catches_a_name_lookup(no_blocking_pool):
    # proves the fast-path tests below would notice a thread
    async def main():
        with pytest.raises(ThreadUsed):
            await lookup_host("localhost", 80)

    run_io(main)


def test_numeric_ipv4_is_answered_without_a_thread(no_blocking_pool):
    async def main():
        return await lookup_host("127.0.0.1", 8080)

    assert run_io(main) == [(socket.AF_INET, ("127.0.0.1", 8080))]


def test_numeric_ipv6_is_answered_without_a_thread(no_blocking_pool):
    async def main():
        return await lookup_host("::1", 443)

    assert run_io(main) == [(socket.AF_INET6, ("::1", 443, 0, 0))]


def test_numeric_fast_path_honours_the_family(no_blocking_pool):
    async def main():
        return (
            await lookup_host("127.0.0.1", 1, family=socket.AF_INET),
            await lookup_host("::1", 2, family=socket.AF_INET6),
            await lookup_host("10.1.2.3", 0, socktype=socket.SOCK_DGRAM),
        )

    v4, v6, dgram = run_io(main)
    assert v4 == [(socket.AF_INET, ("127.0.0.1", 1))]
    assert v6 == [(socket.AF_INET6, ("::1", 2, 0, 0))]
    assert dgram == [(socket.AF_INET, ("10.1.2.3", 0))]


def test_localhost_resolves_to_loopback_addresses():
    async def main():
        return await lookup_host("localhost", 80)

    result = run_io(main)
    assert result, "localhost resolved to nothing"
    assert len(result) == len(set(result)), f"duplicates in {result}"
    for family, sockaddr in result:
        assert family in (socket.AF_INET, socket.AF_INET6)
        assert sockaddr[1] == 80
    hosts = {sockaddr[0] for _family, sockaddr in result}
    assert hosts & {"127.0.0.1", "::1"}, result


def test_connect_by_name_tries_each_address_until_one_answers():
    # the listener is on IPv4 only; if localhost also resolves to ::1, that
    # address is refused and connect() must go on to 127.0.0.1
    async def main():
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            port = listener.local_address[1]
            async with await TcpStream.connect("localhost", port) as client:
                server, _ = await listener.accept()
                async with server:
                    await client.write_all(b"by name")
                    return await server.read_exact(7), client.peer_address

    data, peer = run_io(main)
    assert data == b"by name"
    assert peer[:2] == ("127.0.0.1", peer[1])


@pytest.mark.parametrize("port", [-1, 65536, 10**6, "80", True, 80.0, None])
def test_invalid_port_raises_value_error_naming_it(port):
    async def main():
        with pytest.raises(ValueError) as info:
            await lookup_host("127.0.0.1", port)
        return str(info.value)

    message = run_io(main)
    assert "port" in message
    assert repr(port) in message


@pytest.mark.parametrize("host", [b"localhost", 127, 1.5, ["localhost"]])
def test_non_str_host_raises_type_error_naming_it(host):
    async def main():
        with pytest.raises(TypeError) as info:
            await lookup_host(host, 80)
        return str(info.value)

    message = run_io(main)
    assert "host" in message
    assert type(host).__name__ in message


def test_connect_checks_the_port_too():
    async def main():
        with pytest.raises(ValueError):
            await TcpStream.connect("127.0.0.1", 70000)
        with pytest.raises(TypeError):
            await TcpStream.connect(b"127.0.0.1", 80)

    run_io(main)
