"""`wait_replicas`: a publish or finish confirmed by N replicas (Redis `WAIT`) before it
returns, so that a failover cannot take back what `delay()` returned for.

Redis replicates asynchronously: without WAIT, the master acknowledges a write that its
replicas may not have yet, and a promoted replica has never heard of it. The script and
its WAIT go in one pipeline (one round trip). A publish that too few replicas confirm
raises `ReplicationError`, a `BrokerConnectionError`: re-sending it under the same
message id is safe (publish.lua stores a mid once), and a patient publish does so until
a master with enough replicas answers. A finish that too few replicas confirm is not an
error: it stands on the master, and if a failover takes it back the message is still
leased there and runs again, never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
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
    wait = ("WAIT", durability.replicas, durability.timeout_ms)
    read_timeout = durability.timeout_ms / 1000 + link.socket_timeout
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


def publish(link: RedisLink, k: QueueKeys, args: Sequence[Any],
            durability: Durability) -> None:
    """publish.lua, then WAIT under wait_replicas; too few replicas: ReplicationError."""
    keys = (k.msgs, k.ready, k.scheduled, k.wake)
    if not durability.replicas:
        link.script("publish", keys, args)
        return
    _, acked = script_waited(link, "publish", keys, args, durability)
    if acked < durability.replicas:
        link.suspect()  # the replicas may have left because this is a master no more
        mid = args[0]
        raise ReplicationError(
            f"message {mid} is on the redis master ({link.target.where}) but only {acked} "
            f"of {durability.replicas} replica(s) confirmed it within "
            f"{durability.timeout_ms} ms (wait_replicas): a failover now could lose it; "
            "sending it again is safe")


_short_finishes = 0


def run(link: RedisLink, durability: Durability, name: str, keys: Sequence[Any],
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
