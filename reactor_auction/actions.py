"""The one interpreter of the auction machine's actions.

The machine answers every event with a list of actions (send these bytes,
close that connection, log this, record that). Every shell that runs the
machine (the server's service, the benchmark baselines, the tests) carries
them out through ``carry_out``, each with its own ``Executor``: how bytes
move differs, the rule for carrying actions out does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .events import Action, AuctionRecord, Close, Log, Record, Send


class Executor(Protocol):
    """What a shell does with each kind of action."""

    def send(self, conn: int, data: bytes) -> None:
        """Queue ``data`` for ``conn`` (a connection already closed: nothing)."""

    def close(self, conn: int) -> None:
        """Close ``conn`` once what was sent to it is flushed; the machine has
        let go of it, so no further event about it may be fed."""

    def log(self, log: Log) -> None:
        """Show ``log`` to whoever watches the server."""

    def record(self, record: AuctionRecord) -> None:
        """Commit ``record``, then feed ``Recorded`` (results wait for it)."""


def carry_out(actions: Iterable[Action], executor: Executor) -> None:
    """Carry out ``actions`` in order with ``executor``.

    One action failing does not skip the others (another client's final
    line and Close, the Record): the machine has already moved on. Raises
    the first exception an action raised, once every action was carried out.
    """
    error: Exception | None = None
    for action in actions:
        try:
            if isinstance(action, Send):
                executor.send(action.conn, action.data)
            elif isinstance(action, Close):
                executor.close(action.conn)
            elif isinstance(action, Log):
                executor.log(action)
            elif isinstance(action, Record):
                executor.record(action.record)
        except Exception as exc:
            error = error or exc
    if error is not None:
        raise error
