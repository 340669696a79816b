"""The examples run as the README says: the echo server with its client, the HTTP
server, the tour and the worker pool. Each runs as a subprocess (the servers on
loopback), bounded in time."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/ is not beside tests/")
SECONDS = 30


class Server:
    """An example server started on port 0; ``port`` is read from its first line."""

    def __init__(self, script: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), "0"],
            cwd=cwd,  # outside the source tree: the installed package is imported
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            self.first_line = lines.get(timeout=SECONDS)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"{script} printed nothing in {SECONDS} s") from None
        found = re.search(r"(\d+)\D*$", self.first_line.strip())
        assert found, f"{script} printed no port: {self.first_line!r} {self.proc.stderr!r}"
        self.port = int(found.group(1))

    def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C on POSIX (SIGINT, as a terminal sends); terminate on Windows."""
        if os.name == "posix":
            self.proc.send_signal(signal.SIGINT)
        else:
            self.proc.terminate()
        out, err = self.proc.communicate(timeout=SECONDS)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=SECONDS)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[object]:
    servers: list[Server] = []

    def starter(script: str) -> Server:
        servers.append(Server(script, tmp_path))
        return servers[-1]

    yield starter
    for server in servers:
        server.kill()


def run_example(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SECONDS,
    )


def test_echo_client_gets_every_message_back_from_the_echo_server(start, tmp_path):
    server = start("echo_server.py")
    assert server.first_line.startswith("echo server on ")
    for _ in range(2):  # the server keeps serving after a client leaves
        client = run_example("echo_client.py", str(server.port), "300", cwd=tmp_path)
        assert client.returncode == 0, client.stderr
        assert client.stdout.startswith("300 round trips in "), client.stdout
    code, out, err = server.interrupt()
    if os.name == "posix":  # Ctrl-C ends it cleanly
        assert code == 0, err
        assert out.strip().endswith("bye"), out


def http_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=SECONDS) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_http_hello_answers_keep_alive_requests_and_rejects_bad_ones(start):
    server = start("http_hello.py")
    assert server.first_line.startswith("http://127.0.0.1:")
    ok = b"HTTP/1.1 200 OK\r\n"
    # two requests on one connection (the second with a body to skip), then close
    reply = http_exchange(
        server.port,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert reply.count(ok) == 3, reply
    assert reply.endswith(b"Hello, world!\n")
    bad = b"HTTP/1.1 400 Bad Request\r\n"
    assert http_exchange(server.port, b"NONSENSE\r\n\r\n").startswith(bad)
    for length in (b"-5", b"abc", b"+3"):
        request = b"POST / HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n"
        assert http_exchange(server.port, request).startswith(bad), length
    code, _out, err = server.interrupt()
    if os.name == "posix":
        assert code == 0, err


def test_the_tour_runs(tmp_path):
    tour = run_example("hello.py", cwd=tmp_path)
    assert tour.returncode == 0, tour.stderr
    assert "1000 tasks joined" in tour.stdout
    assert "spawn_blocking" in tour.stdout


def test_the_worker_pool_runs_every_job_within_its_limit_and_exits(tmp_path):
    pool = run_example("worker_pool.py", cwd=tmp_path)
    assert pool.returncode == 0, pool.stderr
    lines = pool.stdout.strip().splitlines()
    # the reporter ran (the pool takes at least 25 x 2 ms, the period is 20 ms)
    assert any(line.strip().startswith("progress: ") for line in lines[:-1]), pool.stdout
    summary = lines[-1]
    assert summary.startswith("40 jobs by 4 workers, 200 parts, "), summary
    assert "at most 8 of 8 in flight" in summary, summary  # the semaphore held, and was used
    assert "checksum 39400," in summary, summary  # every part's result reached the end


def test_the_structured_concurrency_tour_prints_what_each_tool_did(tmp_path):
    tour = run_example("structured.py", cwd=tmp_path)
    assert tour.returncode == 0, tour.stderr
    assert tour.stdout.splitlines() == [
        "started w0, w1, w2; w0: worked, closed; w1: worked, closed; w2: worked, closed",
        "fail_after: TimeoutError",
        "move_on_after: cancelled_caught=True",
        "fastest: attempt 1",
    ]
