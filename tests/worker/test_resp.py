"""Our RESP2 client (worker/brokers/resp.py): the parser against replies cut at every
byte, then the real thing against a private redis-server over TCP, a unix socket and TLS,
and the reason it exists: the store must not import redis-py."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import free_port, wait_for
from qmulti.brokers.redis import RedisStore, resp
from qmulti.brokers.redis.conn import RedisLink
from qmulti.brokers.redis.url import parse_redis_url
from qmulti.exceptions import BrokerConnectionError, BrokerError, ConfigError
from redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)
CTX = multiprocessing.get_context("fork")


class FakeSocket:
    """Hands out pre-cut chunks, as a TCP stream may, then EOF."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    def recv(self, size: int) -> bytes:
        if not self.chunks:
            return b""
        chunk = self.chunks.pop(0)
        if len(chunk) > size:
            self.chunks.insert(0, chunk[size:])
            chunk = chunk[:size]
        return chunk

    def settimeout(self, value: float | None) -> None:
        pass

    def close(self) -> None:
        pass


def fed(chunks: list[bytes]) -> resp.Connection:
    conn = resp.Connection(resp.Endpoint())
    conn.sock = FakeSocket(chunks)  # type: ignore[assignment]
    return conn


CASES: list[tuple[bytes, Any]] = [
    (b"+OK\r\n", b"OK"),
    (b":42\r\n", 42),
    (b":-7\r\n", -7),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"$6\r\na\r\nb\r\n\r\n", b"a\r\nb\r\n"),  # a bulk string may hold CRLF
    (b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n*1\r\n$-1\r\n+x\r\n", [b"a", [1, [None]], b"x"]),
]


@pytest.mark.parametrize(("wire", "value"), CASES)
def test_every_reply_kind_parses_whatever_the_cut(wire: bytes, value: Any) -> None:
    for cut in range(len(wire) + 1):
        pieces = [p for p in (wire[:cut], wire[cut:]) if p]
        assert fed(pieces).read_reply() == value, cut
    assert fed([bytes([b]) for b in wire]).read_reply() == value  # one byte per read


def test_errors_are_values_at_the_top_and_inside_arrays() -> None:
    top = fed([b"-NOSCRIPT No matching script\r\n"]).read_reply()
    assert isinstance(top, resp.ReplyError) and top.code == "NOSCRIPT"
    nested = fed([b"*2\r\n-ERR bad\r\n:1\r\n"]).read_reply()
    assert isinstance(nested[0], resp.ReplyError) and str(nested[0]) == "ERR bad"
    assert nested[1] == 1


def test_pipelined_replies_in_one_read_come_out_one_by_one() -> None:
    conn = fed([b":1\r\n$2\r\nab\r\n*1\r\n:", b"3\r\n-ERR x\r\n"])
    assert conn.read_reply() == 1
    assert conn.read_reply() == b"ab"
    assert conn.read_reply() == [3]
    assert isinstance(conn.read_reply(), resp.ReplyError)
    assert conn._pos == 0 and conn._buf == b""


def test_a_large_bulk_string_is_read_whole() -> None:
    body = os.urandom(3 * resp.RECV_SIZE + 5)
    wire = b"$%d\r\n%b\r\n:1\r\n" % (len(body), body)
    conn = fed([wire[i:i + 1000] for i in range(0, len(wire), 1000)])
    assert conn.read_reply() == body and conn.read_reply() == 1


def test_garbage_and_eof_are_connection_errors() -> None:
    with pytest.raises(resp.ProtocolError):
        fed([b"?what\r\n"]).read_reply()
    with pytest.raises(ConnectionError):
        fed([b"$5\r\nhel"]).read_reply()
    assert issubclass(resp.ProtocolError, OSError)  # the store reads both as an outage


def test_pack_is_resp_arrays_of_bulk_strings() -> None:
    assert resp.pack(("SET", b"k\r\n", 5, 1.5)) == \
        b"*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n5\r\n$3\r\n1.5\r\n"
    with pytest.raises(TypeError):
        resp.pack(("SET", None))


# -- against a real server -----------------------------------------------------------------

def endpoint(server: RedisServer, **kw: Any) -> resp.Endpoint:
    return resp.Endpoint(host="127.0.0.1", port=server.port, password=server.password, **kw)


def test_real_replies_big_values_nesting_and_errors(redis_server: RedisServer) -> None:
    conn = resp.Connection(endpoint(redis_server, db=2))
    big = os.urandom(1_000_000)
    assert conn.command(("SET", "k", big)) == b"OK"
    assert conn.command(("GET", "k")) == big
    assert conn.command(("GET", "missing")) is None
    assert conn.command(("EVAL", "return {1, {2, 'x', {}}, 'y', false}", 0)) == \
        [1, [2, b"x", []], b"y", None]
    err = conn.command(("EVAL", "return redis.error_reply('MINE oops')", 0))
    assert isinstance(err, resp.ReplyError) and err.code == "MINE"
    assert isinstance(conn.command(("LPUSH", "k", "x")), resp.ReplyError)  # WRONGTYPE
    replies = conn.pipeline([("INCR", "n")] * 1000 + [("SELECT", 99), ("GET", "n")])
    assert replies[:1000] == list(range(1, 1001)) and replies[-1] == b"1000"
    assert isinstance(replies[-2], resp.ReplyError)
    assert conn.command(("BLPOP", "empty", "0.05"), timeout=5) is None
    assert redis_server.client().dbsize() == 0  # SELECT 2 happened at connect
    conn.close()


def test_a_read_timeout_is_a_timeout_error_and_the_next_call_reconnects(
        redis_server: RedisServer) -> None:
    conn = resp.Connection(endpoint(redis_server, socket_timeout=0.2))
    first = conn.command(("CLIENT", "ID"))
    with pytest.raises(TimeoutError):
        conn.command(("BLPOP", "empty", "2"))
    conn.close()
    assert conn.command(("CLIENT", "ID")) != first


