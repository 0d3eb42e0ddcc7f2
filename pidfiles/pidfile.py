"""The owning side of a pidfile: create it atomically, hold its lock, release it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Mapping, MutableMapping
from types import TracebackType

from qmulti.pidfiles.errors import AlreadyRunning, PidfileError
from qmulti.pidfiles.probe import lock_or_held, open_existing, read_pid_fd, unlink_if_same

# The locked fd number survives os.execv (HUP re-exec) under this variable.
ENV_FD = "QMULTI_PIDFILE_FD"

# How many times acquire() retries linking when the path keeps changing under it
# (a stale file removed and another starter's file appearing, ...).
_LINK_ATTEMPTS = 20

# O_RDWR, not O_WRONLY: adopt_from_env() reads the pid back through this fd.
_CREATE_TEMP = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Pidfile:
    """One pidfile, held locked by this process from acquire() to release().

    Only the process that acquired (or adopted) the file acts as its owner:
    release() in a forked child merely closes the child's copy of the fd, so an
    unguarded ``with`` block or atexit hook in a child cannot remove the
    parent's pidfile nor drop its lock.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._given = os.fspath(path)
        # Absolute, because a detached daemon changes directory after acquiring.
        self._path = os.path.abspath(self._given)
        self._fd: int | None = None
        self._owner: int | None = None

    def __repr__(self) -> str:
        return f"<Pidfile {self._given!r} fd={self._fd} locked={self.locked}>"

    @property
    def path(self) -> str:
        return self._path

    @property
    def fd(self) -> int | None:
        return self._fd

    @property
    def locked(self) -> bool:
        return self._fd is not None and self._owner == os.getpid()

    def __enter__(self) -> Pidfile:
        if not self.locked:
            self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    # -- acquiring -------------------------------------------------------

    def acquire(self, pid: int | None = None, *, make_dirs: bool = False) -> Pidfile:
        """Create the pidfile holding *pid* (default: ours) and keep it locked.

        The temp file is locked before it is linked into place, so no reader
        ever sees it unlocked (which would make it look stale) or half written.
        Raises AlreadyRunning if a live process holds it, PidfileError otherwise.
        """
        if self._fd is not None:
            raise PidfileError(f"pidfile {self._given} is already acquired by this object")
        directory = os.path.dirname(self._path)
        if make_dirs:
            try:
                os.makedirs(directory, mode=0o755, exist_ok=True)
            except OSError as exc:
                raise self._create_error(exc, directory) from None
        fd, temp = self._make_temp(directory, os.getpid() if pid is None else pid)
        try:
            self._link_into_place(temp)
        except BaseException:
            os.close(fd)
            raise
        finally:
            # A leftover dot-file would be harmless; the pidfile itself is right.
            with contextlib.suppress(OSError):
                os.unlink(temp)
        self._fd = fd
        self._owner = os.getpid()
        return self

    def _make_temp(self, directory: str, pid: int) -> tuple[int, str]:
        name = f".{os.path.basename(self._path)}.{secrets.token_hex(6)}.tmp"
        temp = os.path.join(directory, name)
        try:
            fd = os.open(temp, _CREATE_TEMP, 0o644)
        except OSError as exc:
            raise self._create_error(exc, directory) from None
        try:
            # umask may have narrowed it; `cat`, systemd and qmulti must read it.
            os.fchmod(fd, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{pid}\n".encode("ascii"))
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise self._create_error(exc, directory) from None
        return fd, temp

    def _link_into_place(self, temp: str) -> None:
        for _ in range(_LINK_ATTEMPTS):
            try:
                # link() never replaces nor follows what is at the path.
                os.link(temp, self._path, follow_symlinks=False)
                return
            except FileExistsError:
                pass
            except OSError as exc:
                raise self._create_error(exc, os.path.dirname(self._path)) from None
            self._clear_existing()
        raise PidfileError(
            f"cannot create pidfile {self._given}: other processes keep replacing it; "
            "check that no other node uses the same --pidfile"
        )

    def _clear_existing(self) -> None:
        """Remove a stale file at the path, or raise if it is held or unusable."""
        try:
            fd = open_existing(self._path)
        except FileNotFoundError:
            return  # vanished in between: just link again
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PidfileError(
                    f"pidfile {self._given} is a symbolic link; refusing to follow it: "
                    "remove it or choose another --pidfile"
                ) from None
            raise PidfileError(
                f"cannot read existing pidfile {self._given} ({exc.strerror}); "
                "remove it or choose another --pidfile"
            ) from None
        try:
            try:
                pid = read_pid_fd(fd)
            except OSError:
                pid = None
            if not lock_or_held(fd, pid):
                raise AlreadyRunning(self._given, pid)
            try:
                unlink_if_same(self._path, fd)
            except OSError as exc:
                raise PidfileError(
                    f"cannot remove stale pidfile {self._given} ({exc.strerror}); "
                    "remove it by hand or choose another --pidfile"
                ) from None
        finally:
            os.close(fd)

    def _create_error(self, exc: OSError, directory: str) -> PidfileError:
        if exc.errno == errno.ENOENT:
            what = f"directory {directory} does not exist ({exc.strerror}); create it or"
        elif exc.errno == errno.ENOTDIR:
            what = f"{directory} is not a directory ({exc.strerror});"
        else:
            what = f"{exc.strerror} in {directory};"
        return PidfileError(
            f"cannot create pidfile {self._given}: {what} pass a --pidfile in a writable directory"
        )

    # -- releasing -------------------------------------------------------

    def release(self) -> None:
        """Remove the pidfile if it is still ours, then drop the lock. Idempotent.

        Unlink comes first so no prober sees our file unlocked in between; a file
        someone else put at the path meanwhile is left alone.
        """
        fd = self._fd
        if fd is None:
            return
        if self._owner != os.getpid():
            self.close_in_child()
            return
        self._fd = self._owner = None
        try:
            unlink_if_same(self._path, fd)
        except OSError:
            pass  # the explicit unlock below still makes a leftover file stale
        finally:
            # Explicit unlock: a child that forgot close_in_child() must not keep
            # a leftover file looking alive after we are gone.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def close_in_child(self) -> None:
        """Close this process's copy of the fd without unlocking (call after fork).

        flock belongs to the open file description shared with the parent, so
        closing our copy leaves the parent's lock intact, whereas LOCK_UN here
        would drop it. Children must close it so that a dead node whose child
        lingers does not look alive.
        """
        fd = self._fd
        self._fd = self._owner = None
        if fd is not None:
            os.close(fd)

    # -- HUP re-exec -----------------------------------------------------

    def keep_across_exec(self) -> dict[str, str]:
        """Let the locked fd survive os.execv; return the env additions for the new image.

        Call right before exec: until then any process this one spawns would
        inherit the fd too.
        """
        if not self.locked or self._fd is None:
            raise PidfileError(f"pidfile {self._given} is not held by this process")
        os.set_inheritable(self._fd, True)
        return {ENV_FD: str(self._fd)}

    @classmethod
    def adopt_from_env(
        cls,
        path: str | os.PathLike[str],
        environ: Mapping[str, str] | None = None,
    ) -> Pidfile | None:
        """Take over the locked fd passed by keep_across_exec(); None if none was passed.

        Verifies the fd is the file at *path* and names our pid, then removes the
        variable from *environ* (default os.environ) so children never see it.
        """
        env = os.environ if environ is None else environ
        raw = env.get(ENV_FD)
        if raw is None:
            return None
        if isinstance(env, MutableMapping):
            del env[ENV_FD]
        pf = cls(path)
        if not raw.isdigit():
            raise PidfileError(f"{ENV_FD}={raw!r} is not an fd number; unset it and restart")
        fd = int(raw)
        try:
            mine = os.fstat(fd)
            there = os.lstat(pf.path)
        except OSError as exc:
            raise PidfileError(
                f"cannot adopt pidfile {pf._given} from {ENV_FD}={fd} ({exc.strerror}); "
                "stop the node and start it again"
            ) from None
        if not stat.S_ISREG(mine.st_mode) or (mine.st_dev, mine.st_ino) != (
            there.st_dev,
            there.st_ino,
        ):
            raise PidfileError(
                f"cannot adopt pidfile {pf._given}: fd {fd} is not that file; "
                "stop the node and start it again"
            )
        try:
            pid = read_pid_fd(fd)
        except OSError:
            pid = None
        if pid != os.getpid():
            raise PidfileError(
                f"cannot adopt pidfile {pf._given}: it names pid {pid}, not {os.getpid()}; "
                "stop the node and start it again"
            )
        try:
            # Our description already holds the lock, so this only confirms it.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise AlreadyRunning(pf._given, pid) from None
        os.set_inheritable(fd, False)
        pf._fd = fd
        pf._owner = os.getpid()
        return pf
