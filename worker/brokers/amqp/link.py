"""One AMQP connection and channel per process, made on first use, with a heartbeat thread.

py-amqp is synchronous and not thread-safe, so every use of the connection holds `lock`.
The heartbeat thread takes the lock only between broker calls (a claim that blocks
releases it every `DRAIN_CHUNK`), reads what the server sent (its heartbeats, late
deliveries) and sends ours. That is what keeps a pool child's connection alive while its
task runs for an hour in the main thread: nothing else reads the socket then.

Fork: a child must never close or shut down the parent's socket (py-amqp's close calls
`shutdown(SHUT_RDWR)`, which would cut the parent's connection too). So a link used in a
new process parks what it inherited in `_INHERITED`, unclosed and never collected, and
connects afresh. Its lock is replaced in the child at the fork itself: a fork while
another thread of the parent (the heartbeat, the remote-control listener) held it would
leave the child's copy held by a thread that does not exist there, for ever (pool
children that never came up, now and then).

Fencing: `generation` names the current channel. Delivery tags are per channel and the
server returns a closed channel's unacked messages to their queues, so a delivery of an
older generation is lost: acking it is refused locally, never sent.
"""

from __future__ import annotations

import itertools
import logging
import os
import select
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import amqp
from amqp import exceptions as amqp_errors

from qmulti.brokers.amqp.url import AmqpTarget
from qmulti.exceptions import BrokerConnectionError, BrokerError

T = TypeVar("T")
log = logging.getLogger("qmulti")
DRAIN_CHUNK = 1.0  # longest wait inside one locked drain: heartbeats run in between
RECV_SIZE = 65536  # one recv takes all that is there, not one frame's part at a time
_INHERITED: list[object] = []
_GENERATIONS = itertools.count(1)
_LINKS: weakref.WeakSet[AmqpLink] = weakref.WeakSet()

# What a broken connection raises; anything else from py-amqp is a channel-level refusal.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp_errors.ConnectionError, amqp_errors.RecoverableConnectionError, OSError,
    EOFError,
)


