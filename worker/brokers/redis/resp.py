"""A small RESP2 client: sockets, a reply parser and a per-process pool, nothing more.

Why not redis-py: importing it costs every process of a node ~17 MiB of RSS and ~90 ms
(it pulls asyncio, ssl and its observability layers), which alone kept the idle node
from being half of Celery's. The store already packs its own commands and only needs
connect, send, read a reply, and a pool; that is this module. `ssl` is imported only
for `rediss://`.

Errors: a server error reply is a `ReplyError` *value* (so a pipeline can hold one per
command); a broken, closed or timed-out connection raises `OSError` (its subclasses
`TimeoutError`, `ConnectionError`, `ssl.SSLError`, and our `ProtocolError`). After any
`OSError` the connection is out of step and is closed; the next use reconnects.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

RECV_SIZE = 65536
Command = Sequence[Any]


class ReplyError(Exception):
    """An error reply of the server (`-ERR ...`, `-NOSCRIPT ...`): the connection is fine."""

    @property
    def code(self) -> str:
        """The error's first word (`ERR`, `NOSCRIPT`, `WRONGPASS`, `LOADING`...)."""
        return str(self).split(" ", 1)[0]


class AuthError(ReplyError):
    """AUTH was refused while connecting: a configuration problem, not an outage."""


class ProtocolError(ConnectionError):
    """Bytes that are not RESP: the stream is out of step, so treat it as a lost link."""


class _Short(Exception):
    """The buffer ends inside a reply; `need` is the buffer length that may complete it
    (0 when unknown), so a large bulk string is read in one go instead of re-parsed."""

    def __init__(self, need: int) -> None:
        self.need = need


def _parse(buf: bytes, pos: int) -> tuple[Any, int]:
    """One reply from `buf` at `pos`: (value, position after it), or raise `_Short`.

    Indexing a bytes object gives an int, hence the byte codes: $ 36, * 42, : 58, + 43,
    - 45. Bulk strings come first: they are most of what the scripts return.
    """
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Short(0)
    kind = buf[pos]
    if kind == 36:  # $ bulk string, $-1 nil
        size = int(buf[pos + 1:end])
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        if stop + 2 > len(buf):
            raise _Short(stop + 2)
        return buf[end + 2:stop], stop + 2
    if kind == 42:  # * array, *-1 nil
        count = int(buf[pos + 1:end])
        if count < 0:
            return None, end + 2
        pos = end + 2
        items = []
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 58:  # : integer
        return int(buf[pos + 1:end]), end + 2
    if kind == 43:  # + simple string
        return buf[pos + 1:end], end + 2
    if kind == 45:  # - error
        return ReplyError(buf[pos + 1:end].decode("utf-8", "replace")), end + 2
    raise ProtocolError(f"unexpected reply byte {bytes([kind])!r} from redis")


def pack(args: Command) -> bytes:
    """One command as a RESP array of bulk strings."""
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


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect; built from a parsed URL (see redis_url.py)."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # a unix socket instead of TCP
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    ssl_cert_reqs: int | None = None  # ssl.CERT_* value; None = required
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    connect_timeout: float = 3.0
    socket_timeout: float = 10.0


