"""The client's side of one connection as a sans-IO state machine.

Events go in: the connection opened, a server line arrived (framed, terminator
removed), the person (or script) gave a line, standard input ended, the
connection closed, the person pressed Ctrl-C. Each returns an ``Output``: the
notices to show (what happened, with its values; ``text.notice_text`` words
them as docs/TRANSCRIPTS.md shows), the lines to send to the server, and once
the session is over its exit status and how to close. ``should_read_input``
says whether the shell reads standard input now. No sockets, no terminal, no
clock, no wording: ``client.py`` carries the outputs out, the tests call it
directly.

The transition table ``TRANSITIONS`` is plain data: (phase, server keyword)
-> the Session method that handles it. A server line whose keyword is not
expected in the current phase is a protocol error, like an unknown or
malformed one.

Two ways of taking input:

- interactive (standard input is a terminal): every line is sent as typed, at
  any time (typing before bidding starts gets the server's ``NOTYET``).
  Ctrl-D leaves at once while the person's answer is outstanding (no request
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass

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


class NoticeKind(enum.Enum):
    """What the client tells the person; ``text.CLIENT_TEXT`` words each.

    A kind whose comment says "carries" comes with those ``Notice`` values.
    """

    CONNECTED = enum.auto()
    BUSY = enum.auto()
    # the seller
    ROLE_SELLER = enum.auto()
    REQUEST_PROMPT = enum.auto()
    INVALID_REQUEST = enum.auto()
    START = enum.auto()
    SELLER_FINISHED = enum.auto()
    SOLD = enum.auto()  # carries item, price
    SELLER_UNSOLD = enum.auto()
    # the buyer
    ROLE_BUYER = enum.auto()
    WAITING = enum.auto()
    NOTYET = enum.auto()
    BIDDING_STARTS = enum.auto()
    BID_PROMPT = enum.auto()
    INVALID_BID = enum.auto()
    ACCEPTED = enum.auto()
    BUYER_FINISHED = enum.auto()
    WON = enum.auto()  # carries item, price
    LOST = enum.auto()
    BUYER_UNSOLD = enum.auto()
    # both
    OVER = enum.auto()  # after a result
    DONE_SELLER = enum.auto()  # DONE: the request is in
    DONE_BUYER = enum.auto()  # DONE: the bid is in
    DONE_CLOSED = enum.auto()  # DONE: bidding closed before this buyer's line
    CANCELLED = enum.auto()  # carries word: the reason the server gave
    TIMEOUT = enum.auto()
    SERVER_ERROR = enum.auto()  # ERROR; carries word: the reason the server gave
    DISCONNECTING = enum.auto()  # after any other final line
    CONNECTION_LOST = enum.auto()
    # a server line this client cannot follow; DISCONNECTING follows
    UNREADABLE_LINE = enum.auto()  # carries detail: what is wrong with it
    OVER_LONG_LINE = enum.auto()
    UNEXPECTED_MESSAGE = enum.auto()  # carries word (its keyword), phase
    UNEXPECTED_INVALID = enum.auto()  # carries word: what INVALID named
    END_OF_INPUT = enum.auto()
    LINE_END = enum.auto()  # ends the line where a terminal echoed "^C"
    INTERRUPTED = enum.auto()


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
class Notice:
    """One thing to tell the person: its kind and the values it names."""

    kind: NoticeKind
    item: str = ""  #: SOLD, WON: the item's name
    price: int = 0  #: SOLD, WON: the price
    word: str = ""  #: a word the server sent (see NoticeKind)
    phase: Phase | None = None  #: UNEXPECTED_MESSAGE: the phase it arrived in
    detail: str = ""  #: UNREADABLE_LINE: ``protocol.ProtocolError``'s description


@dataclass(frozen=True, slots=True)
class Output:
    """What the client must do after one event."""

    notices: tuple[Notice, ...] = ()  #: to show in order, each on a line (or lines) of its own
    send: tuple[bytes, ...] = ()  #: lines for the server, each ``\\n``-terminated
    status: ExitStatus | None = None  #: set once: the session is over
    #: over before a final line: close with a reset, so that the server sees
    #: the client leave rather than just stop sending
    close_with_reset: bool = False


_P = Phase
_K = NoticeKind
#: Phases before the person's answer is in (no request accepted, no bid
#: received): Ctrl-D on a terminal leaves.
_ANSWER_OUTSTANDING = frozenset(
    {_P.UNCONNECTED, _P.JOINING, _P.SELLER, _P.BUYER_WAITING, _P.BUYER_BIDDING}
)
_CONNECTED = frozenset(_P) - {_P.UNCONNECTED, _P.OVER}

#: What INVALID's word must be in each phase, and what the person is told.
_INVALID = {_P.SELLER: ("request", _K.INVALID_REQUEST), _P.BUYER_BIDDING: ("bid", _K.INVALID_BID)}
#: What DONE means in each phase (otherwise: bidding closed).
_DONE = {_P.SELLER_STARTED: _K.DONE_SELLER, _P.BUYER_ACCEPTED: _K.DONE_BUYER}


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
        self._prompt_pending = False  # a prompt is shown and not answered
        self._close_with_reset = False
        self._notices: list[Notice] = []
        self._send: list[bytes] = []

    # -- public API -------------------------------------------------------------

    @property
    def should_read_input(self) -> bool:
        """True while the shell should read standard input: interactive,
        always; scripted, only while a prompt waits; never once over."""
        return self.status is None and (self.interactive or self._prompt_pending)

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
            self._say(_K.CONNECTED)
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
                self._protocol_error(Notice(_K.UNREADABLE_LINE, detail=str(exc)))
            else:
                self._dispatch(message)
        return self._output()

    def server_line_too_long(self) -> Output:
        """The server sent more than a line's worth of bytes without ``\\n``."""
        if self.status is None:
            self._protocol_error(Notice(_K.OVER_LONG_LINE))
        return self._output()

    def user_line(self, line: bytes) -> Output:
        """A line of input (terminator removed). Sent now if interactive and
        connected, or if it answers a pending prompt; kept otherwise."""
        if self.status is None:
            if self.phase is Phase.UNCONNECTED or not (self.interactive or self._prompt_pending):
                self._pending.append(line)
            else:
                self._send_line(line)
        return self._output()

    def input_ended(self) -> Output:
        """Standard input ended (Ctrl-D on a terminal)."""
        if self.status is None:
            self._input_ended = True
            if self._prompt_pending or (self.interactive and self.phase in _ANSWER_OUTSTANDING):
                self._say(_K.END_OF_INPUT)
                self._end(ExitStatus.END_OF_INPUT, reset=True)
        return self._output()

    def connection_closed(self) -> Output:
        """The connection ended (EOF, reset, error) with no final line."""
        if self.status is None:
            self._say(_K.CONNECTION_LOST)
            self._end(ExitStatus.LOST)
        return self._output()

    def interrupted(self) -> Output:
        """Ctrl-C: leave at once with a goodbye."""
        if self.status is None:
            if self.interactive:
                self._say(_K.LINE_END)  # the terminal echoed "^C" with no line end
            self._say(_K.INTERRUPTED)
            self._end(ExitStatus.INTERRUPTED, reset=True)
        return self._output()

    # -- helpers ----------------------------------------------------------------

    def _output(self) -> Output:
        out = Output(tuple(self._notices), tuple(self._send), self.status, self._close_with_reset)
        self._notices.clear()
        self._send.clear()
        return out

    def _say(self, kind: NoticeKind) -> None:
        self._notices.append(Notice(kind))

    def _send_line(self, line: bytes) -> None:
        self._send.append(line + b"\n")
        self._prompt_pending = False

    def _end(self, status: ExitStatus, *, reset: bool = False) -> None:
        self.status = status
        self._close_with_reset = reset
        self._prompt_pending = False
        self.phase = Phase.OVER

    def _disconnect(self, status: ExitStatus, notice: Notice, *, reset: bool = False) -> None:
        """Over without a result: say why, then that the client disconnects."""
        self._notices.append(notice)
        self._say(_K.DISCONNECTING)
        self._end(status, reset=reset)

    def _protocol_error(self, notice: Notice) -> None:
        """A server line this client cannot follow: say what, leave with a reset."""
        self._disconnect(ExitStatus.PROTOCOL_ERROR, notice, reset=True)

    def _dispatch(self, message: ServerMessage) -> None:
        handler = TRANSITIONS.get((self.phase, message.keyword))
        if handler is None:
            self._protocol_error(
                Notice(_K.UNEXPECTED_MESSAGE, word=message.keyword, phase=self.phase)
            )
            return
        handler(self, message)

    def _ask(self, kind: NoticeKind) -> None:
        """Show a prompt; a scripted session answers it from the kept lines."""
        self._say(kind)
        if self.interactive:
            self._prompt_pending = True
        elif self._pending:
            self._send_line(self._pending.popleft())
        elif self._input_ended:
            self._say(_K.END_OF_INPUT)
            self._end(ExitStatus.END_OF_INPUT, reset=True)
        else:
            self._prompt_pending = True

    def _result(self, finished: NoticeKind, result: Notice) -> None:
        """A result: the transcript's closing block, exit 0."""
        self._say(finished)
        self._notices.append(result)
        self._say(_K.OVER)
        self._end(ExitStatus.OK)

    # -- handlers (see TRANSITIONS) ---------------------------------------------

    def _role_seller(self, message: ServerMessage) -> None:
        self.phase = Phase.SELLER
        self._say(_K.ROLE_SELLER)

    def _role_buyer(self, message: ServerMessage) -> None:
        self.phase = Phase.BUYER_WAITING
        self.buyer_number = message.numbers[0]
        self._say(_K.ROLE_BUYER)

    def _busy(self, message: ServerMessage) -> None:
        self._say(_K.BUSY)
        self._end(ExitStatus.BUSY)

    def _request_prompt(self, message: ServerMessage) -> None:
        self._ask(_K.REQUEST_PROMPT)

    def _invalid(self, message: ServerMessage) -> None:
        word, kind = _INVALID[self.phase]
        if message.word != word:
            self._protocol_error(Notice(_K.UNEXPECTED_INVALID, word=message.word))
            return
        self._prompt_pending = False  # the server re-prompts with REQUEST or BID
        self._say(kind)

    def _start(self, message: ServerMessage) -> None:
        self.phase = Phase.SELLER_STARTED
        self._prompt_pending = False
        self._say(_K.START)

    def _timeout(self, message: ServerMessage) -> None:
        self._disconnect(ExitStatus.TIMED_OUT, Notice(_K.TIMEOUT))

    def _done(self, message: ServerMessage) -> None:
        self._say(_DONE.get(self.phase, _K.DONE_CLOSED))

    def _sold(self, message: ServerMessage) -> None:
        sold = Notice(_K.SOLD, item=message.item, price=message.numbers[0])
        self._result(_K.SELLER_FINISHED, sold)

    def _seller_unsold(self, message: ServerMessage) -> None:
        self._result(_K.SELLER_FINISHED, Notice(_K.SELLER_UNSOLD))

    def _waiting(self, message: ServerMessage) -> None:
        self._say(_K.WAITING)

    def _notyet(self, message: ServerMessage) -> None:
        self._say(_K.NOTYET)

    def _bidding_starts(self, message: ServerMessage) -> None:
        self.phase = Phase.BUYER_BIDDING
        self._say(_K.BIDDING_STARTS)
        self._ask(_K.BID_PROMPT)

    def _bid_prompt(self, message: ServerMessage) -> None:
        self._ask(_K.BID_PROMPT)

    def _accepted(self, message: ServerMessage) -> None:
        self.phase = Phase.BUYER_ACCEPTED
        self._prompt_pending = False
        self._say(_K.ACCEPTED)

    def _won(self, message: ServerMessage) -> None:
        won = Notice(_K.WON, item=message.item, price=message.numbers[0])
        self._result(_K.BUYER_FINISHED, won)

    def _lost(self, message: ServerMessage) -> None:
        self._result(_K.BUYER_FINISHED, Notice(_K.LOST))

    def _buyer_unsold(self, message: ServerMessage) -> None:
        self._result(_K.BUYER_FINISHED, Notice(_K.BUYER_UNSOLD))

    def _cancelled(self, message: ServerMessage) -> None:
        self._disconnect(ExitStatus.CANCELLED, Notice(_K.CANCELLED, word=message.word))

    def _server_error(self, message: ServerMessage) -> None:
        self._disconnect(ExitStatus.PROTOCOL_ERROR, Notice(_K.SERVER_ERROR, word=message.word))


