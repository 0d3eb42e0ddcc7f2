"""The event stream of the SQLite store: a table trimmed to the newest `maxlen` rows.

A batch is one `BEGIN IMMEDIATE` transaction (insert every event, then delete what fell
past the cap), so emitting holds the write lock once per batch, never once per event.
SQLite cannot push, so a blocked reader polls the rowid with a capped backoff; the
query reads the primary key only and takes no write lock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from qmulti.brokers.events_base import DEFAULT_MAXLEN, OLDEST
from qmulti.brokers.sqlite.schema import translated

POLL_CAP = 0.05  # seconds between polls of an idle stream, at most

# Made on first use, so stores that never see an event do not change.
_TABLE = "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB)"


class SqliteEvents:
    """Mixin of `SqliteStore`."""

    _write: Any
    _read: Any
    _events_table: bool = False

    def _ensure_events(self) -> None:
        if not self._events_table:
            with self._write() as conn:
                conn.execute(_TABLE)
            self._events_table = True

    @translated
    def events_put(self, events: Sequence[bytes], maxlen: int = DEFAULT_MAXLEN) -> None:
        if not events:
            return
        self._ensure_events()
        with self._write() as conn:
            conn.executemany("INSERT INTO events (body) VALUES (?)", [(e,) for e in events])
            conn.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?",
                         (max(int(maxlen), 1),))

    @translated
    def events_read(self, after: str = OLDEST, count: int = 500,
                    timeout: float = 0.0) -> list[tuple[str, bytes]]:
        self._ensure_events()
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = 0.002
        while True:
            rows = self._read("SELECT id, body FROM events WHERE id > ? ORDER BY id LIMIT ?",
                              (int(after or OLDEST), max(int(count), 1)))
            left = deadline - time.monotonic()
            if rows or left <= 0:
                return [(str(i), bytes(b)) for i, b in rows]
            time.sleep(min(delay, left))
            delay = min(delay * 2, POLL_CAP)

    @translated
    def events_tail(self) -> str:
        self._ensure_events()
        rows = self._read("SELECT MAX(id) FROM events")
        return str(rows[0][0]) if rows and rows[0][0] is not None else OLDEST
