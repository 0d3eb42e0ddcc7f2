"""One process's link to a Redis server: a lazy, fork-safe pool, the Lua scripts, and the
translation of redis-py errors into ours.

Commands go straight to a connection (our own packing, redis-py's reply parser) rather
than through `redis.Redis.execute_command`, and the first thread that uses the link keeps
one connection of the pool for itself: the client's and the pool's per-call bookkeeping
cost as much as the round trip itself, and the hot path (claim, start, finish) is all
EVALSHA. Other threads borrow from the pool (sized by `pool_limit`).
redis-py's own retries stay off (a retried script may run twice); callers see
`BrokerConnectionError` and retry at their level, where it is known to be safe.
"""

from __future__ import annotations

import hashlib
import os
import select
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

import redis
from redis.connection import BlockingConnectionPool

from worker.brokers.redis_url import RedisTarget
from worker.exceptions import BrokerConnectionError, BrokerError, ConfigError

LUA_DIR = Path(__file__).with_name("lua")
DEFAULT_POOL_LIMIT = 10
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_SOCKET_TIMEOUT = 10.0
POOL_WAIT = 20.0  # seconds a thread waits for a free connection when all are in use


def _load_scripts() -> MappingProxyType[str, tuple[bytes, str]]:
    """Every `lua/*.lua` file as name -> (source, sha1), read once at import."""
    out = {}
    for path in sorted(LUA_DIR.glob("*.lua")):
        source = path.read_bytes()
        out[path.stem] = (source, hashlib.sha1(source).hexdigest())
    return MappingProxyType(out)


SCRIPTS = _load_scripts()
Command = Sequence[Any]


