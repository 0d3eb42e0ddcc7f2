"""A private `redis-server` for one test: free port, own data dir, stoppable and killable.

Tests never use the machine's shared Redis: each starts its own so that it can stop,
restart or kill the server without disturbing anyone, and so runs are parallel-safe.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from helpers import free_port, wait_for


class RedisServer:
    """One redis-server process; `restart()` keeps the port and the data (AOF) dir."""

    def __init__(self, tmp_path: Path, password: str | None = None,
                 appendonly: bool = True, unixsocket: bool = False,
                 also_bind: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found; install it (apt-get install redis-server)")
        self.binary = binary
        self.dir = tmp_path / f"redis-{id(self):x}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.appendonly = appendonly
        self.also_bind = also_bind  # more addresses to listen on (a drill's veth)
        self.extra = extra  # more server options (`--replicaof`, `--masterauth`...)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # A unix socket path must stay under ~100 bytes: pytest's tmp paths can be longer.
        self.socket_path: Path | None = None
        if unixsocket:
            self.socket_path = Path(tempfile.mkdtemp(prefix="qr", dir="/tmp")) / "redis.sock"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=5)

    def start(self) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", *self.also_bind,
                "--dir", str(self.dir), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always" if self.appendonly else "no",
                "--logfile", str(self.dir / "redis.log"), "--daemonize", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.also_bind:  # reached from another network namespace: not loopback
            args += ["--protected-mode", "no"]
        args += self.extra
        if self.socket_path is not None:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(self._answers, 15, f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.dir / "redis.log")
            tail = log.read_text()[-500:] if log.exists() else ""
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {tail}")
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """A clean shutdown: the AOF is on disk, as after `systemctl stop redis`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down `down_for` seconds (an outage a test wants), start again."""
        self.stop()
        if down_for:
            time.sleep(down_for)  # the outage itself is what the test measures
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
        if self.socket_path is not None:
            shutil.rmtree(self.socket_path.parent, ignore_errors=True)
