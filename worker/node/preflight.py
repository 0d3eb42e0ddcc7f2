"""The checks `qworker` runs in the foreground, before detaching or forking.

Each raises ConfigError (exit 78) with one line naming the option to change, so a
daemon never dies out of sight for a reason that could have been told at start: a log
file or pidfile that is a symlink, a directory or unwritable, a bad broker URL, an
unknown user.
"""

from __future__ import annotations

import os
from typing import Any

from qmulti.exceptions import ConfigError
from qmulti.node import logs
from qmulti.urls import parse_url


def check_log_files(template: str, opts: Any) -> None:
    """The main process's log file and, for a `%i`/`%I` template, each pool child's.

    A child that cannot open its file would exit at start, over and over, with no
    word logged: refused here instead. Errors name the template as given.
    """
    indexes = [None]
    if logs.per_child(template):
        indexes += list(range(1, opts.concurrency + 1))
    for index in indexes:
        path = os.path.expanduser(logs.expand_path(template, opts.name, index))
        shown = path if path == template else f"{path} (from --logfile {template})"
        check_writable_file(path, "log file", "--logfile", shown)


def check_pidfile(path: str | None) -> None:
    """In the foreground: a live node's pidfile or an unusable path fails here."""
    if not path:
        return
    from qmulti.pidfiles import AlreadyRunning, probe

    if os.path.islink(path):
        raise ConfigError(f"pidfile {path} is a symlink; refusing to follow it: pass the "
                          "real path to --pidfile")
    if os.path.isdir(path):
        raise ConfigError(f"pidfile {path} is a directory; pass a file path to --pidfile")
    status = probe(path)
    if status.state == "running":
        raise AlreadyRunning(path, status.pid)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
        why = "does not exist" if not os.path.exists(directory) else \
            "is not a writable directory"
        raise ConfigError(f"cannot create pidfile {path}: {directory} {why}; pass a --pidfile "
                          "in a writable directory")


def validate_broker(app: Any) -> None:
    """Bad scheme or an unusable store path: ConfigError (78) before anything starts.
    Constructing a store checks its URL and path without connecting."""
    from qmulti.brokers import connect

    conf = app.conf
    parse_url(conf.broker_url, "broker")
    backend_url = getattr(conf, "result_backend", None)
    if backend_url:
        parse_url(backend_url, "result backend")
    broker, backend = connect(conf)
    if backend is not broker:
        backend.close()
    broker.close()


def check_writable_file(path: str, what: str, option: str, shown: str | None = None) -> None:
    """`shown` is how the path is named in the error (the template it came from)."""
    directory = os.path.dirname(os.path.abspath(path))
    name = shown or path
    if os.path.islink(path):
        raise ConfigError(f"{what} {name} is a symlink; refusing to follow it: pass the real "
                          f"path to {option}")
    if os.path.isdir(path):
        raise ConfigError(f"{what} {name} is a directory; pass a file path to {option}")
    if not os.path.isdir(directory):
        why = "does not exist" if not os.path.lexists(directory) else "is not a directory"
        raise ConfigError(f"cannot open {what} {name}: {directory} {why}; create it or pass "
                          f"another {option}")
    if not os.access(directory, os.W_OK | os.X_OK) or (
            os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ConfigError(f"cannot open {what} {name}: not writable; pass another {option}")


def drop_privileges(uid: str | None, gid: str | None) -> None:
    """--uid/--gid: switch user after the pidfile and log file are open (as root)."""
    import grp
    import pwd

    try:
        gid_num = None if gid is None else (int(gid) if gid.isdigit() else grp.getgrnam(gid).gr_gid)
        user = None if uid is None else (pwd.getpwuid(int(uid)) if uid.isdigit()
                                          else pwd.getpwnam(uid))
    except KeyError as exc:
        raise ConfigError(f"unknown user or group {exc.args[0]}") from None
    try:
        if user is not None and gid_num is None:
            gid_num = user.pw_gid
        if gid_num is not None:
            os.setgroups([gid_num])
            os.setgid(gid_num)
        if user is not None:
            os.setuid(user.pw_uid)
    except PermissionError as exc:
        raise ConfigError(f"cannot switch to --uid {uid} --gid {gid}: {exc.strerror}; run as "
                          "root or drop these options") from None
