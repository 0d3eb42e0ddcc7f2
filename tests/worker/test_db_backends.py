"""Result backend URLs that Celery projects use: `db+sqlite:///` (our SQLite store) and
`db+postgresql://` (results in a PostgreSQL table), on their own and behind a real node
whose broker is another store. PostgreSQL is this machine's server, in a database of
this session's own (tests/postgres_db.py)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from node_fixtures import NodeProcess, run_qworker, write_tasks

from qmulti import App
from qmulti.brokers import create_backend
from qmulti.brokers.postgres import TABLE, PostgresResults
from qmulti.brokers.sqlite import SqliteStore
from qmulti.exceptions import ConfigError
from qmulti.urls import parse_url

pytestmark = pytest.mark.timeout(90)


def db_url(postgres_url: str, driver: str = "") -> str:
    return "db+" + postgres_url.replace("postgresql://", f"postgresql{driver}://", 1)


def table_exists(postgres_url: str) -> bool:
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()
    return row is not None and row[0] is not None


@pytest.fixture
def fresh_db(postgres_url: str) -> str:
    """The session's database without our table, so "created on first use" can be seen."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return postgres_url


# -- URLs ------------------------------------------------------------------------------
def test_db_sqlite_is_our_sqlite_store(tmp_path: Path) -> None:
    parsed = parse_url("db+sqlite:///results.sqlite3", "result backend")
    assert (parsed.kind, parsed.url) == ("sqlite", "sqlite:///results.sqlite3")
    url = f"db+sqlite:///{tmp_path / 'results.sqlite3'}"
    backend = create_backend(url)
    try:
        assert isinstance(backend, SqliteStore)
        backend.set("t1", "SUCCESS", b"doc", None)
        assert backend.get("t1") == b"doc"
        assert (tmp_path / "results.sqlite3").exists()
    finally:
        backend.close()


def test_db_sqlite_on_the_brokers_own_file_is_the_broker(tmp_path: Path) -> None:
    """`sqlite:///x` broker with `db+sqlite:///x` backend: one store, one transaction."""
    path = tmp_path / "q.sqlite3"
    app = App("p", broker=f"sqlite:///{path}", backend=f"db+sqlite:///{path}")
    try:
        assert app.backend is app.broker
    finally:
        app.close()


@pytest.mark.parametrize("driver", ["", "+psycopg", "+psycopg2"])
def test_db_postgresql_urls(driver: str) -> None:
    parsed = parse_url(f"db+postgresql{driver}://u:secret@db.example/app", "result backend")
    assert parsed.kind == "postgres"
    assert "secret" not in str(parsed)


@pytest.mark.parametrize("url", ["db+mysql://root@localhost/app",
                                 "db+mysql+pymysql://u:pw@h/app", "db+oracle://h/x"])
