"""Logging for a node: one format naming the node, to stderr or a log file.

A pool child either shares the node's log file (inherited, opened O_APPEND so lines
from several processes never overwrite each other) or, when the path holds `%I`,
opens its own; `expand_path` does the `%` expansion for both.

Rotation. Every log file is opened O_APPEND, so logrotate's `copytruncate` is safe:
after the truncation the next write lands at the new end of file, not at the old
offset (which would leave a hole of NUL bytes). For rename-style rotation, USR2 to the
node's main process reopens the log files (`reopen`): the main process reopens its own
and sends CHILD_REOPEN_SIGNAL (WINCH) to each prefork child, which reopens its own
(shared or `%I`) file. Children get WINCH, not USR2, because USR2 is their warm-stop
signal; WINCH is ignored by default, so a child that has no handler yet cannot die of
it. Reopening dup2()s the freshly opened file onto the handler's existing fd: the
logging stream object and faulthandler's fd number stay valid, nothing is closed under
a thread that is writing, and it is safe to do from a Python signal handler.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from qmulti.exceptions import ConfigError, UsageError
from qmulti.system.expand import expand, host_keys

LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
    "warn": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
LOGGER_NAME = "qmulti"
TASK_LOGGER = "qmulti.task"  # the parent of the task loggers (Celery's celery.task)
CHILD_REOPEN_SIGNAL = signal.SIGWINCH


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
    return _expand(template, host_keys(host or socket.gethostname()))


def per_child(template: str | None) -> bool:
    """Whether a --logfile template gives each pool child a file of its own."""
    return template is not None and ("%i" in template or "%I" in template)


def child_logfile(template: str | None, node: str, index: int) -> str | None:
    """Pool child `index`'s own log file, or None when the children share the node's."""
    if template is None or not per_child(template):
        return None
    return expand_path(template, node, index)


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
    def unknown(key: str) -> UsageError:
        return UsageError(f"unknown %{key} in {template!r}; use %h, %n, %d, %i or %I")

    return expand(template, keys, unknown)


class _NodeFormatter(logging.Formatter):
    """The node's format; a record from a task logger (`qmulti.utils.log`) also names
    its task, as Celery's `worker_task_log_format` does."""

    def __init__(self, node: str) -> None:
        # The node name goes into the format itself: a '%' in it must stay literal.
        safe = node.replace("%", "%%")
        super().__init__(f"[%(asctime)s: %(levelname)s/{safe}] %(message)s")
        self._task = logging.Formatter(
            f"[%(asctime)s: %(levelname)s/{safe}] %(task_name)s[%(task_id)s]: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, "task_id"):
            return self._task.format(record)
        return super().format(record)


# As pidfiles are opened: never through a symlink (a `w1.log` link to another file
# would make the node append to that file), always O_APPEND (see Rotation above).
_LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class LogFileError(ConfigError):
    """A log file path that cannot be used: refused in one line (exit 78)."""


def open_log(path: str) -> int:
    """Open `path` for appending without following a symlink; LogFileError otherwise."""
    if os.path.islink(path):
        raise LogFileError(f"log file {path} is a symlink; refusing to follow it: pass the "
                           "real path to --logfile")
    try:
        return os.open(path, _LOG_FLAGS, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LogFileError(f"log file {path} is a symlink; refusing to follow it: pass "
                               "the real path to --logfile") from None
        raise LogFileError(f"cannot open log file {path}: {exc.strerror}; pass another "
                           "--logfile") from None


class _NoFollowFileHandler(logging.FileHandler):
    """A FileHandler whose file is opened by `open_log` (O_NOFOLLOW, O_APPEND)."""

    def _open(self) -> IO[str]:
        return os.fdopen(open_log(self.baseFilename), "a", encoding=self.encoding)


def setup(node: str, level: int, logfile: str | None, stream: IO[str] | None = None) -> None:
    """(Re)configure the root logger; called in the main process and again in a child
    whose log file differs from its parent's.

    Celery's logging signals: a `setup_logging` receiver replaces all of this (the node
    leaves logging to it); otherwise `after_setup_logger` and `after_setup_task_logger`
    follow, so a receiver can add a handler of its own."""
    from qmulti import signals

    formatter = _NodeFormatter(node)
    info = {"loglevel": level, "logfile": logfile, "format": formatter._fmt,
            "colorize": False}
    if signals.setup_logging.receivers and signals.setup_logging.send(sender=None, **info):
        return
    if logfile:
        handler: logging.Handler = _NoFollowFileHandler(logfile, mode="a", encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    if signals.after_setup_logger.receivers:
        signals.after_setup_logger.send(sender=None, logger=root, **info)
    if signals.after_setup_task_logger.receivers:
        # Task loggers propagate to the root handler configured above.
        signals.after_setup_task_logger.send(sender=None, logger=logging.getLogger(TASK_LOGGER),
                                             **info)


@contextmanager
def quiet_for_fork() -> Iterator[None]:
    """Hold every root handler's lock across a fork: a node thread (the scheduler, the
    control listener, a broker warning) writing a record at that instant would leave the
    child a log stream whose buffer lock nobody will release, and the child would hang
    at its first line. The child gets fresh handler locks from logging's own fork hook;
    only the parent releases these."""
    handlers = list(logging.getLogger().handlers)
    parent = os.getpid()
    for handler in handlers:
        handler.acquire()
    try:
        yield
    finally:
        if os.getpid() == parent:
            for handler in reversed(handlers):
                handler.release()


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


def reopen(flush: bool = True) -> list[str]:
    """Reopen the root logger's files at their paths (after a rename by logrotate);
    returns the paths reopened. `flush=False` from a signal handler: flushing a buffered
    stream that the interrupted code may be writing raises a reentrancy error (the
    handler flushes after every record anyway, so nothing is normally pending)."""
    done: list[str] = []
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        if not isinstance(handler, logging.FileHandler) or stream is None:
            continue
        try:
            if flush:
                handler.flush()
            fd = stream.fileno()
            old = os.fstat(fd)
            new = open_log(handler.baseFilename)
        except (OSError, ValueError, LogFileError):
            continue  # unwritable now: keep logging to the old file rather than nowhere
        try:
            # A detached node's stdout/stderr are the log file too (stray prints,
            # a dying interpreter's traceback): move them along with it.
            for std in (1, 2):
                if _same_file(std, old):
                    os.dup2(new, std)
            os.dup2(new, fd, inheritable=False)
        finally:
            os.close(new)
        done.append(handler.baseFilename)
    return done


def reopen_on_signal(signum: int, frame: Any) -> None:
    """A pool child's handler for CHILD_REOPEN_SIGNAL."""
    reopen(flush=False)


def _same_file(fd: int, st: os.stat_result) -> bool:
    try:
        other = os.fstat(fd)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    return logging.getLogger(name)
