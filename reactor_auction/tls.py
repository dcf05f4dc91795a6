"""The TLS layer: a handler to the socket transport below, a transport to
the application handler above (the shape of asyncio's ``sslproto.py``).

Bytes flow up as ciphertext -> ``TLSEngine`` -> plaintext -> application,
and down the other way. The application hears of its connection only once
the handshake is done (``connection_made``), so a connection that never
completes one holds nothing of the application's: a handshake that fails is
closed with its reason, reported to ``on_handshake_failed`` alone.

End of input: the peer's close_notify, or its plain EOF between two
records, is ``eof_received``; a TLS error after the handshake (a bad or cut
record) closes the connection, and ``connection_lost`` reports it. Closing:
``finish`` sends close_notify once, after the last plaintext, then finishes
the transport below (flush, FIN, drain, close) without waiting for the
peer's close_notify.

The handshake deadline is the caller's to choose: given ``handshake_timeout``,
the layer arms it on the scheduler when the transport below is made and
cancels it when the handshake completes; expiry closes the connection with a
TLSError (TIMEOUT).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .loop import FatalError
from .tls_engine import (
    HandshakeCompleted,
    PeerClosed,
    PlaintextReceived,
    TLSEngine,
    TLSError,
    TLSEvent,
    TLSFailed,
    TLSFailure,
)
from .transport import Handler, Transport


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """The loop's deferred calls and timers."""

    def call_soon(self, callback: Callable[[], None]) -> None: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...


#: Called with the peer and the exception when a connection ends before its
#: handshake completed (a TLSError, or the socket's OSError).
HandshakeFailed = Callable[[str, BaseException], None]


