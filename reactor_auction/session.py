"""The client's side of one connection as a sans-IO state machine.

Events go in: the connection opened, a server line arrived (framed, terminator
removed), the person (or script) gave a line, standard input ended, the
connection closed, the person pressed Ctrl-C. Each returns an ``Output``: the
text to show, the lines to send to the server, whether an answer is wanted
now, and once the session is over its exit status. No sockets, no terminal,
no clock: ``client.py`` carries the outputs out, the tests call it directly.

The transition table ``TRANSITIONS`` is plain data: (phase, server keyword)
-> handler. A server line whose keyword is not expected in the current phase
is a protocol error, like an unknown or malformed one.

Two ways of taking input:

- interactive (standard input is a terminal): every line is sent as typed, at
  any time (typing before bidding starts gets the server's ``NOTYET``).
  Ctrl-D leaves at once while the session still needs input (no request
  accepted or bid received yet); later it is ignored.
- scripted (standard input is not a terminal): a line answers the next
  prompt (``REQUEST`` or ``BID``); lines that arrive first are kept for later
  prompts, and the client reads nothing while no prompt is pending. Input
  that ends while an answer is needed ends the session.

Lines are sent exactly as given (no local validation): the server decides and
an ``INVALID`` brings the prompt back.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from . import text
from .protocol import ProtocolError, ServerMessage, parse_server_line


class ExitStatus(enum.IntEnum):
    """The client's exit statuses; ``text.CLIENT_EXIT_TEXT`` words each."""

    OK = 0  #: the auction ran to its result (sold, unsold, won, lost)
    USAGE = 2  #: bad command line (argparse)
    CANNOT_CONNECT = 3  #: refused, unknown host, unreachable, connect timeout
    BUSY = 4  #: the server answered BUSY (after any retries)
    CANCELLED = 5  #: CANCELLED: seller left, shutdown, server error
    TIMED_OUT = 6  #: TIMEOUT: no valid request in time
    LOST = 7  #: the connection ended before a final line
    PROTOCOL_ERROR = 8  #: unknown, malformed or misplaced server line; ERROR
    END_OF_INPUT = 9  #: standard input ended while an answer was needed
    INTERNAL = 70  #: a bug in the client
    INTERRUPTED = 130  #: Ctrl-C (SIGINT)


class Phase(enum.Enum):
    """Where the session is."""

    UNCONNECTED = "unconnected"  # no connection yet (or between retries)
    JOINING = "joining"  # connected, no role yet
    SELLER = "seller"  # composing the request (until START)
    SELLER_STARTED = "seller-started"  # request accepted, waiting for the result
    BUYER_WAITING = "buyer-waiting"  # waiting for the other buyers
    BUYER_BIDDING = "buyer-bidding"  # bidding started, no bid accepted yet
    BUYER_ACCEPTED = "buyer-accepted"  # bid received, waiting for the result
    OVER = "over"  # the session has its exit status


@dataclass(frozen=True, slots=True)
class Output:
    """What the client must do after one event."""

    show: tuple[str, ...] = ()  #: text to print, one entry per printed line (or block)
    send: tuple[bytes, ...] = ()  #: lines for the server, each ``\\n``-terminated
    wants_input: bool = False  #: a prompt is pending and unanswered
    status: ExitStatus | None = None  #: set once: the session is over
    leave: bool = False  #: over before a final line: close with a reset


_P = Phase
#: Phases in which the person still has something to say (Ctrl-D leaves).
NEEDS_INPUT = frozenset({_P.UNCONNECTED, _P.JOINING, _P.SELLER, _P.BUYER_WAITING, _P.BUYER_BIDDING})
_CONNECTED = frozenset(_P) - {_P.UNCONNECTED, _P.OVER}

#: (phase, server keyword) -> name of the Session method that handles it.
TRANSITIONS: dict[tuple[Phase, str], str] = {
    (_P.JOINING, "ROLE SELLER"): "_role_seller",
    (_P.JOINING, "ROLE BUYER"): "_role_buyer",
    (_P.JOINING, "BUSY"): "_busy",
    # the seller
    (_P.SELLER, "REQUEST"): "_request_prompt",
    (_P.SELLER, "INVALID"): "_invalid",
    (_P.SELLER, "START"): "_start",
    (_P.SELLER, "TIMEOUT"): "_timeout",
    (_P.SELLER_STARTED, "DONE"): "_done",
    (_P.SELLER_STARTED, "SOLD"): "_sold",
    (_P.SELLER_STARTED, "UNSOLD"): "_seller_unsold",
    # the buyer
    (_P.BUYER_WAITING, "WAITING"): "_waiting",
    (_P.BUYER_WAITING, "NOTYET"): "_notyet",
    (_P.BUYER_WAITING, "BID"): "_bidding_starts",
    (_P.BUYER_BIDDING, "BID"): "_bid_prompt",
    (_P.BUYER_BIDDING, "INVALID"): "_invalid",
    (_P.BUYER_BIDDING, "ACCEPTED"): "_accepted",
    # DONE while bidding: the deadline passed before this buyer's line arrived.
    (_P.BUYER_BIDDING, "DONE"): "_done",
    (_P.BUYER_ACCEPTED, "DONE"): "_done",
    **{
        (phase, keyword): handler
        for phase in (_P.BUYER_BIDDING, _P.BUYER_ACCEPTED)  # no bid: still a result
        for keyword, handler in (("WON", "_won"), ("LOST", "_lost"), ("UNSOLD", "_buyer_unsold"))
    },
    # the server may end any connection this way
    **{(phase, "CANCELLED"): "_cancelled" for phase in _CONNECTED},
    **{(phase, "ERROR"): "_server_error" for phase in _CONNECTED},
}

