"""Virtual hosts of the tests' own on the machine's RabbitMQ (127.0.0.1:5672, guest).

The server is shared by every engineer on the machine, so a session is gentle with it:
one vhost per test module, all made in a single `rabbitmqctl eval` (each CLI call boots an
Erlang VM, a second of CPU) and deleted in another at the session's end. Between two tests
of a module, `reset` deletes what the first declared, over AMQP (milliseconds).

A vhost is named `qmulti-test-<pid>-<n>` after the pytest process that made it. A session
killed before its end leaves its vhosts behind; the next session's first call deletes every
`qmulti-test-` vhost whose process is gone (checked by the server itself, in /proc), and
never one of a session still running, here or in another xdist worker.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterable
from typing import Any

from bench import rabbit_cli
from bench.rabbit_cli import ACTOR, run_eval

HOST, PORT = "127.0.0.1", 5672
PREFIX = "qmulti-test-"


def unavailable() -> str | None:
    """Why RabbitMQ tests cannot run here, or None."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl not found (apt-get install rabbitmq-server)"
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError as exc:
        return f"no RabbitMQ on {HOST}:{PORT} ({exc})"
    return None


# Every `qmulti-test-<pid>-...` vhost whose pid has no /proc entry: a dead session's.
_SWEEP = f"""
Leftover = [V || V <- rabbit_vhost:list_names(),
                 binary:longest_common_prefix([V, <<"{PREFIX}">>]) =:= {len(PREFIX)},
                 not filelib:is_dir("/proc/" ++ hd(string:split(binary_to_list(
                     binary:part(V, {len(PREFIX)}, byte_size(V) - {len(PREFIX)})), "-")))],
[rabbit_vhost:delete(V, <<"{ACTOR}">>) || V <- Leftover],
"""


def create(count: int) -> list[str]:
    """`count` new vhosts for this process, guest allowed everything; dead sessions'
    leftovers are deleted in the same call."""
    names = [f"{PREFIX}{os.getpid()}-{i}" for i in range(count)]
    run_eval(_SWEEP + rabbit_cli.add_code(names) + "ok.")
    return names


def delete(names: Iterable[str]) -> None:
    rabbit_cli.delete(names)


def ours() -> list[str]:
    """The `qmulti-test-` vhosts on the server now (a test's check that none is left)."""
    out = run_eval(f"[V || V <- rabbit_vhost:list_names(), binary:longest_common_prefix("
                f"[V, <<\"{PREFIX}\">>]) =:= {len(PREFIX)}].")
    return [part.strip(' <>"[]\n') for part in out.split(",") if PREFIX in part]


def _connect(vhost: str) -> Any:
    import amqp

    conn = amqp.Connection(f"{HOST}:{PORT}", userid="guest", password="guest",
                           virtual_host=vhost, connect_timeout=10)
    conn.connect()
    return conn


def warm(vhost: str, units: int = 63) -> None:
    """Declare the delay rungs that sub-second and few-second etas pass (0..5): a quorum
    queue declared by a test's first eta takes a loaded machine long enough that a 0.3 s
    eta would have moved on before the test looks."""
    from qmulti.brokers.amqp import topology

    conn = _connect(vhost)
    try:
        chan = conn.channel()
        chan.queue_declare("qmulti-warm-up", durable=True, auto_delete=False)
        topology.Ladder().prepare(chan, "qmulti-warm-up", units)
        chan.queue_delete("qmulti-warm-up")
    finally:
        conn.close()


def reset(vhost: str, queues: Iterable[str], rungs: Iterable[str]) -> None:
    """Delete the work queues a test used, with their dead-letter queues, and empty the
    delay rungs (kept: declaring them is the slow part), so the module's next test starts
    empty. Deleting a missing queue is a no-op in RabbitMQ; purging one closes the
    channel, so the next gets a new one."""
    import amqp

    conn = _connect(vhost)
    try:
        chan = conn.channel()
        for queue in sorted(set(queues)):
            chan.queue_delete(queue)
            chan.queue_delete(f"{queue}.dead")
        for rung in rungs:
            try:
                chan.queue_purge(rung)
            except amqp.exceptions.NotFound:
                chan = conn.channel()
    finally:
        conn.close()


def url(vhost: str, host: str = HOST, port: int = PORT) -> str:
    return f"amqp://guest:guest@{host}:{port}/{vhost}"
