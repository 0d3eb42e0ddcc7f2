"""`Control`: the commands of `app.control` (see the package's docstring)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import qmulti.control.wire as wire

if TYPE_CHECKING:
    from qmulti.control.inspect import Inspect

Destination = str | Iterable[str] | None


def _names(destination: Destination) -> list[str] | None:
    if destination is None:
        return None
    if isinstance(destination, str):
        return [d for d in destination.split(",") if d]
    return [str(d) for d in destination]


def _ids(task_id: str | Iterable[str]) -> list[str]:
    if isinstance(task_id, str):
        return [task_id]
    return [str(t) for t in task_id]


class Control:
    """`app.control`. Each call uses the app's broker connection of this process."""

    def __init__(self, app: Any) -> None:
        self.app = app

    # -- the one path --------------------------------------------------------------------
    def nodes(self) -> dict[str, str]:
        """Node name -> node id of every live node on the broker."""
        return wire.live_nodes(self.app.broker, _expiry(self.app))

    def broadcast(self, command: str, arguments: dict[str, Any] | None = None,
                  destination: Destination = None, connection: Any = None,
                  reply: bool = False, timeout: float = 1.0, limit: int | None = None,
                  callback: Callable[[dict[str, Any]], Any] | None = None,
                  **_ignored: Any) -> list[dict[str, Any]] | None:
        """Send `command` to the live nodes (`destination`: names, or all); with `reply`,
        wait up to `timeout` seconds and return `[{nodename: reply}, ...]`."""
        broker = self.app.broker
        targets = self.nodes()
        wanted = _names(destination)
        if wanted is not None:
            targets = {n: i for n, i in targets.items() if n in wanted}
        rid = wire.new_request_id()
        body = wire.encode_request(rid, command, arguments or {}, rid if reply else None,
                                   timeout)
        if targets:
            broker.control_send(list(targets.values()), body)
        if not reply:
            return None
        expect = len(targets) if limit is None else min(limit, len(targets))
        out: list[dict[str, Any]] = []
        if expect:
            for raw in broker.control_collect(rid, expect, timeout):
                got = wire.decode_reply(raw)
                if got is None:
                    continue
                answer = {got[0]: got[1]}
                if callback is not None:
                    callback(answer)
                out.append(answer)
        return sorted(out, key=lambda d: next(iter(d)))

    def inspect(self, destination: Destination = None, timeout: float = 1.0,
                callback: Callable[[dict[str, Any]], Any] | None = None,
                connection: Any = None, app: Any = None, limit: int | None = None,
                **_ignored: Any) -> Inspect:
        from qmulti.control.inspect import Inspect

        return Inspect(app or self.app, destination=destination, timeout=timeout,
                       callback=callback, limit=limit)

    # -- commands ------------------------------------------------------------------------
    def ping(self, destination: Destination = None, timeout: float = 1.0,
             **kwargs: Any) -> list[dict[str, Any]]:
        return self.broadcast("ping", {}, destination, reply=True, timeout=timeout,
                              **kwargs) or []

    def revoke(self, task_id: str | Iterable[str], destination: Destination = None,
               terminate: bool = False, signal: Any = "TERM",
               **kwargs: Any) -> list[dict[str, Any]] | None:
        """Store each task's REVOKED mark (so every node, now or later, skips it; with
        `terminate` the node running it stops it), then tell the live nodes at once."""
        from qmulti.result import revoke_signal

        ids = _ids(task_id)
        name = revoke_signal(signal) if terminate else None
        for tid in ids:
            self.app.AsyncResult(tid).revoke(terminate=terminate, signal=name)
        return self.broadcast("revoke", {"task_id": ids, "terminate": terminate,
                                         "signal": name}, destination, **kwargs)

    def terminate(self, task_id: str | Iterable[str], destination: Destination = None,
                  signal: Any = "TERM", **kwargs: Any) -> list[dict[str, Any]] | None:
        return self.revoke(task_id, destination, terminate=True, signal=signal, **kwargs)

    def shutdown(self, destination: Destination = None, **kwargs: Any) -> Any:
        """Warm stop: the node finishes its running tasks, gives back the rest, exits 0."""
        return self.broadcast("shutdown", {}, destination, **kwargs)

    def pool_grow(self, n: int = 1, destination: Destination = None, **kwargs: Any) -> Any:
        return self.broadcast("pool_grow", {"n": int(n)}, destination, **kwargs)

    def pool_shrink(self, n: int = 1, destination: Destination = None, **kwargs: Any) -> Any:
        return self.broadcast("pool_shrink", {"n": int(n)}, destination, **kwargs)

    def autoscale(self, max: int, min: int, destination: Destination = None,  # noqa: A002
                  **kwargs: Any) -> Any:
        return self.broadcast("autoscale", {"max": int(max), "min": int(min)}, destination,
                              **kwargs)

    def rate_limit(self, task_name: str, rate_limit: Any, destination: Destination = None,
                   **kwargs: Any) -> Any:
        if rate_limit not in (None, "", 0):
            from qmulti.routing import parse_rate

            parse_rate(rate_limit)  # a bad rate is the caller's error, not each node's
        return self.broadcast("rate_limit", {"task_name": task_name,
                                             "rate_limit": rate_limit or None},
                              destination, **kwargs)

    def time_limit(self, task_name: str, soft: float | None = None, hard: float | None = None,
                   destination: Destination = None, **kwargs: Any) -> Any:
        for value in (soft, hard):
            if value is not None and float(value) < 0:
                raise ValueError(f"a time limit cannot be negative: {value!r}")
        return self.broadcast("time_limit", {"task_name": task_name, "soft": soft,
                                             "hard": hard}, destination, **kwargs)

    def add_consumer(self, queue: str, exchange: str | None = None,
                     exchange_type: str = "direct", routing_key: str | None = None,
                     options: dict[str, Any] | None = None,
                     destination: Destination = None, **kwargs: Any) -> Any:
        return self.broadcast("add_consumer", {"queue": queue}, destination, **kwargs)

    def cancel_consumer(self, queue: str, destination: Destination = None,
                        **kwargs: Any) -> Any:
        return self.broadcast("cancel_consumer", {"queue": queue}, destination, **kwargs)

    def purge(self, connection: Any = None, queues: Sequence[str] | None = None) -> int:
        """Delete the waiting messages of the app's queues (or `queues`); leased and
        scheduled ones stay. Returns how many; Celery's `discard_all` too."""
        broker = self.app.broker
        return sum(broker.purge(q) for q in (queues or app_queues(self.app)))

    discard_all = purge


def app_queues(app: Any) -> list[str]:
    """The queues the app's settings name: the default one, `task_queues` and routes."""
    conf = app.conf
    names = [str(conf.task_default_queue or "celery")]
    for queue in getattr(conf, "task_queues", None) or ():
        name = queue if isinstance(queue, str) else getattr(queue, "name", None)
        if name and name not in names:
            names.append(str(name))
    return names


def _expiry(app: Any) -> float:
    from qmulti.brokers.base import DEFAULT_HEARTBEAT_EXPIRY

    return float(getattr(app.conf, "worker_heartbeat_expiry", None) or DEFAULT_HEARTBEAT_EXPIRY)
