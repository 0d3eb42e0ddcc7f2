"""Read-only questions about a pidfile: is it held, and by whom does it claim to be.

Liveness is decided by the lock alone. The pid in the file is reported for
messages and for signalling, but a file whose lock is free is stale even if
its pid happens to name a live process (pid reuse after a crash or reboot).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from dataclasses import dataclass
from typing import Literal

from qmulti.pidfiles.errors import PidfileError

State = Literal["running", "stale", "missing", "unreadable"]

# Another process may hold a lock on a stale file for a few microseconds while
# it probes or removes it; a probe that meets that lock must not report
# "running" (that would block a start). So a busy lock is retried this long.
PROBE_PATIENCE = 0.3
# Patience when /proc/locks shows the holder is the pid the file names.
OWNER_PATIENCE = 0.01

# O_NONBLOCK: opening a FIFO planted at the path must not hang the probe.
# O_NOFOLLOW: a symlink at the path is never followed (fails with ELOOP).
_OPEN_EXISTING = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

# A pidfile is a handful of bytes; anything longer is read only this far.
_MAX_READ = 64


@dataclass(frozen=True)
class PidfileStatus:
    """What :func:`probe` found. Callers signal ``pid`` only if ``state == "running"``."""

    path: str
    state: State
    pid: int | None = None
    reason: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"


def parse_pid(data: bytes) -> int | None:
    """The pid on the first line, or None when it is not a positive decimal."""
    first = data.split(b"\n", 1)[0].strip()
    if not first.isdigit():
        return None
    pid = int(first)
    return pid if pid > 0 else None


def read_pid_fd(fd: int) -> int | None:
    return parse_pid(os.pread(fd, _MAX_READ, 0))


def open_existing(path: str) -> int:
    """Open the file at *path* for locking without following a symlink.

    Raises OSError (ENOENT, ELOOP for a symlink, ...) or PidfileError when the
    path is not a regular file.
    """
    fd = os.open(path, _OPEN_EXISTING)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PidfileError(
                f"pidfile {path} is not a regular file; remove it or choose another --pidfile"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _flock_holder_pids(inode: int) -> set[int]:
    """Pids that /proc/locks says hold an flock write lock on *inode* (empty if unknown)."""
    pids: set[int] = set()
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.readlines()
    except OSError:
        return pids
    for line in lines:
        fields = line.split()
        # "N: FLOCK ADVISORY WRITE <pid> <maj:min:inode> 0 EOF"; waiters have "->".
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[3] != "WRITE":
            continue
        if fields[5].rsplit(":", 1)[-1] == str(inode) and fields[4].isdigit():
            pids.add(int(fields[4]))
    return pids


def lock_or_held(fd: int, named_pid: int | None, patience: float = PROBE_PATIENCE) -> bool:
    """Try to take the exclusive lock on *fd*; True if taken, False if really held.

    A held lock is retried for *patience* seconds because a prober or a
    stale-file remover elsewhere holds it only briefly. When /proc/locks shows
    the holder is the very pid the file names, it is almost surely the owner,
    so the wait is cut short and a running node answers in ~10 ms.
    """
    deadline = time.monotonic() + patience
    delay = 0.001
    first = True
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if first:
            first = False
            if named_pid is not None and named_pid in _flock_holder_pids(os.fstat(fd).st_ino):
                # Still a few retries: the named pid might be a reused one that
                # now belongs to a prober, whose lock lasts microseconds.
                deadline = min(deadline, time.monotonic() + OWNER_PATIENCE)
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def probe(path: str | os.PathLike[str]) -> PidfileStatus:
    """Report the state of the pidfile at *path*; never creates, changes or raises.

    The lock attempt is released at once, so it never disturbs an owner (whose
    exclusive lock makes the attempt fail) nor a starting node (which retries).
    """
    spath = os.fspath(path)
    try:
        fd = open_existing(spath)
    except FileNotFoundError:
        return PidfileStatus(spath, "missing")
    except PidfileError as exc:
        return PidfileStatus(spath, "unreadable", reason=str(exc))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ELOOP:
            reason = "it is a symbolic link, which is never followed"
        return PidfileStatus(spath, "unreadable", reason=reason)
    try:
        try:
            pid = read_pid_fd(fd)
        except OSError as exc:
            return PidfileStatus(spath, "unreadable", reason=exc.strerror or str(exc))
        try:
            taken = lock_or_held(fd, pid)
        except OSError as exc:
            return PidfileStatus(spath, "unreadable", pid, reason=exc.strerror or str(exc))
        return PidfileStatus(spath, "stale" if taken else "running", pid)
    finally:
        os.close(fd)  # also drops our probe lock, if we took it


def unlink_if_same(path: str, fd: int) -> bool:
    """Unlink *path* only while it still names the inode open on *fd*.

    Guards against removing a file another process linked into place after we
    opened ours (its inode differs). Returns True if unlinked.
    """
    mine = os.fstat(fd)
    try:
        there = os.lstat(path)
    except FileNotFoundError:
        return False
    if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
        return False
    os.unlink(path)
    return True


def remove_stale(path: str | os.PathLike[str]) -> bool:
    """Remove the pidfile at *path* if its lock is free; True if it was removed.

    The lock is held while checking the inode and unlinking, and a live owner
    locks its file before linking it into place, so a running node's pidfile
    (or one that just replaced the stale file) is never removed.
    Raises PidfileError only when a stale file cannot be unlinked.
    """
    spath = os.fspath(path)
    try:
        fd = open_existing(spath)
    except (OSError, PidfileError):
        return False
    try:
        try:
            pid = read_pid_fd(fd)
        except OSError:
            pid = None
        if not lock_or_held(fd, pid):
            return False
        try:
            return unlink_if_same(spath, fd)
        except OSError as exc:
            raise PidfileError(
                f"cannot remove stale pidfile {spath} ({exc.strerror}); "
                "remove it by hand or choose another --pidfile"
            ) from None
    finally:
        os.close(fd)
