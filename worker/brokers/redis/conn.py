"""One process's link to a Redis server: the pool, the Lua scripts, and the translation of
client errors into ours.

Built on our own RESP2 client (`resp.py`), not redis-py: importing redis-py costs every
node process ~17 MiB and ~90 ms, and the hot path (claim, start, finish) is all EVALSHA
of commands we pack ourselves. Nothing here retries a command (a retried script may run
twice); callers see `BrokerConnectionError` and retry at their level, where it is known
to be safe.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from qmulti.brokers.redis.resp import AuthError, Pool, ReplyError, pack
from qmulti.brokers.redis.url import RedisTarget
from qmulti.exceptions import BrokerConnectionError, BrokerError, ConfigError

__all__ = ["LUA_DIR", "SCRIPTS", "RedisLink", "pack"]

LUA_DIR = Path(__file__).with_name("lua")
DEFAULT_POOL_LIMIT = 10
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_SOCKET_TIMEOUT = 10.0
POOL_WAIT = 20.0  # seconds a thread waits for a free connection when all are in use
# Error replies that mean "the server is not serving yet", as an outage, not a bug.
UNAVAILABLE = frozenset({"LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"})


def _load_scripts() -> MappingProxyType[str, tuple[bytes, str]]:
    """Every `lua/*.lua` file as name -> (source, sha1), read once at import."""
    out = {}
    for path in sorted(LUA_DIR.glob("*.lua")):
        source = path.read_bytes()
        out[path.stem] = (source, hashlib.sha1(source).hexdigest())
    return MappingProxyType(out)


SCRIPTS = _load_scripts()
_BY_SHA = MappingProxyType({sha: source for source, sha in SCRIPTS.values()})
Command = Sequence[Any]
T = TypeVar("T")


class RedisLink:
    """Connections to one Redis server for one process (the pool re-makes itself after
    fork); thread-safe. The constructor does no I/O: a URL is checked before connecting."""

    def __init__(self, target: RedisTarget, pool_limit: int | None = None,
                 connect_timeout: float | None = None,
                 socket_timeout: float | None = None) -> None:
        self.target = target
        self.pool_limit = int(pool_limit or DEFAULT_POOL_LIMIT)
        self.connect_timeout = float(connect_timeout or DEFAULT_CONNECT_TIMEOUT)
        self.socket_timeout = float(socket_timeout or DEFAULT_SOCKET_TIMEOUT)
        self._pool = Pool(target.endpoint(self.connect_timeout, self.socket_timeout),
                          self.pool_limit, POOL_WAIT)

    switched_at = 0.0  # monotonic time the server changed (a SentinelLink's failover)
    failover = False  # a SentinelLink (sentinel.py) follows the master across failovers

    def switched_within(self, seconds: float) -> bool:
        """Whether this process moved to a new master in the last `seconds`: then no
        node is judged dead before each had that long to heartbeat to it."""
        return bool(self.switched_at) and time.monotonic() - self.switched_at < seconds

    def _use_pool(self) -> Pool:
        """The pool for the next command (a SentinelLink finds the master first)."""
        return self._pool

    def suspect(self) -> None:
        """A reply hinted that the server may no longer be the master (a SentinelLink
        asks the sentinels again before its next command); one server: nothing to do."""

    def patient(self, call: Callable[[], T], deadline: float | None = None) -> T:
        """Run a call that is safe to re-send; one server has no failover to wait out,
        so here it runs once (see SentinelLink.patient)."""
        return call()

    # -- commands ------------------------------------------------------------------------
    def call(self, *args: Any, read_timeout: float | None = None) -> Any:
        """One command, one round trip. `read_timeout` overrides the socket timeout for
        a blocking command (its own timeout plus a margin)."""
        try:
            return self._call(args, read_timeout)
        except (OSError, ReplyError) as exc:
            raise self._translate(exc) from None

    def _call(self, args: Command, read_timeout: float | None = None) -> Any:
        pool = self._use_pool()
        conn = pool.get()
        try:
            conn.send(pack(args))
            reply = conn.read_reply(read_timeout)
        except BaseException:
            # Half a reply may still be on the way: this socket is out of step for good.
            conn.close()
            raise
        finally:
            pool.put(conn)
        if isinstance(reply, ReplyError):
            raise reply  # a reply: the connection stays in step
        return reply

    def script(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run one of our Lua scripts by its sha; load it on the first NOSCRIPT only."""
        source, sha = SCRIPTS[name]
        command = ("EVALSHA", sha, len(keys), *keys, *args)
        try:
            try:
                return self._call(command)
            except ReplyError as exc:
                if exc.code != "NOSCRIPT":
                    raise
            self._call(("SCRIPT", "LOAD", source))
            return self._call(command)
        except (OSError, ReplyError) as exc:
            raise self._translate(exc) from None

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Several commands in one round trip (not a transaction: each script is atomic by
        itself). A script the server does not know yet is loaded and re-run alone."""
        if not commands:
            return []
        try:
            replies = self._pipeline(commands)
            out = []
            for command, reply in zip(commands, replies, strict=True):
                if isinstance(reply, ReplyError):
                    if reply.code != "NOSCRIPT":
                        raise reply
                    self._call(("SCRIPT", "LOAD", _BY_SHA[command[1]]))
                    reply = self._call(command)
                out.append(reply)
            return out
        except (OSError, ReplyError) as exc:
            raise self._translate(exc) from None

    def _pipeline(self, commands: Sequence[Command]) -> list[Any]:
        pool = self._use_pool()
        conn = pool.get()
        try:
            return conn.pipeline(commands)
        except BaseException:
            conn.close()
            raise
        finally:
            pool.put(conn)

    def eval_command(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Command:
        """An EVALSHA of one of our scripts, for `pipeline`."""
        return ("EVALSHA", SCRIPTS[name][1], len(keys), *keys, *args)

    # -- errors --------------------------------------------------------------------------
    @contextmanager
    def errors(self) -> Iterator[None]:
        """Client errors raised inside the block as ours, each one line without the
        password."""
        try:
            yield
        except (OSError, ReplyError) as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: OSError | ReplyError) -> Exception:
        """Refused credentials and a missing password are configuration (exit 78); a
        server we cannot reach, or that is still loading, is an outage the caller may
        wait out; any other error reply is a broker error."""
        text = self._clean(exc)
        if isinstance(exc, AuthError):
            return ConfigError(
                f"redis at {self.target.where} refused the credentials of "
                f"{self.target.masked}: {text}; fix the password in the URL")
        if isinstance(exc, OSError) or exc.code in UNAVAILABLE:
            return BrokerConnectionError(f"cannot reach redis at {self.target.masked}: {text}")
        if exc.code in ("NOAUTH", "WRONGPASS"):
            return ConfigError(
                f"redis at {self.target.where} needs a password: {text}; put it in the "
                "URL as redis://:PASSWORD@host:port/db")
        return BrokerError(f"redis at {self.target.where} failed: {text}")

    def _clean(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split()) or type(exc).__name__
        password = self.target.kwargs.get("password")
        if password:
            text = text.replace(password, "***")
        return text

    def close(self) -> None:
        """Close this process's idle connections (a forked child's close leaves the
        parent's sockets alone); the link reconnects if used again."""
        self._pool.close()
