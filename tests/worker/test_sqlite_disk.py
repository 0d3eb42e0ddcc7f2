"""The embedded SQLite store on a tight disk: idle nodes hand the WAL back, and a full
disk is an outage the cluster rides out by itself, not a crash loop."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_fixtures import NodeProcess

from helpers import wait_for
from qmulti import App
from qmulti.exceptions import BrokerError

TASKS = '''
import time
from qmulti import App
app = App('tasks', broker='sqlite:///{db}')

@app.task
def add(a, b):
    return a + b

@app.task
def slow(seconds):
    time.sleep(seconds)
    return seconds
'''


def producer(db: Path) -> App:
    app = App("producer", broker=f"sqlite:///{db}")
    # The node runs them; here only their names are needed.
    app.task(name="tasks.add")(lambda a, b: a + b)
    app.task(name="tasks.slow")(lambda seconds: seconds)
    return app


def store_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


@pytest.mark.timeout(150)
def test_idle_nodes_give_the_wal_back_and_barely_write(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    (tmp_path / "tasks.py").write_text(TASKS.format(db=db))
    nodes = [NodeProcess(tmp_path, "-A", "tasks", "-c", "1", name=f"w{i}@%h") for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.wait_ready()
        app = producer(db)
        results = [app.send_task("tasks.add", (i, i)) for i in range(200)]
        assert [r.get(timeout=60) for r in results] == [2 * i for i in range(200)]
        wal = Path(f"{db}-wal")
        # After the burst, an idle node checkpoints and truncates the WAL.
        wait_for(lambda: wal.stat().st_size <= 64 * 1024, 30, "WAL handed back after a burst")
        before = store_bytes(db)
        peak = before
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a minute of idling, sampled
            assert all(n.proc.poll() is None for n in nodes)
            peak = max(peak, store_bytes(db))
            time.sleep(0.5)
        assert peak - before < 100 * 1024, (before, peak)
    finally:
        for node in nodes:
            node.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own, so "disk full" is real and harms nothing else."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(path: Path) -> None:
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        # Whatever page-sized room is left goes too, so the next SQLite write fails.
        for size in (4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass


@pytest.mark.timeout(120)
def test_full_disk_is_an_outage_the_cluster_recovers_from(tmp_path: Path,
                                                          small_disk: Path) -> None:
    db = small_disk / "q.sqlite3"
    (tmp_path / "tasks.py").write_text(TASKS.format(db=db))
    node = NodeProcess(tmp_path, "-A", "tasks", "-c", "1")
    try:
        node.wait_ready()
        app = producer(db)
        assert app.send_task("tasks.add", (1, 1)).get(timeout=20) == 2
        children = {c.pid for c in node.children()}
        # Work in flight when the disk fills: the node must store these outcomes later.
        slow = app.send_task("tasks.slow", (1.0,))
        queued = [app.send_task("tasks.add", (i, i)) for i in range(20)]
        wait_for(lambda: slow.state == "STARTED", 20, "slow task started")
        filler = small_disk / "filler"
        fill(filler)
        with pytest.raises(BrokerError, match="disk is full"):
            for i in range(200):  # the first write that needs a new page fails
                app.send_task("tasks.add", (i, i))
        # The node rides it out: same main process, no crash loop of its children.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert node.proc.poll() is None, node.stderr()
            children |= {c.pid for c in node.children()}
            time.sleep(0.2)
        assert len(children) == 1, f"a child died of the full disk: {node.stderr()}"
        os.unlink(filler)
        result = wait_for(lambda: _try_send(app), 30, "publishing works again")
        assert result.get(timeout=30) == 5
        assert slow.get(timeout=30) == 1.0
        assert [r.get(timeout=30) for r in queued] == [2 * i for i in range(20)]
        assert node.proc.poll() is None
        assert "Traceback" not in node.stderr(), node.stderr()
    finally:
        node.close()


def _try_send(app: App) -> object:
    try:
        return app.send_task("tasks.add", (2, 3))
    except BrokerError:
        return None
