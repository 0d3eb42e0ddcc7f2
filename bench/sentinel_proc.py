"""A private Redis under Sentinel for the bench: master, one replica, three sentinels.

Each sentinel gets a config file of its own in the run's temp dir (Sentinel rewrites
it); all of them carry the run's marker, so the bench's sweep ends them with the rest.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from bench import procs
from bench.redis_proc import RedisProc


class SentinelSet:
    name = "benchmaster"

    def __init__(self, root: Path, run_id: str) -> None:
        self.root, self.run_id = root, run_id
        self.master = RedisProc(root, run_id, name="master")
        self.replica = RedisProc(root, run_id, name="replica",
                                 extra=("--replicaof", "127.0.0.1", str(self.master.port)))
        self.ports = [procs.free_port() for _ in range(3)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{port}/0" for port in self.ports)

    def start(self) -> SentinelSet:
        self.master.start()
        self.replica.start()
        binary = shutil.which("redis-server")
        assert binary is not None
        for i, port in enumerate(self.ports):
            where = self.root / f"sentinel{i}"
            where.mkdir(parents=True, exist_ok=True)
            conf = where / "sentinel.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {where}\n"
                            f"sentinel monitor {self.name} 127.0.0.1 {self.master.port} 2\n")
            self.procs.append(procs.spawn([binary, str(conf), "--sentinel"], where,
                                          procs.bench_env(self.run_id), where / "out.log"))
        procs.wait_until(self._ready, 60, "sentinels that know the master and replica")
        return self

    def _ready(self) -> bool:
        try:
            for port in self.ports:
                seen = redis.Redis(port=port, socket_timeout=2,
                                   decode_responses=True).sentinel_master(self.name)
                if int(seen["num-slaves"]) < 1 or int(seen["num-other-sentinels"]) < 2:
                    return False
            return self.master.client().info("replication")["connected_slaves"] >= 1
        except (redis.RedisError, KeyError):
            return False

    def stop(self) -> None:
        for proc in self.procs:
            procs.stop_group(proc, timeout=10)
        self.replica.stop()
        self.master.stop()