class AmqpLink:
    def __init__(self, target: AmqpTarget, heartbeat: float | None = None,
                 connect_timeout: float | None = None,
                 socket_timeout: float | None = None) -> None:
        self.target = target
        self.heartbeat = 60.0 if heartbeat is None else float(heartbeat)
        self.connect_timeout = float(connect_timeout or 4.0)
        self.socket_timeout = socket_timeout
        self.lock = threading.RLock()
        self.generation = ""
        self._pid = os.getpid()
        self._conn: Any = None
        self._chan: Any = None
        self._stop = threading.Event()
        self.resets: list[Callable[[], None]] = []  # told when the channel is gone
        # Run by the heartbeat thread with the channel, under the lock (handover.py), at
        # least every `tick_every` seconds: the thread runs for them even without heartbeats.
        self.ticks: list[Callable[[Any], None]] = []
        self.tick_every = float("inf")
        _LINKS.add(self)

    # -- the connection ---------------------------------------------------------------
    def channel(self) -> Any:
        """The live channel, reconnecting if this process or the server dropped it."""
        if self._pid != os.getpid():
            _INHERITED.append((self._conn, self._chan))
            self._conn = self._chan = None
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._reset()
        if self._chan is not None and self._chan.is_open and self._conn.connected:
            return self._chan
        if self._conn is None or not self._conn.connected:
            self._open_connection()
        self._chan = self._conn.channel()
        self.generation = f"{os.getpid()}.{next(_GENERATIONS)}"
        return self._chan

    @property
    def connection(self) -> Any:
        self.channel()
        return self._conn

    def _open_connection(self) -> None:
        self._drop()
        t = self.target
        conn = amqp.Connection(
            host=t.address, userid=t.userid, password=t.password, virtual_host=t.vhost,
            ssl=t.ssl, connect_timeout=self.connect_timeout, heartbeat=int(self.heartbeat),
            confirm_publish=True, read_timeout=self.socket_timeout,
            write_timeout=self.socket_timeout,
            client_properties={"product": "qmulti", "connection_name": f"qmulti pid "
                                                                      f"{os.getpid()}"})
        conn.connect()
        _buffer_reads(conn.transport)
        self._conn = conn
        if conn.heartbeat or self.ticks:
            thread = threading.Thread(target=self._beat, args=(conn, self._stop),
                                      name="amqp-heartbeat", daemon=True)
            thread.start()

    def _reset(self) -> None:
        for callback in self.resets:
            callback()

    def _drop(self) -> None:
        """Forget the connection (already broken, or being replaced)."""
        conn, self._conn, self._chan = self._conn, None, None
        self._stop.set()
        self._stop = threading.Event()
        if conn is not None:
            try:
                conn.collect()
            except Exception:  # noqa: BLE001 - the socket is gone either way
                pass
        self._reset()

    def _beat(self, conn: Any, stop: threading.Event) -> None:
        interval = max(min(conn.heartbeat / 4.0 if conn.heartbeat else self.tick_every,
                           self.tick_every), 0.2)
        while not stop.wait(interval):
            if not self.lock.acquire(timeout=interval):
                continue
            try:
                if self._conn is not conn or stop.is_set():
                    return
                try:
                    conn.drain_events(timeout=0.001)
                except TimeoutError:
                    pass
                if conn.heartbeat:
                    conn.heartbeat_tick()
                self._run_ticks()
            except Exception:  # noqa: BLE001 - the next call reconnects and reports it
                if self._conn is conn:
                    self._drop()
                return
            finally:
                self.lock.release()

    def _run_ticks(self) -> None:
        for tick in self.ticks:
            chan = self._chan
            if chan is None or not chan.is_open:
                return
            try:
                tick(chan)
            except CONNECTION_ERRORS:
                raise
            except amqp_errors.ChannelError:
                self._chan = None  # the server closed it; its deliveries went back
                self._reset()
            except Exception as exc:  # noqa: BLE001 - the side store: tried next tick
                log.warning("Lease hand-over failed (%s); trying again", exc)

    # -- calls --------------------------------------------------------------------------
    def run(self, fn: Callable[[Any], T]) -> T:
        """`fn(channel)` under the lock, with py-amqp's errors made ours."""
        with self.lock:
            try:
                return fn(self.channel())
            except amqp_errors.ChannelError as exc:
                self._chan = None  # the server closed it; its deliveries went back
                self._reset()
                raise BrokerError(f"RabbitMQ refused: {exc}") from None
            except CONNECTION_ERRORS as exc:
                self._drop()
                raise BrokerConnectionError(
                    f"cannot reach RabbitMQ at {self.target.masked}: {exc or type(exc).__name__}"
                ) from None
            except amqp_errors.AMQPError as exc:
                self._drop()
                raise BrokerConnectionError(f"RabbitMQ connection failed: {exc}") from None

    def side_channel(self, fn: Callable[[Any], T]) -> T:
        """`fn(channel)` on a throwaway channel: a passive declare of a missing queue
        closes its channel, which must never be the one holding deliveries."""
        def on_side(_: Any) -> T:
            chan = self._conn.channel()
            try:
                return fn(chan)
            finally:
                if chan.is_open:
                    try:
                        chan.close()
                    except amqp_errors.ChannelError:
                        pass
        return self.run(on_side)

    def drain(self, timeout: float, enough: Callable[[], bool] | None = None) -> None:
        """Read and dispatch what the server sends: wait at most `timeout` seconds for
        the first method, then go on with whatever has arrived already (a prefetch
        window of deliveries comes back to back) until `enough()` or nothing is left to
        read. py-amqp's drain_events alone stops after one method: one delivery per
        locked round trip of the caller."""
        def once(_: Any) -> None:
            try:
                self._conn.drain_events(timeout=max(timeout, 0.001))
            except TimeoutError:
                return
            if enough is not None:
                self.drain_ready(enough)
        self.run(once)

    def drain_ready(self, enough: Callable[[], bool]) -> None:
        """Under the lock (in a `run`): dispatch what has arrived already, never waiting
        for more, until `enough()`."""
        conn = self._conn
        try:
            while not enough() and _readable(conn.transport):
                conn.drain_events(timeout=DRAIN_CHUNK)
        except TimeoutError:
            pass

    def close(self) -> None:
        if self._pid != os.getpid():
            _INHERITED.append((self._conn, self._chan))
            self._conn = self._chan = None
            return
        with self.lock:
            conn, self._conn, self._chan = self._conn, None, None
            self._stop.set()
            self.generation = ""
            self._reset()
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a dead connection
                    pass


def _buffer_reads(transport: Any) -> None:
    """py-amqp reads each frame with three exact-size recv calls (header, payload, end
    octet); its reader keeps any surplus for the next frame, so a recv asked for at
    least RECV_SIZE bytes serves many frames with one syscall."""
    recv = getattr(transport, "_quick_recv", None)
    if recv is None or not hasattr(transport, "_read_buffer"):
        return
    transport._quick_recv = lambda n: recv(max(n, RECV_SIZE))


def _readable(transport: Any) -> bool:
    """Something to read without waiting: bytes our reader kept, TLS records already
    decrypted, or the socket's own buffer."""
    if getattr(transport, "_read_buffer", b""):
        return True
    sock = transport.sock
    if sock is None:
        return False
    pending = getattr(sock, "pending", None)
    if pending is not None and pending():
        return True
    if hasattr(select, "poll"):  # any fd number (select() stops at 1024)
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


def _after_fork_in_child() -> None:
    for link in list(_LINKS):
        link.lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)
