"""Logging for a node: one format naming the node, to stderr or a log file.

A pool child either shares the node's log file (inherited, opened O_APPEND so lines
from several processes never overwrite each other) or, when the path holds `%I`,
opens its own; `expand_path` does the `%` expansion for both.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import IO

from worker.exceptions import UsageError

LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
    "warn": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
LOGGER_NAME = "worker"


def parse_level(text: str) -> int:
    try:
        return LEVELS[text.strip().lower()]
    except KeyError:
        raise UsageError(
            f"unknown log level {text!r}; use one of debug, info, warning, error, critical"
        ) from None


def split_node_name(node: str) -> tuple[str, str]:
    """`w1@host.example` -> (`w1`, `host.example`); a bare host gets Celery's `celery`."""
    name, sep, host = node.partition("@")
    if not sep:
        return "celery", node
    return name, host


def expand_hostname(template: str, host: str | None = None) -> str:
    """Expand `-n`: %h the host name with domain, %n the short host name, %d the domain."""
    host = host or socket.gethostname()
    short, _, domain = host.partition(".")
    return _expand(template, {"h": host, "n": short, "d": domain})


def expand_path(template: str, node: str, index: int | None = None) -> str:
    """Expand a --logfile/--pidfile path: %p the node name, %n its name part, %h its host
    part, %d the domain, %i the pool child index (0 for the main process), %I the same
    with a dash before it (nothing for the main process), so each child can own a file."""
    name, host = split_node_name(node)
    keys = {
        "p": node, "n": name, "h": host, "d": host.partition(".")[2],
        "i": str(index or 0), "I": f"-{index}" if index else "",
    }
    return _expand(template, keys)


def _expand(template: str, keys: dict[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "%" and i + 1 < len(template):
            key = template[i + 1]
            if key == "%":
                out.append("%")
            elif key in keys:
                out.append(keys[key])
            else:
                raise UsageError(f"unknown %{key} in {template!r}; use %h, %n, %d, %i or %I")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class _NodeFormatter(logging.Formatter):
    def __init__(self, node: str) -> None:
        # The node name goes into the format itself: a '%' in it must stay literal.
        safe = node.replace("%", "%%")
        super().__init__(f"[%(asctime)s: %(levelname)s/{safe}] %(message)s")


def setup(node: str, level: int, logfile: str | None, stream: IO[str] | None = None) -> None:
    """(Re)configure the root logger; called in the main process and again in a child
    whose log file differs from its parent's."""
    if logfile:
        handler: logging.Handler = logging.FileHandler(logfile, mode="a", encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_NodeFormatter(node))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)


def log_fd() -> int:
    """The fd the root handler writes to, for faulthandler's async-signal-safe dumps."""
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        if stream is not None:
            try:
                return int(stream.fileno())
            except (OSError, ValueError, AttributeError):
                continue
    return 2


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    return logging.getLogger(name)
