"""Sockets outside a connection: listening, connecting, addresses, and the
descriptor limit. What happens on a connection is transport.py's.
"""

from __future__ import annotations

import errno
import functools
import os
import selectors
import socket
from collections.abc import Callable
from typing import Any

from .loop import AGAIN, FatalError, Loop, Timer


def format_peer(sock: socket.socket) -> str:
    """Return ``ip:port`` of the peer (an IPv4-mapped IPv6 address shown as IPv4)."""
    try:
        address = sock.getpeername()
    except OSError:
        return "?"
    return format_address(address)


def format_address(address: Any) -> str:
    """Return ``ip:port`` for a socket address as accept() or getpeername()
    give it (an IPv4-mapped IPv6 address shown as IPv4)."""
    if not isinstance(address, tuple):  # a Unix socket (tests use socketpair)
        return str(address) or "?"
    host = str(address[0])
    if host.startswith("::ffff:"):
        host = host[7:]
    elif ":" in host:
        host = f"[{host}]"
    return f"{host}:{address[1]}"


# --- listening --------------------------------------------------------------------

#: accept() errors that mean "out of descriptors or memory": pause, then retry.
_ACCEPT_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class ListenError(OSError):
    """The port could not be opened."""


class Listener:
    """A listening socket that hands each new connection to
    ``on_connection(sock, peer)``, ``peer`` being its ``ip:port``.

    An exception from ``on_connection`` (it could not set the connection
    up) closes that connection only and is reported to
    ``on_error(peer, exc)``; the listener serves on. FatalError propagates.

    At most ``max_per_wake`` connections are accepted per wake-up, so a
    connection storm cannot starve the connections already being served. When
    descriptors run out, the listener stops watching for ``pause`` seconds
    (as asyncio and nginx do) instead of spinning on a ready socket it cannot
    serve; connections wait in the kernel's backlog meanwhile.
    """

    def __init__(
        self,
        loop: Loop,
        host: str,
        port: int,
        on_connection: Callable[[socket.socket, str], object],
        *,
        on_error: Callable[[str, Exception], None],
        backlog: int,
        max_per_wake: int = 128,
        pause: float = 0.1,
        on_exhausted: Callable[[OSError], None] | None = None,
        send_buffer: int | None = None,
    ) -> None:
        """Listen on ``host``:``port`` with a queue of ``backlog``
        connections not yet accepted. Raises ListenError.

        ``send_buffer`` caps the kernel's send buffer of every accepted
        socket, which Linux would otherwise grow to megabytes for a peer that
        does not read. Like TCP_NODELAY, it is set once on the listening
        socket, and accepted sockets inherit it (Linux): no system call per
        connection.
        """
        self._loop = loop
        self._on_connection = on_connection
        self._on_error = on_error
        self._max_per_wake = max_per_wake
        self._pause = pause
        self._on_exhausted = on_exhausted
        self._paused: Timer | None = None
        self._exhausted = False  # reported, and no accept has succeeded since
        try:
            self._sock = _bind(host, port, backlog, send_buffer)
        except OSError as exc:
            raise ListenError(exc.errno, exc.strerror) from None
        self.port: int = self._sock.getsockname()[1]
        self._family = int(self._sock.family)
        self._kind = int(self._sock.type)
        # socket.accept() converts family and type to enums on every call
        # (a cost per connection: docs/PERFORMANCE.md, second round); the C
        # call under it (CPython's private _accept) returns the bare
        # descriptor, which is wrapped with the listener's family and type
        # taken once. A Python without it gets the public accept().
        self._accept: Callable[[], tuple[int, Any]] = getattr(
            self._sock, "_accept", None
        ) or functools.partial(_accept_fd, self._sock)
        loop.watch(self._sock, selectors.EVENT_READ, self._on_readable)

    def _on_readable(self, mask: int) -> None:
        accept = self._accept
        family, kind = self._family, self._kind
        on_connection = self._on_connection
        for _ in range(self._max_per_wake):
            try:
                fd, address = accept()
            except AGAIN:
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_EXHAUSTED:
                    self._pause_accepting(exc)
                    return
                continue  # ECONNABORTED and friends: that client is gone
            self._exhausted = False
            peer = format_address(address)
            sock: socket.socket | None = None
            try:
                sock = socket.socket(family, kind, 0, fd)
                on_connection(sock, peer)
            except FatalError:
                raise
            except Exception as exc:
                self._failed(fd, sock, peer, exc)

    def _failed(
        self, fd: int, sock: socket.socket | None, peer: str, exc: Exception
    ) -> None:
        """Setting up one connection raised ``exc``: close it (unwatched
        first, should it have been watched), report it, serve on."""
        if sock is None:
            os.close(fd)
        else:
            self._loop.unwatch(sock)
            sock.close()
        self._on_error(peer, exc)

    def _pause_accepting(self, exc: OSError) -> None:
        # Reported once per shortage, not at every retry.
        if self._on_exhausted is not None and not self._exhausted:
            self._on_exhausted(exc)
        self._exhausted = True
        self._loop.unwatch(self._sock)
        self._paused = self._loop.call_later(self._pause, self._resume)

    def _resume(self) -> None:
        self._paused = None
        self._loop.watch(self._sock, selectors.EVENT_READ, self._on_readable)

    def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        if self._sock.fileno() >= 0:
            self._loop.unwatch(self._sock)
            self._sock.close()


def _accept_fd(sock: socket.socket) -> tuple[int, Any]:
    """Accept as CPython's ``socket._accept`` does, with the public API:
    return the new connection's descriptor and address."""
    conn, address = sock.accept()
    return conn.detach(), address


def _no_delay(sock: socket.socket) -> None:
    """Send each write at once: lines are small and each is a whole message,
    so waiting for the peer's delayed ACK (Nagle) only adds latency."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # not TCP


def _bind(host: str, port: int, backlog: int, send_buffer: int | None) -> socket.socket:
    """Return a non-blocking listening socket with the options its accepted
    sockets inherit; "" means every interface, IPv6 too if possible.
    Raises OSError (the socket is closed then)."""
    if host in ("", "::") and socket.has_dualstack_ipv6():
        sock = socket.create_server(
            ("::", port), family=socket.AF_INET6, backlog=backlog, dualstack_ipv6=True
        )
    else:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        sock = socket.create_server(address[:2], family=family, backlog=backlog)
    try:
        sock.setblocking(False)
        _no_delay(sock)
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    except OSError:
        sock.close()
        raise
    return sock


# --- clients ----------------------------------------------------------------------


def connect(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    """Return a connected non-blocking TCP socket.

    Connecting happens before the loop runs, so it may block (for DNS and the
    handshake) for up to ``timeout`` seconds. Raises OSError (socket.gaierror
    for an unknown host, ConnectionRefusedError, TimeoutError).
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setblocking(False)
    _no_delay(sock)
    return sock


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (soft, hard) after.

    Returns the limits unchanged where they cannot be raised.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard
