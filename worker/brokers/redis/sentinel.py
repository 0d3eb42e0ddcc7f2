"""`sentinel://` URLs: find the Redis master through Sentinel, follow it across failovers.

Only discovery goes through redis-py (`SENTINEL get-master-addr-by-name`, by its
`redis.sentinel.Sentinel`); the data connections stay on our own RESP link, so a
failover changes where the pool connects and nothing else. redis-py is imported on the
first discovery of a `sentinel://` store only: a `redis://` node never pays for it.

A link re-asks the sentinels after any sign that the master moved: a connection that
broke or was refused, a `READONLY` reply (the old master came back as a replica), or a
`MASTERDOWN`. When the answer differs from the address in use, the pool is replaced
and the process logs one line naming the new master. A forked child inherits the
parent's address and asks again on its own first error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from qmulti.brokers.redis.conn import UNAVAILABLE, RedisLink
from qmulti.brokers.redis.resp import AuthError, Pool, ReplyError
from qmulti.brokers.redis.url import RedisTarget, parse_redis_url
from qmulti.exceptions import BrokerConnectionError, ConfigError
from qmulti.urls import mask_url

log = logging.getLogger("qmulti")
T = TypeVar("T")

DEFAULT_SENTINEL_PORT = 26379
DEFAULT_FAILOVER_TIMEOUT = 15.0  # seconds a publish or get() waits for a new master
# Replies that mean the server we reached is not (or no longer) the master we want.
MOVED = UNAVAILABLE | {"READONLY"}
_PATIENCE_STEP = (0.05, 0.5)  # first and longest pause between tries of a patient call


@dataclass(frozen=True)
class SentinelSpec:
    """A parsed `sentinel://` URL plus the transport options that complete it."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    kwargs: dict[str, Any] = field(repr=False)  # the master's password, username, db
    sentinel_kwargs: dict[str, Any] = field(repr=False)  # for the sentinels themselves
    masked: str = ""

    @property
    def where(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)

    def target(self, address: tuple[str, int] | None) -> RedisTarget:
        """Our client's settings for the master at `address` (a placeholder before the
        first discovery: the pool connects only after one)."""
        host, port = address or ("0.0.0.0", 0)
        kwargs = {**self.kwargs, "host": host, "port": port}
        where = f"master {self.master_name!r} at {host}:{port}" if address else \
            f"master {self.master_name!r} (not found yet)"
        return RedisTarget("tcp", kwargs, where, self.masked)


def is_sentinel_url(url: str) -> bool:
    return url.lstrip().lower().startswith("sentinel://")


def parse_sentinel_url(url: str, options: Mapping[str, Any]) -> SentinelSpec:
    """`sentinel://[:password@]host[:port][/db];sentinel://host2[:port];...` (Celery's
    spelling) with `master_name` and `sentinel_kwargs` from the transport options. The
    password and db of the first part that has one are the master's; the sentinels
    get only `sentinel_kwargs` (their own password, if they have one)."""
    masked = mask_url(url)
    master_name = options.get("master_name")
    if not master_name or not isinstance(master_name, str):
        raise ConfigError(
            f"{masked!r} needs the name of the master the sentinels watch: set "
            "broker_transport_options={'master_name': 'mymaster'} (for a result backend: "
            "result_backend_transport_options)")
    extra = options.get("sentinel_kwargs") or {}
    if not isinstance(extra, Mapping):
        raise ConfigError(f"sentinel_kwargs must be a dict, got {type(extra).__name__}")
    sentinels: list[tuple[str, int]] = []
    kwargs: dict[str, Any] = {"password": None, "username": None, "db": 0}
    for part in filter(None, (p.strip() for p in url.split(";"))):
        try:
            parts = urlsplit(part)
            port = parts.port or DEFAULT_SENTINEL_PORT
        except ValueError as exc:
            raise ConfigError(f"bad sentinel URL {masked!r}: {exc}") from None
        if parts.scheme.lower() != "sentinel" or not parts.hostname:
            raise ConfigError(f"bad sentinel URL {masked!r}: each part must be "
                              "sentinel://host:port, joined by ';'")
        sentinels.append((parts.hostname, port))
        if parts.password and kwargs["password"] is None:
            kwargs["password"] = unquote(parts.password)
            kwargs["username"] = unquote(parts.username) if parts.username else None
        db_text = parts.path.strip("/")
        if db_text:
            if not db_text.isdigit():
                raise ConfigError(f"bad sentinel URL {masked!r}: the database must be a "
                                  f"number, got {db_text!r}")
            kwargs["db"] = int(db_text)
    if not sentinels:
        raise ConfigError(f"bad sentinel URL {masked!r}: name at least one sentinel")
    return SentinelSpec(tuple(sentinels), master_name, kwargs, dict(extra), masked)


class SentinelLink(RedisLink):
    """A RedisLink whose server is whatever the sentinels call the master right now."""

    failover = True

    def __init__(self, spec: SentinelSpec, pool_limit: int | None = None,
                 connect_timeout: float | None = None, socket_timeout: float | None = None,
                 failover_timeout: float | None = None) -> None:
        super().__init__(spec.target(None), pool_limit, connect_timeout, socket_timeout)
        self.spec = spec
        self.failover_timeout = float(failover_timeout or DEFAULT_FAILOVER_TIMEOUT)
        self.address: tuple[str, int] | None = None
        self.switched_at = 0.0  # monotonic time the master last changed in this process
        self._stale = True  # ask the sentinels before the next command
        self._lock, self._lock_pid = threading.Lock(), os.getpid()
        self._sentinel: Any = None
        self._sentinel_pid = -1

    # -- discovery -----------------------------------------------------------------------
    def _use_pool(self) -> Pool:
        if self._stale:
            if self._lock_pid != os.getpid():  # a lock held at fork would never be let go
                self._lock, self._lock_pid = threading.Lock(), os.getpid()
            with self._lock:
                if self._stale:
                    self._discover()
        return self._pool

    def _client(self) -> Any:
        if self._sentinel is None or self._sentinel_pid != os.getpid():
            from redis.sentinel import Sentinel  # a sentinel:// store only

            extra = {"socket_timeout": self.connect_timeout,
                     "socket_connect_timeout": self.connect_timeout,
                     **self.spec.sentinel_kwargs}
            self._sentinel = Sentinel(list(self.spec.sentinels), sentinel_kwargs=extra)
            self._sentinel_pid = os.getpid()
        return self._sentinel

    def ask(self, question: Callable[[Any], T]) -> T:
        """One question to the sentinels through redis-py; its errors as ours (OSError
        for "no answer", so the caller's translation calls it an outage)."""
        import redis

        try:
            return question(self._client())
        except redis.AuthenticationError as exc:
            raise AuthError(f"a sentinel refused the credentials: {exc}") from None
        except (redis.RedisError, OSError) as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise ConnectionError(f"no sentinel of {self.spec.where} names a master "
                                  f"{self.spec.master_name!r}: {text}") from None

    def _discover(self) -> None:
        name = self.spec.master_name
        host, port = self.ask(lambda s: s.discover_master(name))
        address = (str(host), int(port))
        if address != self.address:
            old, self.address = self.address, address
            self.target = self.spec.target(address)
            previous, self._pool = self._pool, Pool(
                self.target.endpoint(self.connect_timeout, self.socket_timeout),
                self.pool_limit, self._pool.wait)
            previous.close()
            if old is not None:
                self.switched_at = time.monotonic()
            _announce(self.spec, address)
        self._stale = False

    def replicas(self) -> list[tuple[str, int]]:
        """The replicas the sentinels know of this master, healthy ones only."""
        name = self.spec.master_name
        return [(str(h), int(p)) for h, p in self.ask(lambda s: s.discover_slaves(name))]

    # -- errors --------------------------------------------------------------------------
    def suspect(self) -> None:
        self._stale = True

    def _translate(self, exc: OSError | ReplyError) -> Exception:
        """Also READONLY is an outage here: the server we reached is a master no more."""
        if isinstance(exc, OSError) or (not isinstance(exc, AuthError) and exc.code in MOVED):
            self._stale = True
            return BrokerConnectionError(
                f"cannot reach the redis {self.target.where} (sentinels {self.spec.where}): "
                f"{self._clean(exc)}")
        return super()._translate(exc)

    def patient(self, call: Callable[[], T], deadline: float | None = None) -> T:
        """`call` again while the master is unreachable, up to `failover_timeout` (or
        `deadline`, monotonic, if sooner); then its last error. Only for calls that are
        safe to re-send (a publish under its message id, a read)."""
        end = time.monotonic() + self.failover_timeout
        if deadline is not None:
            end = min(end, deadline)
        pause = _PATIENCE_STEP[0]
        while True:
            try:
                return call()
            except BrokerConnectionError:
                if time.monotonic() + pause >= end:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, _PATIENCE_STEP[1])


