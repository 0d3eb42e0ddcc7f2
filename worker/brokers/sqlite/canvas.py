"""The canvas half of the SQLite store: continuations sent in the finish transaction.

A mixin (as `results.py`) so that storing a result, acking its message, publishing the
next chain step or links, and adding a chord member happen in one `BEGIN IMMEDIATE`
transaction: a crash leaves all of it done or none of it. `continued` remembers which
tasks have sent theirs (a duplicate message or a second run sends nothing more);
`chord_done` is the set of completed members, so a member counted twice is counted once.
"""

from __future__ import annotations

import sqlite3
import time
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager

from qmulti.brokers.base import (
    FIRES_AT_ONCE,
    OK,
    Continuation,
    Delivery,
    Message,
    marker_ttl,
)
from qmulti.brokers.sqlite.schema import translated


class SqliteCanvas:
    """`ack_and_continue`, `chord_init`, `get_many` over the canvas tables."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...

    @abstractmethod
    def _read(self, sql: str, params: Sequence[object] = ()) -> list[object]: ...

    @abstractmethod
    def _ack(self, conn: sqlite3.Connection, deliveries: Sequence[Delivery]) -> str: ...

    @abstractmethod
    def _insert(self, conn: sqlite3.Connection, queue: str, mid: str, body: bytes,
                eta: float | None) -> None: ...

    @translated
    def ack_and_continue(self, delivery: Delivery, state: str, then: Continuation,
                         ttl: float | None) -> str:
        with self._write() as conn:
            outcome = self._ack(conn, [delivery])
            if outcome == OK:
                self._continue(conn, state, then, ttl)
            return outcome

    def _continue(self, conn: sqlite3.Connection, state: str, then: Continuation,
                  ttl: float | None) -> None:
        """Inside the finish transaction, after an ack that succeeded."""
        now = time.time()
        conn.execute("DELETE FROM continued WHERE key = ? AND expires < ?", (then.key, now))
        sent = conn.execute("INSERT INTO continued (key, expires) VALUES (?, ?) "
                            "ON CONFLICT (key) DO NOTHING",
                            (then.key, now + marker_ttl(ttl))).rowcount
        if not sent:
            return  # another delivery of this task sent them already
        for m in then.messages:
            self._insert(conn, m.queue, m.mid, m.body, m.eta)
        part = then.chord
        if part is None:
            return
        row = conn.execute("SELECT size, fired, queue, mid, eta, body, expires FROM chords "
                           "WHERE chord_id = ? AND (expires IS NULL OR expires > ?)",
                           (part.chord_id, now)).fetchone()
        if row is None or row[1]:
            return  # unknown (expired) or fired already
        conn.execute("INSERT INTO chord_done (chord_id, member) VALUES (?, ?) "
                     "ON CONFLICT DO NOTHING", (part.chord_id, part.member))
        done = conn.execute("SELECT count(*) FROM chord_done WHERE chord_id = ?",
                            (part.chord_id,)).fetchone()[0]
        if done < row[0] and state not in FIRES_AT_ONCE:
            if row[6] is not None:  # a chord in progress lives on
                conn.execute("UPDATE chords SET expires = ? WHERE chord_id = ?",
                             (now + marker_ttl(ttl), part.chord_id))
            return
        conn.execute("UPDATE chords SET fired = 1, body = NULL, expires = ? "
                     "WHERE chord_id = ?", (now + marker_ttl(ttl), part.chord_id))
        conn.execute("DELETE FROM chord_done WHERE chord_id = ?", (part.chord_id,))
        self._insert(conn, row[2], row[3], bytes(row[5]), row[4])

    @translated
    def chord_init(self, chord_id: str, size: int, body: Message,
                   ttl: float | None = None) -> None:
        now = time.time()
        with self._write() as conn:  # expired records go first, their member sets too
            conn.execute("DELETE FROM chord_done WHERE chord_id IN "
                         "(SELECT chord_id FROM chords WHERE expires < ?)", (now,))
            conn.execute("DELETE FROM chords WHERE expires < ?", (now,))
            conn.execute("INSERT INTO chords (chord_id, size, queue, mid, eta, body, expires) "
                         "VALUES (?,?,?,?,?,?,?) ON CONFLICT (chord_id) DO NOTHING",
                         (chord_id, int(size), body.queue, body.mid, body.eta,
                          bytes(body.body), now + ttl if ttl else None))

    @translated
    def publish_many(self, messages: Sequence[Message]) -> None:
        """Many publishes (a chord's header) in one transaction."""
        with self._write() as conn:
            for m in messages:
                self._insert(conn, m.queue, m.mid, m.body, m.eta)

    @translated
    def get_many(self, task_ids: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        ids = list(task_ids)
        now = time.time()
        for i in range(0, len(ids), 500):  # below SQLite's bound-parameter limit
            part = ids[i:i + 500]
            marks = ",".join("?" * len(part))
            for task_id, blob in self._read(  # type: ignore[misc]
                    f"SELECT task_id, blob FROM results WHERE task_id IN ({marks}) "
                    "AND (expires IS NULL OR expires > ?)", (*part, now)):
                found[str(task_id)] = bytes(blob)
        return [found.get(t) for t in ids]