def test_other_dialects_are_one_clear_error(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_url(url, "result backend")
    text = str(err.value)
    assert "db+sqlite:///" in text and "db+postgresql://" in text
    assert "pw@" not in text and "\n" not in text


def test_a_db_url_is_not_a_broker() -> None:
    with pytest.raises(ConfigError, match="result backend URL, not a broker"):
        parse_url("db+sqlite:///results.sqlite3", "broker")


def test_qworker_with_another_dialect_exits_78(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_config="app.conf.result_backend = "
                "'db+mysql://root:hunter2@localhost/app'\n")
    done = run_qworker(tmp_path, "-A", "tasks")
    assert done.returncode == 78, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "db+postgresql://" in lines[0], done.stderr
    assert "hunter2" not in done.stderr


# -- the PostgreSQL backend itself -----------------------------------------------------
def test_table_created_on_first_use(fresh_db: str) -> None:
    backend = PostgresResults(db_url(fresh_db))
    try:
        assert not table_exists(fresh_db)  # constructing connects to nothing
        assert backend.get("nope") is None
        assert table_exists(fresh_db)
    finally:
        backend.close()


@pytest.mark.parametrize("driver", ["", "+psycopg", "+psycopg2"])
def test_set_get_forget(postgres_url: str, driver: str) -> None:
    backend = create_backend(db_url(postgres_url, driver))
    try:
        assert isinstance(backend, PostgresResults)
        tid = uuid.uuid4().hex
        backend.set(tid, "STARTED", b"started", None)
        assert backend.get(tid) == b"started"
        backend.set(tid, "SUCCESS", b"\x00binary\xff", 3600)
        assert backend.get(tid) == b"\x00binary\xff"
        assert backend.wait(tid, 0.0) == b"\x00binary\xff"
        backend.forget(tid)
        assert backend.get(tid) is None
    finally:
        backend.close()


def test_expired_results_are_gone(postgres_url: str) -> None:
    backend = PostgresResults(db_url(postgres_url))
    try:
        tid = uuid.uuid4().hex
        backend.set(tid, "SUCCESS", b"x", 0.2)
        assert backend.get(tid) == b"x"
        deadline = time.monotonic() + 10
        while backend.get(tid) is not None:
            assert time.monotonic() < deadline, "result never expired"
            time.sleep(0.05)
        never = uuid.uuid4().hex
        backend.set(never, "SUCCESS", b"y", 0)  # <= 0: never expires, as Celery
        assert backend.get(never) == b"y"
    finally:
        backend.close()


def test_wait_times_out_and_ignores_non_final_states(postgres_url: str) -> None:
    backend = PostgresResults(db_url(postgres_url))
    try:
        tid = uuid.uuid4().hex
        backend.set(tid, "STARTED", b"s", None)
        began = time.monotonic()
        assert backend.wait(tid, 0.3) is None
        assert 0.25 <= time.monotonic() - began < 3.0
    finally:
        backend.close()


def test_wait_is_woken_by_notify(postgres_url: str) -> None:
    """A waiter sees a result stored by another connection well before its recheck
    interval (1 s), so it was woken by NOTIFY, not by polling."""
    waiter = PostgresResults(db_url(postgres_url))
    writer = PostgresResults(db_url(postgres_url))
    try:
        for _ in range(5):
            tid = uuid.uuid4().hex
            writer.get("warm-up")  # connect and create the table first
            got: list[Any] = []
            thread = threading.Thread(target=lambda t=tid, out=got: out.append(
                (waiter.wait(t, 10), time.monotonic())))
            thread.start()
            time.sleep(0.3)  # let the waiter reach its LISTEN
            stored = time.monotonic()
            writer.set(tid, "SUCCESS", b"done", None)
            thread.join(15)
            assert got and got[0][0] == b"done"
            assert got[0][1] - stored < 0.5, f"seen {got[0][1] - stored:.3f}s after store"
    finally:
        waiter.close()
        writer.close()


def test_threads_share_one_backend(postgres_url: str) -> None:
    backend = PostgresResults(db_url(postgres_url))
    ids = [uuid.uuid4().hex for _ in range(8)]
    got: dict[str, bytes | None] = {}
    try:
        waiters = [threading.Thread(target=lambda t=t: got.__setitem__(t, backend.wait(t, 15)))
                   for t in ids]
        for thread in waiters:
            thread.start()
        for tid in ids:
            backend.set(tid, "SUCCESS", tid.encode(), None)
        for thread in waiters:
            thread.join(20)
        assert got == {t: t.encode() for t in ids}
    finally:
        backend.close()


def test_unreachable_server_is_a_connection_error() -> None:
    from helpers import free_port
    from qmulti.exceptions import BrokerConnectionError

    backend = PostgresResults(f"db+postgresql://postgres:pw@127.0.0.1:{free_port()}/x",
                              connect_timeout=2)
    with pytest.raises(BrokerConnectionError) as err:
        backend.get("t")
    assert "pw@" not in str(err.value)


# -- behind a real node ----------------------------------------------------------------
@pytest.mark.parametrize("broker_kind", ["redis", "sqlite"])
def test_node_stores_results_in_postgres(tmp_path: Path, postgres_url: str,
                                         broker_kind: str, request: pytest.FixtureRequest) -> None:
    if broker_kind == "redis":
        broker = request.getfixturevalue("redis_server").url
    else:
        broker = f"sqlite:///{tmp_path / 'q.sqlite3'}"
    backend = db_url(postgres_url, "+psycopg")
    write_tasks(tmp_path, extra_config=f"app.conf.update(broker_url={broker!r}, "
                f"result_backend={backend!r})\n")
    app = App("producer", broker=broker, backend=backend)
    try:
        with NodeProcess(tmp_path, "-A", "tasks", "-c", "2", "-l", "info") as node:
            node.wait_ready()
            results = [app.send_task("tasks.add", (i, i), check=False) for i in range(10)]
            failed = app.send_task("tasks.boom", ("bad",), check=False)
            assert [r.get(timeout=30) for r in results] == [2 * i for i in range(10)]
            with pytest.raises(ValueError, match="bad"):
                failed.get(timeout=30)
            assert failed.state == "FAILURE"
            with psycopg.connect(postgres_url) as conn:
                states = dict(conn.execute(
                    f"SELECT task_id, state FROM {TABLE} WHERE task_id = ANY(%s)",
                    ([r.id for r in results],)).fetchall())
            assert set(states.values()) == {"SUCCESS"} and len(states) == 10
            stats = app.broker.stats()
            assert sum(stats.queues.values()) == 0 and stats.leased == 0
            assert node.stop() == 0
    finally:
        app.close()


def test_node_with_redis_broker_and_db_sqlite_backend(tmp_path: Path,
                                                      redis_server: Any) -> None:
    """Celery's Django example: results in `db+sqlite:///results.sqlite3` beside the
    project, the broker elsewhere."""
    write_tasks(tmp_path, extra_config=f"app.conf.update(broker_url={redis_server.url!r}, "
                "result_backend='db+sqlite:///results.sqlite3')\n")
    app = App("producer", broker=redis_server.url,
              backend=f"db+sqlite:///{tmp_path / 'results.sqlite3'}")
    try:
        with NodeProcess(tmp_path, "-A", "tasks", "-c", "1") as node:
            node.wait_ready()
            r = app.send_task("tasks.add", (2, 3), check=False)
            assert r.get(timeout=30) == 5
            assert node.stop() == 0
        store = SqliteStore(f"sqlite:///{tmp_path / 'results.sqlite3'}")
        try:
            assert store.get(r.id) is not None
        finally:
            store.close()
    finally:
        app.close()


class Proxy:
    """A TCP forwarder to PostgreSQL that the test can cut and restore, on one port, to
    make the backend unreachable while the broker stays up."""

    def __init__(self, target: tuple[str, int]) -> None:
        from helpers import free_port

        self.target = target
        self.port = free_port()
        self.listener: Any = None
        self.sockets: list[Any] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        import socket

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: Any) -> None:
        import socket

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        import socket

        if self.listener is not None:
            try:  # wakes the accept() of the other thread; close alone would not
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            socks, self.sockets = self.sockets, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_node_acks_only_after_the_backend_stored_the_result(
        tmp_path: Path, postgres_url: str, redis_server: Any) -> None:
    """The backend goes away while a task runs: the task's message stays leased (not
    acked) until the result can be stored; once the backend is back, SUCCESS is stored,
    then the message is gone, and the task ran once."""
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.start()
    backend = f"db+postgresql://{parts.username}@127.0.0.1:{proxy.port}{parts.path}"
    write_tasks(tmp_path, extra_config=f"app.conf.update(broker_url={redis_server.url!r}, "
                f"result_backend={backend!r})\n", extra_tasks='''
@app.task
def once(seconds):
    with open('ran.txt', 'a') as f:
        f.write('x')
    time.sleep(seconds)
    return 'stored'
''')
    app = App("producer", broker=redis_server.url, backend=db_url(postgres_url))
    try:
        with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info") as node:
            node.wait_ready()
            r = app.send_task("tasks.once", (1.0,), check=False)
            deadline = time.monotonic() + 20
            while r.state != "STARTED":
                assert time.monotonic() < deadline, node.stderr()
                time.sleep(0.02)
            proxy.cut()
            deadline = time.monotonic() + 20
            while "Broker unreachable" not in node.stderr():
                assert time.monotonic() < deadline, node.stderr()
                time.sleep(0.05)
            # The task has returned and cannot store its result: still leased, not acked.
            for _ in range(10):
                assert app.broker.stats().leased == 1, node.stderr()
                assert r.state == "STARTED"
                time.sleep(0.1)
            proxy.start()
            assert r.get(timeout=30) == "stored"
            deadline = time.monotonic() + 10
            while app.broker.stats().leased:
                assert time.monotonic() < deadline, node.stderr()
                time.sleep(0.02)
            assert (tmp_path / "ran.txt").read_text() == "x"
            assert node.stop() == 0
    finally:
        proxy.cut()
        app.close()
