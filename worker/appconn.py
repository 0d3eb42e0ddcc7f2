"""The connections half of `App`: this process's broker and backend, made on first use.

They are remembered together with the pid that made them: a forked pool child that
touches `app.broker` gets its own connection instead of sharing the parent's socket or
SQLite handle (which corrupts both), and with the settings generation and environment
overrides they were made under, so one identity test per `delay()` finds them still
valid without the lock.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmulti.brokers import Broker, ResultBackend
    from qmulti.config import Config


class Connections:
    """Mixed into `App`, which sets every attribute below in its `__init__`."""

    conf: Config
    _lock: Any
    _lock_pid: int
    _broker: Broker | None
    _backend: ResultBackend | None
    _conn_key: tuple[Any, ...] | None
    _fast: Any
    _inherited: list[object]
    _result_cache: Any
    _finalized: tuple[bool, bool]  # App.finalize: its signals sent

    def finalize(self, auto: bool = False) -> None:  # pragma: no cover - App's
        raise NotImplementedError

    def _connections(self) -> tuple[Broker, ResultBackend]:
        fast = self._fast
        if (fast is not None and fast[0] == os.getpid() and fast[1] is self.conf.generation
                and fast[2] == self.conf.env_overrides()):
            return fast[3]
        return self._connect()

    def _connect(self) -> tuple[Broker, ResultBackend]:
        """The slow path: (re)connect if this process or the settings changed."""
        if self._finalized != (True, True):
            self.finalize()  # the first use of the app's settings (Celery's first read)
        conf = self.conf
        pid = os.getpid()
        if self._lock_pid != pid:
            self._new_lock(pid)
        generation, env = conf.generation, conf.env_overrides()  # before what they cover
        key = (pid, conf.broker_url, conf.result_backend, conf.broker_max_deliveries,
               conf.broker_pool_limit, conf.broker_connection_timeout,
               repr(conf.broker_transport_options),
               repr(conf.result_backend_transport_options))
        with self._lock:
            if self._conn_key != key:
                self._fast = None
                if self._conn_key is not None and self._conn_key[0] == key[0]:
                    self._close()  # settings changed in this process: the old ones are ours
                else:
                    self._forget_inherited()
                from qmulti.brokers import connect  # first use only: no broker at import
                from qmulti.config import UNSUPPORTED

                UNSUPPORTED.report()

                broker, backend = connect(conf)
                self._broker, self._backend, self._conn_key = broker, backend, key
            assert self._broker is not None and self._backend is not None
            pair = (self._broker, self._backend)
            self._fast = (pid, generation, env, pair)
            return pair

    @property
    def broker(self) -> Broker:
        """This process's broker connection, made on first use (again after a fork)."""
        return self._connections()[0]

    @property
    def backend(self) -> ResultBackend:
        """This process's result backend: the broker's own store unless configured."""
        return self._connections()[1]

    def reset_after_fork(self) -> None:
        """Forget the parent's connections without closing them (closing would shut the
        parent's sockets); the next use connects afresh. Pool children call this first."""
        if self._lock_pid != os.getpid():
            self._new_lock(os.getpid())
        with self._lock:
            if self._conn_key is not None and self._conn_key[0] != os.getpid():
                self._forget_inherited()
            self._fast = None
            self._broker = self._backend = None
            self._conn_key = None
            self._result_cache = None
        for fixup in getattr(self, "fixups", ()):
            fixup.on_worker_process_init()

    def _new_lock(self, pid: int) -> None:
        """A lock inherited through fork may be held by a parent thread that does not
        exist here; the child (single-threaded at that point) starts with a fresh one."""
        self._lock = threading.RLock()
        self._lock_pid = pid
        self._fast = None
        self._result_cache = None

    def _forget_inherited(self) -> None:
        self._fast = None
        self._inherited.extend(c for c in (self._broker, self._backend) if c is not None)
        self._broker = self._backend = None

    def close(self) -> None:
        """Close this process's connections; they are reopened if the app is used again."""
        with self._lock:
            if self._conn_key is not None and self._conn_key[0] == os.getpid():
                self._close()
            else:
                self._forget_inherited()
            self._fast = None
            self._broker = self._backend = None
            self._conn_key = None

    def _close(self) -> None:
        broker, backend = self._broker, self._backend
        if backend is not None and backend is not broker:
            backend.close()
        if broker is not None:
            broker.close()
