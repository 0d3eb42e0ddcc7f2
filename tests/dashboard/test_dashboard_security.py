"""Who may look and act, against a real `qmulti dashboard` process: basic auth, actions
refused off loopback without it, CSRF, and the broker password nowhere to be seen.
Also the command's one-line errors (bad options, the extra missing)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard_stack import Stack
from redis_server import RedisServer

pytestmark = pytest.mark.timeout(90)

PASSWORD = "s3cret-Broker-pw"
AUTH = ("admin", "dash-pw")


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Stack]:
    with RedisServer(tmp_path, password=PASSWORD) as redis:
        s = Stack(tmp_path, redis)
        try:
            yield s
        finally:
            s.close()


def test_auth_everywhere_and_actions_need_it_off_loopback(secured: Stack) -> None:
    s = secured
    # 0.0.0.0 binds every address (so it is not loopback); 127.0.0.1 still reaches it.
    s.start_dashboard("--address", "0.0.0.0", "--auth", ":".join(AUTH))
    # Looking needs the credentials.
    code, _, headers = s.request("/nodes")
    assert code == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert s.request("/api/snapshot", auth=("admin", "wrong"))[0] == 401
    assert s.request("/metrics")[0] == 401
    assert s.request("/nodes", auth=AUTH)[0] == 200
    token = s.csrf(auth=AUTH)
    # An action without credentials: 401, even with the right CSRF token.
    code, body, _ = s.request("/api/dead/celery/x/retry", "POST", {},
                              {"X-CSRF-Token": token})
    assert code == 401, body
    # With credentials but without the token: refused.
    code, body, _ = s.request("/api/dead/celery/x/retry", "POST", {}, auth=AUTH)
    assert code == 403 and b"CSRF" in body
    code, body, _ = s.request("/api/dead/celery/x/retry", "POST", {},
                              {"X-CSRF-Token": "forged"}, auth=AUTH)
    assert code == 403
    # Both: the action runs (and says this one has nothing to retry).
    code, body, _ = s.request("/api/dead/celery/x/retry", "POST", {},
                              {"X-CSRF-Token": token}, auth=AUTH)
    assert code == 409 and b"no longer dead-lettered" in body
    # A GET never acts.
    assert s.request("/api/dead/celery/x/retry", auth=AUTH)[0] in (404, 405)


def test_no_auth_off_loopback_refuses_every_action(secured: Stack) -> None:
    s = secured
    s.start_dashboard("--address", "0.0.0.0")
    assert s.request("/nodes")[0] == 200  # looking is allowed, as configured
    token = s.csrf()
    for path in ("/api/dead/celery/x/retry", "/api/nodes/w1/pool_grow",
                 "/api/tasks/abc/revoke"):
        code, body, _ = s.request(path, "POST", {"n": 1}, {"X-CSRF-Token": token})
        assert code == 401 and b"--auth" in body, (path, body)


def test_loopback_without_auth_acts_but_needs_csrf(secured: Stack) -> None:
    s = secured
    s.start_dashboard()  # 127.0.0.1 by default
    assert "127.0.0.1" in s.url
    code, body, _ = s.request("/api/tasks/abc/revoke", "POST", {})
    assert code == 403 and b"CSRF" in body
    code, body, _ = s.request("/api/tasks/abc/revoke", "POST", {},
                              {"X-CSRF-Token": s.csrf()})
    assert code == 200 and json.loads(body)["ok"] is True
    code, body, _ = s.request("/api/nodes/nobody/pool_grow", "POST", {"n": 1},
                              {"X-CSRF-Token": s.csrf()})
    assert code == 409 and b"no node named" in body


def test_auth_from_the_environment(secured: Stack) -> None:
    s = secured
    s.start_dashboard(env={"QMULTI_DASHBOARD_AUTH": "env-user:env-pw"})
    assert s.request("/api/snapshot")[0] == 401
    assert s.request("/api/snapshot", auth=("env-user", "env-pw"))[0] == 200


def test_broker_password_in_no_page_answer_or_log(secured: Stack) -> None:
    s = secured
    s.start_node("w1", 1)
    s.start_dashboard("-l", "debug")
    from helpers import wait_for

    wait_for(lambda: s.node_names(), 60, "the node's heartbeat")
    seen = []
    for path in ("/nodes", "/queues", "/charts", "/tasks", "/dead", "/scheduled",
                 "/api/snapshot", "/api/history", "/api/nodes", "/api/tasks", "/metrics",
                 "/static/app.js"):
        code, body, _ = s.request(path)
        assert code == 200, path
        seen.append(body)
    snap = json.loads(seen[6])
    assert "***" in snap["broker"]["url"]
    assert all(PASSWORD.encode() not in body for body in seen)
    s.close()
    logs = "".join(p.read_text(errors="replace") for p in s.root.glob("dashboard-*.out"))
    assert "dashboard: http://" in logs and PASSWORD not in logs


def _qmulti(tmp_path: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = (f"import sys\n{prelude}\nfrom qmulti.supervisor.cli import main\n"
            f"sys.exit(main({list(args)!r}))\n")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)


def test_without_the_extra_it_says_what_to_install(tmp_path: Path) -> None:
    for blocked in ("flask", "prometheus_client"):
        done = _qmulti(tmp_path, "dashboard", "-A", "proj",
                       prelude=f"sys.modules[{blocked!r}] = None")
        assert done.returncode == 78
        assert done.stderr.strip().splitlines() == [
            "qmulti dashboard: the web dashboard needs its extra; install it with: "
            "pip install 'qmulti[dashboard]'"]


@pytest.mark.parametrize("args, needle", [
    (("--auth", "nocolon"), "--auth needs USER:PASSWORD"),
    (("--port", "70000"), "--port 70000"),
    (("--refresh", "0"), "--refresh 0"),
])
def test_bad_options_are_one_line(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    (tmp_path / "proj.py").write_text("from qmulti import Celery\napp = Celery('p')\n")
    done = _qmulti(tmp_path, "dashboard", "-A", "proj", *args)
    assert done.returncode == 2, done.stderr  # EX_USAGE, as every usage error
    [line] = done.stderr.strip().splitlines()
    assert needle in line and "Traceback" not in done.stderr


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    import socket

    (tmp_path / "proj.py").write_text(
        f"from qmulti import Celery\napp = Celery('p', broker='sqlite:///{tmp_path}/b.db')\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = _qmulti(tmp_path, "dashboard", "-A", "proj", "--port", str(port))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line


def test_a_bad_app_is_one_line(tmp_path: Path) -> None:
    done = _qmulti(tmp_path, "dashboard", "-A", "no_such_module")
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("qmulti dashboard:") and "no_such_module" in line