# The master each (sentinels, name) was last announced as, in this process: one line per
# change per process even when broker and backend are two links to the same master.
_ANNOUNCED: dict[tuple[Any, ...], tuple[int, tuple[str, int]]] = {}


def _announce(spec: SentinelSpec, address: tuple[str, int]) -> None:
    key = (spec.sentinels, spec.master_name)
    pid = os.getpid()
    seen = _ANNOUNCED.get(key)
    if seen is not None and seen[1] == address and seen[0] == pid:
        return
    _ANNOUNCED[key] = (pid, address)
    if seen is None:
        log.debug("Redis master %r is at %s:%d", spec.master_name, *address)
    elif seen[1] != address:
        log.warning("Redis master %r is now at %s:%d (was %s:%d); reconnected",
                    spec.master_name, *address, *seen[1])


def open_link(url: str, pool_limit: int | None, connect_timeout: float | None,
              options: Mapping[str, Any]) -> RedisLink:
    """The link for a store URL: to one server, or to whichever the sentinels name."""
    if is_sentinel_url(url):
        return SentinelLink(parse_sentinel_url(url, options), pool_limit, connect_timeout,
                            options.get("socket_timeout"), options.get("failover_timeout"))
    return RedisLink(parse_redis_url(url), pool_limit, connect_timeout,
                     options.get("socket_timeout"))


def with_master_name(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` completed with the master's name when they lack it and the sentinels
    watch exactly one master: `qmulti status -b sentinel://...` has no app to say it."""
    out = dict(options)
    if not is_sentinel_url(url) or out.get("master_name"):
        return out
    link = SentinelLink(parse_sentinel_url(url, {**out, "master_name": "?"}), 1,
                        out.get("connect_timeout"))

    def masters(sentinel: Any) -> list[str]:
        errors = []
        for client in sentinel.sentinels:
            try:
                return sorted(client.sentinel_masters())
            except Exception as exc:  # noqa: BLE001 - the next sentinel may answer
                errors.append(exc)
        raise errors[-1] if errors else ConnectionError("no sentinel given")

    try:
        names = link.ask(masters)
    except OSError as exc:
        raise BrokerConnectionError(str(exc)) from None
    if len(names) != 1:
        raise ConfigError(f"the sentinels at {link.spec.where} watch {len(names)} masters "
                          f"({', '.join(names) or 'none'}): name one with "
                          "broker_transport_options={'master_name': ...}")
    out["master_name"] = names[0]
    return out


def topology(store: Any) -> tuple[str, str, list[str]] | None:
    """(master name, master address, replica addresses) of a sentinel:// store, for
    `qmulti status`; None for any other store. No password in any of it."""
    link = getattr(store, "_link", None)
    if not isinstance(link, SentinelLink):
        return None
    link._use_pool()  # discovered already by the stats call; this costs nothing then
    host, port = link.address or ("?", 0)
    return (link.spec.master_name, f"{host}:{port}",
            [f"{h}:{p}" for h, p in link.replicas()])
