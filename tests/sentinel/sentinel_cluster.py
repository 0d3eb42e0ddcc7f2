"""A private Redis under Sentinel for one test: a master, one replica and three
`redis-server --sentinel`, on free ports, with their config files in a temp dir.

Sentinel rewrites its config file as it learns, so each gets its own writable copy.
The timings are low on purpose (down after 1 s, failover timeout 3 s) so that a drill's
failover takes seconds, not the production default's half a minute.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import redis

from helpers import free_port, wait_for
from redis_server import RedisServer

MASTER_NAME = "mymaster"
PASSWORD = "s3cr3t-pw"  # the master's and the replica's (requirepass and masterauth)
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


class SentinelProcess:
    def __init__(self, tmp_path: Path, index: int) -> None:
        self.dir = tmp_path / f"sentinel-{index}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "sentinel.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, master_port: int) -> None:
        self.conf.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}",
            f"logfile {self.dir / 'sentinel.log'}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2",
            f"sentinel auth-pass {MASTER_NAME} {PASSWORD}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1", ""]))
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server not found"
        self.proc = subprocess.Popen([binary, str(self.conf), "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           decode_responses=True)

    def master(self) -> dict[str, Any]:
        return self.client().sentinel_master(MASTER_NAME)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None


class SentinelCluster:
    """`url` is the Celery-style `sentinel://...;sentinel://...` with the master's
    password; `options` the transport options that complete it."""

    def __init__(self, tmp_path: Path, password: str = PASSWORD) -> None:
        self.password = password
        auth = ("--masterauth", password)
        self.master = RedisServer(tmp_path, password=password, appendonly=False, extra=auth)
        self.replica = RedisServer(tmp_path, password=password, appendonly=False,
                                   extra=(*auth, "--replicaof", "127.0.0.1",
                                          str(self.master.port)))
        self.sentinels = [SentinelProcess(tmp_path, i) for i in range(3)]

    @property
    def url(self) -> str:
        first, *rest = self.sentinels
        return ";".join([f"sentinel://:{self.password}@127.0.0.1:{first.port}/0",
                         *(f"sentinel://127.0.0.1:{s.port}" for s in rest)])

    def options(self, **extra: Any) -> dict[str, Any]:
        return {"master_name": MASTER_NAME, **extra}

    def servers(self) -> list[RedisServer]:
        return [self.master, self.replica]

    def start(self) -> SentinelCluster:
        self.master.start()
        self.replica.start()
        wait_for(self._replica_synced, 20, "the replica in sync with the master")
        for sentinel in self.sentinels:
            sentinel.start(self.master.port)
        wait_for(self._sentinels_ready, 30, "three sentinels that know each other and "
                 "the replica")
        return self

    def _replica_synced(self) -> bool:
        info = self.replica.client().info("replication")
        return info.get("master_link_status") == "up"

    def _sentinels_ready(self) -> bool:
        try:
            for sentinel in self.sentinels:
                seen = sentinel.master()
                if int(seen["num-other-sentinels"]) < 2 or int(seen["num-slaves"]) < 1:
                    return False
        except (redis.RedisError, KeyError):
            return False
        return True

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers names it."""
        for sentinel in self.sentinels:
            try:
                _, port = sentinel.client().sentinel_get_master_addr_by_name(MASTER_NAME)
                return int(port)
            except (redis.RedisError, TypeError):
                continue
        return None

    def current(self) -> RedisServer:
        port = self.master_port()
        return next(s for s in self.servers() if s.port == port)

    def wait_promoted(self, old_port: int, timeout: float = 60.0) -> RedisServer:
        """Block until every sentinel names a master other than `old_port` and that
        server says it is a master."""
        def moved() -> bool:
            try:
                ports = {int(s.client().sentinel_get_master_addr_by_name(MASTER_NAME)[1])
                         for s in self.sentinels}
            except (redis.RedisError, TypeError):
                return False
            if len(ports) != 1 or old_port in ports:
                return False
            server = next(s for s in self.servers() if s.port in ports)
            try:
                return server.client().info("replication")["role"] == "master"
            except redis.RedisError:
                return False
        wait_for(moved, timeout, "sentinel to promote the replica", interval=0.1)
        return self.current()

    def kill(self) -> None:
        for sentinel in self.sentinels:
            sentinel.kill()
        for server in self.servers():
            server.kill()

    def __enter__(self) -> SentinelCluster:
        try:
            return self.start()
        except BaseException:
            self.kill()
            raise

    def __exit__(self, *exc: object) -> None:
        self.kill()
