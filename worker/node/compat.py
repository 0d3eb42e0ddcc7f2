"""The `celery worker` flags that Celery users type, each with its meaning here.

Some change what the node does (`--autoscale`, `-O fair`, `--purge`, `-X`); the rest
are accepted with one INFO line saying why qmulti does not need them, so a command
line copied from a Celery deployment starts instead of failing with "no such option".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from qmulti.exceptions import ConfigError, UsageError

# flag -> why the node needs nothing for it (logged at INFO when given)
NOT_NEEDED = {
    "statedb": "--statedb: not needed: revoked task ids are kept in the result backend, "
               "which outlives the node",
    "without_gossip": "--without-gossip: qmulti nodes do not gossip",
    "without_mingle": "--without-mingle: qmulti nodes do not mingle at start",
    "without_heartbeat": "--without-heartbeat: kept on: the node's heartbeat holds its "
                         "leases in the broker (it is not an event for monitors)",
}
# Pools qworker accepts by name without running them itself: gevent when it is missing
UNSUPPORTED_POOLS = {
    "gevent": "-P gevent needs gevent: pip install 'qmulti[gevent]' (or use -P threads -c N)",
    "eventlet": "-P eventlet is not supported; for I/O-bound tasks use -P threads -c N",
}


def options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the Celery-compatible options to the qworker click command."""
    decorators = [
        click.option("-E", "--task-events", is_flag=True,
                     help="send task and worker events (see `qmulti events`)"),
        click.option("-B", "--beat", is_flag=True,
                     help="also run a periodic-task scheduler (any number of nodes may)"),
        click.option("--autoscale", metavar="MAX,MIN",
                     help="grow the pool up to MAX children under a backlog, down to MIN"),
        click.option("-O", "--optimization", type=click.Choice(["default", "fair"]),
                     help="fair: each child claims one task at a time"),
        click.option("--purge", "--discard", "purge", is_flag=True,
                     help="delete the waiting messages of the node's queues first"),
        click.option("-X", "--exclude-queues", help="comma-separated queues not to consume"),
        click.option("-S", "--statedb", help="accepted (see the log)"),
        click.option("--without-gossip", is_flag=True, help="accepted (see the log)"),
        click.option("--without-mingle", is_flag=True, help="accepted (see the log)"),
        click.option("--without-heartbeat", is_flag=True, help="accepted (see the log)"),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def notes(args: Any) -> list[str]:
    """The INFO lines for the flags given that the node does not need."""
    return [line for name, line in NOT_NEEDED.items() if getattr(args, name, None)]


def check_pool(pool: str) -> None:
    """-P gevent: patch the standard library now, before the app and its tasks import
    (the consumers then run as green threads of the main process, -c of them)."""
    if pool == "gevent":
        try:
            from gevent import monkey
        except ImportError:
            raise ConfigError(UNSUPPORTED_POOLS["gevent"]) from None
        monkey.patch_all()
        return
    why = UNSUPPORTED_POOLS.get(pool)
    if why:
        raise ConfigError(why)


def parse_autoscale(text: str | None) -> tuple[int, int] | None:
    """`MAX,MIN` (or `MAX`, MIN 1) as Celery writes it; MIN below 1 is raised to 1,
    because here the children themselves watch the queues."""
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--autoscale {text!r}: give MAX,MIN as two whole numbers, for "
                         "example --autoscale 10,3") from None
    if len(numbers) not in (1, 2):
        raise UsageError(f"--autoscale {text!r}: give MAX,MIN, for example --autoscale 10,3")
    high = numbers[0]
    low = numbers[1] if len(numbers) == 2 else 1
    if high < 1 or low < 0 or low > high:
        raise UsageError(f"--autoscale {text!r}: need MAX >= MIN >= 0 and MAX >= 1")
    return high, max(low, 1)


def exclude(queues: tuple[str, ...], text: str | None) -> tuple[str, ...]:
    if not text:
        return queues
    excluded = {q.strip() for q in text.split(",") if q.strip()}
    left = tuple(q for q in queues if q not in excluded)
    if not left:
        raise UsageError(f"-X {text!r} excludes every queue of this node "
                         f"({','.join(queues)}); give it at least one to consume")
    return left
