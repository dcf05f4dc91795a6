"""TLS without I/O: ciphertext in, plaintext and ciphertext out. Pure.

``TLSEngine`` runs one end of a TLS connection over an ``ssl.SSLObject`` and
two ``ssl.MemoryBIO`` (the shape of asyncio's ``sslproto.py`` and trio's
``_ssl.py``): the caller feeds it the bytes the socket received and sends
the bytes it has to send; it never touches a socket, a clock or a loop.
After an ``SSLWantReadError`` the same call (handshake, read or write) is
simply made again once more ciphertext is in, as trio's retry loop does.

Every ``receive`` takes *all* the plaintext out of the ``SSLObject``: a
selector sees only the socket, so plaintext left buffered inside OpenSSL
would wait for the next packet that may never come.

The contexts come from here too (``server_context``, ``client_context``):
the stdlib's secure defaults, TLS 1.2 at least, no renegotiation, and no
session tickets unless asked for.
"""

from __future__ import annotations

import enum
import re
import ssl
from dataclasses import dataclass

#: What one ``SSLObject.read`` asks for: the most plaintext one TLS record
#: holds (OpenSSL returns one record's plaintext per read).
READ_SIZE = 16384
#: A TLS record header: content type, version (2 bytes), length (2 bytes).
_HEADER = 5
#: The record types a peer's first record may have: a handshake message, or
#: (from a server refusing us) an alert.
_FIRST_FROM_CLIENT = frozenset({22})
_FIRST_FROM_SERVER = frozenset({21, 22})
#: Every TLS version's record header starts with major version 3.
_MAJOR = 3
#: What a server answers a peer whose first bytes are not TLS: a fatal
#: unexpected_message alert in a TLS 1.2 record. A plain-text client can
#: tell from it (``starts_like_tls``) that it reached a TLS port.
NOT_TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x0a"

# Since OpenSSL 3.0 an EOF without close_notify is fatal to the SSL object,
# so nothing could be written after it; with this option it is read as a
# close_notify instead (the engine still tells the two apart, see PeerClosed).
_IGNORE_UNEXPECTED_EOF = getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
#: The "(_ssl.c:1006)" at the end of an SSLError's message.
_LOCATION = re.compile(r"\s*\(_ssl\.c:\d+\)$")


# --- errors ------------------------------------------------------------------


class TLSFailure(enum.Enum):
    """What kind of failure ended a TLS connection."""

    #: The peer's first bytes are not a TLS record (plain text, HTTP, garbage).
    NOT_TLS = "not TLS"
    #: The peer closed before the handshake completed.
    CLOSED = "closed"
    #: No handshake within the caller's deadline (see tls.TLSLayer).
    TIMEOUT = "timeout"
    #: The peer's certificate was refused (untrusted, expired, wrong name).
    VERIFY = "verify"
    #: Any other handshake failure: no common version or cipher, an alert.
    HANDSHAKE = "handshake"
    #: A TLS error after the handshake: a bad or cut record.
    BROKEN = "broken"


