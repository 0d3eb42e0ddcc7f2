"""The dashboard's browsing for `SqliteStore` (see qmulti.brokers.browse). Retry and
discard are each one BEGIN IMMEDIATE transaction, so a retry moves a message once."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Container
from contextlib import AbstractContextManager
from typing import Any

from qmulti.brokers.base import NodeRecord
from qmulti.brokers.browse import DeadLetterEntry, QueueDetail, ResultPage, ScheduledEntry
from qmulti.brokers.sqlite.schema import LEASED, READY, SCHEDULED, translated

# The tail of a queue, as the store's publish computes it.
_TAIL = "IFNULL((SELECT MAX(m.seq) FROM messages m WHERE m.queue = ? AND m.state = ?), 0) + 1"


class SqliteBrowse:
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

    @translated
    def scheduled_entries(self, limit: int = 100) -> list[ScheduledEntry]:
        rows = self._read(f"SELECT mid, queue, eta, body FROM messages WHERE state = "
                          f"{SCHEDULED} ORDER BY eta LIMIT ?", (limit,))
        return [ScheduledEntry(mid, queue, eta, bytes(body)) for mid, queue, eta, body in rows]

    @translated
    def result_page(self, cursor: str = "", count: int = 500,
                    skip: Container[str] = ()) -> ResultPage:
        rows = self._read("SELECT task_id, blob FROM results WHERE task_id > ? "
                          "ORDER BY task_id LIMIT ?", (cursor, count))
        page = [(task_id, bytes(blob)) for task_id, blob in rows if task_id not in skip]
        return (rows[-1][0] if len(rows) == count else "", page)

    @translated
    def queue_details(self) -> dict[str, QueueDetail]:
        counts: dict[str, list[Any]] = {}
        for queue, state, n in self._read(
                "SELECT queue, state, COUNT(*) FROM messages GROUP BY queue, state"):
            row = counts.setdefault(queue, [0, 0, 0, 0, None])
            slot = {READY: 0, SCHEDULED: 1, LEASED: 2}.get(state)
            if slot is not None:
                row[slot] += n
        for queue, n in self._read("SELECT queue, COUNT(*) FROM dead GROUP BY queue"):
            counts.setdefault(queue, [0, 0, 0, 0, None])[3] = n
        for queue, mid in self._read(
                f"SELECT queue, mid FROM messages m WHERE state = {READY} AND seq = "
                f"(SELECT MIN(seq) FROM messages WHERE queue = m.queue AND state = {READY})"):
            counts.setdefault(queue, [0, 0, 0, 0, None])[4] = mid
        return {q: QueueDetail(*row) for q, row in sorted(counts.items())}

    @translated
    def node_records(self) -> list[NodeRecord]:
        return [NodeRecord(n, hb, json.loads(info)) for n, hb, info in self._read(
            "SELECT node_id, heartbeat, info FROM nodes ORDER BY node_id")]
