"""Pidfile liveness across real processes: holders, SIGKILL, exec, fork, races.

Each helper process runs in its own session so the whole group (including
forked grandchildren) is killed in teardown whatever happens.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qmulti.pidfiles import AlreadyRunning, Pidfile, PidfileStatus, probe

pytestmark = pytest.mark.timeout(60)

DEADLINE = 20.0

HOLD = """
import os, sys
from qmulti.pidfiles import Pidfile
pf = Pidfile(sys.argv[1]).acquire()
print("locked", os.getpid(), flush=True)
sys.stdin.readline()
pf.release()
print("released", flush=True)
"""

# Re-executes itself (sys.orig_argv) as a node does on HUP: same pid, new image.
EXEC = """
import os, sys
from qmulti.pidfiles import ENV_FD, Pidfile
path = sys.argv[1]
if ENV_FD not in os.environ:
    pf = Pidfile(path).acquire()
    print("locked", os.getpid(), flush=True)
    sys.stdin.readline()
    os.environ.update(pf.keep_across_exec())
    os.execv(sys.executable, sys.orig_argv)
pf = Pidfile.adopt_from_env(path)
print("adopted", os.getpid(), pf.locked, ENV_FD in os.environ, flush=True)
sys.stdin.readline()
pf.release()
print("released", flush=True)
"""

# A node that forks a child and then dies without releasing (as if crashed).
FORK = """
import os, sys
from qmulti.pidfiles import Pidfile
pf = Pidfile(sys.argv[1]).acquire()
r, w = os.pipe()
if os.fork() == 0:
    if sys.argv[2] == "close":
        pf.close_in_child()
    print("child", os.getpid(), flush=True)
    os.write(w, b"x")
    sys.stdin.read()
    os._exit(0)
os.read(r, 1)
os._exit(0)
"""

RACE = """
import os, sys
from qmulti.pidfiles import AlreadyRunning, Pidfile
sys.stdin.readline()
try:
    pf = Pidfile(sys.argv[1]).acquire()
except AlreadyRunning as exc:
    print("lost", exc.pid, flush=True)
else:
    print("won", os.getpid(), flush=True)
sys.stdin.readline()
"""

HAMMER = """
import sys, time
from qmulti.pidfiles import probe
changes = []
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    state = probe(sys.argv[1]).state
    if not changes or changes[-1] != state:
        changes.append(state)
