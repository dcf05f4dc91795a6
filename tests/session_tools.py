"""A driver for one client ``Session``, shared by the tests that feed sessions
without sockets (test_session, test_pair, test_transcripts)."""

from __future__ import annotations

from collections.abc import Callable

from reactor_auction import text
from reactor_auction.session import Notice, Output, Session


def printed(notices: list[Notice]) -> list[str]:
    """Return the lines ``auc_client`` prints for ``notices`` (text.py's words)."""
    return text.notices_text(notices).split("\n") if notices else []


class Driver:
    """Feeds a Session and keeps its notices, the lines they print, and what
    it sends. ``on_output`` (if given) sees every Output after it is kept:
    a harness routes the sent lines from there."""

    def __init__(
        self,
        *,
        interactive: bool = True,
        connect: bool = True,
        on_output: Callable[[Output], None] | None = None,
    ) -> None:
        self.session = Session(interactive=interactive)
        self.notices: list[Notice] = []
        self.sent: list[bytes] = []
        self.last = Output()
        self._on_output = on_output
        if connect:
            self.connected()

    @property
    def shown(self) -> list[str]:
        """Return every line printed so far."""
        return printed(self.notices)

    def take(self, out: Output) -> Output:
        """Keep one Output of the session; return it."""
        self.notices.extend(out.notices)
        self.sent.extend(out.send)
        self.last = out
        if self._on_output is not None:
            self._on_output(out)
        return out

    def connected(self) -> Output:
        return self.take(self.session.connected())

    def server(self, *lines: str | bytes) -> Output:
        """Feed server lines (terminator removed); return the last Output."""
        for line in lines:
            raw = line.encode() if isinstance(line, str) else line
            self.take(self.session.server_line(raw))
        return self.last

    def server_line_too_long(self) -> Output:
        return self.take(self.session.server_line_too_long())

    def user(self, line: str) -> Output:
        return self.take(self.session.user_line(line.encode()))

    def eof(self) -> Output:
        return self.take(self.session.input_ended())

    def closed(self) -> Output:
        return self.take(self.session.connection_closed())

    def interrupted(self) -> Output:
        return self.take(self.session.interrupted())

    def text_since(self, start: int) -> list[str]:
        """Return the lines printed after the first ``start``."""
        return self.shown[start:]
