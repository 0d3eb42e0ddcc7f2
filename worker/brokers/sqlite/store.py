"""`sqlite:///`: broker and result backend in one SQLite file, shared by every process on
one host.

Every state change is one `BEGIN IMMEDIATE` transaction, so two processes claiming at
once are serialized by SQLite's write lock and no message is handed out twice. Reads
that only decide whether to try (is anything ready?) run outside the write lock, so idle
consumers polling an empty queue do not queue up behind busy ones.

A lease is fenced by a `token`, random per claim: every call on a leased message names
(mid, token), so a call under a lease that has since been given back matches no row.

Queue order is a per-queue `seq`: publish puts a message after the last ready one, a
nack or release puts it before the first, so a message given back is the next one out.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from qmulti.brokers.base import (
    DEFAULT_HEARTBEAT_EXPIRY,
    DEFAULT_MAX_DELIVERIES,
    LOST,
    OK,
    Broker,
    Delivery,
    ResultBackend,
)
from qmulti.brokers.sqlite.beatstate import SqliteBeat
from qmulti.brokers.sqlite.control import SqliteControl
from qmulti.brokers.sqlite.events import SqliteEvents
from qmulti.brokers.sqlite.inspection import SqliteInspection
from qmulti.brokers.sqlite.results import POLL_FIRST, SqliteResults
from qmulti.brokers.sqlite.schema import (
    LEASED,
    READY,
    SCHEDULED,
    check_path,
    connect,
    db_path,
    translated,
)

# Polling an empty queue: start fast so a message published right away is seen within a
# millisecond or two, back off so an idle consumer costs a few dozen queries a second.
CLAIM_POLL_CAP = 0.025

_HEAD_SEQ = (f"IFNULL((SELECT MIN(m.seq) FROM messages m WHERE m.queue = messages.queue "
             f"AND m.state = {READY}) - 1, seq)")
_TAIL_SEQ = (f"IFNULL((SELECT MAX(m.seq) FROM messages m WHERE m.queue = ? "
             f"AND m.state = {READY}), 0) + 1")


class SqliteStore(SqliteEvents, SqliteControl, SqliteBeat, SqliteInspection, Broker,
                  SqliteResults):
    """Broker and result backend over one SQLite file. Safe to share between threads (one
    lock per instance) and across fork (a child makes its own connection on first use)."""

    def __init__(self, url: str, max_deliveries: int = DEFAULT_MAX_DELIVERIES,
                 busy_timeout: float = 30.0, **_options: Any) -> None:
        # Unknown options (pool_limit...) belong to other stores; create_broker passes
        # the same set to every kind.
        self.url = url
        self.max_deliveries = int(max_deliveries)
        self.busy_timeout = float(busy_timeout)
        self.path = db_path(url)
        check_path(self.path)
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._inherited: list[sqlite3.Connection] = []
        self._next_purge = 0.0

    # -- connection ------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # A connection must not be used (or closed: closing would drop POSIX locks the
            # parent's connection relies on) across fork. Keep the parent's object alive
            # so garbage collection never closes it here, and start afresh.
            if self._conn is not None:
                self._inherited.append(self._conn)
            self._conn = None
            self._pid = os.getpid()
            self._lock = threading.RLock()
        if self._conn is None:
            self._conn = connect(self.path, self.busy_timeout)
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction: the write lock is taken up front, so a
        transaction never has to be retried half-way after reading stale data."""
        conn = self._connection()
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # Never leave a transaction open: the next BEGIN would fail, and an open
                # write transaction blocks every other process.
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        conn = self._connection()
        with self._lock:
            return conn.execute(sql, params).fetchall()

    # -- producing -------------------------------------------------------------------------
    @translated
    def publish(self, queue: str, mid: str, body: bytes, eta: float | None = None) -> None:
        with self._write() as conn:
            self._insert(conn, queue, mid, body, eta)

    def _insert(self, conn: sqlite3.Connection, queue: str, mid: str, body: bytes,
                eta: float | None) -> None:
        # Messages that came due before this one go first, as if claimed at their eta.
        self._move_due(conn)
        if eta is not None and eta > time.time():
            conn.execute(
                "INSERT INTO messages (mid, queue, state, seq, eta, body) VALUES (?,?,?,0,?,?) "
                "ON CONFLICT (mid) DO NOTHING", (mid, queue, SCHEDULED, eta, bytes(body)))
        else:  # a mid stored already is a re-send: the first one stands
            conn.execute(
                f"INSERT INTO messages (mid, queue, state, seq, eta, body) "
                f"VALUES (?,?,{READY},{_TAIL_SEQ},?,?) ON CONFLICT (mid) DO NOTHING",
                (mid, queue, queue, eta, bytes(body)))

    # -- consuming -------------------------------------------------------------------------
    @translated
    def claim(self, queues: Sequence[str], node_id: str, consumer: str, limit: int,
              timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = POLL_FIRST
        queues = list(queues)
        while True:
            ready, next_eta = self._peek(queues)
            if ready:
                out = self._claim_now(queues, node_id, consumer, limit)
                if out:
                    return out
            remaining = deadline - time.monotonic()
            if remaining <= 0 or limit <= 0:
                return []
            pause = min(delay, remaining)
            if next_eta is not None:
                pause = min(pause, max(next_eta - time.time(), 0.0005))
            time.sleep(pause)
            delay = min(delay * 2, CLAIM_POLL_CAP)

    def _peek(self, queues: list[str]) -> tuple[bool, float | None]:
        """Outside the write lock: is a claim worth trying, and when is the next eta?"""
        marks = ",".join("?" * len(queues))
        row = self._read(
            f"SELECT EXISTS (SELECT 1 FROM messages WHERE state = {READY} AND queue IN "
            f"({marks})), (SELECT MIN(eta) FROM messages WHERE state = {SCHEDULED})", queues)[0]
        next_eta = row[1]
        due = next_eta is not None and next_eta <= time.time()
        return bool(row[0]) or due, next_eta

    def _claim_now(self, queues: list[str], node_id: str, consumer: str,
                   limit: int) -> list[Delivery]:
        out: list[Delivery] = []
        token = secrets.token_hex(6)  # one per batch: it fences (mid, token) pairs
        with self._write() as conn:
            self._move_due(conn)
            for queue in queues:
                while len(out) < limit:
                    want = limit - len(out)
                    rows = conn.execute(
                        f"SELECT id, mid, deliveries, body FROM messages WHERE queue = ? "
                        f"AND state = {READY} ORDER BY seq LIMIT ?", (queue, want)).fetchall()
                    good = [r for r in rows if r[2] < self.max_deliveries]
                    poison = [r for r in rows if r[2] >= self.max_deliveries]
                    conn.executemany(
                        f"UPDATE messages SET state = {LEASED}, node = ?, consumer = ?, "
                        f"token = ?, begun = 0 WHERE id = ?",
                        [(node_id, consumer, token, r[0]) for r in good])
                    out.extend(Delivery(r[1], queue, r[3], r[2], token) for r in good)
                    for r in poison:
                        self._bury(conn, r[0], f"delivered {r[2]} times without an outcome")
                    if not poison or len(rows) < want:
                        break
        return out

    def _move_due(self, conn: sqlite3.Connection) -> None:
        """Scheduled messages whose eta has passed go to the tail of their queue."""
        due = conn.execute(
            f"SELECT id, queue FROM messages WHERE state = {SCHEDULED} AND eta <= ? "
            f"ORDER BY eta, id", (time.time(),)).fetchall()
        for row_id, queue in due:
            conn.execute(f"UPDATE messages SET state = {READY}, seq = {_TAIL_SEQ} WHERE id = ?",
                         (queue, row_id))

    def _bury(self, conn: sqlite3.Connection, row_id: int, reason: str) -> None:
        conn.execute("INSERT INTO dead (mid, queue, reason, at, body) "
                     "SELECT mid, queue, ?, ?, body FROM messages WHERE id = ?",
                     (reason, time.time(), row_id))
        conn.execute("DELETE FROM messages WHERE id = ?", (row_id,))

    def _lease_id(self, conn: sqlite3.Connection, delivery: Delivery) -> int | None:
        """The message's row id while the delivery's lease is its current one."""
        row = conn.execute(f"SELECT id FROM messages WHERE mid = ? AND state = {LEASED} "
                           f"AND token = ?", (delivery.mid, delivery.token)).fetchone()
        return None if row is None else int(row[0])

    @translated
    def begin(self, delivery: Delivery) -> str:
        with self._write() as conn:
            return self._begin(conn, delivery)

    def _begin(self, conn: sqlite3.Connection, delivery: Delivery) -> str:
        counted = conn.execute(
            f"UPDATE messages SET deliveries = deliveries + 1, begun = 1 WHERE mid = ? "
            f"AND state = {LEASED} AND token = ? AND begun = 0",
            (delivery.mid, delivery.token)).rowcount
        if counted:
            return OK
        # Counted already under this lease (a re-send), or the lease is gone.
        return OK if self._lease_id(conn, delivery) is not None else LOST

    @translated
    def ack(self, deliveries: Sequence[Delivery]) -> str:
        with self._write() as conn:
            return self._ack(conn, deliveries)

    def _ack(self, conn: sqlite3.Connection, deliveries: Sequence[Delivery]) -> str:
        done = conn.executemany(
            f"DELETE FROM messages WHERE mid = ? AND state = {LEASED} AND token = ?",
            [(d.mid, d.token) for d in deliveries]).rowcount
        return OK if done == len(deliveries) else LOST

    @translated
    def nack(self, deliveries: Sequence[Delivery]) -> str:
        with self._write() as conn:
            # Last first, each before the current head: they end up in their given order.
            done = conn.executemany(
                f"UPDATE messages SET state = {READY}, node = NULL, consumer = NULL, "
                f"token = NULL, seq = {_HEAD_SEQ} WHERE mid = ? AND state = {LEASED} "
                f"AND token = ?", [(d.mid, d.token) for d in reversed(deliveries)]).rowcount
        return OK if done == len(deliveries) else LOST

    @translated
    def dead_letter(self, delivery: Delivery, reason: str) -> str:
        with self._write() as conn:
            row_id = self._lease_id(conn, delivery)
            if row_id is None:
                return LOST
            self._bury(conn, row_id, reason)
            return OK

    @translated
    def reschedule(self, delivery: Delivery, queue: str, mid: str, body: bytes,
                   eta: float | None) -> str:
        with self._write() as conn:
            row_id = self._lease_id(conn, delivery)
            if row_id is None:
                return LOST  # given back meanwhile, or this is a re-send of a done one
            self._insert(conn, queue, mid, body, eta)
            conn.execute("DELETE FROM messages WHERE id = ?", (row_id,))
            return OK

    # -- the result path in one transaction ------------------------------------------------
    @translated
    def start(self, delivery: Delivery, task_id: str, meta: bytes,
              backend: ResultBackend | None, ttl: float | None) -> str:
        if backend is not self:
            return super().start(delivery, task_id, meta, backend, ttl)
        with self._write() as conn:
            if self._begin(conn, delivery) == LOST:
                return LOST
            self._set(conn, task_id, "STARTED", meta, ttl)
            return OK

    @translated
    def finish(self, delivery: Delivery, task_id: str, state: str, meta: bytes | None,
               backend: ResultBackend | None, ttl: float | None) -> str:
        if backend is not self:
            return super().finish(delivery, task_id, state, meta, backend, ttl)
        with self._write() as conn:
            if meta is not None:
                self._set(conn, task_id, state, meta, ttl)
            return self._ack(conn, [delivery])

    # -- nodes and leases ------------------------------------------------------------------
    @translated
    def heartbeat(self, node_id: str, info: Mapping[str, Any]) -> int:
        doc = json.dumps(dict(info), default=str)
        with self._write() as conn:
            conn.execute("INSERT INTO nodes (node_id, heartbeat, info) VALUES (?,?,?) "
                         "ON CONFLICT (node_id) DO UPDATE SET heartbeat = excluded.heartbeat, "
                         "info = excluded.info", (node_id, time.time(), doc))
            row = conn.execute("SELECT count FROM reaps WHERE node_id = ?",
                               (node_id,)).fetchone()
            return 0 if row is None else int(row[0])

    @translated
    def release(self, node_id: str, consumer: str | None = None) -> int:
        with self._write() as conn:
            return self._release(conn, node_id, consumer)

    def _release(self, conn: sqlite3.Connection, node_id: str, consumer: str | None) -> int:
        where = f"state = {LEASED} AND node = ?" + ("" if consumer is None else " AND consumer = ?")
        params: tuple[str, ...] = (node_id,) if consumer is None else (node_id, consumer)
        ids = conn.execute(f"SELECT id FROM messages WHERE {where} ORDER BY seq DESC, id DESC",
                           params).fetchall()
        conn.executemany(f"UPDATE messages SET state = {READY}, node = NULL, consumer = NULL, "
                         f"token = NULL, seq = {_HEAD_SEQ} WHERE id = ?", ids)
        return len(ids)

    @translated
    def unregister(self, node_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM nodes WHERE node_id = ?", (node_id,))
            conn.execute("DELETE FROM reaps WHERE node_id = ?", (node_id,))

    @translated
    def requeue_dead_nodes(self, expiry: float = DEFAULT_HEARTBEAT_EXPIRY) -> int:
        with self._write() as conn:
            dead = conn.execute("SELECT node_id FROM nodes WHERE heartbeat < ? ORDER BY node_id",
                                (time.time() - expiry,)).fetchall()
            count = sum(self._release(conn, node_id, None) for (node_id,) in dead)
            conn.executemany("DELETE FROM nodes WHERE node_id = ?", dead)
            conn.executemany("INSERT INTO reaps (node_id, count) VALUES (?, 1) ON CONFLICT "
                             "(node_id) DO UPDATE SET count = count + 1", dead)
            return count

    def tidy(self) -> None:
        """Checkpoint the WAL into the database file and truncate it to nothing. Under
        load, readers that always hold a snapshot keep the WAL from being reset, so it
        grows (megabytes after a burst); an idle node's checkpoint gives the space back.
        A checkpoint that finds readers does what it can and never waits for them."""
        conn = self._connection()
        with self._lock:
            # No busy handler for this one call: TRUNCATE would otherwise wait up to the
            # busy timeout for other processes' readers, stalling the node's main loop.
            conn.execute("PRAGMA busy_timeout=0")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.OperationalError:
                pass  # busy or disk full: the next idle tick tries again
            finally:
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")

    def close(self) -> None:
        """Close this process's connection; an inherited one is left alone (see fork)."""
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()