print(" ".join(changes), flush=True)
"""


class Proc:
    """A python -c helper talking line by line over stdin/stdout."""

    def __init__(self, script: str, *args: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def readline(self, timeout: float = DEADLINE) -> str:
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line from pid {self.pid} within {timeout}s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise AssertionError(f"pid {self.pid} closed stdout ({self._buf!r})")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def expect(self, word: str) -> list[str]:
        fields = self.readline().split()
        assert fields and fields[0] == word, f"expected {word!r}, got {fields}"
        return fields[1:]

    def send(self, line: str = "") -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def wait(self, timeout: float = DEADLINE) -> int:
        return self.popen.wait(timeout=timeout)

    def kill_group(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=DEADLINE)
        for pipe in (self.popen.stdin, self.popen.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass


@pytest.fixture
def spawn() -> Iterator[Callable[..., Proc]]:
    procs: list[Proc] = []

    def start(script: str, *args: str) -> Proc:
        proc = Proc(script, *args)
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            proc.kill_group()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_acquire_held_by_another_process_raises_already_running(
    tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    path = tmp_path / "w1.pid"
    holder = spawn(HOLD, str(path))
    assert holder.expect("locked") == [str(holder.pid)]
    assert path.read_text() == f"{holder.pid}\n"
    assert probe(path) == PidfileStatus(str(path), "running", holder.pid)
    with pytest.raises(AlreadyRunning) as info:
        Pidfile(path).acquire()
    assert info.value.pid == holder.pid
    assert "\n" not in str(info.value)
    assert path.read_text() == f"{holder.pid}\n"
    holder.send()
    holder.expect("released")
    assert holder.wait() == 0
    assert probe(path).state == "missing"
    with Pidfile(path):
        assert path.read_text() == f"{os.getpid()}\n"


def test_file_naming_a_live_unrelated_pid_is_stale(
    tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    path = tmp_path / "w1.pid"
    stranger = spawn("import sys; sys.stdin.read()")
    path.write_text(f"{stranger.pid}\n")
    assert probe(path) == PidfileStatus(str(path), "stale", stranger.pid)
    with Pidfile(path):
        assert path.read_text() == f"{os.getpid()}\n"
    assert alive(stranger.pid)  # nobody signalled it


def test_killed_holder_leaves_a_stale_file(tmp_path: Path, spawn: Callable[..., Proc]) -> None:
    path = tmp_path / "w1.pid"
    holder = spawn(HOLD, str(path))
    holder.expect("locked")
    assert probe(path).state == "running"
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    assert probe(path) == PidfileStatus(str(path), "stale", holder.pid)
    with Pidfile(path):
        assert path.read_text() == f"{os.getpid()}\n"


def test_lock_survives_exec_and_is_adopted(tmp_path: Path, spawn: Callable[..., Proc]) -> None:
    path = tmp_path / "w1.pid"
    node = spawn(EXEC, str(path))
    node.expect("locked")
    seen: list[PidfileStatus] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(probe(path))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        wait_for(lambda: len(seen) >= 3, "a few probes before exec")
        node.send("exec")
        assert node.expect("adopted") == [str(node.pid), "True", "False"]
        count = len(seen)
        wait_for(lambda: len(seen) >= count + 3, "a few probes after adopting")
    finally:
        stop.set()
        watcher.join(timeout=DEADLINE)
    assert {(s.state, s.pid) for s in seen} == {("running", node.pid)}
    with pytest.raises(AlreadyRunning):
        Pidfile(path).acquire()
    node.send()
    node.expect("released")
    assert node.wait() == 0
    assert not path.exists()


@pytest.mark.parametrize("mode", ["close", "keep"])
def test_forked_child_outliving_its_node(
    tmp_path: Path, spawn: Callable[..., Proc], mode: str
) -> None:
    path = tmp_path / "w1.pid"
    node = spawn(FORK, str(path), mode)
    child_pid = int(node.expect("child")[0])
    assert node.wait() == 0  # the node died without releasing
    assert alive(child_pid)
    status = probe(path)
    assert status.pid == node.pid
    # close: the lingering child does not keep a dead node looking alive;
    # keep: proves the test can fail (the child's copy still holds the lock).
    assert status.state == ("stale" if mode == "close" else "running")
    assert alive(child_pid)


def test_concurrent_starters_exactly_one_wins(tmp_path: Path, spawn: Callable[..., Proc]) -> None:
    path = tmp_path / "w1.pid"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=True,
    )
    path.write_text(dead.stdout)  # a stale file they all must get past
    racers = [spawn(RACE, str(path)) for _ in range(4)]
    for racer in racers:
        racer.send("go")
    results = [racer.readline().split() for racer in racers]
    winners = [int(pid) for word, pid in results if word == "won"]
    assert len(winners) == 1, results
    assert all(word == "lost" and int(pid) == winners[0] for word, pid in results if word != "won")
    assert probe(path) == PidfileStatus(str(path), "running", winners[0])


def test_busy_probers_neither_block_a_start_nor_report_a_live_file_stale(
    tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    path = tmp_path / "w1.pid"
    path.write_text("1\n")
    hammers = [spawn(HAMMER, str(path), "2") for _ in range(2)]
    for hammer in hammers:
        hammer.expect("ready")
    with Pidfile(path):
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert probe(path).state == "running"
        for hammer in hammers:
            changes = hammer.readline().split()
            assert set(changes) <= {"stale", "missing", "running"}, changes
            # Once held, always running: a busy probe never reads a live file as stale.
            assert "running" in changes
            assert set(changes[changes.index("running") :]) == {"running"}, changes
            assert hammer.wait() == 0
