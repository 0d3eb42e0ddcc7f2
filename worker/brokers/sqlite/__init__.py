"""The embedded SQLite store (`sqlite:///path`): broker and result backend in one file,
each state change one `BEGIN IMMEDIATE` transaction (see store.py)."""

from qmulti.brokers.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
