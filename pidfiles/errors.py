"""Pidfile errors.

They live apart from ``worker.exceptions`` because this package is shared by the
node and the controller and must not import either; each entry point maps them
to its own exit code. Every message is one line that says what to do, so an
entry point can print ``str(exc)`` as-is.
"""

from __future__ import annotations


class PidfileError(Exception):
    """A pidfile could not be created, read, adopted or removed."""


class AlreadyRunning(PidfileError):
    """The pidfile's lock is held: a live process owns it.

    Carries the pid the file names (``None`` if unreadable) and its path so the
    caller can word its own message or decide to skip that node.
    """

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        named = f"pid {pid}" if pid is not None else "pid unreadable"
        super().__init__(
            f"pidfile {path} is held by a running process ({named}); "
            "stop that node first or choose another --pidfile"
        )
