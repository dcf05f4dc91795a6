"""The TLS engine and layer, pairwise and in memory: no sockets.

A server end and a client end, with certificates from trustme, pass their
ciphertext to each other; each test runs with the ciphertext handed over
whole and (``step``) one byte at a time.
"""

from __future__ import annotations

import itertools
import ssl
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from reactor_auction.tls import TLSLayer
from reactor_auction.tls_engine import (
    NOT_TLS_ALERT,
    HandshakeCompleted,
    PeerClosed,
    PlaintextReceived,
    TLSConfigError,
    TLSEngine,
    TLSError,
    TLSEvent,
    TLSFailed,
    TLSFailure,
    TLSState,
    client_context,
    server_context,
    starts_like_tls,
)
from reactor_auction.transport import Transport

NAME = "auction.test"
LINE = b"2 100 3 X\n"


# --- certificates and contexts ------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    cert: Path  # the server's certificate chain
    key: Path  # its private key
    cafile: Path  # the CA that issued it
    dir: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    issued = ca.issue_cert(NAME)
    pki = Pki(ca, base / "cert.pem", base / "key.pem", base / "ca.pem", base)
    issued.cert_chain_pems[0].write_to_path(str(pki.cert))
    issued.private_key_pem.write_to_path(str(pki.key))
    ca.cert_pem.write_to_path(str(pki.cafile))
    return pki


@pytest.fixture(scope="module")
def server_ctx(pki: Pki) -> ssl.SSLContext:
    return server_context(str(pki.cert), str(pki.key))


@pytest.fixture(scope="module")
def client_ctx(pki: Pki) -> ssl.SSLContext:
    return client_context(str(pki.cafile))


@pytest.fixture(params=[None, 1], ids=["whole", "bytewise"])
def step(request: pytest.FixtureRequest) -> int | None:
    """How much ciphertext to hand over at a time (None: all there is)."""
    value: int | None = request.param
    return value


def chunks(data: bytes, step: int | None) -> Iterator[bytes]:
    if step is None:
        yield data
    else:
        for i in range(0, len(data), step):
            yield data[i:i + step]


# --- engines, pairwise ---------------------------------------------------------


@dataclass
class End:
    """An engine and everything it reported."""

    engine: TLSEngine
    events: list[TLSEvent] = field(default_factory=list)

    def record(self, events: list[TLSEvent]) -> None:
        self.events += events

    def feed(self, data: bytes, step: int | None = None) -> None:
        for chunk in chunks(data, step):
            self.record(self.engine.receive(chunk))

    @property
    def plaintext(self) -> bytes:
        return b"".join(e.data for e in self.events if isinstance(e, PlaintextReceived))

    def failure(self) -> TLSError:
        failed = [e for e in self.events if isinstance(e, TLSFailed)]
        assert len(failed) == 1, self.events
        return failed[0].error

    def kinds(self) -> list[type]:
        return [type(e) for e in self.events]


def server_end(context: ssl.SSLContext) -> End:
    end = End(TLSEngine(context, server_side=True))
    end.record(end.engine.start())
    return end


def client_end(context: ssl.SSLContext, name: str = NAME) -> End:
    end = End(TLSEngine(context, server_side=False, server_hostname=name))
    end.record(end.engine.start())
    return end


def pump(a: End, b: End, step: int | None = None) -> None:
    """Pass ciphertext both ways until neither end has any to send."""
    moved = True
    while moved:
        moved = False
        for src, dst in ((a, b), (b, a)):
            data = src.engine.data_to_send()
            if data:
                moved = True
                dst.feed(data, step)


def connected(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, step: int | None = None
) -> tuple[End, End]:
    server, client = server_end(server_ctx), client_end(client_ctx)
    pump(client, server, step)
    assert server.kinds() == [HandshakeCompleted] and client.kinds() == [HandshakeCompleted]
    server.events.clear()
    client.events.clear()
    return server, client


