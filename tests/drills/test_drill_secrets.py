"""Drill: the broker password never shows, wherever a user or a log shipper could look.

A password-protected private Redis; nodes started by `qmulti start` three ways (URL only
in QMULTI_BROKER_URL, URL in the app module, URL given to qmulti with `-b`); tasks that
succeed and fail; a Redis restart so that nodes log broker errors; a node started with
a wrong password (its error is logged and printed); `qmulti show -b URL`, `qmulti status`
and `status --json`. Then the password is counted in every file the projects hold (logs,
pidfiles, captured output; the app module that holds it on purpose excepted), in the
stdout/stderr of every command, and in the command line (process title) of every node
process. Every count must be 0. The wrong password is the real one plus a suffix, so a
leak of it counts too.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import psutil
import pytest
from drill_support import Project, statuses, write_tasks

from helpers import wait_for
from redis_server import RedisServer

Done = subprocess.CompletedProcess[str]


@pytest.mark.timeout(150)
def test_the_password_appears_nowhere(tmp_path: Path) -> None:
    from qmulti import App
    from qmulti.brokers.redis import RedisStore

    password = f"s3cret-{uuid.uuid4().hex[:12]}"
    server = RedisServer(tmp_path, password=password).start()
    url = server.url
    wrong_url = url.replace(password, password + "-wrong")
    env_only = Project.make(tmp_path / "env-only")
    in_module = Project.make(tmp_path / "in-module")
    dash_b = Project.make(tmp_path / "dash-b")
    wrong = Project.make(tmp_path / "wrong")
    projects = [env_only, in_module, dash_b, wrong]
    outputs: dict[str, str] = {}
    node_titles: list[str] = []

    def record(label: str, done: Done) -> Done:
        outputs[label] = done.stdout + done.stderr
        return done

    try:
        write_tasks(env_only.path, None)
        write_tasks(in_module.path, url)
        write_tasks(dash_b.path, None)
        write_tasks(wrong.path, None)
        common = ["-A", "tasks", "-c", "2", "-l", "info"]
        started = [
            record("start env-only", env_only.qmulti(
                "start", "e1", "e2", *common, env=env_only.env(QMULTI_BROKER_URL=url))),
            record("start in-module", in_module.qmulti("start", "m1", *common)),
            record("start -b", dash_b.qmulti("start", "b1", *common, "-b", url)),
        ]
        for done in started:
            assert done.returncode == 0, done.stdout + done.stderr
        bad = record("start wrong password", wrong.qmulti(
            "start", "x1", *common, "--timeout", "8",
            env=wrong.env(QMULTI_BROKER_URL=wrong_url)))
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "FAILED" in bad.stdout, bad.stdout + bad.stderr

        producer = App("producer", broker=url)
        store = RedisStore(url)
        ids = [producer.send_task("tasks.add", (i, i), check=False).id for i in range(40)]
        ids += [producer.send_task("tasks.boom", (f"failure {i}",), check=False).id
                for i in range(10)]
        wait_for(lambda: statuses(store, ids).get("PENDING", 0) == 0
                 and statuses(store, ids).get("STARTED", 0) == 0, 30, "tasks done")
        counts = statuses(store, ids)
        assert counts == {"SUCCESS": 40, "FAILURE": 10}, counts

        # An outage: the nodes log that they cannot reach the broker, then recover.
        server.restart(down_for=1.5)
        more = [producer.send_task("tasks.add", (i, 1), check=False).id for i in range(10)]
        wait_for(lambda: statuses(store, more).get("SUCCESS", 0) == 10, 40,
                 "tasks after the Redis restart")

        record("show -b", env_only.qmulti("show", "e1", "e2", *common, "-b", url))
        record("show env", env_only.qmulti("show", "e1", "e2", *common,
                                           env=env_only.env(QMULTI_BROKER_URL=url)))
        record("status env", env_only.qmulti("status", "e1", "e2", *common,
                                             env=env_only.env(QMULTI_BROKER_URL=url)))
        record("status --json", env_only.qmulti("status", "e1", "e2", "--json", *common,
                                                env=env_only.env(QMULTI_BROKER_URL=url)))
        record("status -b", dash_b.qmulti("status", "b1", *common, "-b", url))
        record("status in-module", in_module.qmulti("status", "m1", *common))
        assert "e1@" in outputs["status env"], outputs["status env"]

        for project in projects:
            for proc in project.processes():
                try:
                    node_titles.append(" ".join(proc.cmdline()).strip())
                except psutil.Error:
                    continue
        mains = sum(1 for t in node_titles if t.startswith("qworker:") and " main" in t)
        assert mains >= 4, node_titles  # e1 e2 m1 b1 (x1 may still be retrying)
        assert sum(1 for t in node_titles if " child " in t) >= 8, node_titles

        record("stopwait env-only", env_only.qmulti("stopwait", "e1", "e2", *common,
                                                    env=env_only.env(QMULTI_BROKER_URL=url)))
        record("stopwait in-module", in_module.qmulti("stopwait", "m1", *common))
        record("stopwait -b", dash_b.qmulti("stopwait", "b1", *common, "-b", url))
        record("kill wrong", wrong.qmulti("kill", "x1", *common,
                                          env=wrong.env(QMULTI_BROKER_URL=wrong_url)))

        in_files: dict[str, int] = {}
        for project in projects:
            for path in sorted(project.path.rglob("*")):
                if path.is_file() and path.name != "tasks.py" and "__pycache__" not in path.parts:
                    in_files[str(path.relative_to(tmp_path))] = path.read_bytes().count(
                        password.encode())
        masked = sum(path.read_text(errors="replace").count(":***@")
                     for project in projects for path in project.path.rglob("*.log"))
        in_outputs = {label: text.count(password) for label, text in outputs.items()}
        in_titles = sum(t.count(password) for t in node_titles)
        log_files = [name for name in in_files if name.endswith(".log")]
        print(f"\nwrong password start said: {bad.stdout.strip()[-300:]!r}")
        print(f"secrets drill: files scanned={len(in_files)} (logs={len(log_files)}) "
              f"hits={sum(in_files.values())}; command outputs={len(in_outputs)} "
              f"hits={sum(in_outputs.values())}; node processes={len(node_titles)} "
              f"hits={in_titles}; masked URLs in logs={masked}")
        assert len(log_files) >= 5, sorted(in_files)
        assert masked > 0, "the nodes never logged the broker URL: the outage path did not run"
        assert sum(in_files.values()) == 0, {k: v for k, v in in_files.items() if v}
        assert sum(in_outputs.values()) == 0, {k: outputs[k] for k, v in in_outputs.items() if v}
        assert in_titles == 0, [t for t in node_titles if password in t]
    finally:
        for project in projects:
            project.kill_all()
        server.kill()
