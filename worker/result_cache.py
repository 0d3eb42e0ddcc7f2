"""The per-app cache of final result documents (Celery's `result_cache_max`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class ResultCache:
    """Final result documents by task id, least recently used first out.

    `limit` follows Celery's `result_cache_max`: -1 disables the cache, 0 or None keeps
    every result (unbounded: only for short-lived producers)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._docs: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, task_id: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._docs.get(task_id)
            if doc is not None:
                self._docs.move_to_end(task_id)
            return doc

    def put(self, task_id: str, doc: dict[str, Any]) -> None:
        if self.limit == -1:
            return
        with self._lock:
            self._docs[task_id] = doc
            self._docs.move_to_end(task_id)
            while self.limit and len(self._docs) > self.limit:
                self._docs.popitem(last=False)

    def discard(self, task_id: str) -> None:
        with self._lock:
            self._docs.pop(task_id, None)

    def __len__(self) -> int:
        return len(self._docs)