def test_handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, step: int | None
) -> None:
    server, client = server_end(server_ctx), client_end(client_ctx)
    assert client.events == [] and server.events == []
    assert server.engine.state is TLSState.HANDSHAKING
    pump(client, server, step)
    for end in (server, client):
        (done,) = end.events
        assert isinstance(done, HandshakeCompleted)
        assert done.version == "TLSv1.3" and done.cipher
        assert end.engine.state is TLSState.OPEN and end.engine.version == "TLSv1.3"


def test_tls_1_2_handshake(pki: Pki, client_ctx: ssl.SSLContext, step: int | None) -> None:
    ctx = server_context(str(pki.cert), str(pki.key))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    server, client = server_end(ctx), client_end(client_ctx)
    pump(client, server, step)
    (done,) = server.events
    assert isinstance(done, HandshakeCompleted) and done.version == "TLSv1.2"


def test_lines_split_across_records_both_ways(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, step: int | None
) -> None:
    server, client = connected(server_ctx, client_ctx)
    for piece in (b"2 10", b"0 3 ", b"X\n"):  # one record each
        client.engine.send(piece)
    server.feed(client.engine.data_to_send(), step)
    assert server.plaintext == LINE
    server.engine.send(b"Bid received.\n")
    server.engine.send(b"Winner\n")
    client.feed(server.engine.data_to_send(), step)
    assert client.plaintext == b"Bid received.\nWinner\n"
    assert not [e for e in server.events + client.events if not isinstance(e, PlaintextReceived)]


