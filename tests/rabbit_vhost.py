"""Virtual hosts of the tests' own on the machine's RabbitMQ (127.0.0.1:5672, guest).

A test never touches a vhost it did not make. Making one with `rabbitmqctl add_vhost`
costs a second or more of CPU (an Erlang VM per call), so a session makes a pool of them
in one `rabbitmqctl eval`, hands each test a fresh one, and deletes them all at the end,
again in one call.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid

HOST, PORT = "127.0.0.1", 5672
ACTOR = "qmulti-tests"


def unavailable() -> str | None:
    """Why RabbitMQ tests cannot run here, or None."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl not found (apt-get install rabbitmq-server)"
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError as exc:
        return f"no RabbitMQ on {HOST}:{PORT} ({exc})"
    return None


def _eval(code: str) -> str:
    done = subprocess.run(["rabbitmqctl", "eval", code], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl eval failed: {done.stderr or done.stdout}")
    return done.stdout


def _names_expr(names: list[str]) -> str:
    return "[" + ", ".join(f'<<"{n}">>' for n in names) + "]"


class VhostPool:
    """`take()` gives an unused vhost; `close()` deletes every vhost made."""

    def __init__(self, size: int = 40) -> None:
        self.prefix = f"qmt_{uuid.uuid4().hex[:8]}_"
        self.size = size
        self.made: list[str] = []
        self.free: list[str] = []

    def _grow(self) -> None:
        names = [f"{self.prefix}{len(self.made) + i}" for i in range(self.size)]
        _eval(f"[begin rabbit_vhost:add(V, <<\"{ACTOR}\">>), "
              f"rabbit_auth_backend_internal:set_permissions(<<\"guest\">>, V, <<\".*\">>, "
              f"<<\".*\">>, <<\".*\">>, <<\"{ACTOR}\">>) end || V <- {_names_expr(names)}].")
        self.made += names
        self.free += names

    def take(self) -> str:
        if not self.free:
            self._grow()
        return self.free.pop(0)

    def close(self) -> None:
        if self.made:
            _eval(f"[rabbit_vhost:delete(V, <<\"{ACTOR}\">>) || V <- "
                  f"{_names_expr(self.made)}].")
            self.made, self.free = [], []


def url(vhost: str, host: str = HOST, port: int = PORT) -> str:
    return f"amqp://guest:guest@{host}:{port}/{vhost}"
