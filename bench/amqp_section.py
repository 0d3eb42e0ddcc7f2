"""Issue 16's bench: both contenders on the machine's RabbitMQ (127.0.0.1:5672), each
in a vhost of its own made for the run, results in the bench's private Redis (db 1).

Per side: enqueue N with no node running (qmulti waits for each publisher confirm, which
Celery's default does not ask for); start a node on that backlog (drain, results
stored); with the node warm, sequential round trips. Progress is the backend's count of
result keys, polled every 5 ms (qmulti's from keyspace events: see `ResultKeys`). The
vhosts are deleted after the run; one left by a killed run is named after its pid and
swept by the next test session.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from bench import drain, rabbit_cli, report
from bench.celery_side import CelerySide
from bench.outcome import Outcome, Sizes
from bench.qmulti_side import QmultiSide
from bench.redis_proc import RedisProc
from bench.side import Side

HOST, PORT = "127.0.0.1", 5672
ROWS = ("drain", "enqueue", "rtt_p50", "rtt_p99")


def unavailable() -> str | None:
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError as exc:
        return f"no RabbitMQ on {HOST}:{PORT} ({exc})"
    return None


def run(root: Path, run_id: str, server: RedisProc, sizes: Sizes) -> tuple[Outcome, Outcome]:
    celery, ours = CelerySide(root / "amqp", run_id), QmultiSide(root / "amqp", run_id)
    vhosts = {side.name: f"qmulti-test-{os.getpid()}-bench-{side.name}"
              for side in (celery, ours)}
    rabbit_cli.add(vhosts.values())
    try:
        return tuple(run_side(side, f"amqp://guest:guest@{HOST}:{PORT}/{vhosts[side.name]}",
                              server, sizes) for side in (celery, ours))  # type: ignore
    finally:
        rabbit_cli.delete(vhosts.values())


def run_side(side: Side, broker_url: str, server: RedisProc, sizes: Sizes) -> Outcome:
    backend = server.client(1)
    n = sizes.tasks
    server.flush()
    side.write_tasks(broker_url, server.url(1))

    def all_stored() -> None:
        stored = side.stored(backend)
        if stored < n:
            raise RuntimeError(f"backlog done but only {stored}/{n} results stored")

    if side.name == "celery":
        return drain.enqueue_then_drain(side, sizes, lambda: int(backend.dbsize()),
                                        verify=all_stored, with_round_trips=True)
    counter = ResultKeys(backend)
    try:
        return drain.enqueue_then_drain(side, sizes, counter, verify=all_stored,
                                        with_round_trips=True)
    finally:
        counter.close()


class ResultKeys:
    """Results stored so far on the qmulti side. Celery's db holds nothing else, so its
    count is DBSIZE; qmulti's has a wake-up key per task and node records too. Counting
    its result keys in the server (KEYS, every few ms) blocked that server for a
    millisecond or more per poll as the keys grew (about 1.2 ms at 3,000), delaying
    the very node being measured. So the server's keyspace events are counted instead
    (every SET names its key; a few microseconds each for Redis): the same count of
    result keys, taken at no cost to the node."""

    PREFIX = b"qmulti:result:"

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        db = backend.connection_pool.connection_kwargs.get("db", 0)
        backend.config_set("notify-keyspace-events", "E$")
        self.pubsub = backend.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(f"__keyevent@{db}__:set")
        self.seen: set[bytes] = set()

    def __call__(self) -> int:
        while (msg := self.pubsub.get_message(timeout=0.0)) is not None:
            key = msg["data"]
            if isinstance(key, bytes) and key.startswith(self.PREFIX):
                self.seen.add(key)
        return len(self.seen)

    def close(self) -> None:
        self.pubsub.close()
        self.backend.config_set("notify-keyspace-events", "")


def render(celery: Outcome, ours: Outcome, sizes: Sizes) -> str:
    rows = [r for r in report.REDIS_ROWS if r.key in ROWS]
    lines = [f"RabbitMQ broker (amqp://, own vhost per side), Redis backend, "
             f"-c {sizes.concurrency}",
             f"{'metric':32} {'unit':8} {'celery':>10} {'qmulti':>10} {'ratio':>7}  target",
             "-" * 80]
    targets = {"drain": ">= 2x", "rtt_p50": ">= 2x"}
    for row in rows:
        digits = 2 if row.unit == "ms" else 0
        r = report.ratio(row.key, celery.figures, ours.figures, row.higher_is_better)
        lines.append(f"{row.label:32} {row.unit:8} "
                     f"{report.fmt(celery.figures.get(row.key), digits):>10} "
                     f"{report.fmt(ours.figures.get(row.key), digits):>10} "
                     f"{report.fmt(r, 2):>7}  {targets.get(row.key, '')}")
    for who, o in (("celery", celery), ("qmulti", ours)):
        lines += [f"  problem ({who}): {err}" for err in o.errors]
    parts = [f"{key}={report.fmt(report.ratio(key, celery.figures, ours.figures, better), 2)}"
             for key, better in (("drain", True), ("enqueue", True), ("rtt_p50", False))]
    lines.append("amqp ratios vs celery: " + " ".join(parts))
    return "\n".join(lines)
