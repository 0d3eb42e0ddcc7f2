"""In-process tests of pidfile creation, refusal, release and probing.

Liveness across real processes (other holders, SIGKILL, exec, fork) is in
test_pidfile_processes.py; here one process plays every part, which works
because flock conflicts between open file descriptions even in one process.
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qmulti.pidfiles import (
    ENV_FD,
    AlreadyRunning,
    Pidfile,
    PidfileError,
    PidfileStatus,
    probe,
    remove_stale,
)

pytestmark = pytest.mark.timeout(30)


def dead_pid() -> int:
    """A pid that just exited and was reaped (reuse is possible and must not matter)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=20)
    return proc.pid


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


def test_acquire_writes_pid_alone_on_first_line(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    pf = Pidfile(path).acquire()
    try:
        assert path.read_bytes() == f"{os.getpid()}\n".encode()
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert pf.locked and pf.fd is not None and pf.path == str(path)
        assert probe(path) == PidfileStatus(str(path), "running", os.getpid())
        assert sorted(p.name for p in tmp_path.iterdir()) == ["w1.pid"]  # no temp left
    finally:
        pf.release()


def test_acquire_writes_explicit_pid(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    with Pidfile(path).acquire(pid=4242):
        assert path.read_text() == "4242\n"
        status = probe(path)
        assert (status.state, status.pid) == ("running", 4242)


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pf = Pidfile("w1.pid").acquire()
    try:
        # A daemon chdirs after acquiring; release must still find the file.
        monkeypatch.chdir("/")
        assert pf.path == str(tmp_path / "w1.pid")
    finally:
        pf.release()
    assert not (tmp_path / "w1.pid").exists()


def test_release_removes_file_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    pf = Pidfile(path).acquire()
    pf.release()
    assert not path.exists()
    assert not pf.locked and pf.fd is None
    pf.release()
    assert probe(path).state == "missing"


def test_context_manager_acquires_and_releases(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    with Pidfile(path) as pf:
        assert pf.locked
        assert probe(path).state == "running"
    assert not path.exists()


def test_second_acquire_while_held_raises_already_running(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    with Pidfile(path):
        with pytest.raises(AlreadyRunning) as info:
            Pidfile(path).acquire()
        assert info.value.pid == os.getpid()
        assert info.value.path == str(path)
        text = one_line(info.value)
        assert f"pid {os.getpid()}" in text and "stop that node first" in text
        assert path.read_text() == f"{os.getpid()}\n"  # untouched


def test_acquire_twice_on_one_object_is_refused(tmp_path: Path) -> None:
    with Pidfile(tmp_path / "w1.pid") as pf, pytest.raises(PidfileError):
        pf.acquire()


@pytest.mark.parametrize("content", ["DEAD", "garbage\n", "", "-5\n"])
def test_stale_file_is_replaced(tmp_path: Path, content: str) -> None:
    path = tmp_path / "w1.pid"
    pid = dead_pid()
    path.write_text(content.replace("DEAD", f"{pid}\n"))
    status = probe(path)
    assert status.state == "stale"
    assert status.pid == (pid if content == "DEAD" else None)
    with Pidfile(path):
        assert path.read_text() == f"{os.getpid()}\n"


def test_stale_file_naming_our_own_live_pid_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    path.write_text(f"{os.getpid()}\n")  # a live pid, but nobody holds the lock
    assert probe(path) == PidfileStatus(str(path), "stale", os.getpid())
    with Pidfile(path) as pf:
        assert pf.locked


@pytest.mark.parametrize("dangling", [False, True])
def test_symlink_at_path_is_refused_and_target_untouched(tmp_path: Path, dangling: bool) -> None:
    target = tmp_path / "target"
    if not dangling:
        target.write_text("precious\n")
    link = tmp_path / "w1.pid"
    link.symlink_to(target)
    with pytest.raises(PidfileError) as info:
        Pidfile(link).acquire()
    assert "symbolic link" in one_line(info.value)
    assert not isinstance(info.value, AlreadyRunning)
    assert link.is_symlink()
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text() == "precious\n"
    status = probe(link)
    assert status.state == "unreadable" and "symbolic link" in (status.reason or "")
    assert remove_stale(link) is False
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["w1.pid"] + ([] if dangling else ["target"])
    )


@pytest.mark.parametrize("make_dirs", [False, True])
def test_parent_is_a_regular_file(tmp_path: Path, make_dirs: bool) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = blocker / "sub" / "w1.pid" if make_dirs else blocker / "w1.pid"
    with pytest.raises(PidfileError) as info:
        Pidfile(path).acquire(make_dirs=make_dirs)
    text = one_line(info.value)
    assert str(path) in text
    assert "Not a directory" in text
    assert "--pidfile" in text
    assert blocker.read_text() == "x"


def test_missing_directory_is_an_error_unless_make_dirs(tmp_path: Path) -> None:
    path = tmp_path / "run" / "qmulti" / "w1.pid"
    with pytest.raises(PidfileError) as info:
        Pidfile(path).acquire()
    text = one_line(info.value)
    assert "does not exist" in text and str(path) in text
    assert not path.parent.exists()
    with Pidfile(path).acquire(make_dirs=True):
        assert path.read_text() == f"{os.getpid()}\n"


def test_directory_at_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    path.mkdir()
    with pytest.raises(PidfileError) as info:
        Pidfile(path).acquire()
    one_line(info.value)
    assert path.is_dir()
    assert probe(path).state == "unreadable"


def test_release_leaves_a_file_someone_else_put_there(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    pf = Pidfile(path).acquire()
    os.unlink(path)
    path.write_text("999\n")
    pf.release()
    assert path.read_text() == "999\n"
    assert probe(path).state == "stale"


def test_release_in_forked_child_neither_unlinks_nor_unlocks(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    with Pidfile(path) as pf:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                pf.release()  # as an unguarded `with` exit in a child would
                code = 0 if pf.fd is None else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert pf.locked
        assert probe(path) == PidfileStatus(str(path), "running", os.getpid())
    assert not path.exists()


@pytest.mark.parametrize("action", ["probe", "acquire"])
def test_brief_foreign_lock_on_stale_file_is_waited_out(tmp_path: Path, action: str) -> None:
    # Another prober or remover holds a stale file's lock for an instant; that
    # must read as stale, not as a running node blocking the start.
    path = tmp_path / "w1.pid"
    path.write_text(f"{dead_pid()}\n")
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    releaser = threading.Timer(0.05, os.close, [fd])
    releaser.start()
    try:
        if action == "probe":
            assert probe(path).state == "stale"
        else:
            with Pidfile(path):
                assert path.read_text() == f"{os.getpid()}\n"
    finally:
        releaser.join(timeout=10)


def test_foreign_lock_held_beyond_patience_reads_as_running(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    path.write_text("1\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        started = time.monotonic()
        assert probe(path) == PidfileStatus(str(path), "running", 1)
        assert time.monotonic() - started < 5
        with pytest.raises(AlreadyRunning):
            Pidfile(path).acquire()
        assert remove_stale(path) is False and path.exists()
    finally:
        os.close(fd)


def test_probe_missing_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "w1.pid"
    assert probe(path) == PidfileStatus(str(path), "missing")
    assert remove_stale(path) is False
    assert list(tmp_path.iterdir()) == []


def test_remove_stale(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    with Pidfile(path):
        assert remove_stale(path) is False
        assert path.exists()
    path.write_text(f"{dead_pid()}\n")
    assert remove_stale(path) is True
    assert not path.exists()
    assert remove_stale(path) is False


def test_keep_across_exec_marks_fd_inheritable(tmp_path: Path) -> None:
    with Pidfile(tmp_path / "w1.pid") as pf:
        assert pf.fd is not None and not os.get_inheritable(pf.fd)
        env = pf.keep_across_exec()
        assert env == {ENV_FD: str(pf.fd)}
        assert os.get_inheritable(pf.fd)
    with pytest.raises(PidfileError):
        Pidfile(tmp_path / "other.pid").keep_across_exec()


def test_adopt_from_env_without_variable_is_none(tmp_path: Path) -> None:
    assert Pidfile.adopt_from_env(tmp_path / "w1.pid", {}) is None


def test_adopt_from_env_takes_over_a_shared_description(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    pf = Pidfile(path).acquire()
    assert pf.fd is not None
    twin = os.dup(pf.fd)  # same open description, as after exec
    env = {ENV_FD: str(twin), "OTHER": "1"}
    adopted = Pidfile.adopt_from_env(path, env)
    assert adopted is not None and adopted.locked and adopted.fd == twin
    assert env == {"OTHER": "1"}  # children never see it
    assert not os.get_inheritable(twin)
    adopted.release()
    assert not path.exists()
    pf.release()


def test_adopt_refuses_wrong_file_and_wrong_pid(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    other = tmp_path / "other.pid"
    with Pidfile(path), Pidfile(other) as pf_other:
        with pytest.raises(PidfileError) as info:
            Pidfile.adopt_from_env(path, {ENV_FD: str(pf_other.fd)})
        assert "not that file" in one_line(info.value)
        with pytest.raises(PidfileError):
            Pidfile.adopt_from_env(path, {ENV_FD: "nope"})
    with Pidfile(path).acquire(pid=1) as pf:
        with pytest.raises(PidfileError) as info:
            Pidfile.adopt_from_env(path, {ENV_FD: str(pf.fd)})
        assert "names pid 1" in one_line(info.value)
    closed = os.open(os.devnull, os.O_RDONLY)
    os.close(closed)
    with pytest.raises(PidfileError):
        Pidfile.adopt_from_env(path, {ENV_FD: str(closed)})
