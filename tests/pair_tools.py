"""An auction with no sockets: the server machine and any number of client
sessions wired together in memory (after h11's ``ConnectionPair``).

Bytes flow as they would over TCP, framed by ``framing.LineBuffer`` on each
side: a session's ``Output.send`` becomes ``LineReceived`` events for the
``Auction``; the machine's actions are carried out by ``actions.carry_out``
with this harness as the executor: each ``Send`` is fed to that session's
``server_line``, ``Close`` to its ``connection_closed``, ``Record`` is kept
and answered with ``Recorded``. A session that ends closes its side: a reset
(``Output.close_with_reset``) is ``Departed``, a plain close ``InputEnded``.

Events for the server wait in a queue, as in the reactor, so that a session
answering a line never runs inside the machine's previous batch of actions;
an event of a connection the machine has closed is dropped, as the service
drops a closed stream's data.
"""

from __future__ import annotations

from collections import deque

from session_tools import Driver

from reactor_auction import framing
from reactor_auction.actions import carry_out
from reactor_auction.auction import Auction
from reactor_auction.events import (
    AuctionRecord,
    Connected,
    Departed,
    Event,
    InputEnded,
    LineReceived,
    LineTooLong,
    Log,
    Recorded,
    Shutdown,
    Tick,
)
from reactor_auction.session import Output


class InMemoryAuction:
    """One ``Auction`` and the client sessions that join it; time is ``now``."""

    def __init__(self, **options: float) -> None:
        self.auction = Auction(
            max_buyers=int(options.pop("max_buyers", 10)),
            request_timeout=options.pop("request_timeout", 30.0),
            bid_timeout=options.pop("bid_timeout", 30.0),
        )
        assert not options, options
        self.now = 0.0
        self.clients: dict[int, Driver] = {}  #: conn -> that client's session driver
        self.logs: list[Log] = []
        self.records: list[AuctionRecord] = []
        self._open: set[int] = set()  # conns the machine has not closed
        self._gone: set[int] = set()  # conns whose session closed its side
        self._to_server: deque[Event] = deque()
        self._to_server_lines: dict[int, framing.LineBuffer] = {}
        self._to_client_lines: dict[int, framing.LineBuffer] = {}

    # -- what the people do -------------------------------------------------------

    def join(self, *answers: str, interactive: bool = False, peer: str = "") -> Driver:
        """Connect a new client; return its driver. ``answers`` are lines of
        its standard input read before it connects (a script's whole input)."""
        conn = len(self.clients) + 1
        client = Driver(
            interactive=interactive,
            connect=False,
            on_output=lambda out: self._from_client(conn, out),
        )
        self.clients[conn] = client
        self._to_server_lines[conn] = framing.LineBuffer()
        self._to_client_lines[conn] = framing.LineBuffer()
        for answer in answers:
            client.user(answer)  # not connected yet: kept for the prompts
        self._open.add(conn)
        self._to_server.append(Connected(conn, peer or f"127.0.0.1:{50000 + conn}"))
        client.connected()
        self._run()
        return client

    def types(self, client: Driver, line: str) -> None:
        """The person gives a line of input."""
        client.user(line)
        self._run()

    def ends_input(self, client: Driver) -> None:
        """The client's standard input ends (Ctrl-D)."""
        client.eof()
        self._run()

    def interrupts(self, client: Driver) -> None:
        """Ctrl-C in the client."""
        client.interrupted()
        self._run()

    def advance(self, seconds: float) -> None:
        """Let time pass; the machine gets a Tick if its deadline came."""
        self.now += seconds
        deadline = self.auction.deadline
        if deadline is not None and self.now >= deadline:
            self._to_server.append(Tick())
        self._run()

    def shutdown(self) -> None:
        """SIGTERM to the server."""
        self._to_server.append(Shutdown())
        self._run()

    # -- wiring -----------------------------------------------------------------

    def _run(self) -> None:
        while self._to_server:
            event = self._to_server.popleft()
            if isinstance(event, (Tick, Recorded, Shutdown)) or event.conn in self._open:
                carry_out(self.auction.handle(event, self.now), self)

    def _from_client(self, conn: int, out: Output) -> None:
        lines = self._to_server_lines[conn]
        for data in out.send:
            lines.feed(data)
            try:
                self._to_server.extend(LineReceived(conn, line) for line in lines.lines())
            except framing.LineTooLong:
                self._to_server.append(LineTooLong(conn))
        if out.status is not None and conn not in self._gone:
            self._gone.add(conn)
            self._to_server.append(Departed(conn) if out.close_with_reset else InputEnded(conn))

    # actions.Executor

    def send(self, conn: int, data: bytes) -> None:
        lines = self._to_client_lines[conn]
        lines.feed(data)
        try:
            for line in lines.lines():
                self.clients[conn].server(line)
        except framing.LineTooLong:
            self.clients[conn].server_line_too_long()

    def close(self, conn: int) -> None:
        self._open.discard(conn)
        self.clients[conn].closed()

    def log(self, log: Log) -> None:
        self.logs.append(log)

    def record(self, record: AuctionRecord) -> None:
        self.records.append(record)
        self._to_server.append(Recorded())
