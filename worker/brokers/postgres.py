"""`db+postgresql://`: results in one PostgreSQL table, as Celery's database backend keeps
them, for projects whose database is already PostgreSQL.

A result backend only (the broker stays Redis or SQLite), so the node stores a result
with `set` and then acks on the broker: a crash in between re-runs the task, never
loses its result. The table is created on first use. `wait` is push-based: the writer
sends a NOTIFY on a channel named after the task in the same transaction as the row,
and the waiter LISTENs on that channel before it first looks, so no result slips
between the look and the wait.

psycopg (v3) is imported only when such a URL is used: `pip install 'qmulti[postgres]'`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from qmulti.brokers.base import ResultBackend
from qmulti.exceptions import BrokerConnectionError, BrokerError, ConfigError
from qmulti.states import READY_STATES
from qmulti.urls import mask_url

T = TypeVar("T")
TABLE = "qmulti_results"
# The table is created under this advisory lock: two processes starting at once would
# otherwise race in CREATE TABLE IF NOT EXISTS and one of them fail.
_CREATE_LOCK = 0x716D756C  # "qmul"
PURGE_EVERY = 60.0  # seconds between sweeps of expired rows, per process
# While waiting, look at the row again at least this often, whatever NOTIFY says: a
# safety net for a writer that bypassed this module, never the usual path.
RECHECK = 1.0
DRIVERS = ("postgresql", "postgresql+psycopg", "postgresql+psycopg2")

_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " task_id TEXT PRIMARY KEY,"
    " state TEXT NOT NULL,"
    " expires DOUBLE PRECISION,"  # unix time; NULL: never
    " blob BYTEA NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_expires ON {TABLE} (expires)"
    " WHERE expires IS NOT NULL",
)


def conninfo(url: str) -> str:
    """The libpq URI for a `db+postgresql[+driver]://` URL (SQLAlchemy's spelling)."""
    rest = url[3:] if url.lower().startswith("db+") else url
    scheme, sep, tail = rest.partition("://")
    if not sep or scheme.lower() not in DRIVERS:
        raise ConfigError(f"not a PostgreSQL URL: {mask_url(url)!r}")
    return "postgresql://" + tail


def channel(task_id: str) -> str:
    """The NOTIFY channel for one task: an identifier of fixed length whatever the id
    holds (ids come from callers); the SQL side computes the same with md5()."""
    return "qm_" + hashlib.md5(task_id.encode("utf-8")).hexdigest()


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError("the result backend db+postgresql:// needs psycopg: "
                          "pip install 'qmulti[postgres]'") from None
    return psycopg


class PostgresResults(ResultBackend):
    """Results by task id in PostgreSQL. Safe to share between threads (one lock for the
    writer connection, one listening connection per waiting thread) and across fork (a
    child drops what it inherited, unclosed, and connects afresh on first use)."""

    def __init__(self, url: str, connect_timeout: float | None = None,
                 **_options: Any) -> None:
        # Other options (pool_limit, max_deliveries...) belong to brokers; create_backend
        # passes the same set to every store.
        self._pg = _psycopg()
        self.url = url
        self._conninfo = conninfo(url)
        self._timeout = max(1, int(connect_timeout or 10))
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conn: Any = None
        self._listeners = threading.local()
        self._all_listeners: list[Any] = []
        self._inherited: list[Any] = []
        self._ready = False  # the table exists
        self._next_purge = 0.0

    # -- connections -----------------------------------------------------------------------
    def _connect(self) -> Any:
        try:
            return self._pg.connect(self._conninfo, autocommit=True,
                                    connect_timeout=self._timeout)
        except self._pg.OperationalError as exc:
            raise BrokerConnectionError(
                f"cannot connect to the result backend {mask_url(self.url)}: "
                f"{_first_line(exc)}") from None

    def _after_fork(self) -> None:
        """Connections made by the parent are its own: closing one here would end the
        parent's session, so keep them referenced and start over."""
        if self._pid == os.getpid():
            return
        self._lock = threading.Lock()
        self._inherited.extend(c for c in [self._conn, *self._all_listeners] if c is not None)
        self._conn, self._all_listeners = None, []
        self._listeners = threading.local()
        self._pid = os.getpid()

    def _writer(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        if not self._ready:
            self._create(self._conn)
        return self._conn

    def _create(self, conn: Any) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
            for statement in _SCHEMA:
                conn.execute(statement)
        self._ready = True

    def _call(self, work: Callable[[Any], T]) -> T:
        """Run `work` on the writer connection; a lost connection is BrokerConnectionError
        (the node's store retries it) and the next call reconnects."""
        self._after_fork()
        with self._lock:
            try:
                return work(self._writer())
            except self._pg.OperationalError as exc:
                self._drop_writer()
                raise BrokerConnectionError(
                    f"result backend {mask_url(self.url)}: {_first_line(exc)}") from None
            except self._pg.Error as exc:
                raise BrokerError(
                    f"result backend {mask_url(self.url)}: {_first_line(exc)}") from None

    def _drop_writer(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    # -- the backend -------------------------------------------------------------------------
    def set(self, task_id: str, state: str, blob: bytes, ttl: float | None) -> None:
        now = time.time()
        expires = None if not ttl or ttl <= 0 else now + ttl  # <= 0: never, as Celery

        def work(conn: Any) -> None:
            with conn.transaction():
                conn.execute(
                    f"INSERT INTO {TABLE} (task_id, state, expires, blob) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (task_id) DO UPDATE SET "
                    "state = excluded.state, expires = excluded.expires, blob = excluded.blob "
                    # A final state stays unless expired: a late or second outcome (a
                    # stale node's) must not replace the one a caller may have seen.
                    f"WHERE {TABLE}.state NOT IN ('SUCCESS', 'FAILURE', 'REVOKED') "
                    f"OR {TABLE}.expires <= %s "
                    f"OR ({TABLE}.state = 'REVOKED' AND excluded.state = 'REVOKED')",
                    (task_id, state, expires, bytes(blob), now))
                if state in READY_STATES:  # delivered at commit, after the row is visible
                    conn.execute("SELECT pg_notify('qm_' || md5(%s), '')", (task_id,))
            if now >= self._next_purge:
                self._next_purge = now + PURGE_EVERY
                conn.execute(f"DELETE FROM {TABLE} WHERE expires < %s", (now,))

        self._call(work)

    def _lookup(self, task_id: str) -> tuple[str, bytes] | None:
        def work(conn: Any) -> tuple[str, bytes] | None:
            row = conn.execute(
                f"SELECT state, blob FROM {TABLE} WHERE task_id = %s "
                "AND (expires IS NULL OR expires > %s)", (task_id, time.time())).fetchone()
            return None if row is None else (row[0], bytes(row[1]))

        return self._call(work)

    def get(self, task_id: str) -> bytes | None:
        found = self._lookup(task_id)
        return None if found is None else found[1]

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._listening(task_id) as listener:
            while True:
                found = self._lookup(task_id)
                if found is not None and found[0] in READY_STATES:
                    return found[1]
                pause = RECHECK
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    pause = min(pause, remaining)
                try:
                    for _ in listener.notifies(timeout=pause, stop_after=1):
                        break
                except self._pg.OperationalError as exc:
                    raise BrokerConnectionError(
                        f"result backend {mask_url(self.url)}: {_first_line(exc)}") from None

    @contextmanager
    def _listening(self, task_id: str) -> Iterator[Any]:
        """This thread's listening connection, LISTENing on the task's channel for the
        duration (UNLISTEN after, so results of other tasks do not pile up on it)."""
        self._after_fork()
        listener = getattr(self._listeners, "conn", None)
        if listener is None or listener.closed or listener.broken:
            listener = self._connect()
            self._listeners.conn = listener
            with self._lock:
                self._all_listeners.append(listener)
        name = channel(task_id)
        try:
            listener.execute(f'LISTEN "{name}"')
        except self._pg.OperationalError as exc:
            self._listeners.conn = None
            raise BrokerConnectionError(
                f"result backend {mask_url(self.url)}: {_first_line(exc)}") from None
        try:
            yield listener
        finally:
            try:
                listener.execute(f'UNLISTEN "{name}"')
            except self._pg.Error:
                self._listeners.conn = None  # broken: the next wait makes a new one

    def forget(self, task_id: str) -> None:
        self._call(lambda conn: conn.execute(f"DELETE FROM {TABLE} WHERE task_id = %s",
                                             (task_id,)))

    def close(self) -> None:
        if self._pid != os.getpid():
            self._after_fork()  # the parent's: drop them, never close them
            return
        with self._lock:
            conns = [self._conn, *self._all_listeners]
            self._conn, self._all_listeners = None, []
            self._listeners = threading.local()
        for conn in conns:
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