class TLSError(ConnectionError):
    """A TLS connection failed; ``str()`` is a short reason for a log line.

    A ConnectionError, like a reset: it is the peer's doing (or the path's),
    never this program's.
    """

    def __init__(self, failure: TLSFailure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure  #: what kind of failure
        self.reason = reason  #: e.g. "not TLS", "handshake failed: unsupported protocol"


class TLSConfigError(Exception):
    """A certificate, key or CA file cannot be used; ``str()`` is one line
    naming the file and the reason."""


# --- events ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The handshake is done: application data may flow."""

    version: str  #: e.g. "TLSv1.3"
    cipher: str  #: e.g. "TLS_AES_256_GCM_SHA384"


@dataclass(frozen=True, slots=True)
class PlaintextReceived:
    """Application data: everything one ``receive`` decrypted, in one piece."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The peer sends nothing more: its close_notify came (``close_notify``),
    or its plain EOF came between two records (``not close_notify``: a
    truncation an attacker could cause, but only at a record boundary).
    Sending is still possible."""

    close_notify: bool


@dataclass(frozen=True, slots=True)
class TLSFailed:
    """The connection is broken; nothing more is received or sent (except
    the alert OpenSSL may have queued in ``data_to_send``)."""

    error: TLSError


TLSEvent = HandshakeCompleted | PlaintextReceived | PeerClosed | TLSFailed


class TLSState(enum.Enum):
    """Where an engine stands."""

    HANDSHAKING = "handshaking"
    OPEN = "open"
    #: close() was called: close_notify sent, nothing more sent (what the
    #: peer still sends until its own close_notify is read).
    CLOSED = "closed"
    FAILED = "failed"


# --- the engine --------------------------------------------------------------


class TLSEngine:
    """One end of a TLS connection over memory BIOs.

    Feed it what the socket received (``receive``, ``receive_eof``); send
    what ``data_to_send`` returns after every call. Plaintext to send goes in
    through ``send``; before the handshake completes it waits inside.
    """

    __slots__ = (
        "server_side", "state", "version", "_incoming", "_outgoing", "_ssl",
        "_unsent", "_peer_closed", "_lead", "_header", "_body_left",
    )

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        """Begin an engine; ``server_hostname`` (client side) is the name the
        server's certificate must carry, and is sent as SNI.

        Raises ValueError (from ssl) if a client context checks hostnames and
        none is given.
        """
        self.server_side = server_side
        self.state = TLSState.HANDSHAKING
        self.version: str | None = None  #: the negotiated version, once open
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming, self._outgoing,
            server_side=server_side, server_hostname=server_hostname,
        )
        self._unsent = bytearray()  # plaintext waiting for the handshake or a want-read
        self._peer_closed = False
        self._lead = b""  # the peer's first two bytes: is it TLS at all?
        # Record framing of the received ciphertext, so that an EOF can tell a
        # record boundary from a record cut short.
        self._header = b""
        self._body_left = 0

    @property
    def pending_plaintext(self) -> int:
        """Return the number of plaintext bytes sent but not yet encrypted
        (waiting for the handshake, or for the peer after a want-read)."""
        return len(self._unsent)

    def start(self) -> list[TLSEvent]:
        """Begin the handshake: a client queues its ClientHello in
        ``data_to_send``; a server waits for one. Returns the events (none
        unless the context cannot start a handshake at all)."""
        return self._progress(at_eof=False)

    def receive(self, data: bytes) -> list[TLSEvent]:
        """Take ciphertext the peer sent; return what happened, in order: at
        most one HandshakeCompleted, one PlaintextReceived (all the plaintext
        there is), then one PeerClosed or TLSFailed. Data after the peer's
        close_notify or a failure, or after ``close`` before the handshake
        completed, is discarded."""
        if not data or self._done_receiving():
            return []
        if len(self._lead) < 2:
            self._lead += data[:2 - len(self._lead)]
            if not self._looks_like_tls():
                if self.server_side:
                    self._outgoing.write(NOT_TLS_ALERT)
                return self._fail(TLSError(TLSFailure.NOT_TLS, "not TLS"))
        self._track(data)
        self._incoming.write(data)
        return self._progress(at_eof=False)

    def receive_eof(self) -> list[TLSEvent]:
        """The peer's EOF (its FIN): return the events, as ``receive`` does.
        Before the handshake completes it is a TLSFailed (CLOSED); after it,
        the rest of the plaintext and PeerClosed, or TLSFailed (BROKEN) if
        the EOF cut a record short."""
        if self._done_receiving():
            return []
        if self.state is TLSState.HANDSHAKING:
            reason = "closed during the handshake" if self._lead else "closed before the handshake"
            return self._fail(TLSError(TLSFailure.CLOSED, reason))
        self._incoming.write_eof()
        return self._progress(at_eof=True)

    def send(self, data: bytes) -> None:
        """Encrypt ``data`` into ``data_to_send`` (before the handshake
        completes, keep it for then). Ignored after ``close`` or a failure.

        Raises TLSError (BROKEN) if OpenSSL refuses to encrypt; the engine
        has failed then.
        """
        if self.state is TLSState.OPEN and not self._unsent:
            self._write(data)
        elif self.state is TLSState.HANDSHAKING or self.state is TLSState.OPEN:
            self._unsent += data  # in order behind what waits already

    def close(self) -> None:
        """Send close_notify, once, after any plaintext still to send; do not
        wait for the peer's. Before the handshake completes there is nothing
        to close: the engine just stops."""
        if self.state is TLSState.OPEN:
            data = bytes(self._unsent)
            self._unsent.clear()
            try:
                if data:
                    self._write(data)
                self._ssl.unwrap()
            except ssl.SSLWantReadError:
                pass  # close_notify is out; the peer's own is not waited for
            except (ssl.SSLError, TLSError):
                pass  # broken anyway, and being closed
        if self.state is not TLSState.FAILED:
            self.state = TLSState.CLOSED
        self._unsent.clear()

    def data_to_send(self) -> bytes:
        """Return (and forget) the ciphertext to send to the peer."""
        return self._outgoing.read()

    # -- internals --------------------------------------------------------------

    def _looks_like_tls(self) -> bool:
        """Return whether the peer's first bytes can begin its first record."""
        first = _FIRST_FROM_CLIENT if self.server_side else _FIRST_FROM_SERVER
        return _starts_record(self._lead, first)

    def _track(self, data: bytes) -> None:
        """Follow the record framing through ``data``: hop from header to
        header by their lengths."""
        pos = self._body_left  # where the next header starts, from data[0]
        if self._header:  # a header cut short, so no body is left
            need = _HEADER - len(self._header)
            header = self._header + data[:need]
            if len(header) < _HEADER:
                self._header = header
                return
            self._header = b""
            pos = need + int.from_bytes(header[3:5], "big")
        end = len(data)
        while pos + _HEADER <= end:
            pos += _HEADER + (data[pos + 3] << 8 | data[pos + 4])
        if pos >= end:
            self._body_left = pos - end
        else:
            self._header = data[pos:]
            self._body_left = 0

    def _done_receiving(self) -> bool:
        """Return whether received ciphertext no longer matters."""
        if self.state is TLSState.CLOSED:
            # Closed during the handshake: nothing to read, ever.
            return self.version is None or self._peer_closed
        return self._peer_closed or self.state is TLSState.FAILED

    def _progress(self, *, at_eof: bool) -> list[TLSEvent]:
        """Retry whatever waits for the peer: the handshake, then the
        plaintext held for it, then reading everything there is to read
        (``at_eof``: up to the peer's EOF); return the events."""
        events: list[TLSEvent] = []
        if self.state is TLSState.HANDSHAKING:
            try:
                self._ssl.do_handshake()
            except ssl.SSLWantReadError:
                return events
            except ssl.SSLError as exc:
                return self._fail(self._handshake_error(exc))
            self.state = TLSState.OPEN
            self.version = self._ssl.version() or ""
            cipher = self._ssl.cipher()
            events.append(HandshakeCompleted(self.version, cipher[0] if cipher else ""))
        if self._unsent:
            data = bytes(self._unsent)
            self._unsent.clear()
            try:
                self._write(data)
            except TLSError as exc:
                return events + self._fail(exc)
        chunks: list[bytes] = []
        sslobj = self._ssl
        incoming = self._incoming
        close_notify = False
        failure: TLSError | None = None
        try:
            while True:
                chunk = sslobj.read(READ_SIZE)
                if not chunk:
                    # The peer's close_notify; or, at EOF, the EOF itself
                    # (read as one under _IGNORE_UNEXPECTED_EOF).
                    close_notify = not at_eof
                    break
                chunks.append(chunk)
                if not incoming.pending and not at_eof and not sslobj.pending():
                    break  # nothing left to decrypt: spare the want-read
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            # As b"" above, once our own close_notify is out.
            close_notify = not at_eof
        except ssl.SSLError as exc:
            # At EOF, an SSLEOFError is the EOF without close_notify (from a
            # context without _IGNORE_UNEXPECTED_EOF): sorted out below.
            if not (at_eof and isinstance(exc, ssl.SSLEOFError)):
                failure = TLSError(TLSFailure.BROKEN, f"TLS error: {_words(exc)}")
        if chunks:
            events.append(PlaintextReceived(b"".join(chunks)))
        if failure is None and at_eof and (self._header or self._body_left):
            failure = TLSError(TLSFailure.BROKEN, "closed in the middle of a record")
        if failure is not None:
            events += self._fail(failure)
        elif close_notify or at_eof:
            self._peer_closed = True
            events.append(PeerClosed(close_notify=close_notify))
        return events

    def _write(self, data: bytes) -> None:
        """Encrypt ``data``; keep it for later after a want-read (a
        renegotiation in progress). Raises TLSError if OpenSSL refuses."""
        try:
            self._ssl.write(data)
        except ssl.SSLWantReadError:
            self._unsent += data
        except ssl.SSLError as exc:
            self.state = TLSState.FAILED
            raise TLSError(TLSFailure.BROKEN, f"TLS error: {_words(exc)}") from exc

    def _handshake_error(self, exc: ssl.SSLError) -> TLSError:
        """Return the TLSError that ``exc``, raised by the handshake, means."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return TLSError(TLSFailure.VERIFY, f"certificate verify failed: {exc.verify_message}")
        if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return TLSError(TLSFailure.CLOSED, "closed during the handshake")
        return TLSError(TLSFailure.HANDSHAKE, f"handshake failed: {_words(exc)}")

    def _fail(self, error: TLSError) -> list[TLSEvent]:
        """Stop the engine for good; return the one event that says why."""
        self.state = TLSState.FAILED
        self._unsent.clear()
        return [TLSFailed(error)]


def starts_like_tls(data: bytes) -> bool:
    """Return whether ``data`` (two bytes are enough) can begin a TLS
    record, as what a TLS server sends does: a plain-text client that
    receives it has reached a TLS port."""
    return len(data) >= 2 and _starts_record(data[:2], _FIRST_FROM_SERVER)


def _starts_record(lead: bytes, types: frozenset[int]) -> bool:
    """Return whether ``lead`` (one or two bytes) can begin a TLS record of
    one of the content ``types``."""
    return lead[0] in types and (len(lead) < 2 or lead[1] == _MAJOR)


def _words(exc: ssl.SSLError) -> str:
    """Return OpenSSL's reason for ``exc`` in lower-case words
    ("UNSUPPORTED_PROTOCOL" -> "unsupported protocol"), else its message
    without the source location."""
    if exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    return _LOCATION.sub("", str(exc.args[1] if len(exc.args) > 1 else exc))


# --- contexts ----------------------------------------------------------------


def server_context(
    certfile: str, keyfile: str | None = None, *, session_tickets: bool = False
) -> ssl.SSLContext:
    """Return a server context for the PEM certificate chain in ``certfile``
    and its private key in ``keyfile`` (None: in ``certfile`` too).

    The stdlib's defaults for a server (``create_default_context``), TLS 1.2
    at least, renegotiation refused, and no session tickets unless
    ``session_tickets``: a ticket spares a returning client a full handshake,
    but costs every handshake the ticket's encryption and bytes, and
    auc_client never returns with one.

    Raises TLSConfigError, naming the file and why it cannot be used.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _harden(context)
    if not session_tickets:
        context.num_tickets = 0  # TLS 1.3
        context.options |= ssl.OP_NO_TICKET  # TLS 1.2
    for label, path in (("certificate", certfile), ("key", keyfile)):
        if path is not None:
            _readable(label, path)
    try:
        context.load_cert_chain(
            certfile, keyfile, password=lambda: _no_passphrase(keyfile or certfile)
        )
    except TLSConfigError:
        raise
    except ssl.SSLError as exc:
        raise TLSConfigError(_chain_problem(certfile, keyfile, exc)) from exc
    except OSError as exc:
        raise TLSConfigError(f"cannot load {certfile}: {exc.strerror or exc}") from exc
    return context


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """Return a client context that verifies the server's certificate and
    name: against the system's trusted CAs, or only those in the PEM file
    ``cafile`` (e.g. a self-signed certificate). TLS 1.2 at least.

    Raises TLSConfigError if ``cafile`` holds no usable certificate.
    """
    if cafile is not None:
        _readable("CA", cafile)
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except ssl.SSLError as exc:
        raise TLSConfigError(f"{cafile}: no PEM certificate in it ({_words(exc)})") from exc
    except OSError as exc:
        raise TLSConfigError(f"cannot load {cafile}: {exc.strerror or exc}") from exc
    _harden(context)
    return context