class RedisLink:
    """Connections to one Redis server for one process (re-made after fork)."""

    def __init__(self, target: RedisTarget, pool_limit: int | None = None,
                 connect_timeout: float | None = None,
                 socket_timeout: float | None = None) -> None:
        self.target = target
        self.pool_limit = int(pool_limit or DEFAULT_POOL_LIMIT)
        self.connect_timeout = float(connect_timeout or DEFAULT_CONNECT_TIMEOUT)
        self.socket_timeout = float(socket_timeout or DEFAULT_SOCKET_TIMEOUT)
        self._pid = -1
        self._pool_obj: BlockingConnectionPool | None = None
        self._owner = -1  # thread that keeps `_own` for itself
        self._own: Any = None
        self._poller: Any = None  # select.poll() watching `_own`'s socket while idle
        self._poll_fd = -1

    @property
    def _pool(self) -> BlockingConnectionPool:
        # A pool inherited through fork shares sockets with the parent: a child that used
        # them would read the parent's replies. So each process makes its own.
        pid = os.getpid()
        if self._pool_obj is None or self._pid != pid:
            self._pool_obj = BlockingConnectionPool(
                max_connections=self.pool_limit, timeout=POOL_WAIT,
                connection_class=self.target.connection_class,
                socket_connect_timeout=self.connect_timeout,
                socket_timeout=self.socket_timeout,
                protocol=2,  # flat replies, as the scripts return them; a little faster
                **self.target.kwargs,
            )
            self._pid = pid
            self._owner = threading.get_ident()
            self._own = self._poller = None
            self._poll_fd = -1
        return self._pool_obj

    def _acquire(self) -> Any:
        pool = self._pool
        if threading.get_ident() != self._owner:
            return pool.get_connection()
        conn = self._own
        if conn is None:
            conn = self._own = pool.get_connection()  # connected and checked by the pool
            return conn
        sock = getattr(conn, "_sock", None)
        # An idle connection with something to read was closed by the server (a restart)
        # or is out of step: drop it before sending, so the command goes on a fresh one
        # instead of failing on a dead socket. One poll(2), a few microseconds (poll, not
        # select, which fails on descriptors above 1023).
        if sock is not None:
            fd = sock.fileno()
            if fd != self._poll_fd:
                self._poller = select.poll()
                self._poller.register(fd, select.POLLIN | select.POLLPRI)
                self._poll_fd = fd
            if self._poller.poll(0):
                conn.disconnect()
        return conn

    def _release(self, conn: Any) -> None:
        if conn is not self._own:
            self._pool.release(conn)

    # -- commands ------------------------------------------------------------------------
    def call(self, *args: Any, read_timeout: float | None = None) -> Any:
        """One command, one round trip. `read_timeout` overrides the socket timeout for
        a blocking command (its own timeout plus a margin)."""
        with self.errors():
            return self._call(args, read_timeout)

    def _call(self, args: Command, read_timeout: float | None = None) -> Any:
        conn = self._acquire()
        try:
            conn.send_packed_command((pack(args),), check_health=False)
            if read_timeout is None:
                return conn.read_response()
            return conn.read_response(timeout=read_timeout)
        except redis.ResponseError:
            raise  # a reply, the connection is in step
        except BaseException:
            # Half a reply may still be on the way: this socket is out of step for good.
            conn.disconnect()
            raise
        finally:
            self._release(conn)

    def script(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run one of our Lua scripts by its sha; load it on the first NOSCRIPT only."""
        source, sha = SCRIPTS[name]
        with self.errors():
            try:
                return self._call(("EVALSHA", sha, len(keys), *keys, *args))
            except redis.exceptions.NoScriptError:
                self._call(("SCRIPT", "LOAD", source))
                return self._call(("EVALSHA", sha, len(keys), *keys, *args))

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Several commands in one round trip (not a transaction: each script is atomic by
        itself). A script the server does not know yet is loaded and re-run alone."""
        if not commands:
            return []
        with self.errors():
            replies = self._pipeline(commands)
            out = []
            for command, reply in zip(commands, replies, strict=True):
                if isinstance(reply, redis.exceptions.NoScriptError):
                    name = next(n for n, (_, sha) in SCRIPTS.items() if sha == command[1])
                    self._call(("SCRIPT", "LOAD", SCRIPTS[name][0]))
                    reply = self._call(command)
                elif isinstance(reply, redis.RedisError):
                    raise reply
                out.append(reply)
            return out

    def _pipeline(self, commands: Sequence[Command]) -> list[Any]:
        conn = self._acquire()
        try:
            conn.send_packed_command((b"".join(pack(c) for c in commands),),
                                     check_health=False)
            replies = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self._release(conn)

    def eval_command(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Command:
        """An EVALSHA of one of our scripts, for `pipeline`."""
        return ("EVALSHA", SCRIPTS[name][1], len(keys), *keys, *args)

    # -- errors --------------------------------------------------------------------------
    @contextmanager
    def errors(self) -> Iterator[None]:
        """redis-py errors as ours, each one line without the password."""
        try:
            yield
        except redis.AuthenticationError as exc:
            raise ConfigError(
                f"redis at {self.target.where} refused the credentials of "
                f"{self.target.masked}: {self._clean(exc)}; fix the password in the URL"
            ) from None
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise BrokerConnectionError(
                f"cannot reach redis at {self.target.masked}: {self._clean(exc)}"
            ) from None
        except redis.RedisError as exc:
            text = self._clean(exc)
            if text.startswith(("NOAUTH", "WRONGPASS")):
                raise ConfigError(
                    f"redis at {self.target.where} needs a password: {text}; put it in the "
                    "URL as redis://:PASSWORD@host:port/db"
                ) from None
            raise BrokerError(f"redis at {self.target.where} failed: {text}") from None

    def _clean(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split()) or type(exc).__name__
        password = self.target.kwargs.get("password")
        if password:
            text = text.replace(password, "***")
        return text

    def close(self) -> None:
        if self._pool_obj is not None and self._pid == os.getpid():
            if self._own is not None:
                self._own.disconnect()
            self._pool_obj.disconnect()
        self._pool_obj = self._own = None


def pack(args: Command) -> bytes:
    """One command in RESP (arrays of bulk strings); a few times cheaper than redis-py's
    general packer, which checks and splits every argument."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, (int, float)):
            arg = repr(arg).encode()
        elif not isinstance(arg, (bytes, bytearray, memoryview)):
            raise TypeError(f"cannot send {type(arg).__name__} to redis")
        out.append(b"$%d\r\n" % len(arg))
        out.append(arg)
        out.append(b"\r\n")
    return b"".join(out)
