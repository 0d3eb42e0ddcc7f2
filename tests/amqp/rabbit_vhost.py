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


def reset(vhost: str, queues: Iterable[str], rungs: Iterable[str]) -> None:
    """Delete the work queues a test used, their dead-letter queues and the delay rungs
    (with whatever they still hold), so the module's next test starts empty. Deleting a
    missing queue is a no-op in RabbitMQ."""
    import amqp

    conn = amqp.Connection(f"{HOST}:{PORT}", userid="guest", password="guest",
                           virtual_host=vhost, connect_timeout=10)
    conn.connect()
    try:
        chan = conn.channel()
        for queue in sorted(set(queues)):
            chan.queue_delete(queue)
            chan.queue_delete(f"{queue}.dead")
        for rung in rungs:
            chan.queue_delete(rung)
    finally:
        conn.close()


def url(vhost: str, host: str = HOST, port: int = PORT) -> str:
    return f"amqp://guest:guest@{host}:{port}/{vhost}"
