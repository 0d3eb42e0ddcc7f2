"""`wait_replicas`: a publish or finish confirmed by N replicas (Redis `WAIT`) before it
returns, so that a failover cannot take back what `delay()` returned for.

Redis replicates asynchronously: without WAIT, the master acknowledges a write that its
replicas may not have yet, and a promoted replica has never heard of it. The script and
its WAIT go in one pipeline (one round trip). A publish that too few replicas confirm
raises `ReplicationError`, a `BrokerConnectionError`; a patient publish waits on (see
`Publish`) until a master with enough replicas confirms it, or its time is up. A finish
that too few replicas confirm is not an error: it stands on the master, and if a
failover takes it back the message is still leased there and runs again, never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qmulti.brokers.redis.conn import SCRIPTS, RedisLink
from qmulti.brokers.redis.keys import QueueKeys
from qmulti.brokers.redis.resp import ReplyError, pack
from qmulti.exceptions import BrokerConnectionError, ConfigError

log = logging.getLogger("qmulti")
DEFAULT_WAIT_TIMEOUT_MS = 1000


class ReplicationError(BrokerConnectionError):
    """Too few replicas confirmed a publish in time: the master has it, but a failover
    now could lose it. Safe to send again (the same message is stored once)."""


@dataclass(frozen=True)
class Durability:
    replicas: int = 0  # WAIT for this many replicas; 0: no WAIT
    timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> Durability:
        replicas = options.get("wait_replicas") or 0
        timeout = options.get("wait_timeout_ms")
        timeout = DEFAULT_WAIT_TIMEOUT_MS if timeout is None else timeout
        for name, value in (("wait_replicas", replicas), ("wait_timeout_ms", timeout)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}")
        if replicas and not timeout:
            raise ConfigError("wait_timeout_ms must be > 0 with wait_replicas: WAIT 0 "
                              "would block until the replicas answer, however long")
        return cls(int(replicas), int(timeout))


def script_waited(link: RedisLink, name: str, keys: Sequence[Any], args: Sequence[Any],
                  durability: Durability) -> tuple[Any, int]:
    """Run one of our scripts and WAIT in one round trip: (its reply, replicas that
    confirmed). A script the server does not know yet is loaded and the pair re-sent
    (the first EVALSHA did nothing)."""
    command = link.eval_command(name, keys, args)
    wait, read_timeout = _wait(durability), _read_timeout(link, durability)
    with link.errors():
        reply, acked = _pair(link, command, wait, read_timeout)
        if isinstance(reply, ReplyError) and reply.code == "NOSCRIPT":
            link._call(("SCRIPT", "LOAD", SCRIPTS[name][0]))
            reply, acked = _pair(link, command, wait, read_timeout)
        for value in (reply, acked):
            if isinstance(value, ReplyError):
                raise value
    return reply, int(acked)


def _pair(link: RedisLink, command: Sequence[Any], wait: Sequence[Any],
          read_timeout: float) -> list[Any]:
    """Both commands in one write; the WAIT reply may take up to its timeout."""
    pool = link._use_pool()
    conn = pool.get()
    try:
        conn.send(pack(command) + pack(wait))
        return [conn.read_reply(), conn.read_reply(read_timeout)]
    except BaseException:
        conn.close()
        raise
    finally:
        pool.put(conn)


FENCE = "{qmulti}:fence"  # a channel nobody listens to: a PUBLISH is a write replicas get


class Publish:
    """One publish, called again by `patient` until enough replicas confirm it.

    The first try runs publish.lua and WAIT. A try after too few replicas confirmed, on
    the same master, must not run the script again: the message may have run and been
    acked meanwhile, and a second publish.lua would queue it anew. It sends a fence
    instead (a PUBLISH, which replicates after the message) and WAITs for that. On
    another master (a failover since), the script runs again: the message may be gone."""

    def __init__(self, link: RedisLink, keys: Callable[[], QueueKeys], args: Sequence[Any],
                 durability: Durability) -> None:
        self.link, self.keys, self.args, self.durability = link, keys, args, durability
        self.stored_on: str | None = None  # the master that has the message for sure

    def __call__(self) -> None:
        link, durability = self.link, self.durability
        k = self.keys()
        keys = (k.msgs, k.ready, k.scheduled, k.wake)
        if not durability.replicas:
            link.script("publish", keys, self.args)
            return
        with link.errors():
            link._use_pool()  # a SentinelLink finds the master now: `where` is current
            where = link.target.where
            if where == self.stored_on:
                acked = int(_pair(link, ("PUBLISH", FENCE, ""), _wait(durability),
                                  _read_timeout(link, durability))[1])
        if where != self.stored_on:
            _, acked = script_waited(link, "publish", keys, self.args, durability)
            self.stored_on = where
        if acked < durability.replicas:
            link.suspect()  # the replicas may have left because this is a master no more
            raise ReplicationError(
                f"message {self.args[0]} is on the redis master ({where}) but only "
                f"{acked} of {durability.replicas} replica(s) confirmed it within "
                f"{durability.timeout_ms} ms (wait_replicas): a failover now could lose it")


def confirm_writes(link: RedisLink, durability: Durability, what: str) -> None:
    """WAIT after pipelined publishes (a chord's header): too few replicas is the same
    error as for one publish, which the producer may retry (each message is stored once)."""
    with link.errors():
        acked = int(link._call(_wait(durability), _read_timeout(link, durability)))
    if acked < durability.replicas:
        link.suspect()
        raise ReplicationError(
            f"{what} on the redis master ({link.target.where}) but only {acked} of "
            f"{durability.replicas} replica(s) confirmed them within "
            f"{durability.timeout_ms} ms (wait_replicas): a failover now could lose them")


def _wait(durability: Durability) -> tuple[str, int, int]:
    return ("WAIT", durability.replicas, durability.timeout_ms)


def _read_timeout(link: RedisLink, durability: Durability) -> float:
    return durability.timeout_ms / 1000 + link.socket_timeout


_short_finishes = 0


def waited(link: RedisLink, durability: Durability, name: str, keys: Sequence[Any],
           args: Sequence[Any]) -> Any:
    """A script that ends a delivery (finish), followed by WAIT under wait_replicas; too
    few replicas is one warning per process, then debug, never an error."""
    global _short_finishes
    if not durability.replicas:
        return link.script(name, keys, args)
    reply, acked = script_waited(link, name, keys, args, durability)
    if not reply or acked >= durability.replicas:
        return reply
    _short_finishes += 1
    level = logging.WARNING if _short_finishes == 1 else logging.DEBUG
    log.log(level, "A result stored on the redis master (%s) was confirmed by %d of %d "
            "replica(s) within %d ms; if the master fails now, that task runs again",
            link.target.where, acked, durability.replicas, durability.timeout_ms)
    return reply
