"""`sqlite:///` results live in the broker's own store, so that a result and its ack can
be one transaction; this name exists for readers looking under backends/."""

from __future__ import annotations

from worker.brokers.sqlite import SqliteStore

__all__ = ["SqliteStore"]
