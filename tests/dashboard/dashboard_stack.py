"""A real stack for the dashboard's tests: a private redis-server, real `qworker`
nodes, a real `qmulti dashboard` process, and Debian's headless Chromium.

Every process started here carries QMULTI_TEST_TAG and works under the stack's
directory, so `close()` finds and kills exactly those (see helpers.processes_of).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil

from helpers import processes_of, wait_for
from redis_server import RedisServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]

PROJ = textwrap.dedent('''
    import time

    from qmulti import Celery

    app = Celery("proj")
    app.conf.result_extended = True
    app.conf.beat_schedule = {"tick": {"task": "proj.add", "schedule": 3600.0,
                                       "args": (1, 1)}}


    @app.task(name="proj.add")
    def add(x, y):
        return x + y


    @app.task(name="proj.mul")
    def mul(x, y):
        return x * y


    @app.task(name="proj.fail")
    def fail(x):
        raise ValueError(f"fail {x}")


    @app.task(name="proj.sleep")
    def sleep(seconds):
        time.sleep(seconds)
        return seconds
''')


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} missing (apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (the Python client) is not installed: pip install -e '.[test]'"
    return None


class Stack:
    def __init__(self, root: Path, redis: RedisServer) -> None:
        self.root = root
        self.redis = redis
        self.tag = uuid.uuid4().hex
        (root / "proj.py").write_text(PROJ)
        self.env = {**os.environ, "QMULTI_BROKER_URL": redis.url, "QMULTI_TEST_TAG": self.tag,
                    "PYTHONPATH": str(root)}
        self.env.pop("QMULTI_RESULT_BACKEND", None)
        self.env.pop("QMULTI_DASHBOARD_AUTH", None)
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.dashboard: subprocess.Popen[bytes] | None = None
        self.url = ""

    # -- processes -------------------------------------------------------------------------
    def start_node(self, name: str, concurrency: int = 2, *extra: str) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the node's to keep
        self.nodes[name] = subprocess.Popen(
            [sys.executable, "-m", "qmulti", "-A", "proj", "-n", f"{name}@%h", "-c",
             str(concurrency), "-l", "info", *extra],
            cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def start_dashboard(self, *args: str, env: dict[str, str] | None = None) -> str:
        out = self.root / f"dashboard-{len(list(self.root.glob('dashboard-*.out')))}.out"
        handle = open(out, "wb")  # noqa: SIM115
        self.dashboard = subprocess.Popen(
            [sys.executable, "-m", "qmulti.supervisor", "dashboard", "-A", "proj", "--port", "0",
             "--refresh", "0.5", *args], cwd=self.root, env={**self.env, **(env or {})},
            stdout=handle, stderr=subprocess.STDOUT)
        handle.close()
        proc = self.dashboard

        def listening() -> str | None:
            assert proc.poll() is None, out.read_text()
            found = re.search(r"dashboard: (http://\S+/)", out.read_text())
            return found.group(1) if found else None

        self.url = wait_for(listening, 30, "the dashboard to listen")
        return self.url

    def node_names(self) -> set[str]:
        return {row["name"] for row in self.get("/api/nodes")
                if row["state"] != "offline"}

    def close(self) -> None:
        procs = processes_of(self.root, self.tag)
        for proc in procs:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)
        for child in (*self.nodes.values(), self.dashboard):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait(10)

    # -- HTTP ------------------------------------------------------------------------------
    def request(self, path: str, method: str = "GET", body: Any = None,
                headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, base: str | None = None
                ) -> tuple[int, bytes, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request((base or self.url).rstrip("/") + path, data=data,
                                     method=method, headers=dict(headers or {}))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def get(self, path: str) -> Any:
        status, body, _ = self.request(path)
        assert status == 200, (status, body[:300])
        return json.loads(body)

    def csrf(self, **kwargs: Any) -> str:
        status, body, _ = self.request("/nodes", **kwargs)
        assert status == 200, status
        return re.search(rb'name="csrf-token" content="([^"]+)"', body).group(1).decode()


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


def has_redis() -> bool:
    return shutil.which("redis-server") is not None
