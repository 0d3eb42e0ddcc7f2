"""A private `redis-server` for one bench run.

Never the shared server on 6379: other helpers' tests use it, a bench flushes its
database between phases, and both sides must meet a broker with nothing else on it.
No persistence by default, as a benchmark wants the broker's speed, not the disk's;
the soak asks for an append-only server, since it restarts Redis and must lose nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from bench import procs


class RedisProc:
    """One redis-server on a free loopback port with its data dir under `root`."""

    def __init__(self, root: Path, run_id: str, appendonly: bool = False,
                 name: str = "redis", extra: tuple[str, ...] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: install it (apt-get install redis-server)")
        self.binary = binary
        self.dir = root / name
        self.extra = extra  # more server options (`--replicaof HOST PORT`)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self.appendonly = appendonly
        self.port = procs.free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=10)

    def start(self) -> RedisProc:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "",
                *(["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly
                  else ["--appendonly", "no"]),
                "--daemonize", "no", "--logfile", str(self.dir / "redis.log"), *self.extra]
        self.proc = procs.spawn(argv, self.dir, procs.bench_env(self.run_id),
                                self.dir / "stdout.log")
        procs.wait_until(self._answers, 15, f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited ({self.proc.returncode}): "
                               f"{procs.tail(self.dir / 'redis.log', 5)}")
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def flush(self) -> None:
        """Both sides and every phase start from an empty server."""
        self.client().flushall()

    def stop(self) -> None:
        """TERM first: an append-only server writes its file out before it exits."""
        if self.proc is not None:
            procs.stop_group(self.proc, timeout=10)
            self.proc = None

    def restart(self, down_for: float = 1.0) -> None:
        """Stop, stay down `down_for` seconds (the outage the soak wants), start again."""
        self.stop()
        time.sleep(down_for)  # the outage itself
        self.start()