class TLSLayer:
    """TLS between a transport below and an application handler above.

    Give it as the handler to the socket transport; the application gets it
    as its transport once the handshake is done.
    """

    __slots__ = (
        "_engine", "_app", "_scheduler", "_timeout", "_on_failed", "_lower",
        "_timer", "_made", "_closing", "_paused", "_held", "_held_eof", "_delivering",
    )

    def __init__(
        self,
        engine: TLSEngine,
        app: Handler,
        scheduler: Scheduler,
        *,
        handshake_timeout: float | None = None,
        on_handshake_failed: HandshakeFailed | None = None,
    ) -> None:
        """Run ``engine`` for ``app``. ``handshake_timeout``: seconds from
        the transport below being made to the handshake completing (None:
        no limit). ``on_handshake_failed(peer, exc)``: told of a connection
        that ended before its handshake completed (the app never is)."""
        self._engine = engine
        self._app: Handler | None = app
        self._scheduler = scheduler
        self._timeout = handshake_timeout
        self._on_failed = on_handshake_failed
        self._lower: Transport | None = None
        self._timer: Cancellable | None = None
        self._made = False  # the app's connection_made was called
        self._closing = False  # the app called finish() or abort()
        self._paused = False  # the app paused reading
        # Input that came while the app was paused, delivered on resume.
        self._held = bytearray()
        self._held_eof = False
        self._delivering = False  # a deferred delivery of held input is due

    # -- a Transport, to the app ----------------------------------------------

    @property
    def peer(self) -> str:
        """The peer's ``ip:port`` ("" before the transport below is made)."""
        return self._lower.peer if self._lower is not None else ""

    @property
    def closing(self) -> bool:
        """True once ``finish``/``abort`` began or the connection failed."""
        return self._closing or (self._lower is not None and self._lower.closing)

    @property
    def pending_output(self) -> int:
        """The number of bytes written but not yet sent: ciphertext below,
        and plaintext not yet encrypted."""
        below = self._lower.pending_output if self._lower is not None else 0
        return below + self._engine.pending_plaintext

    @property
    def version(self) -> str | None:
        """The negotiated TLS version ("TLSv1.3"), once the handshake is done."""
        return self._engine.version

    @property
    def handshake_done(self) -> bool:
        """Whether the handshake completed (the app has been told)."""
        return self._made

    def write(self, data: bytes) -> None:
        """Encrypt ``data`` and write it below. Ignored once closing; a TLS
        error closes the connection with it."""
        lower = self._lower
        if lower is None or self.closing or not data:
            return
        try:
            self._engine.send(data)
        except TLSError as exc:
            lower.abort(exc)
            return
        out = self._engine.data_to_send()
        if out:
            lower.write(out)

    def finish(self) -> None:
        """Send what was written and close_notify (once), then finish the
        transport below; ``connection_lost(None)`` follows."""
        lower = self._lower
        if lower is None or self._closing:
            return
        self._closing = True
        self._engine.close()
        out = self._engine.data_to_send()
        if out:
            lower.write(out)
        lower.finish()

    def abort(self, exc: BaseException | None = None, *, reset: bool = False) -> None:
        """Close now, without close_notify (an abort is not an orderly end);
        ``connection_lost(exc)`` follows."""
        self._closing = True
        if self._lower is not None:
            self._lower.abort(exc, reset=reset)

    def pause_reading(self) -> None:
        """Deliver no input until ``resume_reading``."""
        self._paused = True
        if self._lower is not None:
            self._lower.pause_reading()

    def resume_reading(self) -> None:
        """Deliver input again: first, on a deferred call, what came while
        paused."""
        self._paused = False
        if self._lower is not None:
            self._lower.resume_reading()
        if (self._held or self._held_eof) and not self._delivering:
            self._delivering = True
            self._scheduler.call_soon(self._deliver_held)

    # -- a Handler, to the transport below -------------------------------------

    def connection_made(self, transport: Transport) -> None:
        """The socket is connected: start the handshake and its deadline."""
        self._lower = transport
        if self._timeout is not None:
            self._timer = self._scheduler.call_later(self._timeout, self._handshake_expired)
        self._handle(self._engine.start())

    def data_received(self, data: bytes) -> None:
        """Ciphertext arrived."""
        self._handle(self._engine.receive(data))

    def eof_received(self) -> None:
        """The peer's FIN arrived."""
        self._handle(self._engine.receive_eof())

    def connection_lost(self, exc: BaseException | None) -> None:
        """The transport below is closed: tell the app, or, if the handshake
        never completed, ``on_handshake_failed``."""
        self._cancel_timer()
        app, self._app = self._app, None  # no cycle left, nothing more delivered
        if self._made:
            if app is not None:
                app.connection_lost(exc)
        elif exc is not None and self._on_failed is not None:
            self._on_failed(self.peer, exc)

    # -- internals ---------------------------------------------------------------

    def _handle(self, events: list[TLSEvent]) -> None:
        """Send the engine's ciphertext below, then act on its events.

        An exception from the app propagates: the transport below closes
        with it, and ``connection_lost`` reports it to the app.
        """
        lower = self._lower
        assert lower is not None  # events only come once it is made
        out = self._engine.data_to_send()
        if out:
            lower.write(out)
        for event in events:
            if isinstance(event, PlaintextReceived):
                if self._paused or self._held:
                    self._held += event.data
                elif not self.closing and self._app is not None:
                    self._app.data_received(event.data)
            elif isinstance(event, PeerClosed):
                if self._paused or self._held:
                    self._held_eof = True
                elif not self.closing and self._app is not None:
                    self._app.eof_received()
            elif isinstance(event, HandshakeCompleted):
                self._cancel_timer()
                self._made = True
                if self._app is not None:
                    self._app.connection_made(self)
            elif isinstance(event, TLSFailed):
                lower.abort(event.error)

    def _deliver_held(self) -> None:
        """The deferred call after ``resume_reading``: deliver the input held
        while paused, the EOF last. A deferred call of the loop, not of the
        transport below: an exception from the app closes the connection
        with it here."""
        self._delivering = False
        app = self._app
        if app is None or self._paused or self.closing:
            return
        data = bytes(self._held)
        self._held.clear()
        try:
            if data:
                app.data_received(data)
            if self._held_eof and not self._paused and not self.closing:
                self._held_eof = False
                app.eof_received()
        except FatalError:
            raise
        except Exception as exc:
            self.abort(exc)

    def _handshake_expired(self) -> None:
        self._timer = None
        if not self._made and self._lower is not None:
            reason = f"no handshake within {self._timeout:g} s"
            self._lower.abort(TLSError(TLSFailure.TIMEOUT, reason))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
