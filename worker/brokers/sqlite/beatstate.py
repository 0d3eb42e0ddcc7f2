"""Periodic-task state in the SQLite store: each entry's last claimed due time.

`claim_tick` records the tick and publishes its message in one `BEGIN IMMEDIATE`
transaction, so of any number of schedulers on the host exactly one sends each tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qmulti.brokers.sqlite.schema import translated


class SqliteBeat:
    """Mixin of `SqliteStore`."""

    _write: Any
    _insert: Any

    # -- periodic tasks --------------------------------------------------------------------
    # The table is made on first use, so stores that never run a scheduler do not change.
    _BEAT_TABLE = "CREATE TABLE IF NOT EXISTS beat (entry TEXT PRIMARY KEY, due REAL NOT NULL)"

    @translated
    def beat_state(self) -> dict[str, float]:
        with self._write() as conn:
            conn.execute(self._BEAT_TABLE)
            return {str(e): float(d) for e, d in conn.execute("SELECT entry, due FROM beat")}

    @translated
    def claim_tick(self, entry: str, due: float, queue: str, mid: str, body: bytes) -> bool:
        with self._write() as conn:  # BEGIN IMMEDIATE: one scheduler at a time decides
            conn.execute(self._BEAT_TABLE)
            row = conn.execute("SELECT due FROM beat WHERE entry = ?", (entry,)).fetchone()
            if row is not None and float(row[0]) >= due:
                return False
            conn.execute("INSERT INTO beat (entry, due) VALUES (?, ?) ON CONFLICT (entry) "
                         "DO UPDATE SET due = excluded.due", (entry, float(due)))
            self._insert(conn, queue, mid, body, None)
            return True

    @translated
    def beat_forget(self, entries: Sequence[str]) -> None:
        with self._write() as conn:
            conn.execute(self._BEAT_TABLE)
            conn.executemany("DELETE FROM beat WHERE entry = ?", [(e,) for e in entries])