def test_all_plaintext_of_several_records_in_one_receive(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    server, client = connected(server_ctx, client_ctx)
    lines = [b"%d 100\n" % i for i in range(20)]
    for line in lines:
        client.engine.send(line)
    big = bytes(range(256)) * 400  # 100 KiB: seven full records and a tail
    client.engine.send(big)
    events = server.engine.receive(client.engine.data_to_send())
    assert events == [PlaintextReceived(b"".join(lines) + big)]
    assert server.engine._ssl.pending() == 0  # nothing left behind in OpenSSL


def test_send_before_the_handshake_waits_for_it(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, step: int | None
) -> None:
    server, client = server_end(server_ctx), client_end(client_ctx)
    client.engine.send(LINE)
    assert client.engine.pending_plaintext == len(LINE)
    pump(client, server, step)
    assert client.engine.pending_plaintext == 0
    assert server.kinds()[0] is HandshakeCompleted and server.plaintext == LINE


def test_close_notify_from_client(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, step: int | None
) -> None:
    server, client = connected(server_ctx, client_ctx)
    client.engine.send(LINE)
    client.engine.close()
    assert client.engine.state is TLSState.CLOSED  # at once: no waiting for the peer
    server.feed(client.engine.data_to_send(), step)
    assert server.events == [PlaintextReceived(LINE), PeerClosed(close_notify=True)]
    # The server may still answer a peer that closed (a half-close), and the
    # client, closed, still reads until the server's close_notify.
    server.engine.send(b"Winner\n")
    server.engine.close()
    client.feed(server.engine.data_to_send(), step)
    assert client.events == [PlaintextReceived(b"Winner\n"), PeerClosed(close_notify=True)]


def test_close_notify_from_server_once(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, step: int | None
) -> None:
    server, client = connected(server_ctx, client_ctx)
    server.engine.send(b"Auction over.\n")
    server.engine.close()
    out = server.engine.data_to_send()
    server.engine.close()
    server.engine.send(b"ignored\n")
    assert server.engine.data_to_send() == b""  # one close_notify, nothing after it
    client.feed(out, step)
    assert client.events == [PlaintextReceived(b"Auction over.\n"), PeerClosed(close_notify=True)]
    client.feed(b"\x17\x03\x03\x00\x05hello")
    assert len(client.events) == 2  # after close_notify, input is discarded


def test_plain_eof_after_our_close_notify(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    server, client = connected(server_ctx, client_ctx)
    client.engine.close()
    server.feed(client.engine.data_to_send())
    server.engine.send(b"Winner\n")
    client.feed(server.engine.data_to_send())
    client.record(client.engine.receive_eof())  # the server closed without close_notify
    assert client.events == [PlaintextReceived(b"Winner\n"), PeerClosed(close_notify=False)]


def test_plain_eof_between_records_is_end_of_input(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, step: int | None
) -> None:
    server, client = connected(server_ctx, client_ctx)
    client.engine.send(LINE)
    server.feed(client.engine.data_to_send(), step)
    server.record(server.engine.receive_eof())
    assert server.events == [PlaintextReceived(LINE), PeerClosed(close_notify=False)]
    # Writing still works after the peer's EOF (the context ignores the
    # unexpected EOF rather than failing the connection on it).
    server.engine.send(b"Winner\n")
    client.feed(server.engine.data_to_send(), step)
    assert client.plaintext == b"Winner\n"


def test_eof_in_the_middle_of_a_record_is_broken(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, step: int | None
) -> None:
    server, client = connected(server_ctx, client_ctx)
    client.engine.send(b"1 100\n")
    first = client.engine.data_to_send()
    client.engine.send(LINE)
    second = client.engine.data_to_send()
    server.feed(first + second[:len(second) - 3], step)
    server.record(server.engine.receive_eof())
    assert server.kinds() == [PlaintextReceived, TLSFailed]
    assert server.plaintext == b"1 100\n"
    error = server.failure()
    assert error.failure is TLSFailure.BROKEN and str(error) == "closed in the middle of a record"
    assert server.engine.state is TLSState.FAILED


def test_eof_at_every_point_of_three_records(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    lines = [b"1\n", b"2 100\n", b"x" * 40 + b"\n"]
    for cut in itertools.count(1):
        server, client = connected(server_ctx, client_ctx)
        records = []
        for line in lines:
            client.engine.send(line)
            records.append(client.engine.data_to_send())
        stream = b"".join(records)
        if cut > len(stream):
            break
        ends = list(itertools.accumulate(map(len, records)))
        server.feed(stream[:cut], step=7)
        server.record(server.engine.receive_eof())
        assert server.plaintext == b"".join(lines[:sum(end <= cut for end in ends)]), cut
        last = server.events[-1]
        if cut in ends:
            assert last == PeerClosed(close_notify=False), cut
        else:
            assert isinstance(last, TLSFailed) and last.error.failure is TLSFailure.BROKEN, cut


def test_corrupt_record_is_broken(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    server, client = connected(server_ctx, client_ctx)
    client.engine.send(LINE)
    record = bytearray(client.engine.data_to_send())
    record[-1] ^= 1  # the authentication tag no longer matches
    server.feed(bytes(record))
    error = server.failure()
    assert error.failure is TLSFailure.BROKEN and str(error).startswith("TLS error: ")
    assert isinstance(error, ConnectionError)  # the peer's doing, like a reset
    server.feed(b"more")
    assert len(server.events) == 1


@pytest.mark.parametrize(
    "data",
    [LINE, b"GET / HTTP/1.1\r\nHost: auction.test\r\n\r\n", bytes(range(256)), b"x", b"\x16x"],
    ids=["auction-line", "http", "garbage", "one-byte", "handshake-type-then-junk"],
)
def test_not_tls_to_the_server(server_ctx: ssl.SSLContext, data: bytes, step: int | None) -> None:
    server = server_end(server_ctx)
    server.feed(data, step)
    error = server.failure()
    assert error.failure is TLSFailure.NOT_TLS and str(error) == "not TLS"
    # One alert, by which a plain-text client can tell it reached a TLS port.
    alert = server.engine.data_to_send()
    assert alert == NOT_TLS_ALERT and starts_like_tls(alert)
    server.feed(data)
    assert server.engine.data_to_send() == b"" and len(server.events) == 1


def test_plain_server_to_the_client(client_ctx: ssl.SSLContext) -> None:
    client = client_end(client_ctx)
    client.engine.data_to_send()  # the ClientHello, to a server that answers in plain text
    client.feed(b"Waiting for the seller.\n")
    assert client.failure().failure is TLSFailure.NOT_TLS
    assert client.engine.data_to_send() == b""  # a plain server gets no alert


def test_starts_like_tls(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    server, client = server_end(server_ctx), client_end(client_ctx)
    server.feed(client.engine.data_to_send())
    assert starts_like_tls(server.engine.data_to_send())  # the ServerHello
    for plain in (b"", b"\x16", b"Waiting for the seller.\n", LINE, b"\x16\n"):
        assert not starts_like_tls(plain)


def test_tls_looking_garbage_fails_the_handshake(server_ctx: ssl.SSLContext) -> None:
    server = server_end(server_ctx)
    server.feed(b"\x16\x03\x01\x00\x05hello")
    error = server.failure()
    assert error.failure is TLSFailure.HANDSHAKE and str(error).startswith("handshake failed: ")
    assert server.engine.data_to_send().startswith(b"\x15\x03")  # OpenSSL's alert


def test_half_a_client_hello_then_nothing(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, step: int | None
) -> None:
    server, client = server_end(server_ctx), client_end(client_ctx)
    hello = client.engine.data_to_send()
    server.feed(hello[:len(hello) // 2], step)
    # Still waiting: only the caller's deadline ends this (see the layer tests).
    assert server.events == [] and server.engine.state is TLSState.HANDSHAKING
    server.record(server.engine.receive_eof())
    error = server.failure()
    assert error.failure is TLSFailure.CLOSED and str(error) == "closed during the handshake"


def test_eof_before_anything(server_ctx: ssl.SSLContext) -> None:
    server = server_end(server_ctx)
    server.record(server.engine.receive_eof())
    assert str(server.failure()) == "closed before the handshake"


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_tls_client_refused(server_ctx: ssl.SSLContext, pki: Pki, version: str) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    pki.ca.configure_trust(old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = getattr(ssl.TLSVersion, version)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    server, client = server_end(server_ctx), client_end(old)
    if client.events:
        pytest.skip(f"this OpenSSL cannot speak {version} at all")
    pump(client, server)
    error = server.failure()
    assert error.failure is TLSFailure.HANDSHAKE and "protocol" in str(error)
    # The client was told (a protocol_version alert), not left waiting.
    assert client.failure().failure is TLSFailure.HANDSHAKE


def test_untrusted_certificate(server_ctx: ssl.SSLContext, step: int | None) -> None:
    other = ssl.create_default_context()
    trustme.CA().configure_trust(other)
    server, client = server_end(server_ctx), client_end(other)
    pump(client, server, step)
    error = client.failure()
    assert error.failure is TLSFailure.VERIFY
    assert str(error).startswith("certificate verify failed: ")
    assert client.engine.state is TLSState.FAILED
    # The server hears the client's alert.
    assert server.failure().failure is TLSFailure.HANDSHAKE


def test_wrong_server_name(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    server, client = server_end(server_ctx), client_end(client_ctx, name="wrong.test")
    pump(client, server)
    error = client.failure()
    assert error.failure is TLSFailure.VERIFY and "wrong.test" in str(error)


def test_close_during_the_handshake_stops(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    server, client = server_end(server_ctx), client_end(client_ctx)
    hello = client.engine.data_to_send()
    server.engine.close()
    assert server.engine.state is TLSState.CLOSED
    server.feed(hello)
    assert server.events == [] and server.engine.data_to_send() == b""


# --- contexts -----------------------------------------------------------------


def test_server_context_settings(server_ctx: ssl.SSLContext, pki: Pki) -> None:
    assert server_ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert server_ctx.options & ssl.OP_NO_RENEGOTIATION
    assert server_ctx.num_tickets == 0 and server_ctx.options & ssl.OP_NO_TICKET
    assert server_ctx.verify_mode is ssl.CERT_NONE  # no client certificates
    tickets = server_context(str(pki.cert), str(pki.key), session_tickets=True)
    assert tickets.num_tickets > 0 and not tickets.options & ssl.OP_NO_TICKET


def test_client_context_settings(client_ctx: ssl.SSLContext) -> None:
    assert client_ctx.verify_mode is ssl.CERT_REQUIRED and client_ctx.check_hostname
    assert client_ctx.minimum_version is ssl.TLSVersion.TLSv1_2


def test_key_inside_the_certificate_file(pki: Pki, client_ctx: ssl.SSLContext) -> None:
    both = pki.dir / "both.pem"
    both.write_bytes(pki.cert.read_bytes() + pki.key.read_bytes())
    server, client = server_end(server_context(str(both))), client_end(client_ctx)
    pump(client, server)
    assert server.kinds() == [HandshakeCompleted]


def _encrypted_key(pki: Pki) -> Path:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.key.read_bytes(), password=None)
    path = pki.dir / "encrypted.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ))
    return path


BAD_FILES: dict[str, tuple[Callable[[Pki], tuple[Path, Path]], str]] = {
    "missing-cert": (lambda p: (p.dir / "nope.pem", p.key), "cannot read certificate file"),
    "missing-key": (lambda p: (p.cert, p.dir / "nope.pem"), "cannot read key file"),
    "directory": (lambda p: (p.dir, p.key), "cannot read certificate file"),
    "text-cert": (lambda p: (p.dir / "text.pem", p.key), "no PEM certificate in it"),
    "text-key": (lambda p: (p.cert, p.dir / "text.pem"), "no PEM private key in it"),
    "swapped": (lambda p: (p.key, p.cert), "no PEM certificate in it"),
    "other-key": (lambda p: (p.cert, p.dir / "other.pem"), "does not match the certificate"),
    "encrypted-key": (lambda p: (p.cert, _encrypted_key(p)), "the key is encrypted"),
    "broken-cert": (lambda p: (p.dir / "broken.pem", p.key), "the certificate is malformed"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_certificate_or_key_files(pki: Pki, case: str) -> None:
    (pki.dir / "text.pem").write_text("2 100 3 X\n")
    trustme.CA().issue_cert(NAME).private_key_pem.write_to_path(str(pki.dir / "other.pem"))
    (pki.dir / "broken.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n"
    )
    make, words = BAD_FILES[case]
    cert, key = make(pki)
    with pytest.raises(TLSConfigError) as caught:
        server_context(str(cert), str(key))
    message = str(caught.value)
    assert words in message and "\n" not in message
    assert str(cert) in message or str(key) in message  # it names the file


@pytest.mark.parametrize("content", [None, "2 100 3 X\n"], ids=["missing", "text"])
def test_bad_cafile(pki: Pki, content: str | None) -> None:
    path = pki.dir / f"ca-{content is None}.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TLSConfigError) as caught:
        client_context(str(path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


# --- the layer, over fake transports --------------------------------------------


class FakeTimer:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay = delay
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeScheduler:
    """The loop's call_soon and call_later, run by hand."""

    def __init__(self) -> None:
        self.soon: list[Callable[[], None]] = []
        self.timers: list[FakeTimer] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.soon.append(callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(delay, callback)
        self.timers.append(timer)
        return timer

    def run_soon(self) -> None:
        while self.soon:
            self.soon.pop(0)()


class FakeLower:
    """The socket transport under the layer, as the layer sees it: it
    records what it is told, and calls its handler the way the real one
    does (an exception from the handler closes it with that exception;
    connection_lost comes on a deferred call)."""

    def __init__(self, scheduler: FakeScheduler, peer: str) -> None:
        self.scheduler = scheduler
        self._peer = peer
        self.sent = bytearray()
        self.calls: list[Any] = []
        self.reading = True
        self.finishing = False
        self.closed = False
        self.exc: BaseException | None = None
        self.handler: TLSLayer | None = None

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def closing(self) -> bool:
        return self.finishing or self.closed

    @property
    def pending_output(self) -> int:
        return len(self.sent)

    def write(self, data: bytes) -> None:
        if not self.closing:
            self.sent += data

    def finish(self) -> None:
        self.calls.append("finish")
        self.finishing = True

    def abort(self, exc: BaseException | None = None, *, reset: bool = False) -> None:
        self.calls.append(("abort", exc, reset))
        self._close(exc)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    # -- driving it --

    def attach(self, handler: TLSLayer) -> None:
        self.handler = handler
        self._contain(handler.connection_made, self)

    def take(self) -> bytes:
        data = bytes(self.sent)
        self.sent.clear()
        return data

    def deliver(self, data: bytes) -> None:
        if not self.closing and self.handler is not None:
            self._contain(self.handler.data_received, data)

    def deliver_eof(self) -> None:
        if not self.closing and self.handler is not None:
            self._contain(self.handler.eof_received)

    def drained(self) -> None:
        """finish() is done: flushed, FIN sent, the drain over."""
        self._close(None)

    def _contain(self, call: Callable[..., None], *args: Any) -> None:
        try:
            call(*args)
        except Exception as exc:
            if self.closed:
                self.exc = exc
            else:
                self.abort(exc)

    def _close(self, exc: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.exc = exc
        self.scheduler.call_soon(self._lost)

    def _lost(self) -> None:
        assert self.handler is not None
        self.handler.connection_lost(self.exc)


class FakeApp:
    """The application handler: records its calls; ``react`` hooks act in them."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.transport: Transport | None = None
        self.react: dict[str, Callable[[], None]] = {}

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        self.calls.append("made")
        self._react("made")

    def data_received(self, data: bytes) -> None:
        if self.calls and isinstance(self.calls[-1], bytes):
            self.calls[-1] += data  # how it arrived in pieces is not the point
        else:
            self.calls.append(data)
        self._react("data")

    def eof_received(self) -> None:
        self.calls.append("eof")
        self._react("eof")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.calls.append(("lost", exc))

    def _react(self, name: str) -> None:
        hook = self.react.get(name)
        if hook is not None:
            hook()

    @property
    def t(self) -> Transport:
        assert self.transport is not None
        return self.transport


class LayerEnd:
    """A TLS layer between a FakeLower and a FakeApp."""

    def __init__(
        self,
        engine: TLSEngine,
        scheduler: FakeScheduler,
        peer: str,
        handshake_timeout: float | None = None,
    ) -> None:
        self.app = FakeApp()
        self.lower = FakeLower(scheduler, peer)
        self.failed: list[tuple[str, BaseException]] = []
        self.layer = TLSLayer(
            engine, self.app, scheduler, handshake_timeout=handshake_timeout,
            on_handshake_failed=lambda peer, exc: self.failed.append((peer, exc)),
        )

    def start(self) -> LayerEnd:
        self.lower.attach(self.layer)
        return self

    def aborted_with(self) -> BaseException | None:
        aborts = [call for call in self.lower.calls if call[0] == "abort"]
        assert len(aborts) == 1, self.lower.calls
        exc: BaseException | None = aborts[0][1]
        return exc


def shuttle(a: LayerEnd, b: LayerEnd, step: int | None = None) -> None:
    """Pass ciphertext both ways until neither lower transport holds any."""
    moved = True
    while moved:
        moved = False
        for src, dst in ((a, b), (b, a)):
            data = src.lower.take()
            if data:
                moved = True
                for chunk in chunks(data, step):
                    dst.lower.deliver(chunk)


@pytest.fixture
def scheduler() -> FakeScheduler:
    return FakeScheduler()


def layer_pair(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    scheduler: FakeScheduler,
    handshake_timeout: float | None = None,
) -> tuple[LayerEnd, LayerEnd]:
    server = LayerEnd(
        TLSEngine(server_ctx, server_side=True), scheduler, "10.0.0.2:50000", handshake_timeout
    )
    client = LayerEnd(
        TLSEngine(client_ctx, server_side=False, server_hostname=NAME), scheduler, "10.0.0.1:4000"
    )
    return server.start(), client.start()


def test_layer_app_hears_of_the_connection_after_the_handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler,
    step: int | None,
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    hello = client.lower.take()
    assert hello and client.app.calls == []  # the ClientHello went out at once
    for chunk in chunks(hello, step):
        server.lower.deliver(chunk)
    assert server.app.calls == [] and not server.layer.handshake_done
    shuttle(server, client, step)
    assert server.app.calls == ["made"] and client.app.calls == ["made"]
    assert server.app.transport is server.layer and server.layer.handshake_done
    assert server.layer.peer == "10.0.0.2:50000" and server.layer.version == "TLSv1.3"
    assert not server.layer.closing


def test_layer_lines_both_ways(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler,
    step: int | None,
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    shuttle(server, client)
    client.app.t.write(b"2 100 ")
    client.app.t.write(b"3 X\n")
    shuttle(server, client, step)
    assert server.app.calls == ["made", LINE]
    server.app.t.write(b"Bid received.\n")
    shuttle(server, client, step)
    assert client.app.calls == ["made", b"Bid received.\n"]


def test_layer_client_data_in_the_handshake_flight(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    client.app.react["made"] = lambda: client.app.t.write(LINE)
    shuttle(server, client)  # the client's Finished and its line arrive together
    assert server.app.calls == ["made", LINE]


def test_layer_not_tls_never_reaches_the_app(
    server_ctx: ssl.SSLContext, scheduler: FakeScheduler, step: int | None
) -> None:
    server = LayerEnd(TLSEngine(server_ctx, server_side=True), scheduler, "10.0.0.9:1", 10).start()
    for chunk in chunks(LINE, step):
        server.lower.deliver(chunk)
    exc = server.aborted_with()
    assert isinstance(exc, TLSError) and exc.failure is TLSFailure.NOT_TLS
    assert server.lower.take() == NOT_TLS_ALERT  # written before the abort
    assert server.failed == []  # reported once the transport below is closed
    scheduler.run_soon()
    assert server.failed == [("10.0.0.9:1", exc)]
    assert server.app.calls == []
    assert scheduler.timers[0].cancelled  # the deadline does not outlive it


def test_layer_handshake_deadline(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler, handshake_timeout=10)
    (timer,) = scheduler.timers
    assert timer.delay == 10
    hello = client.lower.take()
    server.lower.deliver(hello[:len(hello) // 2])
    assert server.lower.calls == []
    timer.callback()  # the deadline passes with half a ClientHello in
    exc = server.aborted_with()
    assert isinstance(exc, TLSError) and exc.failure is TLSFailure.TIMEOUT
    assert str(exc) == "no handshake within 10 s"
    scheduler.run_soon()
    assert server.failed == [(server.layer.peer, exc)] and server.app.calls == []


def test_layer_handshake_cancels_the_deadline(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler, handshake_timeout=10)
    shuttle(server, client)
    assert scheduler.timers[0].cancelled and server.app.calls == ["made"]


def test_layer_client_refuses_an_untrusted_server(
    server_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    other = ssl.create_default_context()
    trustme.CA().configure_trust(other)
    server, client = layer_pair(server_ctx, other, scheduler)
    shuttle(server, client)
    exc = client.aborted_with()
    assert isinstance(exc, TLSError) and exc.failure is TLSFailure.VERIFY
    scheduler.run_soon()
    assert client.failed == [("10.0.0.1:4000", exc)]
    assert client.app.calls == [] and server.app.calls == []


def test_layer_finish_sends_close_notify_once_then_finishes_below(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler,
    step: int | None,
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    shuttle(server, client)
    server.app.t.write(b"Winner\n")
    server.app.t.finish()
    assert server.layer.closing and server.lower.calls == ["finish"]
    out = server.lower.take()
    server.app.t.finish()
    server.app.t.write(b"ignored\n")
    assert server.lower.calls == ["finish"] and server.lower.take() == b""
    for chunk in chunks(out, step):
        client.lower.deliver(chunk)
    assert client.app.calls == ["made", b"Winner\n", "eof"]  # close_notify: end of input
    server.lower.drained()
    scheduler.run_soon()
    assert server.app.calls == ["made", ("lost", None)]


def test_layer_plain_eof_after_a_line_is_end_of_input(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    shuttle(server, client)
    client.app.t.write(LINE)
    shuttle(server, client)
    server.lower.deliver_eof()  # FIN without close_notify
    assert server.app.calls == ["made", LINE, "eof"]
    server.app.t.write(b"Winner\n")  # the peer may still read
    shuttle(server, client)
    assert client.app.calls == ["made", b"Winner\n"]
    assert server.lower.calls == []


def test_layer_eof_in_a_record_is_a_departure(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    shuttle(server, client)
    client.app.t.write(LINE)
    record = client.lower.take()
    server.lower.deliver(record[:-1])
    server.lower.deliver_eof()
    exc = server.aborted_with()
    assert isinstance(exc, TLSError) and exc.failure is TLSFailure.BROKEN
    scheduler.run_soon()
    assert server.app.calls == ["made", ("lost", exc)]
    assert server.failed == []


def test_layer_tls_error_mid_stream_is_a_departure(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    shuttle(server, client)
    client.app.t.write(LINE)
    record = bytearray(client.lower.take())
    record[-1] ^= 1
    server.lower.deliver(bytes(record))
    exc = server.aborted_with()
    assert isinstance(exc, TLSError) and exc.failure is TLSFailure.BROKEN
    scheduler.run_soon()
    assert server.app.calls == ["made", ("lost", exc)]


def test_layer_holds_input_and_eof_while_paused(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    shuttle(server, client)
    server.app.react["data"] = lambda: server.app.t.pause_reading()
    client.app.t.write(b"1 100\n")
    client.app.t.write(LINE)
    client.app.t.finish()
    # The lines and close_notify in one delivery: the app pauses at the
    # first delivery; close_notify must not overtake the lines it has yet to
    # take from its own buffer.
    server.lower.deliver(client.lower.take())
    assert server.app.calls == ["made", b"1 100\n" + LINE]
    assert not server.lower.reading
    del server.app.react["data"]
    server.app.t.resume_reading()
    assert server.lower.reading
    assert server.app.calls[-1] != "eof"  # not from inside resume_reading
    scheduler.run_soon()
    assert server.app.calls == ["made", b"1 100\n" + LINE, "eof"]


def test_layer_holds_data_when_paused_in_connection_made(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    server.app.react["made"] = lambda: server.app.t.pause_reading()
    client.app.react["made"] = lambda: client.app.t.write(LINE)
    shuttle(server, client)
    assert server.app.calls == ["made"]
    server.app.t.resume_reading()
    scheduler.run_soon()
    assert server.app.calls == ["made", LINE]


def test_layer_exception_in_a_deferred_delivery_closes(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    server.app.react["made"] = lambda: server.app.t.pause_reading()
    client.app.react["made"] = lambda: client.app.t.write(LINE)
    shuttle(server, client)
    failure = ValueError("bug")

    def fail() -> None:
        raise failure

    server.app.react["data"] = fail
    server.app.t.resume_reading()
    scheduler.run_soon()
    assert server.aborted_with() is failure
    assert server.app.calls == ["made", LINE, ("lost", failure)]


def test_layer_app_exception_closes_below(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    shuttle(server, client)
    failure = ValueError("bug")

    def fail() -> None:
        raise failure

    server.app.react["data"] = fail
    client.app.t.write(LINE)
    shuttle(server, client)
    assert server.aborted_with() is failure
    scheduler.run_soon()
    assert server.app.calls == ["made", LINE, ("lost", failure)]


def test_layer_abort(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    shuttle(server, client)
    reason = ConnectionError("overflow")
    server.app.t.abort(reason, reset=True)
    assert server.lower.calls == [("abort", reason, True)]
    assert server.lower.take() == b""  # no close_notify for an abort
    scheduler.run_soon()
    assert server.app.calls == ["made", ("lost", reason)]


def test_layer_pending_output(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, scheduler: FakeScheduler
) -> None:
    server, client = layer_pair(server_ctx, client_ctx, scheduler)
    shuttle(server, client)
    assert server.app.t.pending_output == 0
    server.app.t.write(b"x" * 1000)
    assert server.app.t.pending_output > 1000  # the ciphertext, record overhead included