class Connection:
    """One socket to the server, opened lazily, for one thread at a time."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.sock: socket.socket | None = None
        self.pid = -1  # process that opened `sock`
        self._buf = b""
        self._pos = 0
        self._poller: Any = None

    # -- connecting ----------------------------------------------------------------------
    def connect(self) -> None:
        ep = self.endpoint
        if ep.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(ep.connect_timeout)
                sock.connect(ep.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((ep.host, ep.port), ep.connect_timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                if ep.tls:
                    sock = _wrap_tls(sock, ep)  # the handshake runs in the connect timeout
            except BaseException:
                sock.close()
                raise
        sock.settimeout(ep.socket_timeout)
        self.sock, self.pid, self._buf, self._pos = sock, os.getpid(), b"", 0
        # poll, not select: select fails on descriptors above 1023.
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise

    def _handshake(self) -> None:
        """AUTH and SELECT in one round trip, before the connection is handed out."""
        ep = self.endpoint
        commands: list[Command] = []
        if ep.password is not None:
            commands.append(("AUTH", ep.username, ep.password) if ep.username
                            else ("AUTH", ep.password))
        if ep.db:
            commands.append(("SELECT", ep.db))
        if not commands:
            return
        self.send(b"".join(pack(c) for c in commands))
        replies = [self.read_reply() for _ in commands]
        if ep.password is not None and isinstance(replies[0], ReplyError):
            raise AuthError(str(replies[0]))
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply

    def stale(self) -> bool:
        """Whether an idle connection must not be used: the server closed it (a restart)
        or it holds bytes nobody asked for. One poll(2), a few microseconds, and it turns
        "the first command after a Redis restart fails" into "it goes on a new socket"."""
        if self.sock is None:
            return False
        if self._pos < len(self._buf):
            return True
        if not self._poller.poll(0):
            return False
        if not self.endpoint.tls:
            return True
        # TLS: readable may only mean session tickets sent after the handshake.
        import ssl
        try:
            self.sock.settimeout(0)
            self.sock.recv(1)  # any data or EOF: out of step or closed
            return True
        except ssl.SSLWantReadError:
            return False
        except OSError:
            return True
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.endpoint.socket_timeout)

    def close(self) -> None:
        """Drop the socket; the next `send` reconnects. In a forked child this only
        closes the child's copy of the descriptor: the parent's link is untouched."""
        sock, self.sock = self.sock, None
        self._buf, self._pos, self._poller = b"", 0, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # -- traffic -------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        self.sock.sendall(data)

    def read_reply(self, timeout: float | None = None) -> Any:
        """The next reply; a `ReplyError` is returned, not raised. `timeout` replaces the
        socket timeout for this read (a blocking command waits longer than usual)."""
        buf, pos = self._buf, self._pos
        if pos < len(buf):
            try:
                value, pos = _parse(buf, pos)
            except _Short as short:
                need = short.need - pos  # the buffer is compacted before the next parse
            else:
                if pos == len(buf):
                    self._buf, self._pos = b"", 0
                else:
                    self._pos = pos
                return value
        else:
            need = 0
        sock = self.sock
        if sock is None:
            raise ConnectionError("not connected to redis")
        if timeout is not None:
            sock.settimeout(timeout)
        try:
            while True:
                self._fill(sock, need)
                try:
                    value, pos = _parse(self._buf, 0)
                except _Short as short:
                    need = short.need
                    continue
                if pos == len(self._buf):
                    self._buf, self._pos = b"", 0
                else:
                    self._pos = pos
                return value
        finally:
            if timeout is not None and self.sock is sock:
                sock.settimeout(self.endpoint.socket_timeout)

    def _fill(self, sock: socket.socket, need: int) -> None:
        """Read at least once more, and on until the buffer holds `need` bytes; the
        unread rest of the buffer moves to its start."""
        chunks = [self._buf[self._pos:]]
        have = len(chunks[0])
        while True:
            chunk = sock.recv(max(RECV_SIZE, need - have))
            if not chunk:
                raise ConnectionError("redis closed the connection")
            chunks.append(chunk)
            have += len(chunk)
            if have >= need:
                break
        self._buf, self._pos = b"".join(chunks), 0

    def command(self, args: Command, timeout: float | None = None) -> Any:
        """One command, one round trip; the reply may be a `ReplyError`."""
        self.send(pack(args))
        return self.read_reply(timeout)

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Several commands in one write, their replies in order (errors as values)."""
        self.send(b"".join(pack(c) for c in commands))
        return [self.read_reply() for _ in commands]


def _wrap_tls(sock: socket.socket, ep: Endpoint) -> socket.socket:
    """TLS over a connected socket. `ssl` costs a few MiB, so only `rediss://` loads it."""
    import ssl
    context = ssl.create_default_context(cafile=ep.ssl_ca_certs)
    reqs = ssl.CERT_REQUIRED if ep.ssl_cert_reqs is None else ssl.VerifyMode(ep.ssl_cert_reqs)
    if reqs != ssl.CERT_REQUIRED:
        context.check_hostname = False
    context.verify_mode = reqs
    if ep.ssl_certfile:
        context.load_cert_chain(ep.ssl_certfile, ep.ssl_keyfile)
    return context.wrap_socket(sock, server_hostname=ep.host)


class Pool:
    """At most `limit` connections of one process, shared by its threads.

    Made lazily and kept per process: after fork the child starts an empty pool and never
    touches the parent's sockets (it would read the parent's replies). Connections are
    checked for a dead socket before each reuse.
    """

    def __init__(self, endpoint: Endpoint, limit: int, wait: float) -> None:
        self.endpoint = endpoint
        self.limit = max(1, int(limit))
        self.wait = wait
        self._reset(os.getpid())

    def _reset(self, pid: int) -> None:
        self._pid = pid
        self._cond = threading.Condition()  # a lock held by a thread at fork is not ours
        self._idle: list[Connection] = []
        self._made = 0

    def get(self) -> Connection:
        pid = os.getpid()
        if pid != self._pid:
            for conn in self._idle:
                conn.close()  # the child's copies only
            self._reset(pid)
        with self._cond:
            if not self._idle and self._made >= self.limit:
                if not self._cond.wait_for(lambda: self._idle, self.wait):
                    raise TimeoutError(f"no free redis connection within {self.wait:g} s "
                                       f"(pool limit {self.limit})")
            if self._idle:
                conn = self._idle.pop()
            else:
                self._made += 1
                conn = Connection(self.endpoint)
        if conn.sock is not None and (conn.pid != pid or conn.stale()):
            conn.close()
        return conn

    def put(self, conn: Connection) -> None:
        if os.getpid() != self._pid:
            conn.close()  # borrowed before a fork: the new pool does not count it
            return
        with self._cond:
            self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        """Close the idle connections of this process; they reconnect if used again."""
        if os.getpid() != self._pid:
            return  # nothing here is this process's
        with self._cond:
            for conn in self._idle:
                conn.close()
