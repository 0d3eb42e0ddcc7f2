"""The SQLite store's file: URL to path, path checks, connection set-up, schema, errors.

Kept apart from the store's operations so that `sqlite.py` reads as the list of state
changes, and so that the rules about the file (what a bad path says, how concurrent
first use stays safe) live in one place.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from qmulti.exceptions import BrokerConnectionError, BrokerError, ConfigError

P = ParamSpec("P")
R = TypeVar("R")

SCHEMA_VERSION = 3  # 2: messages.token, messages.begun, reaps (fenced leases); 3: canvas

# Message states. One table with a state column (rather than a table per state) means a
# claim or a nack rewrites a few small columns of one row and never copies the body.
READY, SCHEDULED, LEASED = 0, 1, 2

# Each partial index holds only the rows one operation looks for, so the claim query
# reads the head of one queue directly however many leased or scheduled rows there are.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    mid TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    state INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    eta REAL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    node TEXT,
    consumer TEXT,
    token TEXT,
    begun INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, seq) WHERE state = {READY};
CREATE INDEX IF NOT EXISTS messages_scheduled ON messages (eta) WHERE state = {SCHEDULED};
CREATE INDEX IF NOT EXISTS messages_leased ON messages (node, consumer) WHERE state = {LEASED};
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY,
    mid TEXT NOT NULL,
    queue TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY,
    heartbeat REAL NOT NULL,
    info TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reaps (
    node_id TEXT PRIMARY KEY,
    count INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    task_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    expires REAL,
    blob BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_expires ON results (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS continued (
    key TEXT PRIMARY KEY,
    expires REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chords (
    chord_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    fired INTEGER NOT NULL DEFAULT 0,
    expires REAL,
    queue TEXT NOT NULL,
    mid TEXT NOT NULL,
    eta REAL,
    body BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chord_done (
    chord_id TEXT NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (chord_id, member)
) WITHOUT ROWID;
"""

URL_HELP = "use sqlite:///relative/path.db or sqlite:////absolute/path.db"


def db_path(url: str) -> str:
    """The absolute file path of a `sqlite:///` URL (SQLAlchemy's convention).

    Made absolute now, against the current directory, because a detaching node changes
    its directory to / later and must keep using the same file.
    """
    head, sep, rest = url.partition("://")
    if head.lower() != "sqlite" or not sep:
        raise ConfigError(f"not a sqlite URL: {url!r}; {URL_HELP}")
    rest = rest.split("?", 1)[0]
    if not rest.startswith("/") or rest in ("/", "//"):
        raise ConfigError(f"sqlite URL {url!r} names no file; {URL_HELP}")
    path = rest[1:]
    if path == ":memory:":
        raise ConfigError(
            f"sqlite URL {url!r} is an in-memory database, which processes cannot share; "
            f"{URL_HELP}"
        )
    return os.path.abspath(path)


def check_path(path: str) -> None:
    """Refuse a file we could not create or write, naming it and what to do.

    Checked at construction so that `qworker --detach` fails in the foreground with a
    one-line message rather than in the daemon. Parent directories are not created: a
    typo in the URL must not leave a stray tree behind.
    """
    parent = os.path.dirname(path) or "."
    fix = "create the directory or point the URL at a writable one"
    if not os.path.exists(parent):
        if os.path.lexists(parent) or _has_file_component(parent):
            raise ConfigError(f"sqlite broker file {path}: {parent} is not a directory; {fix}")
        raise ConfigError(f"sqlite broker file {path}: directory {parent} does not exist; {fix}")
    if not os.path.isdir(parent):
        raise ConfigError(f"sqlite broker file {path}: {parent} is not a directory; {fix}")
    # WAL mode writes path-wal and path-shm beside the file, so the directory itself
    # must be writable, not just the file.
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"sqlite broker file {path}: directory {parent} is not writable; {fix}")
    if os.path.isdir(path):
        raise ConfigError(f"sqlite broker file {path} is a directory; name a file inside it")
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"sqlite broker file {path} is not writable; fix its permissions")


def _has_file_component(path: str) -> bool:
    """True when some ancestor of `path` is a regular file (the ENOTDIR case)."""
    probe = path
    while True:
        up = os.path.dirname(probe)
        if up == probe:
            return False
        probe = up
        if os.path.exists(probe):
            return not os.path.isdir(probe)


# Bytes the WAL file keeps after a checkpoint has reset it (SQLite truncates it to this).
WAL_SIZE_LIMIT = 64 * 1024


def connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN IMMEDIATE ourselves), WAL on, and
    the schema present.

    Several processes may open a fresh file at once: switching to WAL and creating the
    tables each take the write lock and wait on the busy timeout, and every statement is
    idempotent, so the last one through finds nothing left to do.
    """
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                           check_same_thread=False, cached_statements=64)
    try:
        _set_wal(conn, busy_timeout)
        # NORMAL in WAL mode: a commit is durable against a process crash (what a killed
        # node needs); only an OS crash may lose the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA temp_store=MEMORY")
        # The WAL only grows between the moments no reader holds it; without a limit a
        # burst leaves it at its peak size for good, on a disk that may be tight.
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                _upgrade(conn)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
    except BaseException:
        conn.close()
        raise
    return conn


# Columns added since version 1, for a file an older release made. Its leases have no
# token, so they are never current: their nodes' expiry gives them back.
_ADDED = (("token", "token TEXT"), ("begun", "begun INTEGER NOT NULL DEFAULT 0"))


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring an older file's tables up to SCHEMA (inside the schema transaction, so two
    processes upgrading at once do it once)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    for name, column in _ADDED:
        if name not in have:
            conn.execute(f"ALTER TABLE messages ADD COLUMN {column}")


def _set_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch to WAL. The switch needs a moment of exclusive access, and SQLite may report
    BUSY for it without calling the busy handler, so retry until the busy timeout."""
    deadline = time.monotonic() + busy_timeout
    delay = 0.001
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL journal mode (got {mode})")
        return


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def translate(exc: sqlite3.Error, path: str, busy_timeout: float) -> Exception:
    """Our exception for a sqlite3 error, so callers never catch sqlite3 types."""
    text = str(exc)
    low = text.lower()
    if _is_busy(exc):
        return BrokerConnectionError(
            f"sqlite broker file {path} stayed locked for more than {busy_timeout:g}s "
            f"({text}); another process holds a long transaction"
        )
    if "disk is full" in low or "disk i/o error" in low:
        # Transient, like an unreachable server: nodes back off and retry (no crash
        # loop, nothing acked), and recover by themselves once space is freed.
        return BrokerConnectionError(
            f"sqlite broker file {path}: the disk is full ({text}); free space on its "
            "file system")
    if "unable to open" in low or "readonly" in low or "read-only" in low:
        return ConfigError(
            f"cannot write sqlite broker file {path} ({text}); make the file and its "
            "directory writable or point the URL elsewhere"
        )
    if "not a database" in low or "malformed" in low:
        return ConfigError(
            f"{path} is not a usable sqlite database ({text}); point the URL at a new file"
        )
    return BrokerError(f"sqlite broker file {path}: {text}")


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Turn sqlite3 errors into worker.exceptions at this boundary."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            self = args[0]
            raise translate(exc, self.path, self.busy_timeout) from exc  # type: ignore[attr-defined]

    return wrapper
