"""The ledger: every auction that reached START, on SQLite, durably.

WAL journal, ``synchronous=FULL``: a committed record survives a crash of the
process or the machine. The connection never waits for a lock
(``timeout=0``): a locked database raises LedgerBusy at once and the server
retries on a timer, so the reactor never stalls on another process's lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .auction import AuctionRecord

#: The schema version this code writes (PRAGMA user_version).
SCHEMA_VERSION = 1
DEFAULT_PATH = "auction-ledger.sqlite3"

# Each entry upgrades the schema from version (index) to (index + 1).
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE auctions (
        id               INTEGER PRIMARY KEY,
        item             TEXT    NOT NULL,
        kind             INTEGER NOT NULL CHECK (kind IN (1, 2)),
        min_price        INTEGER NOT NULL,
        buyers_requested INTEGER NOT NULL,
        buyers_connected INTEGER NOT NULL,
        outcome          TEXT    NOT NULL CHECK (outcome IN ('sold', 'unsold', 'cancelled')),
        reason           TEXT    NOT NULL DEFAULT '',
        winner           INTEGER,
        winner_address   TEXT    NOT NULL DEFAULT '',
        highest          INTEGER NOT NULL,
        price            INTEGER NOT NULL,
        seller_address   TEXT    NOT NULL DEFAULT '',
        started_at       REAL    NOT NULL,
        ended_at         REAL    NOT NULL
    );
    CREATE TABLE bids (
        auction_id INTEGER NOT NULL REFERENCES auctions (id),
        buyer      INTEGER NOT NULL,
        amount     INTEGER NOT NULL,
        arrival    INTEGER NOT NULL,
        at         REAL    NOT NULL,
        PRIMARY KEY (auction_id, arrival)
    );
    """,
]


class LedgerError(Exception):
    """The ledger cannot be used (bad path, not a database, newer schema...)."""


class LedgerBusy(LedgerError):
    """The database is locked by another connection; try again later."""


def _is_busy(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


class Ledger:
    """An open ledger file. ``record`` commits one auction."""

    def __init__(self, path: str, *, clock_offset: float | None = None) -> None:
        """Open (creating or migrating) the ledger at ``path``.

        ``clock_offset`` turns the auction's monotonic times into Unix times
        (default: measured now). Raises LedgerError with a one-line reason.
        """
        self.path = path
        self._offset = time.time() - time.monotonic() if clock_offset is None else clock_offset
        try:
            self._db = sqlite3.connect(path, timeout=0, isolation_level=None)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {path}: {exc}") from None
        try:
            self._prepare()
        except sqlite3.Error as exc:
            self._db.close()
            if _is_busy(exc):
                raise LedgerError(f"ledger {path} is locked by another program") from None
            raise LedgerError(f"cannot use ledger {path}: {exc}") from None
        except LedgerError:
            self._db.close()
            raise

    def _prepare(self) -> None:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.path} has schema version {version}; this program "
                f"knows up to {SCHEMA_VERSION}: upgrade reactor_auction"
            )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        while version < SCHEMA_VERSION:
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                version += 1
                db.execute(f"PRAGMA user_version={version}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def record(self, record: AuctionRecord) -> int:
        """Commit one auction and its bids; return its row id.

        Raises LedgerBusy if the database is locked (nothing was written),
        LedgerError for any other failure.
        """
        db = self._db
        offset = self._offset
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise LedgerBusy(str(exc)) from None
            raise LedgerError(str(exc)) from None
        try:
            cursor = db.execute(
                "INSERT INTO auctions (item, kind, min_price, buyers_requested,"
                " buyers_connected, outcome, reason, winner, winner_address, highest,"
                " price, seller_address, started_at, ended_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.item, record.kind, record.min_price, record.buyers_requested,
                    record.buyers_connected, record.outcome, record.reason, record.winner,
                    record.winner_peer, record.highest, record.price, record.seller_peer,
                    record.started_at + offset, record.ended_at + offset,
                ),
            )
            auction_id = cursor.lastrowid
            assert auction_id is not None
            db.executemany(
                "INSERT INTO bids (auction_id, buyer, amount, arrival, at) VALUES (?, ?, ?, ?, ?)",
                [(auction_id, b.buyer, b.amount, b.order, b.at + offset) for b in record.bids],
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if _is_busy(exc):
                raise LedgerBusy(str(exc)) from None
            raise LedgerError(str(exc)) from None
        return auction_id

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()


@dataclass(frozen=True, slots=True)
class PastAuction:
    """One row of ``history``."""

    id: int
    ended_at: float
    item: str
    kind: int
    outcome: str
    reason: str
    winner: int | None
    price: int
    highest: int
    bids: int


def history(path: str, limit: int = 20) -> Iterator[PastAuction]:
    """Yield the newest ``limit`` auctions, newest first. Raises LedgerError."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open ledger {path}: {exc}") from None
    try:
        rows = db.execute(
            "SELECT a.id, a.ended_at, a.item, a.kind, a.outcome, a.reason, a.winner,"
            " a.price, a.highest, (SELECT count(*) FROM bids b WHERE b.auction_id = a.id)"
            " FROM auctions a ORDER BY a.id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc}") from None
    finally:
        db.close()
    for row in rows:
        yield PastAuction(*row)
