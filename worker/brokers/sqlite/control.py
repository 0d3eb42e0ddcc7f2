"""Remote control on SQLite: one table of boxes (a node's inbox, a request's replies).

The table is made on first use, so a store that is never controlled does not change.
A box is read by polling, first outside the write lock (a cheap indexed read), taking
the lock only to take what is there: an idle node's listener costs a few dozen reads a
second and never queues behind the claims.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from qmulti.brokers.base import NodeRecord
from qmulti.brokers.control_base import DEFAULT_CONTROL_TTL, deadline_left
from qmulti.brokers.sqlite.schema import LEASED, translated

POLL_FIRST = 0.001
POLL_CAP = 0.02  # longest pause between looks at a box: a ping answers within ~2 of them

_TABLE = ("CREATE TABLE IF NOT EXISTS control (id INTEGER PRIMARY KEY, box TEXT NOT NULL, "
          "expires REAL NOT NULL, body BLOB NOT NULL)")
_INDEX = "CREATE INDEX IF NOT EXISTS control_box ON control (box, id)"


def _inbox(node_id: str) -> str:
    return f"node:{node_id}"


def _replies(reply_to: str) -> str:
    return f"reply:{reply_to}"


class SqliteControl:
    """Mixin of `SqliteStore`."""

    _write: Any
    _read: Any
    _control_pid: int | None = None  # the process that made sure the table exists
    control_blocks_safely = False

    def _control_table(self) -> None:
        if self._control_pid == os.getpid():
            return
        with self._write() as conn:
            conn.execute(_TABLE)
            conn.execute(_INDEX)
        self._control_pid = os.getpid()

    @translated
    def control_nodes(self, expiry: float) -> list[NodeRecord]:
        rows = self._read("SELECT node_id, heartbeat, info FROM nodes WHERE heartbeat > ? "
                          "ORDER BY node_id", (time.time() - expiry,))
        return [NodeRecord(n, hb, json.loads(info)) for n, hb, info in rows]

    def _box_put(self, boxes: Sequence[str], body: bytes, ttl: float) -> None:
        self._control_table()
        now = time.time()
        with self._write() as conn:
            # Expired boxes go here, with the write lock already held: no extra trip.
            conn.execute("DELETE FROM control WHERE expires < ?", (now,))
            conn.executemany("INSERT INTO control (box, expires, body) VALUES (?, ?, ?)",
                             [(box, now + ttl, body) for box in boxes])

    def _box_take(self, box: str, deadline: float, limit: int) -> list[bytes]:
        """Wait until the box holds something (or the deadline), then take up to `limit`."""
        self._control_table()
        delay = POLL_FIRST
        while True:
            now = time.time()
            if self._read("SELECT 1 FROM control WHERE box = ? AND expires > ? LIMIT 1",
                          (box, now)):
                with self._write() as conn:
                    rows = conn.execute("SELECT id, body FROM control WHERE box = ? AND "
                                        "expires > ? ORDER BY id LIMIT ?",
                                        (box, now, limit)).fetchall()
                    conn.executemany("DELETE FROM control WHERE id = ?",
                                     [(row[0],) for row in rows])
                if rows:
                    return [bytes(row[1]) for row in rows]
            left = deadline_left(deadline)
            if left <= 0:
                return []
            time.sleep(min(delay, left))
            delay = min(delay * 2, POLL_CAP)

    @translated
    def control_send(self, node_ids: Sequence[str], body: bytes,
                     ttl: float = DEFAULT_CONTROL_TTL) -> None:
        self._box_put([_inbox(n) for n in node_ids], body, ttl)

    @translated
    def control_receive(self, node_id: str, timeout: float) -> list[bytes]:
        return self._box_take(_inbox(node_id), time.monotonic() + timeout, 100)

    @translated
    def control_reply(self, reply_to: str, body: bytes,
                      ttl: float = DEFAULT_CONTROL_TTL) -> None:
        self._box_put([_replies(reply_to)], body, ttl)

    @translated
    def control_collect(self, reply_to: str, count: int, timeout: float) -> list[bytes]:
        deadline = time.monotonic() + timeout
        out: list[bytes] = []
        while len(out) < count:
            got = self._box_take(_replies(reply_to), deadline, count - len(out))
            if not got:
                break
            out.extend(got)
        return out

    @translated
    def control_forget(self, node_id: str) -> None:
        self._control_table()
        with self._write() as conn:
            conn.execute("DELETE FROM control WHERE box = ?", (_inbox(node_id),))

    @translated
    def control_bodies(self, messages: Sequence[tuple[str, str]]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for _, mid in messages:
            rows = self._read("SELECT body FROM messages WHERE mid = ?", (mid,))
            if rows:
                out[mid] = bytes(rows[0][0])
        return out

    @translated
    def control_leased(self, node_id: str) -> list[tuple[str, str, bytes]]:
        rows = self._read(f"SELECT queue, mid, body FROM messages WHERE state = {LEASED} AND "
                          "node = ? ORDER BY seq", (node_id,))
        return [(q, m, bytes(b)) for q, m, b in rows]
