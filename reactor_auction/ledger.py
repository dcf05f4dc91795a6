"""The ledger: every auction that reached START, on SQLite, durably.

WAL journal, ``synchronous=FULL``: a committed record survives a crash of the
process or the machine. Once open, the connection never waits for a lock
(busy timeout 0): a locked database raises LedgerBusy at once and the server
retries on a timer, so the reactor never stalls on another process's lock.

The schema carries its version in ``PRAGMA user_version``. ``_MIGRATIONS``
lists the steps from version 0 (an empty file) upwards; a new version is one
more entry at the end of the list, applied in its own transaction when an
older file is opened. A file from a newer program is refused, never touched.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
import time
from dataclasses import dataclass

from .events import AuctionRecord

DEFAULT_PATH = "auction-ledger.sqlite3"
#: Seconds start-up may wait for another connection's lock (record() never waits).
STARTUP_WAIT = 2.0

# Entry i upgrades the schema from version i to version i + 1: a tuple of
# SQL statements run in one transaction together with the new user_version.
# Never edit an entry that has shipped; append a new one instead.
_MIGRATIONS: list[tuple[str, ...]] = [
    # 0 -> 1: the first schema.
    (
        """
        CREATE TABLE auctions (
            id               INTEGER PRIMARY KEY,
            item             TEXT    NOT NULL,
            kind             INTEGER NOT NULL CHECK (kind IN (1, 2)),
            min_price        INTEGER NOT NULL,
            buyers_requested INTEGER NOT NULL,
            buyers_connected INTEGER NOT NULL,
            outcome          TEXT    NOT NULL
                             CHECK (outcome IN ('sold', 'unsold', 'cancelled')),
            reason           TEXT    NOT NULL DEFAULT '',
            winner           INTEGER,
            winner_address   TEXT    NOT NULL DEFAULT '',
            highest          INTEGER NOT NULL,
            price            INTEGER NOT NULL,
            seller_address   TEXT    NOT NULL DEFAULT '',
            started_at       REAL    NOT NULL,
            ended_at         REAL    NOT NULL
        )
        """,
        """
        CREATE TABLE bids (
            auction_id INTEGER NOT NULL REFERENCES auctions (id),
            buyer      INTEGER NOT NULL,
            amount     INTEGER NOT NULL,
            arrival    INTEGER NOT NULL,
            at         REAL    NOT NULL,
            PRIMARY KEY (auction_id, arrival)
        )
        """,
    ),
]

#: The schema version this code writes (PRAGMA user_version).
SCHEMA_VERSION = len(_MIGRATIONS)

#: The first 16 bytes of every SQLite 3 database file.
_SQLITE_HEADER = b"SQLite format 3\x00"
# Primary result codes (sqlite3.SQLITE_BUSY/LOCKED exist only from Python 3.11).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


class LedgerError(Exception):
    """The ledger cannot be used (bad path, not a database, newer schema...)."""


class LedgerBusy(LedgerError):
    """The database is locked by another connection; try again later."""


def _is_busy(exc: sqlite3.Error) -> bool:
    """Return True if ``exc`` means "locked by someone else, try later"."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def _check_path(path: str, *, must_exist: bool) -> None:
    """Raise LedgerError with a plain reason if ``path`` cannot be a ledger.

    SQLite's own message for most of these is "unable to open database file";
    and it silently overwrites a file shorter than its header, so a stray
    one-byte file is refused here rather than lost.
    """
    if not path:  # SQLite would open a temporary database, lost at exit
        raise LedgerError("the ledger path is empty (--no-ledger records nothing)")
    if os.path.isdir(path):
        raise LedgerError(f"ledger {path} is a directory, not a file")
    if os.path.exists(path):
        try:
            with open(path, "rb") as file:
                head = file.read(len(_SQLITE_HEADER))
        except OSError as exc:
            raise LedgerError(f"cannot read ledger {path}: {exc.strerror}") from None
        if head and head != _SQLITE_HEADER:
            raise LedgerError(f"ledger {path} is not an SQLite database")
        return
    if must_exist:
        raise LedgerError(f"no ledger at {path}: nothing has been recorded there")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise LedgerError(f"cannot create ledger {path}: {parent} {what}")


