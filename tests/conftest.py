"""Shared fixtures: a real server process on a free port, and raw clients.

Synchronisation is always on an event: a line the server prints, a line a
client receives, EOF. Nothing sleeps to wait.

``AUC_SERVER`` (environment) names another server program speaking the same
protocol (a benchmark baseline); the process tests then run against it.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_BIN = ROOT / "bin" / "auc_server"
CLIENT_BIN = ROOT / "bin" / "auc_client"
#: Seconds any single wait may take before a test fails.
WAIT = float(os.environ.get("AUC_TEST_WAIT", "10"))


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(port: int, *args: str) -> list[str]:
    """Return the argv that starts the server under test on ``port``."""
    other = os.environ.get("AUC_SERVER")
    if other:
        return [*shlex.split(other), str(port), *args]
    return [sys.executable, str(SERVER_BIN), str(port), *args]


class ServerProcess:
    """A server process whose console output is collected as it arrives."""

    def __init__(self, argv: list[str], port: int, cwd: Path | None = None) -> None:
        self.port = port
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, pipe: object, sink: list[str]) -> None:
        assert pipe is not None
        for raw in iter(pipe.readline, b""):  # type: ignore[attr-defined]
            with self._cond:
                sink.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> list[str]:
        """Return the standard-output lines so far."""
        with self._cond:
            return list(self._out)

    @property
    def errors(self) -> list[str]:
        """Return the standard-error lines so far."""
        with self._cond:
            return list(self._err)

    def wait_for(self, text: str, *, count: int = 1, stderr: bool = False,
                 timeout: float = WAIT) -> str:
        """Wait until ``count`` output lines contain ``text``; return the last.

        Fails the test after ``timeout`` seconds or if the process exits first.
        """
        sink = self._err if stderr else self._out

        def found() -> list[str]:
            return [line for line in sink if text in line]

        with self._cond:
            ok = self._cond.wait_for(
                lambda: len(found()) >= count or self.proc.poll() is not None, timeout
            )
            hits = found()
            if len(hits) >= count:
                return hits[count - 1]
        raise AssertionError(
            f"server never printed {text!r} x{count} (ok={ok}, exit={self.proc.poll()})\n"
            f"stdout: {self.output[-30:]}\nstderr: {self.errors[-30:]}"
        )

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = WAIT) -> int:
        """Wait for the process to exit; return its status."""
        status = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return status

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[object]:
    """Return ``start(*args, ready=True)`` -> ServerProcess on a free port.

    Without ``--ledger``/``--no-ledger`` in args, the ledger goes to tmp_path.
    Every started server is killed at the end of the test.
    """
    started: list[ServerProcess] = []

    def start(*args: str, ready: bool = True, port: int | None = None) -> ServerProcess:
        port = free_port() if port is None else port
        args_list = list(args)
        if not os.environ.get("AUC_SERVER") and not any(
            a.startswith("--ledger") or a == "--no-ledger" for a in args_list
        ):
            args_list += ["--ledger", str(tmp_path / "ledger.sqlite3")]
        server = ServerProcess(server_command(port, *args_list), port, cwd=tmp_path)
        started.append(server)
        if ready:
            server.wait_for("Auctioneer is ready")
        return server

    yield start
    for server in started:
        server.stop()


class RawClient:
    """A blocking test client speaking raw protocol lines."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self._buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self, timeout: float = WAIT) -> bytes:
        """Return the next line (without ``\\n``). Raises EOFError at EOF."""
        self.sock.settimeout(timeout)
        while b"\n" not in self._buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"connection closed; unterminated: {self._buf!r}")
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def expect(self, *lines: bytes) -> None:
        """Assert the next lines are exactly ``lines``."""
        for want in lines:
            got = self.line()
            assert got == want, f"expected {want!r}, got {got!r}"

    def expect_closed(self, timeout: float = WAIT) -> None:
        """Assert the server closes the connection with nothing more to read."""
        self.sock.settimeout(timeout)
        rest = self._buf
        try:
            while data := self.sock.recv(65536):
                rest += data
        except ConnectionResetError:
            pass
        assert rest == b"", f"unexpected data before close: {rest!r}"
        self._buf = b""

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def connect() -> Iterator[object]:
    """Return ``connect(port)`` -> RawClient; all are closed at the end."""
    clients: list[RawClient] = []

    def make(port: int) -> RawClient:
        client = RawClient(port)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
