"""The TLS engine, pairwise and in memory: no sockets.

A server end and a client end, with certificates from trustme, pass their
ciphertext to each other; each test runs with the ciphertext handed over
whole and (``step``) one byte at a time.
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

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
