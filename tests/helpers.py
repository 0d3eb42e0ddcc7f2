"""Small shared test utilities: waiting on conditions with deadlines, free ports."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, what: str = "condition",
             interval: float = 0.02) -> T:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline.

    Polling with a deadline, never a bare sleep, keeps tests fast when things work and
    bounded when they do not.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_of(path: Path, tag: str) -> list[psutil.Process]:
    """Every live process working under `path` or carrying `QMULTI_TEST_TAG=tag`.

    Nodes run in the directory they were started from; the tag covers a launcher
    before that. (setproctitle overwrites a node's environ block, so the tag alone
    would miss nodes.) Used to clean up everything a test led to, and only that.
    """
    found = []
    marker = f"QMULTI_TEST_TAG={tag}".encode()
    where = str(path)
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cwd = proc.cwd()
            if cwd == where or cwd.startswith(where + os.sep):
                found.append(proc)
                continue
            with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                if marker in fh.read().split(b"\0"):
                    found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found
