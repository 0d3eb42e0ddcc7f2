"""A private `rabbitmq-server` for tests that stop or restart the broker.

The machine's RabbitMQ on 5672 is shared, so a test that takes the broker down runs its
own: its own node name, AMQP port and distribution port (RABBITMQ_DIST_PORT), data and
logs in the test's tmp dir, its own HOME (so its own .erlang.cookie), its own config
file (the machine's names port 5672) and env file (the machine's names the node). It
registers with the machine's epmd like any node. `restart()` keeps the data dir, as an
operator's restart does; `stop()` ends the whole process group it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from helpers import free_port, wait_for

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def unavailable() -> str | None:
    if not os.access(SERVER, os.X_OK):
        return f"{SERVER} not found (apt-get install rabbitmq-server)"
    return None


class PrivateRabbit:
    def __init__(self, root: Path, config: str = "", advanced: str = "") -> None:
        """`config` is added to rabbitmq.conf, `advanced` (Erlang terms, such as
        `{rabbit, [{channel_tick_interval, 250}]}`) goes into advanced.config."""
        self.dir = root
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"qmt{os.getpid()}p{self.port}@localhost"
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "log.file.level = warning\n" + config)
        (self.dir / "rabbitmq-env.conf").write_text("")
        if advanced:
            (self.dir / "advanced.config").write_text(f"[{advanced}].\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        self.env = dict(
            os.environ, HOME=str(self.dir), RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.dir / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.dir / "rabbit.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout: float = 90.0) -> PrivateRabbit:
        out = open(self.dir / "server.out", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([SERVER], env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        wait_for(self._answers, timeout, f"private rabbitmq-server on port {self.port}",
                 interval=0.2)
        return self

    def _answers(self) -> bool:
        import amqp

        if self.proc is not None and self.proc.poll() is not None:
            tail = (self.dir / "server.out").read_text(errors="replace")[-800:]
            raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}: {tail}")
        try:
            conn = amqp.Connection(f"127.0.0.1:{self.port}", userid="guest", password="guest",
                                   connect_timeout=2)
            conn.connect()
            conn.close()
            return True
        except Exception:  # noqa: BLE001 - not up yet: refused, reset, or still booting
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """TERM (the node stops cleanly, as `rabbitmqctl stop`), KILL past `timeout`."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the group's helpers (erl_child_setup) too
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)  # the outage itself: clients see the broker gone this long
        self.start()

    def __enter__(self) -> PrivateRabbit:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
