"""Human wording: what a person sees while an auction runs, in one place.

The server's console lines (docs/TRANSCRIPTS.md, "Server") are rendered here
from the auction's ``Log`` actions; the client's, from the session's
``Notice`` values (``notice_text``) and the client shell's own messages
(``client_text``). Nothing here does I/O. Command-line matters stay with their
command: option help, usage and the server's start-up errors in server.py and
client.py, the history table's headings in history.py.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from .events import LogKind, State
from .session import ExitStatus, Notice, NoticeKind

# --- the server console ----------------------------------------------------------

#: Log kind -> template; ``{0}``, ``{1}``... are the Log's args (an Enum
#: member shows its value: a state, a pricing rule, a cancel reason).
SERVER_TEXT: dict[LogKind, str] = {
    LogKind.READY: "Auctioneer is ready for hosting auctions!\n",
    LogKind.SELLER_CONNECTED: "Seller is connected from {0}",
    LogKind.REQUEST_ACCEPTED: "Auction request received. Now waiting for Buyers.",
    LogKind.STATE: ">> Auction state: {0}",
    LogKind.BUYER_CONNECTED: "Buyer {0} is connected from {1}",
    LogKind.BIDDING_STARTS: "Requested number of bidders arrived. Let's start bidding!",
    LogKind.BID: ">> Buyer {0} bid ${1}",
    LogKind.SOLD: ">> Item sold! The highest bid is ${0}. The actual payment is ${1}",
    LogKind.UNSOLD: ">> Item not sold! The highest bid ${0} is below the minimum price ${1}.",
    LogKind.BUSY: "Server is busy ({1}): turned away {0}",
    LogKind.SELLER_LEFT_EARLY: "Seller from {0} left before sending an auction request.",
    LogKind.SELLER_TIMEOUT: "Seller from {0} sent no valid request in time. "
    "Waiting for the next Seller.",
    LogKind.SELLER_LEFT_WAITING: "Seller left while waiting for Buyers.",
    LogKind.BUYER_LEFT_WAITING: "Buyer {0} left. The place is free again.",
    LogKind.SELLER_LEFT: ">> Seller left the auction.",
    LogKind.BUYER_LEFT: ">> Buyer {0} left the auction.",
    LogKind.ABSTAINS: ">> Buyer {0} can no longer bid (its input is closed).",
    LogKind.BID_DEADLINE: ">> Bidding time is up; {0} Buyer(s) did not bid.",
    LogKind.CANCELLED: ">> Auction cancelled: {0}",
    LogKind.LINE_TOO_LONG: "Connection from {0} sent an over-long line and was disconnected.",
    LogKind.INVALID_REQUEST: "Invalid auction request from {0}: {1}",
    LogKind.INVALID_BID: "Buyer {0} sent an invalid bid.",
    LogKind.RECORDED: ">> Auction #{0} recorded in {1}",
    LogKind.LEDGER_WAITING: "Ledger is busy ({0}); the result waits and is retried.",
    LogKind.LEDGER_FAILED: "error: cannot record the auction: {0}; the results wait and the "
    "commit is retried.",
    LogKind.LEDGER_GAVE_UP: "error: stopping without recording the cancelled auction "
    "(ledger unavailable).",
    LogKind.SHUTDOWN: "Shutting down: telling everyone the auction is cancelled.",
    LogKind.FD_LIMIT: "warning: --max-buyers {0} is more than the descriptor limit allows; "
    "using {1}.",
    LogKind.FD_EXHAUSTED: "warning: out of file descriptors ({0}); pausing new connections.",
    LogKind.CONNECTION_ERROR: "error: connection {0} closed after an internal error: {1}",
    LogKind.FATAL: "error: internal error in the auction ({0}); every client was told CANCELLED.",
    LogKind.LISTENING: "Listening on {0}:{1}",
    LogKind.OPENED: "[conn {0}] opened from {1}",
    LogKind.CLOSED: "[conn {0}] closed ({1})",
}

#: Shown only with --verbose.
VERBOSE = frozenset(
    {LogKind.LISTENING, LogKind.INVALID_REQUEST, LogKind.INVALID_BID, LogKind.OPENED,
     LogKind.CLOSED}
)
#: Shown even with --quiet (on standard error).
ERRORS = frozenset(
    {LogKind.LEDGER_FAILED, LogKind.LEDGER_GAVE_UP, LogKind.FD_LIMIT, LogKind.FD_EXHAUSTED,
     LogKind.CONNECTION_ERROR, LogKind.FATAL}
)
#: Followed by a blank line, as in the transcript.
_BLANK_AFTER_STATES = frozenset({State.WAITING_BUYERS, State.WAITING_SELLER})


def server_line(kind: LogKind, args: tuple[object, ...]) -> str:
    """Return the console text for one log event (it may span lines)."""
    text = SERVER_TEXT[kind].format(
        *(arg.value if isinstance(arg, enum.Enum) else arg for arg in args)
    )
    if kind is LogKind.STATE and args and args[0] in _BLANK_AFTER_STATES:
        text += "\n"
    return text


# --- the client ---------------------------------------------------------------------
#
# docs/TRANSCRIPTS.md, "Seller", "Buyer", "Busy" and "Everything else", line for
# line. A "\n" inside a text is a blank line of the transcript. ``{item}``,
# ``{price}``, ``{word}``, ``{phase}`` and ``{detail}`` are the notice's values.

_K = NoticeKind

#: Notice kind -> its template.
CLIENT_TEXT: dict[NoticeKind, str] = {
    _K.CONNECTED: "Connected to the Auctioneer server.\n",
    _K.BUSY: "Server is busy. Try to connect again later.",
    # the seller
    _K.ROLE_SELLER: "Your role is: [Seller]",
    _K.REQUEST_PROMPT: "Please submit auction request:",
    _K.INVALID_REQUEST: "Server: Invalid auction request!",
    _K.START: "Server: Auction start.",
    _K.SELLER_FINISHED: "\nAuction finished!",
    _K.SOLD: "Success! Your item {item} has been sold for ${price}.",
    _K.SELLER_UNSOLD: "Unfortunately, your item was not sold as all bids were below the "
    "minimum price.",
    # the buyer
    _K.ROLE_BUYER: "Your role is: [Buyer]",
    _K.WAITING: "The Auctioneer is still waiting for other Buyers to connect...",
    _K.BIDDING_STARTS: "\nThe bidding has started!",
    _K.BID_PROMPT: "Please submit your bid:",
    _K.INVALID_BID: "Server: Invalid bid. Please submit a positive integer!",
    _K.ACCEPTED: "Server: Bid received. Please wait...",
    _K.NOTYET: "Server: Bidding has not started yet. Please wait.",
    _K.BUYER_FINISHED: "\nServer: Auction finished!",
    _K.WON: "You won the item '{item}'! Your payment due is ${price}",
    _K.LOST: "Unfortunately you did not win in the last round.",
    _K.BUYER_UNSOLD: "Unfortunately, the item was not sold as all bids were below the "
    "minimum price.",
    # both, after a result
    _K.OVER: "Disconnecting from the Auctioneer server. Auction is over!",
    # --- beyond the seed transcripts: one or two sentences each, same voice ---
    _K.DONE_SELLER: "Server: Your auction request is already in. Please wait.",
    _K.DONE_BUYER: "Server: Your bid is already in. Please wait.",
    _K.DONE_CLOSED: "Server: Bidding is closed. Please wait.",
    _K.CANCELLED: "\nServer: Auction cancelled ({word}).",  # a reason not in CANCELLED_TEXT
    _K.TIMEOUT: "\nServer: Time is up: no valid auction request arrived in time.",
    _K.SERVER_ERROR: "Server: Protocol error ({word}).",  # a reason not in SERVER_ERROR_TEXT
    _K.DISCONNECTING: "Disconnecting from the Auctioneer server.",
    _K.CONNECTION_LOST: "The connection to the Auctioneer server was lost before the auction "
    "was over.",
    _K.UNREADABLE_LINE: "Protocol error: {detail}.",
    _K.OVER_LONG_LINE: "Protocol error: the server sent an over-long line.",
    _K.UNEXPECTED_MESSAGE: "Protocol error: unexpected {word!r} from the server ({phase}).",
    _K.UNEXPECTED_INVALID: "Protocol error: unexpected 'INVALID {word}' from the server.",
    _K.END_OF_INPUT: "End of input: leaving the auction before it is over.",
    _K.LINE_END: "",
    _K.INTERRUPTED: "Interrupted: leaving the Auctioneer server. Goodbye!",
}

#: CANCELLED's reason word -> its text (other words: CLIENT_TEXT[CANCELLED]).
CANCELLED_TEXT: dict[str, str] = {
    "seller-left": "\nServer: Auction cancelled: the Seller left.",
    "shutdown": "\nServer: Auction cancelled: the Auctioneer is shutting down.",
    "server-error": "\nServer: Auction cancelled: the Auctioneer had an internal error.",
}

#: ERROR's reason word -> its text (other words: CLIENT_TEXT[SERVER_ERROR]).
SERVER_ERROR_TEXT: dict[str, str] = {
    "line-too-long": "Server: Your line was too long.",
}

#: The client shell's own messages (``client_text``): retrying, failing to
#: connect (on standard error), a Ctrl-C before the session runs, a bug.
CLIENT_SHELL_TEXT: dict[str, str] = {
    "retry": "Trying again in {delay:g} seconds (retry {attempt} of {retries})...",
    "refused": "Could not connect to the Auctioneer server at {where}: connection refused. "
    "Is it running?",
    "unknown_host": "Could not connect to the Auctioneer server: unknown host {host!r}.",
    "connect_timeout": "Could not connect to the Auctioneer server at {where} within "
    "{seconds:g} seconds.",
    "connect_failed": "Could not connect to the Auctioneer server at {where}: {reason}.",
    "interrupted": CLIENT_TEXT[_K.INTERRUPTED],
    "internal_error": "auc_client: internal error: {detail}",
}

#: Exit status -> its meaning, for ``auc_client --help`` and README.md.
CLIENT_EXIT_TEXT: dict[ExitStatus, str] = {
    ExitStatus.OK: "the auction ran to its result (sold, not sold, won, lost)",
    ExitStatus.USAGE: "usage error",
    ExitStatus.CANNOT_CONNECT: "cannot connect (refused, unknown host, unreachable, timed out)",
    ExitStatus.BUSY: "the server is busy (after any --retry)",
    ExitStatus.CANCELLED: "the auction was cancelled (seller left, server shut down or failed)",
    ExitStatus.TIMED_OUT: "the server timed out waiting for the auction request",
    ExitStatus.LOST: "the connection was lost before the result",
    ExitStatus.PROTOCOL_ERROR: "the server sent something this client does not understand, "
    "or an ERROR",
    ExitStatus.END_OF_INPUT: "standard input ended (Ctrl-D) while an answer was still needed",
    ExitStatus.INTERNAL: "internal error (a bug)",
    ExitStatus.INTERRUPTED: "interrupted by Ctrl-C",
}


def notice_text(notice: Notice) -> str:
    """Return the words of one session notice (it may span lines; "" is an
    empty line). Raises KeyError for a kind without wording (a bug)."""
    kind = notice.kind
    if kind is _K.CANCELLED:
        template = CANCELLED_TEXT.get(notice.word, CLIENT_TEXT[kind])
    elif kind is _K.SERVER_ERROR:
        template = SERVER_ERROR_TEXT.get(notice.word, CLIENT_TEXT[kind])
    else:
        template = CLIENT_TEXT[kind]
    return template.format(
        item=notice.item,
        price=notice.price,
        word=notice.word,
        phase=notice.phase.value if notice.phase is not None else "",
        detail=notice.detail,
    )


def notices_text(notices: Iterable[Notice]) -> str:
    """Return what the client prints for ``notices``: each on its own line(s),
    no final line end."""
    return "\n".join(map(notice_text, notices))


def client_text(kind: str, **fields: object) -> str:
    """Return the shell's message ``kind`` (a key of CLIENT_SHELL_TEXT) with
    ``fields`` filled in. Raises KeyError for an unknown kind."""
    return CLIENT_SHELL_TEXT[kind].format(**fields)
