"""sd_notify without a dependency: datagrams to the socket named by NOTIFY_SOCKET.

systemd (Type=notify) and `qmulti start` both learn from these datagrams when a node
really consumes (READY=1), when it stops (STOPPING=1), and why it failed at start
(STATUS=<line> and EXIT_STATUS=<code>), which an exit code alone cannot tell them.
Sending never raises: a supervisor that went away must not take the node down.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, MutableMapping

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"
SEND_TIMEOUT = 1.0  # seconds a datagram may wait for room in the receiver's queue


class Notifier:
    """Speaks to one notify socket, or does nothing when none was given."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._watchdog_interval: float | None = None
        self._last_watchdog = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        notifier = cls(env.get(ENV_SOCKET))
        usec = env.get(ENV_WATCHDOG, "")
        owner = env.get(ENV_WATCHDOG_PID, "")
        # systemd sets WATCHDOG_PID when the watchdog is meant for a given process only.
        if usec.isdigit() and int(usec) > 0 and (not owner or owner == str(os.getpid())):
            notifier._watchdog_interval = int(usec) / 1e6 / 2  # ping at half the period
        return notifier

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: object) -> bool:
        """Send KEY=value lines in one datagram; True if it was sent."""
        if not self.address:
            return False
        text = "\n".join(f"{k.upper()}={str(v).replace(chr(10), ' ')}" for k, v in fields.items())
        address = self.address
        if address.startswith("@"):  # abstract namespace socket
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # A receiver that stopped reading (its queue is full) must not hang the
                # node's main loop: after a second the datagram is dropped.
                sock.settimeout(SEND_TIMEOUT)
                sock.connect(address)
                sock.sendall(text.encode("utf-8", "replace"))
            return True
        except OSError:
            return False

    def ready(self, status: str) -> None:
        self.send(ready=1, mainpid=os.getpid(), status=status)

    def status(self, status: str) -> None:
        self.send(status=status)

    def stopping(self, status: str = "stopping") -> None:
        self.send(stopping=1, status=status)

    def fatal(self, message: str, code: int) -> None:
        """The last words of a node that cannot start: why, and with which exit code."""
        self.send(status=message)
        self.send(exit_status=code)

    def watchdog_due_in(self) -> float | None:
        """Seconds until the next watchdog ping is due (None: no watchdog), so the main
        loop never sleeps through one."""
        if self._watchdog_interval is None:
            return None
        return max(0.0, self._last_watchdog + self._watchdog_interval - time.monotonic())

    def watchdog(self) -> None:
        """Ping the watchdog when it is due; cheap enough to call on every tick."""
        if self._watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_watchdog >= self._watchdog_interval:
            self._last_watchdog = now
            self.send(watchdog=1)


def forget_socket(environ: MutableMapping[str, str] | None = None) -> None:
    """Children must not speak for the node (a child's READY=1 would lie)."""
    env = os.environ if environ is None else environ
    for key in (ENV_SOCKET, ENV_WATCHDOG, ENV_WATCHDOG_PID):
        env.pop(key, None)
