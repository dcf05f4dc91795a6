"""The ledger: every auction that reached START, on SQLite, durably.

A rollback journal (``journal_mode=DELETE``) with ``synchronous=FULL``: a
committed record is in the database file itself, on disk, before record()
returns, and between commits no side file exists (the ``-journal`` lives only
during a commit). Nothing is memory-mapped (no WAL ``-shm``, ``mmap_size=0``),
so a file made immutable, truncated or on a full disk makes a commit fail with
an error, never kill the process with SIGBUS. Locking is SQLite's normal
locking: ``auc_server history`` reads between commits (and waits out one).

Once open, the connection never waits for a lock (busy timeout 0): a locked
database raises LedgerBusy at once and the server retries on a timer, so the
reactor never stalls on another process's lock.

Before a commit, the ledger checks that its path still names the file it
opened (same device and inode). A ledger deleted, moved away, replaced by
another file or a directory, or whose directory was removed, raises
LedgerError and writes nothing; the next record() opens whatever the path
names then, creating a new ledger there when nothing is. The files are
created mode 0600 whatever the umask (they hold every sealed bid and every
buyer's address); an existing file keeps its mode, and SQLite gives the
journal the database file's mode.

The schema carries its version in ``PRAGMA user_version``. ``_MIGRATIONS``
lists the steps from version 0 (an empty file) upwards; a new version is one
more entry at the end of the list, applied in its own transaction when an
older file is opened. A file from a newer program is refused, never touched.
A ledger in WAL mode (as older versions wrote it) is switched to the rollback
journal when opened, its WAL checkpointed into the file.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .events import AuctionRecord

DEFAULT_PATH = "auction-ledger.sqlite3"
#: Seconds start-up may wait for another connection's lock (record() never waits).
STARTUP_WAIT = 2.0
#: Seconds ``history`` waits for a commit in progress to finish.
READ_WAIT = 1.0
#: The journal mode and file mode of every ledger this code opens or creates.
JOURNAL_MODE = "delete"
FILE_MODE = 0o600

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
# Result codes (sqlite3.SQLITE_* constants exist only from Python 3.11).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_READONLY_ROLLBACK = _SQLITE_READONLY | (3 << 8)

#: Plain words for the failures a commit meets when the file system says no.
_PLAIN = {
    _SQLITE_IOERR: "writing it failed (is it immutable or read-only?)",
    _SQLITE_CANTOPEN: "cannot create its rollback journal beside it "
    "(is the directory read-only?)",
    _SQLITE_READONLY: "the file is read-only",
    _SQLITE_FULL: "the disk is full",
}

#: The kinds of file that are not a ledger, and how a message names them.
_NOT_REGULAR: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class LedgerError(Exception):
    """The ledger cannot be used (bad path, not a database, newer schema,
    a commit the file system refused, the file gone...)."""


class LedgerBusy(LedgerError):
    """The database is locked by another connection; try again later."""


class LedgerMissing(LedgerError):
    """Reading: there is no ledger file at the path."""


def _code(exc: sqlite3.Error) -> int | None:
    """Return SQLite's extended result code of ``exc`` (None before Python 3.11)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code if isinstance(code, int) else None


def _is_busy(exc: sqlite3.Error) -> bool:
    """Return True if ``exc`` means "locked by someone else, try later"."""
    code = _code(exc)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def _failure(exc: sqlite3.Error, path: str) -> LedgerError:
    """Return LedgerBusy if ``exc`` means "locked, try later", else LedgerError
    naming the file and, where known, what the file system refused."""
    if _is_busy(exc):
        return LedgerBusy(str(exc))
    code = _code(exc)
    plain = None if code is None else _PLAIN.get(code & 0xFF)
    return LedgerError(f"ledger {path}: {plain} ({exc})" if plain else f"ledger {path}: {exc}")


def _absolute(path: str) -> str:
    """Return ``path`` made absolute (so that it still names the same place if
    the working directory is removed); raise LedgerError if it cannot be."""
    if not path:  # SQLite would open a temporary database, lost at exit
        raise LedgerError("the ledger path is empty (--no-ledger records nothing)")
    try:
        return os.path.abspath(path)
    except OSError as exc:  # a relative path and no working directory
        raise LedgerError(f"cannot locate ledger {path}: {exc.strerror}") from None


def _kind(mode: int) -> str:
    """Return what a message calls a file of ``mode`` that is not regular."""
    for test, name in _NOT_REGULAR:
        if test(mode):
            return name
    return "not a regular file"


