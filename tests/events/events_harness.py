"""A tmp project on a given broker, `qmulti` runs in it, and the `qmulti events` tail.

Every process started here carries a unique QMULTI_TEST_TAG (and runs in the tmp
directory), so the cleanup finds and kills all of it whatever the test did."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import psutil

from helpers import processes_of, wait_for

TASKS = '''
from qmulti import App
from qmulti.exceptions import Reject

app = App("tasks", broker={url!r})
app.conf.update(worker_heartbeat_interval=0.5, worker_heartbeat_expiry=3.0,
                event_stream_maxlen={maxlen})


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.boom")
def boom(n):
    raise ValueError(f"boom {{n}}")


@app.task(name="tasks.again", bind=True, max_retries=1)
def again(self, n):
    if self.request.retries == 0:
        raise self.retry(exc=KeyError(n), countdown=0.1)
    return n


@app.task(name="tasks.sleepy")
def sleepy(seconds):
    import time
    time.sleep(seconds)
    return seconds


@app.task(name="tasks.refuse")
def refuse(n):
    raise Reject(f"no {{n}}", requeue=False)
'''


class Project:
    def __init__(self, path: Path, url: str, maxlen: int = 10_000) -> None:
        self.path = path
        self.url = url
        self.tag = uuid.uuid4().hex
        (path / "tasks.py").write_text(textwrap.dedent(TASKS).format(url=url, maxlen=maxlen))

    def env(self) -> dict[str, str]:
        env = dict(os.environ, QMULTI_TEST_TAG=self.tag)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("QMULTI_BROKER_URL", None)
        return env

    def qmulti(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "qmulti.supervisor", *args],
                              cwd=self.path, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)

    def tail(self, *args: str) -> Tail:
        return Tail(self, args)

    def kill_all(self) -> None:
        procs = processes_of(self.path, self.tag)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)


class Tail:
    """`qmulti events ...` with its stdout in a file, read as it grows."""

    def __init__(self, project: Project, args: tuple[str, ...]) -> None:
        self.out = project.path / f"events-{uuid.uuid4().hex[:6]}.out"
        self.err = project.path / f"events-{uuid.uuid4().hex[:6]}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qmulti.supervisor", "events", *args],
                cwd=project.path, env=project.env(), stdout=out, stderr=err,
                stdin=subprocess.DEVNULL)

    def lines(self) -> list[str]:
        text = self.out.read_text()
        return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def wait_for(self, predicate: Any, timeout: float, what: str) -> list[dict[str, Any]]:
        def check() -> list[dict[str, Any]] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"qmulti events exited {self.proc.returncode}: "
                                     f"{self.err.read_text()}")
            found = self.events()
            return found if predicate(found) else None

        return wait_for(check, timeout=timeout, what=what, interval=0.1)

    def interrupt(self, timeout: float = 10.0) -> int:
        """Ctrl-C: SIGINT, as a terminal sends it."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout)


def by_task(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """uuid -> its event types in stream order."""
    out: dict[str, list[str]] = {}
    for e in events:
        if e["type"].startswith("task-") and e.get("uuid"):
            out.setdefault(e["uuid"], []).append(e["type"])
    return out
