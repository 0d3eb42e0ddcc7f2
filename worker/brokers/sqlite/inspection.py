"""Read-only views of the SQLite store for `qmulti status` and operators, and purge."""

from __future__ import annotations

import json
import time
from typing import Any

from qmulti.brokers.base import BrokerStats, DeadLetter, NodeRecord
from qmulti.brokers.sqlite.schema import LEASED, READY, SCHEDULED, translated


class SqliteInspection:
    """Mixin of `SqliteStore`: counts in one read snapshot, dead letters, purge."""

    _connection: Any
    _lock: Any
    _read: Any
    _write: Any

    # -- inspection ------------------------------------------------------------------------
    @translated
    def stats(self) -> BrokerStats:
        now = time.time()
        conn = self._connection()
        with self._lock:  # one read snapshot for all the counts
            conn.execute("BEGIN")
            try:
                queues = dict(conn.execute(
                    f"SELECT queue, COUNT(*) FROM messages WHERE state = {READY} OR "
                    f"(state = {SCHEDULED} AND eta <= ?) GROUP BY queue", (now,)).fetchall())
                scheduled, leased = conn.execute(
                    f"SELECT COUNT(*) FILTER (WHERE state = {SCHEDULED} AND eta > ?), "
                    f"COUNT(*) FILTER (WHERE state = {LEASED}) FROM messages", (now,)).fetchone()
                dead = conn.execute("SELECT COUNT(*) FROM dead").fetchone()[0]
                nodes = [NodeRecord(n, hb, json.loads(info)) for n, hb, info in conn.execute(
                    "SELECT node_id, heartbeat, info FROM nodes ORDER BY node_id")]
            finally:
                conn.execute("COMMIT")
        return BrokerStats(queues=queues, scheduled=scheduled, leased=leased, dead=dead,
                           nodes=nodes)

    @translated
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._read("SELECT mid, queue, reason, body FROM dead ORDER BY id LIMIT ?",
                          (limit,))
        return [DeadLetter(mid, queue, reason, bytes(body)) for mid, queue, reason, body in rows]

    @translated
    def purge(self, queue: str) -> int:
        with self._write() as conn:
            return conn.execute(f"DELETE FROM messages WHERE queue = ? AND state = {READY}",
                                (queue,)).rowcount
