"""What the attack tests share: reading a process's RSS, CPU time and open
descriptors from /proc, waiting on a condition there, and client misdeeds
(a flood that never reads, a reset).

Waiting polls /proc with a deadline: a process's memory or descriptor count
sends no event to wait on.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable

from conftest import WAIT

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Return the resident set size of ``pid`` in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time ``pid`` has used, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces: count from its ")".
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def fd_count(pid: int) -> int:
    """Return the number of descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def small_receive_buffer(sock: socket.socket) -> None:
    """Shrink ``sock``'s receive buffer (before connecting: it also stops
    the kernel from growing it), so a client that does not read makes the
    server's unsent output pile up after a few KiB instead of megabytes."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


def flood(sock: socket.socket, line: bytes = b"\n", limit: int = 256 << 20) -> tuple[int, str]:
    """Send ``line`` over and over without reading until the server gives
    up on this connection; return (bytes sent, how it ended).

    Fails the test if ``limit`` bytes went out without the server reacting.
    """
    chunk = line * (65536 // len(line))
    sent = 0
    sock.settimeout(WAIT)
    try:
        while sent < limit:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError as exc:
        return sent, type(exc).__name__
    raise AssertionError(f"the server took {sent} bytes without disconnecting")