_S = Session
#: (phase, server keyword) -> the Session method that handles it.
TRANSITIONS: dict[tuple[Phase, str], Callable[[Session, ServerMessage], None]] = {
    (_P.JOINING, "ROLE SELLER"): _S._role_seller,
    (_P.JOINING, "ROLE BUYER"): _S._role_buyer,
    (_P.JOINING, "BUSY"): _S._busy,
    # the seller
    (_P.SELLER, "REQUEST"): _S._request_prompt,
    (_P.SELLER, "INVALID"): _S._invalid,
    (_P.SELLER, "START"): _S._start,
    (_P.SELLER, "TIMEOUT"): _S._timeout,
    (_P.SELLER_STARTED, "DONE"): _S._done,
    (_P.SELLER_STARTED, "SOLD"): _S._sold,
    (_P.SELLER_STARTED, "UNSOLD"): _S._seller_unsold,
    # the buyer
    (_P.BUYER_WAITING, "WAITING"): _S._waiting,
    (_P.BUYER_WAITING, "NOTYET"): _S._notyet,
    (_P.BUYER_WAITING, "BID"): _S._bidding_starts,
    (_P.BUYER_BIDDING, "BID"): _S._bid_prompt,
    (_P.BUYER_BIDDING, "INVALID"): _S._invalid,
    (_P.BUYER_BIDDING, "ACCEPTED"): _S._accepted,
    # DONE while bidding: the deadline passed before this buyer's line arrived.
    (_P.BUYER_BIDDING, "DONE"): _S._done,
    (_P.BUYER_ACCEPTED, "DONE"): _S._done,
    **{
        (phase, keyword): handler
        for phase in (_P.BUYER_BIDDING, _P.BUYER_ACCEPTED)  # no bid: still a result
        for keyword, handler in (
            ("WON", _S._won),
            ("LOST", _S._lost),
            ("UNSOLD", _S._buyer_unsold),
        )
    },
    # the server may end any connection this way
    **{(phase, "CANCELLED"): _S._cancelled for phase in _CONNECTED},
    **{(phase, "ERROR"): _S._server_error for phase in _CONNECTED},
}