#: What INVALID's word must be in each phase.
_INVALID_WORD = {_P.SELLER: "request", _P.BUYER_BIDDING: "bid"}
#: What DONE means in each phase (otherwise: bidding closed).
_DONE_TEXT = {_P.SELLER_STARTED: "done_seller", _P.BUYER_ACCEPTED: "done_buyer"}


class Session:
    """One connection's dialogue, from ``connected()`` to an exit status.

    Every public method returns the Output of that event; after the status
    is set, further events change nothing and return an empty Output.
    """

    def __init__(
        self, *, interactive: bool, pending: Iterable[bytes] = (), input_ended: bool = False
    ) -> None:
        self.interactive = interactive
        self.phase = Phase.UNCONNECTED
        self.buyer_number = 0  #: this buyer's number in the auction (0: not a buyer)
        self.status: ExitStatus | None = None
        self._pending: deque[bytes] = deque(pending)  # user lines not yet sent
        self._input_ended = input_ended
        self._prompt = False  # a prompt is shown and not answered
        self._leave = False
        self._show: list[str] = []
        self._send: list[bytes] = []

    # -- public API -------------------------------------------------------------

    @property
    def wants_input(self) -> bool:
        """True while a prompt is pending and unanswered."""
        return self._prompt and self.status is None

    @property
    def reads_input(self) -> bool:
        """True while the shell should read input: interactive, always;
        scripted, only while a prompt waits; never once over."""
        return self.status is None and (self.interactive or self._prompt)

    @property
    def needs_input(self) -> bool:
        """True while the person still has something to say (no request
        accepted, no bid received)."""
        return self.phase in NEEDS_INPUT

    def successor(self) -> Session:
        """Return a fresh session for the next connection attempt, keeping the
        unsent input (and whether input ended)."""
        return Session(
            interactive=self.interactive, pending=self._pending, input_ended=self._input_ended
        )

    def connected(self) -> Output:
        """The connection is open. Interactive lines typed meanwhile go out now."""
        if self.phase is Phase.UNCONNECTED and self.status is None:
            self.phase = Phase.JOINING
            self._say("connected")
            if self.interactive:
                while self._pending:
                    self._send_line(self._pending.popleft())
        return self._output()

    def server_line(self, line: bytes) -> Output:
        """One line from the server (terminator removed)."""
        if self.status is None:
            try:
                message = parse_server_line(line)
            except ProtocolError as exc:
                self._protocol_error(str(exc))
            else:
                self._dispatch(message)
        return self._output()

    def server_line_too_long(self) -> Output:
        """The server sent more than a line's worth of bytes without ``\\n``."""
        if self.status is None:
            self._protocol_error(text.client_text("detail_over_long"))
        return self._output()

    def user_line(self, line: bytes) -> Output:
        """A line of input (terminator removed). Sent now if interactive and
        connected, or if it answers a pending prompt; kept otherwise."""
        if self.status is None:
            if self.phase is Phase.UNCONNECTED or not (self.interactive or self._prompt):
                self._pending.append(line)
            else:
                self._send_line(line)
        return self._output()

    def input_ended(self) -> Output:
        """Standard input ended (Ctrl-D on a terminal)."""
        if self.status is None:
            self._input_ended = True
            if (self.interactive and self.needs_input) or self._prompt:
                self._end(ExitStatus.END_OF_INPUT, "end_of_input", leave=True)
        return self._output()

    def connection_closed(self) -> Output:
        """The connection ended (EOF, reset, error) with no final line."""
        if self.status is None:
            self._end(ExitStatus.LOST, "connection_lost")
        return self._output()

    def interrupted(self) -> Output:
        """Ctrl-C: leave at once with a goodbye."""
        if self.status is None:
            if self.interactive:
                self._show.append("")  # the terminal echoed "^C" with no line end
            self._end(ExitStatus.INTERRUPTED, "interrupted", leave=True)
        return self._output()

    # -- helpers ----------------------------------------------------------------

    def _output(self) -> Output:
        out = Output(
            tuple(self._show), tuple(self._send), self.wants_input, self.status, self._leave
        )
        self._show.clear()
        self._send.clear()
        return out

    def _say(self, kind: str, **fields: object) -> None:
        self._show.append(text.client_text(kind, **fields))

    def _send_line(self, line: bytes) -> None:
        self._send.append(line + b"\n")
        self._prompt = False

    def _end(self, status: ExitStatus, kind: str, *, leave: bool = False, **fields: object) -> None:
        self._say(kind, **fields)
        self.status = status
        self._leave = leave
        self._prompt = False
        self.phase = Phase.OVER

    def _protocol_error(self, detail: str) -> None:
        self._end(ExitStatus.PROTOCOL_ERROR, "protocol_error", leave=True, detail=detail)

    def _dispatch(self, message: ServerMessage) -> None:
        name = TRANSITIONS.get((self.phase, message.keyword))
        if name is None:
            self._protocol_error(
                text.client_text(
                    "detail_unexpected", keyword=message.keyword, phase=self.phase.value
                )
            )
            return
        getattr(self, name)(message)

    def _ask(self, kind: str) -> None:
        """Show a prompt; a scripted session answers it from the kept lines."""
        self._say(kind)
        if self.interactive:
            self._prompt = True
        elif self._pending:
            self._send_line(self._pending.popleft())
        elif self._input_ended:
            self._end(ExitStatus.END_OF_INPUT, "end_of_input", leave=True)
        else:
            self._prompt = True

    def _result(self, finished: str, kind: str, **fields: object) -> None:
        """A result: the transcript's closing block, exit 0."""
        self._say(finished)
        self._say(kind, **fields)
        self._end(ExitStatus.OK, "over")

    # -- handlers (see TRANSITIONS) ---------------------------------------------

    def _role_seller(self, message: ServerMessage) -> None:
        self.phase = Phase.SELLER
        self._say("role_seller")

    def _role_buyer(self, message: ServerMessage) -> None:
        self.phase = Phase.BUYER_WAITING
        self.buyer_number = message.numbers[0]
        self._say("role_buyer")

    def _busy(self, message: ServerMessage) -> None:
        self._end(ExitStatus.BUSY, "busy")

    def _request_prompt(self, message: ServerMessage) -> None:
        self._ask("request_prompt")

    def _invalid(self, message: ServerMessage) -> None:
        word = _INVALID_WORD[self.phase]
        if message.word != word:
            self._protocol_error(text.client_text("detail_unexpected_invalid", word=message.word))
            return
        self._prompt = False  # the server re-prompts with REQUEST or BID
        self._say(f"invalid_{word}")

    def _start(self, message: ServerMessage) -> None:
        self.phase = Phase.SELLER_STARTED
        self._prompt = False
        self._say("start")

    def _timeout(self, message: ServerMessage) -> None:
        self._say("timeout")
        self._end(ExitStatus.TIMED_OUT, "disconnecting")

    def _done(self, message: ServerMessage) -> None:
        self._say(_DONE_TEXT.get(self.phase, "done_closed"))

    def _sold(self, message: ServerMessage) -> None:
        self._result("seller_finished", "sold", item=message.item, price=message.numbers[0])

    def _seller_unsold(self, message: ServerMessage) -> None:
        self._result("seller_finished", "seller_unsold")

    def _waiting(self, message: ServerMessage) -> None:
        self._say("waiting")

    def _notyet(self, message: ServerMessage) -> None:
        self._say("notyet")

    def _bidding_starts(self, message: ServerMessage) -> None:
        self.phase = Phase.BUYER_BIDDING
        self._say("bidding_starts")
        self._ask("bid_prompt")

    def _bid_prompt(self, message: ServerMessage) -> None:
        self._ask("bid_prompt")

    def _accepted(self, message: ServerMessage) -> None:
        self.phase = Phase.BUYER_ACCEPTED
        self._prompt = False
        self._say("accepted")

    def _won(self, message: ServerMessage) -> None:
        self._result("buyer_finished", "won", item=message.item, price=message.numbers[0])

    def _lost(self, message: ServerMessage) -> None:
        self._result("buyer_finished", "lost")

    def _buyer_unsold(self, message: ServerMessage) -> None:
        self._result("buyer_finished", "buyer_unsold")

    def _cancelled(self, message: ServerMessage) -> None:
        self._show.append(text.client_text_for("cancelled", message.word))
        self._end(ExitStatus.CANCELLED, "disconnecting")

    def _server_error(self, message: ServerMessage) -> None:
        self._show.append(text.client_text_for("server_error", message.word))
        self._end(ExitStatus.PROTOCOL_ERROR, "disconnecting")
