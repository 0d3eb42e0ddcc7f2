"""Settings a running node changed by remote control (rate and time limits per task, the
queues consumed), shared with its pool children through one page of shared memory.

The node main process makes the page before it forks any child, so every child maps
the same memory. Only the main process writes (a whole JSON document under a version
counter, seqlock-style: odd while writing); a consumer looks at the counter before each
claim and each task, an 8-byte read, and applies the document when it changed. No pipe
to each child, no signal, nothing on the path of a task while nothing changed.
"""

from __future__ import annotations

import json
import mmap
import struct
from typing import Any

SIZE = 1 << 16
_HEAD = struct.Struct("=QI")  # version, document length


class Overrides:
    """The shared page. `read(seen)` from any process or thread; `publish` from the
    node main process only."""

    def __init__(self, size: int = SIZE) -> None:
        self._page = mmap.mmap(-1, size)  # anonymous and MAP_SHARED: inherited by fork
        self.doc: dict[str, Any] = {"tasks": {}, "queues": None}

    def publish(self, doc: dict[str, Any]) -> None:
        data = json.dumps(doc, default=str).encode()
        if len(data) > len(self._page) - _HEAD.size:
            raise ValueError("too many remote-control changes to share with the pool")
        version, _ = _HEAD.unpack_from(self._page, 0)
        _HEAD.pack_into(self._page, 0, version + 1, 0)  # odd: being written
        self._page[_HEAD.size:_HEAD.size + len(data)] = data
        _HEAD.pack_into(self._page, 0, version + 2, len(data))
        self.doc = doc

    def read(self, seen: int) -> tuple[int, dict[str, Any]] | None:
        """(version, document) when it changed since version `seen`, else None (also
        while a write is half done: the next look gets it)."""
        version, length = _HEAD.unpack_from(self._page, 0)
        if version == seen or version % 2:
            return None
        data = bytes(self._page[_HEAD.size:_HEAD.size + length])
        if _HEAD.unpack_from(self._page, 0)[0] != version:
            return None
        try:
            return version, json.loads(data)
        except ValueError:  # pragma: no cover - guarded by the version check
            return None




def follow(consumer: Any) -> None:
    """Bring one consumer up to date with remote control's changes (its task limits
    and queues); an 8-byte read while nothing changed."""
    shared = consumer.spec.overrides
    changed = None if shared is None else shared.read(consumer.overrides_seen)
    if changed is None:
        return
    consumer.overrides_seen, doc = changed
    apply_tasks(consumer.rt.app, doc)
    consumer.queues = doc.get("queues") or consumer.spec.queues


def apply_tasks(app: Any, doc: dict[str, Any]) -> None:
    """Set each changed task's limits on this process's task objects, where the
    consumer reads them for every task it runs."""
    for name, limits in (doc.get("tasks") or {}).items():
        task = app.tasks.get(name)
        if task is None:
            continue
        for attr in ("rate_limit", "time_limit", "soft_time_limit"):
            if attr in limits:
                setattr(task, attr, limits[attr])
