"""Pidfiles whose liveness is a lock question, shared by ``qworker`` and ``qmulti``.

A pidfile holds the decimal pid alone on its first line (``"1234\\n"``), so
``kill $(cat w1.pid)`` and systemd's ``PIDFile=`` work. The owning node holds an
exclusive ``flock`` on it for its whole life; a pidfile whose lock is free is
stale whatever pid it names, so a reused pid never blocks a start nor makes a
stop signal a stranger.

Owner side (the node)::

    pf = Pidfile("w1.pid").acquire()          # or: with Pidfile(path) as pf: ...
    ...                                       # fork children: pf.close_in_child() in each
    os.environ.update(pf.keep_across_exec())  # HUP: then os.execv(...)
    pf = Pidfile.adopt_from_env("w1.pid")     # in the new image (None if not re-exec'd)
    pf.release()

``Pidfile(path)``; ``acquire(pid=None, *, make_dirs=False) -> Pidfile``;
``release()``; ``close_in_child()``; ``keep_across_exec() -> dict[str, str]``;
``Pidfile.adopt_from_env(path, environ=None) -> Pidfile | None``; properties
``path`` (absolute), ``fd``, ``locked``.

Reader side (the controller)::

    st = probe("w1.pid")        # PidfileStatus(path, state, pid, reason)
    if st.state == "running":   # "running" | "stale" | "missing" | "unreadable"
        os.kill(st.pid, signal.SIGTERM)
    remove_stale("w1.pid")      # True if a stale file was removed

Creation writes a temp file in the same directory (``O_EXCL|O_NOFOLLOW``,
mode 0644), locks it, then ``link()``s it into place, so readers never see a
partial or unlocked file and a symlink at the path is refused, never followed.
Errors are :class:`PidfileError` (one line saying what to do) and its subclass
:class:`AlreadyRunning` (``.pid``, ``.path``).
"""

from qmulti.pidfiles.errors import AlreadyRunning, PidfileError
from qmulti.pidfiles.pidfile import ENV_FD, Pidfile
from qmulti.pidfiles.probe import PidfileStatus, probe, remove_stale

__all__ = [
    "ENV_FD",
    "AlreadyRunning",
    "Pidfile",
    "PidfileError",
    "PidfileStatus",
    "probe",
    "remove_stale",
]
