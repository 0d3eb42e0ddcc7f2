"""The environment a node is started with, by `qmulti start` and by `qmulti supervise`
alike, so a node behaves the same under either."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

__all__ = ["node_environ"]

# systemd's per-process variables: they name our pid and our sockets, not the node's
NOT_INHERITED = ("WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


def node_environ(extra: Iterable[tuple[str, str]], notify_socket: str,
                 base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment (or `base`) plus the node's own variables (`-b` and the like, kept
    out of `ps`), with NOTIFY_SOCKET at `notify_socket`: the node reports READY=1 to
    its launcher, which speaks for it to systemd."""
    env = dict(os.environ if base is None else base)
    env.update(extra)
    for key in NOT_INHERITED:
        env.pop(key, None)
    env["NOTIFY_SOCKET"] = notify_socket
    return env
