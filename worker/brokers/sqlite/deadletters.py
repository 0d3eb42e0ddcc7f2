"""Dead-letter retry and discard for `SqliteStore` (see qmulti.brokers.deadletters):
each one BEGIN IMMEDIATE transaction, so a retry moves the message exactly once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from qmulti.brokers.deadletters import DeadLetterEntry
from qmulti.brokers.sqlite.schema import READY, translated

# The tail of a queue, as the store's publish computes it.
_TAIL = "IFNULL((SELECT MAX(m.seq) FROM messages m WHERE m.queue = ? AND m.state = ?), 0) + 1"


class SqliteDeadLetters:
    # SqliteStore's: one BEGIN IMMEDIATE transaction, and a plain read
    _write: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _read: Callable[..., list[Any]]

    @translated
    def dead_letter_entries(self, limit: int = 100) -> list[DeadLetterEntry]:
        rows = self._read("SELECT mid, queue, reason, body, at FROM dead ORDER BY id LIMIT ?",
                          (limit,))
        return [DeadLetterEntry(mid, queue, reason, bytes(body), at)
                for mid, queue, reason, body, at in rows]

    @translated
    def retry_dead_letter(self, queue: str, mid: str) -> bool:
        with self._write() as conn:
            row = conn.execute("SELECT id, body FROM dead WHERE queue = ? AND mid = ? "
                               "ORDER BY id LIMIT 1", (queue, mid)).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM dead WHERE id = ?", (row[0],))
            done = conn.execute(
                f"INSERT INTO messages (mid, queue, state, seq, body) VALUES (?, ?, {READY}, "
                f"{_TAIL}, ?) ON CONFLICT (mid) DO NOTHING",
                (mid, queue, queue, READY, bytes(row[1]))).rowcount
            return bool(done)

    @translated
    def discard_dead_letter(self, queue: str, mid: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute("DELETE FROM dead WHERE queue = ? AND mid = ?",
                                     (queue, mid)).rowcount)