def _harden(context: ssl.SSLContext) -> None:
    """What both ends add to the stdlib's defaults."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION | _IGNORE_UNEXPECTED_EOF


def _readable(label: str, path: str) -> None:
    """Raise TLSConfigError unless ``path`` can be opened for reading."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise TLSConfigError(f"cannot read {label} file {path}: {exc.strerror or exc}") from exc


def _no_passphrase(keyfile: str) -> bytes:
    """The password callback: a server started unattended cannot ask for a
    passphrase (OpenSSL would prompt on the terminal). Raises TLSConfigError."""
    raise TLSConfigError(f"{keyfile}: the key is encrypted (a passphrase cannot be asked for)")


def _chain_problem(certfile: str, keyfile: str | None, exc: ssl.SSLError) -> str:
    """Return the one-line reason ``load_cert_chain`` failed with ``exc``
    (OpenSSL's own, "PEM lib", names neither file nor cause)."""
    key = certfile if keyfile is None else keyfile
    if not _holds(certfile, b"-----BEGIN CERTIFICATE-----"):
        return f"{certfile}: no PEM certificate in it"
    if not _holds(key, b"PRIVATE KEY-----"):
        return f"{key}: no PEM private key in it"
    if exc.reason == "KEY_VALUES_MISMATCH":
        return f"{key}: the key does not match the certificate in {certfile}"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=certfile)
    except ssl.SSLError:
        return f"{certfile}: the certificate is malformed"
    return f"{key}: the key is malformed or unusable ({_words(exc)})"


def _holds(path: str, marker: bytes) -> bool:
    """Return whether the file ``path`` contains ``marker``."""
    try:
        with open(path, "rb") as file:
            return marker in file.read()
    except OSError:
        return False