def _check_path(path: str, *, must_exist: bool) -> None:
    """Raise LedgerError with a plain reason if ``path`` (absolute) cannot be
    a ledger: only a regular SQLite file, an empty one, or (unless
    ``must_exist``, then LedgerMissing) a missing file in an existing
    directory will do.

    A FIFO is never opened for reading (that would wait for a writer), and
    SQLite silently overwrites a file shorter than its header, so a stray
    one-byte file is refused here rather than lost.
    """
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        _check_missing(path, must_exist=must_exist)
        return
    except OSError as exc:
        raise LedgerError(f"cannot use ledger {path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise LedgerError(f"ledger {path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise LedgerError(f"ledger {path} is {_kind(info.st_mode)}, not a regular file")
    try:
        # Non-blocking, should a FIFO have taken the file's place since the stat.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise LedgerError(f"ledger {path} is {_kind(mode)}, not a regular file")
        head = os.read(fd, len(_SQLITE_HEADER))
    finally:
        os.close(fd)
    if head and head != _SQLITE_HEADER:
        raise LedgerError(f"ledger {path} is not an SQLite database")


def _check_missing(path: str, *, must_exist: bool) -> None:
    """``path`` names nothing: raise LedgerError unless a ledger can be created there."""
    if os.path.islink(path):
        raise LedgerError(f"ledger {path} is a symbolic link to nothing ({os.readlink(path)})")
    if must_exist:
        raise LedgerMissing(f"no ledger at {path} (nothing has been recorded there)")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise LedgerError(f"cannot create ledger {path}: {parent} {what}")


def _create_private(path: str) -> None:
    """Create an empty ``path`` mode FILE_MODE unless something is there
    already (SQLite would create it 0644 less the umask; its journal copies
    the database file's mode). Raises LedgerError if it cannot."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return  # an existing file keeps the mode its owner gave it
    except OSError as exc:
        raise LedgerError(f"cannot create ledger {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have taken away more
    finally:
        os.close(fd)


def _identity(path: str) -> tuple[int, int]:
    """Return (device, inode) of the file at ``path``; raise LedgerError if none."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise LedgerError(f"cannot use ledger {path}: {exc.strerror}") from None
    return info.st_dev, info.st_ino


def _lost(path: str, identity: tuple[int, int]) -> str | None:
    """Return why ``path`` no longer names the file of ``identity``, or None
    if it still does."""
    parent = os.path.dirname(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if not os.path.isdir(parent):
            return f"ledger {path} is gone: its directory {parent} was removed"
        return f"ledger {path} was deleted"
    except OSError as exc:
        return f"cannot find ledger {path}: {exc.strerror}"
    if (info.st_dev, info.st_ino) == identity:
        return None
    if stat.S_ISDIR(info.st_mode):
        return f"ledger {path} was replaced by a directory"
    return f"ledger {path} was replaced by another file"


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


class Ledger:
    """An open ledger file. ``record`` commits one auction.

    ``path`` is the ledger's absolute path.
    """

    def __init__(self, path: str) -> None:
        """Open (creating or migrating) the ledger at ``path``.

        Raises LedgerError with a one-line reason.
        """
        self.path = _absolute(path)
        self._identity = (0, 0)
        # Before the loop runs, waiting a moment for another server's
        # migration or commit is harmless; afterwards it never waits.
        self._db: sqlite3.Connection | None = self._open(STARTUP_WAIT)

    def _open(self, wait: float) -> sqlite3.Connection:
        """Open the ledger at self.path (creating, migrating, switching it to
        the rollback journal); remember which file it is; return the
        connection. Raises LedgerBusy if another connection held a lock for
        ``wait`` seconds, LedgerError for any other reason."""
        path = self.path
        _check_path(path, must_exist=False)
        _create_private(path)
        try:
            db = sqlite3.connect(path, timeout=wait, isolation_level=None)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {path}: {exc}") from None
        try:
            self._prepare(db)
            db.execute("PRAGMA busy_timeout=0")
            self._identity = _identity(path)
        except sqlite3.Error as exc:
            db.close()
            if _is_busy(exc):
                raise LedgerBusy(f"ledger {path} is locked by another program") from None
            raise LedgerError(f"cannot use ledger {path}: {exc}") from None
        except LedgerError:
            db.close()
            raise
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Check the version, set the journal, full sync and no memory
        mapping, migrate up to SCHEMA_VERSION."""
        version = _version(db, self.path)
        db.execute("PRAGMA mmap_size=0")
        # Leaving WAL checkpoints it into the file and removes -wal and -shm;
        # SQLite refuses (busy) while another connection has the file open.
        mode = db.execute(f"PRAGMA journal_mode={JOURNAL_MODE}").fetchone()[0]
        if str(mode).lower() != JOURNAL_MODE:
            raise LedgerError(
                f"ledger {self.path} cannot use a rollback journal (journal mode {mode})"
            )
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        while version < SCHEMA_VERSION:
            self._migrate_one(db)
            version = _version(db, self.path)

    def _migrate_one(self, db: sqlite3.Connection) -> None:
        """Apply the next migration in its own transaction."""
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

    def _check_identity(self) -> None:
        """Raise LedgerError, and let go of the file, if self.path no longer
        names the file opened: a commit there would be lost with it."""
        reason = _lost(self.path, self._identity)
        if reason is not None:
            self._drop()
            raise LedgerError(f"{reason}; recording goes on in a new ledger there")

    def record(self, record: AuctionRecord) -> int:
        """Commit one auction and its bids; return its row id.

        Nothing is written when it raises: LedgerBusy if the database is
        locked; LedgerError for any other failure, among them the path no
        longer naming the file opened (the next call opens whatever the path
        names then, creating a new ledger if nothing is there).
        """
        db = self._db if self._db is not None else self._reopen()
        self._check_identity()
        # Monotonic to Unix time, measured now so that a clock step is followed.
        offset = time.time() - time.monotonic()
        try:
            db.execute("BEGIN IMMEDIATE")
            auction_id = _insert(db, record, offset)
            self._check_identity()  # the last look before the commit makes it durable
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the error to report is exc
                    db.execute("ROLLBACK")
            raise _failure(exc, self.path) from None
        return auction_id

    def _reopen(self) -> sqlite3.Connection:
        """Open the ledger again after its file was lost, never waiting for a
        lock (this runs inside the server's loop); return the connection."""
        self._db = self._open(0.0)
        return self._db

    def _drop(self) -> None:
        """Close the connection (rolling back what it had begun), if open."""
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
                db.close()

    def close(self) -> None:
        """Close the database connection."""
        self._drop()


def _insert(db: sqlite3.Connection, record: AuctionRecord, offset: float) -> int:
    """Insert one auction and its bids (times: monotonic plus ``offset``);
    return its row id."""
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
    return auction_id


@dataclass(frozen=True, slots=True)
class PastBid:
    """One bid of a recorded auction; ``at`` is a Unix time."""

    buyer: int
    amount: int
    arrival: int  #: 1 for the bid that reached the server first, and so on
    at: float


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
    bids: tuple[PastBid, ...]  #: in arrival order


_AUCTIONS_QUERY = (
    "SELECT id, item, kind, min_price, buyers_requested, buyers_connected, outcome,"
    " reason, winner, winner_address, seller_address, highest, price, started_at,"
    " ended_at FROM auctions"
)
_BIDS_QUERY = (
    "SELECT auction_id, buyer, amount, arrival, at FROM bids"
    " WHERE auction_id BETWEEN ? AND ? ORDER BY auction_id, arrival"
)


def history(path: str, limit: int | None = 20) -> list[PastAuction]:
    """Return the newest ``limit`` auctions (None: all), newest first, each
    with its bids.

    Opens the file read-only and never creates or migrates it. Raises
    LedgerMissing if there is no file at ``path``, LedgerError if it cannot
    be read.
    """
    return _read(path, " ORDER BY id DESC LIMIT ?", -1 if limit is None else limit)


def auction(path: str, number: int) -> PastAuction | None:
    """Return auction ``number`` with its bids, or None if the ledger has
    none of that number. Raises as ``history`` does."""
    found = _read(path, " WHERE id = ?", number)
    return found[0] if found else None


def _read(path: str, clause: str, param: int) -> list[PastAuction]:
    """Return the auctions _AUCTIONS_QUERY + ``clause`` selects, with their bids."""
    path = _absolute(path)
    _check_path(path, must_exist=True)
    try:
        # A URI, for read-only mode; as_uri() escapes "?" and "#" in the path.
        uri = pathlib.Path(path).as_uri() + "?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=READ_WAIT)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open ledger {path}: {exc}") from None
    try:
        db.execute("BEGIN")  # both queries see the same commits
        if _version(db, path) == 0:
            return []  # created but never set up: nothing recorded
        rows = db.execute(_AUCTIONS_QUERY + clause, (param,)).fetchall()
        if not rows:
            return []
        bids: dict[int, list[PastBid]] = {row[0]: [] for row in rows}
        span = (min(bids), max(bids))
        for auction_id, *fields in db.execute(_BIDS_QUERY, span):
            if auction_id in bids:
                bids[auction_id].append(PastBid(*fields))
    except sqlite3.Error as exc:
        if _code(exc) == _SQLITE_READONLY_ROLLBACK:
            raise LedgerError(
                f"cannot read ledger {path} yet: a commit there was interrupted, and only"
                " a writer can undo it (the server does at its next commit or start)"
            ) from None
        raise LedgerError(f"cannot read ledger {path}: {exc}") from None
    finally:
        db.close()
    # Each row holds every field but the last, its bids.
    values: list[tuple[Any, ...]] = [(*row, tuple(bids[row[0]])) for row in rows]
    return [PastAuction(*fields) for fields in values]
