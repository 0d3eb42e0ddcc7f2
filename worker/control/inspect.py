"""`app.control.inspect()`: what the nodes are doing, each method a dict
`{nodename: reply}`, or None when no node answered (Celery's shape)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


class Inspect:
    def __init__(self, app: Any, destination: str | Iterable[str] | None = None,
                 timeout: float = 1.0, callback: Callable[[dict[str, Any]], Any] | None = None,
                 limit: int | None = None) -> None:
        self.app = app
        self.destination = destination
        self.timeout = timeout
        self.callback = callback
        self.limit = limit

    def _request(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        replies = self.app.control.broadcast(
            command, arguments, self.destination, reply=True, timeout=self.timeout,
            limit=self.limit, callback=self.callback) or []
        merged: dict[str, Any] = {}
        for reply in replies:
            merged.update(reply)
        return merged or None

    def ping(self) -> dict[str, Any] | None:
        return self._request("ping")

    def active(self, safe: bool | None = None) -> dict[str, Any] | None:
        """The tasks each node runs now: id, name, args, kwargs, time_start, worker_pid..."""
        return self._request("active")

    def reserved(self, safe: bool | None = None) -> dict[str, Any] | None:
        """Tasks a node has prefetched and not begun."""
        return self._request("reserved")

    def scheduled(self, safe: bool | None = None) -> dict[str, Any] | None:
        """Always empty lists: countdown/eta tasks wait in the broker, not in a node
        (`qmulti status` counts them)."""
        return self._request("scheduled")

    def stats(self) -> dict[str, Any] | None:
        return self._request("stats")

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    registered_tasks = registered

    def active_queues(self) -> dict[str, Any] | None:
        return self._request("active_queues")

    def revoked(self) -> dict[str, Any] | None:
        """The ids each node was told to revoke since it started."""
        return self._request("revoked")

    def query_task(self, *ids: Any) -> dict[str, Any] | None:
        """`{node: {task_id: [state, info]}}` for the given ids the node holds, the
        state being 'active' or 'reserved'."""
        flat: list[str] = []
        for item in ids:
            flat.extend([item] if isinstance(item, str) else [str(i) for i in item])
        return self._request("query_task", ids=flat)

    def conf(self, with_defaults: bool = False) -> dict[str, Any] | None:
        """Each node's settings (URLs masked)."""
        return self._request("conf", with_defaults=with_defaults)