def test_auth_with_a_username_and_a_wrong_password(tmp_path: Path) -> None:
    with RedisServer(tmp_path, password="s3cret") as server:
        conn = resp.Connection(endpoint(server, username="default"))
        assert conn.command(("PING",)) == b"PONG"
        bad = resp.Connection(resp.Endpoint(host="127.0.0.1", port=server.port,
                                            password="nope"))
        with pytest.raises(resp.AuthError) as err:
            bad.command(("PING",))
        assert err.value.code == "WRONGPASS" and bad.sock is None
        conn.close()


def test_a_restarted_server_is_seen_before_the_socket_is_reused(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        pool = resp.Pool(endpoint(server), 2, 5.0)
        conn = pool.get()
        conn.command(("SET", "k", "v"))
        pool.put(conn)
        server.restart()
        wait_for(lambda: conn.stale(), 10, "the old socket to read as closed")
        again = pool.get()
        assert again is conn and again.sock is None  # dropped, reconnects on use
        assert again.command(("GET", "k")) == b"v"
        pool.put(again)


def test_the_pool_is_bounded_and_shared_by_threads(redis_server: RedisServer) -> None:
    pool = resp.Pool(endpoint(redis_server), 2, 0.3)
    a, b = pool.get(), pool.get()
    with pytest.raises(TimeoutError):
        pool.get()  # both are out
    threading.Timer(0.1, pool.put, (a,)).start()
    pool.wait = 10.0
    assert pool.get() is a  # a thread waiting for a connection gets the returned one
    pool.put(a)
    pool.put(b)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                conn = pool.get()
                try:
                    assert conn.command(("ECHO", f"{n}.{i}")) == f"{n}.{i}".encode()
                finally:
                    pool.put(conn)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and pool._made == 2


def _child_client_id(pool: resp.Pool, out: Any) -> None:
    conn = pool.get()
    out.put((conn.command(("CLIENT", "ID")), pool._made))
    out.close()
    out.join_thread()
    os._exit(0)


def test_a_forked_child_never_uses_the_parents_socket(redis_server: RedisServer) -> None:
    pool = resp.Pool(endpoint(redis_server), 1, 5.0)
    conn = pool.get()
    parent_id = conn.command(("CLIENT", "ID"))
    pool.put(conn)
    out = CTX.Queue()
    proc = CTX.Process(target=_child_client_id, args=(pool, out), daemon=True)
    proc.start()
    try:
        child_id, made = out.get(timeout=30)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    assert child_id != parent_id and made == 1
    conn = pool.get()
    assert conn.command(("CLIENT", "ID")) == parent_id  # the parent's is intact
    pool.put(conn)


def test_unix_socket(tmp_path: Path) -> None:
    with RedisServer(tmp_path, unixsocket=True) as server:
        conn = resp.Connection(resp.Endpoint(path=str(server.socket_path), db=1))
        assert conn.command(("SET", "k", "v")) == b"OK"
        assert conn.command(("GET", "k")) == b"v"
        conn.close()


# -- TLS -----------------------------------------------------------------------------------

@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server speaking only TLS, with a self-signed certificate for localhost."""
    openssl, binary = shutil.which("openssl"), shutil.which("redis-server")
    if openssl is None or binary is None:
        pytest.skip("needs openssl and redis-server")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--dir", str(tmp_path), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        probe = resp.Endpoint(host="127.0.0.1", port=port, tls=True, ssl_cert_reqs=0)

        def answers() -> bool:
            if proc.poll() is not None:
                pytest.skip("this redis-server does not start with TLS")
            try:
                return resp.Connection(probe).command(("PING",)) == b"PONG"
            except OSError:
                return False

        wait_for(answers, 15, "redis-server with TLS")
        yield port, cert
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def test_rediss_verifies_the_certificate_and_keeps_its_connection(
        tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    store = RedisStore(f"rediss://localhost:{port}/0?ssl_cert_reqs=required"
                       f"&ssl_ca_certs={cert}")
    store.publish("celery", "m1", b"x")
    # TLS 1.3 session tickets arrive after the handshake and make an idle socket
    # readable: that must not read as "closed by the server".
    ids = {store._link.call("CLIENT", "ID") for _ in range(3)}
    assert len(ids) == 1
    assert [d.mid for d in store.claim(["celery"], "n#1", "c", 5, 0)] == ["m1"]
    store.close()
    untrusted = RedisStore(f"rediss://localhost:{port}/0")  # the system CAs only
    with pytest.raises(BrokerConnectionError) as err:
        untrusted.get("t1")
    assert "certificate" in str(err.value).lower()


# -- error translation and imports ---------------------------------------------------------

@pytest.mark.parametrize(("reply", "kind"), [
    ("LOADING Redis is loading the dataset in memory", BrokerConnectionError),
    ("NOAUTH Authentication required.", ConfigError),
    ("WRONGTYPE Operation against a key holding the wrong kind of value", BrokerError),
])
def test_reply_errors_become_ours(reply: str, kind: type[Exception]) -> None:
    link = RedisLink(parse_redis_url("redis://:s3cret@h:1/0"))
    with pytest.raises(kind) as err, link.errors():
        raise resp.ReplyError(f"{reply} s3cret")
    assert type(err.value) is kind and "s3cret" not in str(err.value)


def test_the_store_does_not_import_redis_py_nor_ssl() -> None:
    code = ("import sys, qmulti.brokers.redis; "
            "print(sorted(m for m in ('redis', 'ssl', 'asyncio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, cwd=Path(__file__).parents[2], check=True)
    assert out.stdout.strip() == "[]"