def _version(db: sqlite3.Connection, path: str) -> int:
    """Return the schema version; raise LedgerError if a newer program wrote
    the file. The first read of the file: raises sqlite3.DatabaseError if it
    is not a database (connect() is lazy)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"ledger {path} has schema version {version}; this program knows up to "
            f"{SCHEMA_VERSION}: use a newer reactor_auction or another --ledger"
        )
    return version


def _failure(exc: sqlite3.Error) -> LedgerError:
    """Return LedgerBusy if ``exc`` means "locked, try later", else LedgerError."""
    return (LedgerBusy if _is_busy(exc) else LedgerError)(str(exc))


class Ledger:
    """An open ledger file. ``record`` commits one auction."""

    def __init__(self, path: str) -> None:
        """Open (creating or migrating) the ledger at ``path``.

        Raises LedgerError with a one-line reason.
        """
        self.path = path
        _check_path(path, must_exist=False)
        try:
            # Before the loop runs, waiting a moment for another server's
            # migration or commit is harmless; afterwards it never waits.
            self._db = sqlite3.connect(path, timeout=STARTUP_WAIT, isolation_level=None)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {path}: {exc}") from None
        try:
            self._prepare()
            self._db.execute("PRAGMA busy_timeout=0")
        except sqlite3.Error as exc:
            self._db.close()
            if _is_busy(exc):
                raise LedgerError(f"ledger {path} is locked by another program") from None
            raise LedgerError(f"cannot use ledger {path}: {exc}") from None
        except LedgerError:
            self._db.close()
            raise

    def _prepare(self) -> None:
        """Check the version, set WAL and full sync, migrate up to SCHEMA_VERSION."""
        db = self._db
        version = _version(db, self.path)
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LedgerError(f"ledger {self.path} cannot use WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        while version < SCHEMA_VERSION:
            self._migrate_one()
            version = _version(db, self.path)

    def _migrate_one(self) -> None:
        """Apply the next migration in its own transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another server may have just
            # migrated the same file.
            version = _version(db, self.path)
            if version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={version + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def record(self, record: AuctionRecord) -> int:
        """Commit one auction and its bids; return its row id.

        Raises LedgerBusy if the database is locked (nothing was written),
        LedgerError for any other failure (nothing was written either).
        """
        db = self._db
        # Monotonic to Unix time, measured now so that a clock step is followed.
        offset = time.time() - time.monotonic()
        try:
            db.execute("BEGIN IMMEDIATE")
            cursor = db.execute(
                "INSERT INTO auctions (item, kind, min_price, buyers_requested,"
                " buyers_connected, outcome, reason, winner, winner_address, highest,"
                " price, seller_address, started_at, ended_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.item, record.pricing.value, record.min_price, record.buyers_requested,
                    record.buyers_connected, record.outcome,
                    "" if record.reason is None else record.reason.value, record.winner,
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
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the error to report is exc
                    db.execute("ROLLBACK")
            raise _failure(exc) from None
        return auction_id

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()


@dataclass(frozen=True, slots=True)
class PastAuction:
    """One recorded auction as ``history`` returns it; times are Unix times."""

    id: int
    item: str
    pricing: int  #: the ``kind`` column: 1 first price, 2 second price
    min_price: int
    buyers_requested: int
    buyers_connected: int
    outcome: str
    reason: str
    winner: int | None
    winner_address: str
    seller_address: str
    highest: int
    price: int
    started_at: float
    ended_at: float
    bids: int  #: how many bids were placed


_HISTORY_QUERY = (
    "SELECT a.id, a.item, a.kind, a.min_price, a.buyers_requested, a.buyers_connected,"
    " a.outcome, a.reason, a.winner, a.winner_address, a.seller_address, a.highest,"
    " a.price, a.started_at, a.ended_at,"
    " (SELECT count(*) FROM bids b WHERE b.auction_id = a.id)"
    " FROM auctions a ORDER BY a.id DESC LIMIT ?"
)


def history(path: str, limit: int | None = 20) -> list[PastAuction]:
    """Return the newest ``limit`` auctions (None: all), newest first.

    Opens the file read-only and never creates or migrates it. Raises
    LedgerError if there is no ledger at ``path`` or it cannot be read.
    """
    _check_path(path, must_exist=True)
    try:
        # A URI, for read-only mode; as_uri() escapes "?" and "#" in the path.
        uri = pathlib.Path(path).absolute().as_uri() + "?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=1.0)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open ledger {path}: {exc}") from None
    try:
        if _version(db, path) == 0:
            return []  # created but never set up: nothing recorded
        rows = db.execute(_HISTORY_QUERY, (-1 if limit is None else limit,)).fetchall()
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc}") from None
    finally:
        db.close()
    return [PastAuction(*row) for row in rows]
