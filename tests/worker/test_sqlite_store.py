"""What only the SQLite store has to show: many real processes on one file, the file's
path rules, fork safety and error translation."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from helpers import wait_for
from qmulti.brokers import create_broker
from qmulti.brokers.sqlite import SqliteStore
from qmulti.exceptions import BrokerConnectionError, ConfigError

Q = "celery"
FORK = multiprocessing.get_context("fork")


def _consume(store: SqliteStore, index: int, out_dir: str) -> None:
    """A pool child's loop: claim a batch, start and finish each, until the queue stays
    empty. Uses the parent's store object, so it also proves the reconnect after fork."""
    node = f"node{index}#{os.getpid()}"
    with open(os.path.join(out_dir, f"claimed-{index}.txt"), "w") as out:
        while batch := store.claim([Q], node, f"c{index}.1", 4, 0.3):
            for d in batch:
                store.start(d, d.mid, b"{}", store, None)
                store.finish(d, d.mid, "SUCCESS", b"{}", store, None)
                out.write(d.mid + "\n")
            out.flush()
    os._exit(0)


def _publish_fresh(url: str, index: int, count: int, barrier: multiprocessing.Barrier) -> None:
    """First use of a brand-new file by several processes at the same moment."""
    barrier.wait(10)
    store = SqliteStore(url)
    for i in range(count):
        store.publish(Q, f"p{index}-{i}", b"x")
    os._exit(0)


def _run_all(procs: list[multiprocessing.process.BaseProcess]) -> None:
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [p.exitcode for p in procs] == [0] * len(procs)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)


@pytest.mark.timeout(90)
def test_concurrent_claims_from_four_processes_deliver_each_message_once(
        tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'broker.db'}")
    mids = {f"m{i}" for i in range(2000)}
    for mid in sorted(mids):
        store.publish(Q, mid, mid.encode())
    procs = [FORK.Process(target=_consume, args=(store, i, str(tmp_path))) for i in range(4)]
    _run_all(procs)
    claimed: list[str] = []
    for i in range(4):
        claimed += (tmp_path / f"claimed-{i}.txt").read_text().split()
    assert len(claimed) == len(set(claimed)), "a message was delivered twice"
    assert set(claimed) == mids, "a message was lost"
    stats = store.stats()
    assert (dict(stats.queues), stats.leased, stats.dead) == ({}, 0, 0)
    assert store.get("m1999") == b"{}"


@pytest.mark.timeout(90)
def test_concurrent_first_use_of_a_new_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    barrier = FORK.Barrier(4)
    _run_all([FORK.Process(target=_publish_fresh, args=(url, i, 50, barrier))
              for i in range(4)])
    assert SqliteStore(url).stats().queues == {Q: 200}


def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = SqliteStore(url), SqliteStore(url)
    a.publish(Q, "m0", b"x")
    (d,) = b.claim([Q], "n#1", "c1.1", 1, 0)
    assert a.stats().leased == 1
    b.finish(d, "t0", "SUCCESS", b"done", b, None)
    assert a.wait("t0", 5) == b"done"
    assert a.stats().leased == 0


def test_the_store_is_used_after_fork_by_parent_and_child(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'f.db'}")
    store.publish(Q, "before", b"x")  # the parent's connection exists before the fork
    proc = FORK.Process(target=_publish_and_exit, args=(store,))
    _run_all([proc])
    store.publish(Q, "after", b"x")
    got = [d.mid for d in store.claim([Q], "n#1", "c", 10, 0)]
    assert got == ["before", "child", "after"]


def _publish_and_exit(store: SqliteStore) -> None:
    store.publish(Q, "child", b"x")
    store.close()
    os._exit(0)


# -- URLs and paths ------------------------------------------------------------------------

def test_relative_url_is_relative_to_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    store = create_broker("sqlite:///sub/rel.db")
    assert isinstance(store, SqliteStore)
    monkeypatch.chdir("/")  # as a detached node does: the same file is kept
    store.publish(Q, "m0", b"x")
    assert (tmp_path / "sub" / "rel.db").is_file()
    assert store.path == str(tmp_path / "sub" / "rel.db")


def test_absolute_url_has_four_slashes(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    assert str(path).startswith("/")
    store = SqliteStore(f"sqlite:///{path}")  # sqlite:/// + /tmp/... = four slashes
    store.publish(Q, "m0", b"x")
    assert path.is_file()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:",
                                 "sqlite://host/file.db"])
def test_urls_without_a_file_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="sqlite"):
        SqliteStore(url)


def test_parent_that_is_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a directory")
    bad = tmp_path / "plain" / "sub" / "broker.db"
    with pytest.raises(ConfigError) as info:
        SqliteStore(f"sqlite:///{bad}")
    message = str(info.value)
    assert str(bad) in message and "not a directory" in message and "\n" not in message
    bad = tmp_path / "plain" / "broker.db"
    with pytest.raises(ConfigError, match="not a directory"):
        SqliteStore(f"sqlite:///{bad}")


def test_missing_parent_is_not_created(tmp_path: Path) -> None:
    bad = tmp_path / "missing" / "broker.db"
    with pytest.raises(ConfigError, match="does not exist"):
        SqliteStore(f"sqlite:///{bad}")
    assert not (tmp_path / "missing").exists()


def test_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        SqliteStore(f"sqlite:///{tmp_path}")


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    store = SqliteStore(f"sqlite:///{path}")
    with pytest.raises(ConfigError, match="not a usable sqlite database"):
        store.publish(Q, "m0", b"x")


def test_unknown_options_are_ignored(tmp_path: Path) -> None:
    store = create_broker(f"sqlite:///{tmp_path / 'o.db'}", max_deliveries=3, pool_limit=10)
    assert store.max_deliveries == 3


@pytest.mark.timeout(30)
def test_a_long_lock_is_a_broker_connection_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = SqliteStore(f"sqlite:///{path}", busy_timeout=0.2)
    store.publish(Q, "m0", b"x")
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(BrokerConnectionError, match="locked"):
            store.publish(Q, "m1", b"x")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.publish(Q, "m1", b"x")  # the store recovers once the lock is gone
    assert [d.mid for d in store.claim([Q], "n#1", "c", 5, 0)] == ["m0", "m1"]


def test_expired_results_are_deleted_by_a_later_write(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = SqliteStore(f"sqlite:///{path}")
    store.set("old", "SUCCESS", b"x", 0.05)
    store.set("kept", "SUCCESS", b"y", None)
    wait_for(lambda: store.get("old") is None, 10, "the result to expire")
    store._next_purge = 0.0  # the sweep runs once a minute; make this write the one
    store.set("new", "SUCCESS", b"z", 60)
    with sqlite3.connect(path) as raw:
        left = sorted(r[0] for r in raw.execute("SELECT task_id FROM results"))
    assert left == ["kept", "new"]
