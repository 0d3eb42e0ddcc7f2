"""The result-backend half of the SQLite store: task id -> (state, document, expiry).

A mixin rather than a second store so that the broker's `start`/`finish` can write a
result and touch a message in the same transaction, on the same connection.
"""

from __future__ import annotations

import sqlite3
import time
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from qmulti.brokers.base import ResultBackend
from qmulti.brokers.sqlite.schema import translated
from qmulti.states import READY_STATES

# wait(): SQLite cannot notify another process, so poll, fast at first (a quick task's
# result is seen within a millisecond or two), then capped: a result that takes longer
# is seen at most WAIT_POLL_CAP after it is stored, for about 0.7% of a core per waiter.
POLL_FIRST = 0.001
WAIT_POLL_CAP = 0.02
PURGE_EVERY = 60.0  # seconds between sweeps of expired results, per process
_FINAL_SQL = "(" + ",".join(f"'{state}'" for state in sorted(READY_STATES)) + ")"


class SqliteResults(ResultBackend):
    """Results over the `results` table; the class mixing this in provides the
    connection (`_write` transactions and `_read` queries)."""

    path: str
    busy_timeout: float
    _next_purge: float = 0.0

    @abstractmethod
    def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    # -- result backend --------------------------------------------------------------------
    @translated
    def set(self, task_id: str, state: str, blob: bytes, ttl: float | None) -> None:
        with self._write() as conn:
            self._set(conn, task_id, state, blob, ttl)

    def _set(self, conn: sqlite3.Connection, task_id: str, state: str, blob: bytes,
             ttl: float | None) -> None:
        now = time.time()
        expires = None if not ttl or ttl <= 0 else now + ttl  # <= 0: never, as Celery
        # A final state stays (unless it has expired): a stale node's late write, or a
        # STARTED of a second run, must not replace the outcome a caller may have seen.
        # Only a REVOKED replaces a REVOKED (revoke()'s mark, then the node's verdict).
        conn.execute("INSERT INTO results (task_id, state, expires, blob) VALUES (?,?,?,?) "
                     "ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, "
                     "expires = excluded.expires, blob = excluded.blob "
                     f"WHERE results.state NOT IN {_FINAL_SQL} OR results.expires <= ? "
                     "OR (results.state = 'REVOKED' AND excluded.state = 'REVOKED')",
                     (task_id, state, expires, bytes(blob), now))
        if now >= self._next_purge:
            # Now and then, not on every write: the sweep walks an index of expiry times,
            # so it costs only the rows it deletes.
            self._next_purge = now + PURGE_EVERY
            conn.execute("DELETE FROM results WHERE expires < ?", (now,))

    @translated
    def set_unless_ready(self, task_id: str, state: str, blob: bytes,
                         ttl: float | None) -> bool:
        expires = None if not ttl or ttl <= 0 else time.time() + ttl
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO results (task_id, state, expires, blob) VALUES (?,?,?,?) "
                "ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, "
                "expires = excluded.expires, blob = excluded.blob "
                "WHERE results.state NOT IN ('SUCCESS', 'FAILURE', 'REVOKED')",
                (task_id, state, expires, bytes(blob)))
            return cursor.rowcount > 0

    def _lookup(self, task_id: str) -> tuple[str, bytes] | None:
        rows = self._read("SELECT state, blob FROM results WHERE task_id = ? "
                          "AND (expires IS NULL OR expires > ?)", (task_id, time.time()))
        return (rows[0][0], bytes(rows[0][1])) if rows else None

    @translated
    def get(self, task_id: str) -> bytes | None:
        found = self._lookup(task_id)
        return None if found is None else found[1]

    @translated
    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        """Poll with a short capped backoff: SQLite has no notification across processes.
        A result is seen at most WAIT_POLL_CAP after it is stored."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_FIRST
        while True:
            found = self._lookup(task_id)
            if found is not None and found[0] in READY_STATES:
                return found[1]
            pause = delay
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                pause = min(pause, remaining)
            time.sleep(pause)
            delay = min(delay * 2, WAIT_POLL_CAP)

    @translated
    def forget(self, task_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM results WHERE task_id = ?", (task_id,))
