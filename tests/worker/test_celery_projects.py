"""Celery projects run after renaming their imports: a Flask progress-bar app started
with `-A app.celery`, a package whose files are named worker.py, tasks.py and celery.py,
and the `-A` forms Celery's `find_app` accepts."""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_fixtures import NodeProcess, run_qworker

from helpers import wait_for

PROJECTS = Path(__file__).with_name("projects")


@pytest.fixture
def flask_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Any]]:
    shutil.copy(PROJECTS / "flask_progress" / "app.py", tmp_path / "app.py")
    monkeypatch.setenv("PROGRESS_BROKER", f"sqlite:///{tmp_path / 'progress.sqlite3'}")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "app", raising=False)
    module = importlib.import_module("app")
    yield tmp_path, module
    module.celery.close()
    sys.modules.pop("app", None)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("spec", ["app.celery", "app"])
def test_flask_progress_bar(flask_app: tuple[Path, Any], spec: str) -> None:
    root, module = flask_app
    client = module.app.test_client()
    with NodeProcess(root, "-A", spec, "-c", "1", "-l", "info",
                     env={"PROGRESS_BROKER": f"sqlite:///{root / 'progress.sqlite3'}"}) as node:
        node.wait_ready()
        started = client.post("/longtask", json={"total": 5, "pause": 0.4})
        assert started.status_code == 202
        status_url = started.headers["Location"]
        assert status_url.startswith("/status/")
        progress: list[dict[str, Any]] = []

        def poll(final: bool) -> Any:
            body = client.get(status_url).get_json()
            if body["state"] == "PROGRESS":
                progress.append(body)
            return body if (body["state"] == "SUCCESS") == final else None

        wait_for(lambda: poll(False) and progress, 30, "a PROGRESS status")
        done = wait_for(lambda: poll(True), 30, "the SUCCESS status")
        assert progress[0]["total"] == 5 and 0 <= progress[0]["current"] < 5
        assert progress[0]["status"]
        assert done == {"state": "SUCCESS", "current": 5, "total": 5, "status": "done",
                        "result": 42}
        assert node.stop() == 0
    err = node.stderr()
    assert "WARNING" not in err, err  # Flask's own config keys are quietly ignored
    assert "Traceback" not in err


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    shutil.copytree(PROJECTS / "proj_named" / "proj", tmp_path / "proj")
    return tmp_path


@pytest.mark.timeout(90)
@pytest.mark.parametrize("spec", ["proj", "proj.celery", "proj.celery:app", "proj.celery_app"])
def test_project_with_worker_tasks_and_celery_modules(proj: Path, spec: str) -> None:
    from qmulti import App

    url = f"sqlite:///{proj / 'proj.sqlite3'}"
    with NodeProcess(proj, "-A", spec, "-c", "1", "-l", "info", env={"PROJ_BROKER": url}) as node:
        node.wait_ready()
        producer = App("producer", broker=url)
        assert producer.send_task("proj.tasks.add", (2, 3)).get(timeout=20) == 5
        assert producer.send_task("proj.tasks.where").get(timeout=20).startswith("proj.worker")
        assert node.stop() == 0
        producer.close()


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


APP = "from qmulti import Celery\n"


@pytest.mark.parametrize(("files", "spec", "main"), [
    ({"flat.py": APP + "celery = Celery('by-celery-attr')\n"}, "flat", "by-celery-attr"),
    ({"flat.py": APP + "other = Celery('only-one')\n"}, "flat", "only-one"),
    ({"flat.py": APP + "app = Celery('app-first')\ncelery = Celery('second')\n"}, "flat",
     "app-first"),
    ({"pkg/__init__.py": "", "pkg/celery.py": APP + "app = Celery('sub')\n"}, "pkg", "sub"),
    ({"pkg/__init__.py": "", "pkg/mod.py": APP + "web = Celery('attr-of-mod')\n"},
     "pkg.mod.web", "attr-of-mod"),
    ({"pkg/__init__.py": "", "pkg/factory.py": APP + "def make():\n    return Celery('made')\n"},
     "pkg.factory:make", "made"),
])
@pytest.mark.timeout(60)
def test_find_app_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        files: dict[str, str], spec: str, main: str) -> None:
    from qmulti.node.loader import load_app

    unique = f"qm_{tmp_path.name.replace('-', '_')}"
    files = {name.replace("pkg", unique).replace("flat", unique): text
             for name, text in files.items()}
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = load_app(spec.replace("pkg", unique).replace("flat", unique))
    assert app.main == main


@pytest.mark.timeout(60)
def test_find_app_errors_are_one_line(tmp_path: Path) -> None:
    write(tmp_path, {"two.py": APP + "a = Celery('a')\nb = Celery('b')\n",
                     "notapp.py": "thing = 42\n"})
    done = run_qworker(tmp_path, "-A", "two")
    assert done.returncode == 78 and "2 App instances" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_qworker(tmp_path, "-A", "notapp.thing")
    assert done.returncode == 78 and "thing is a int, not an App" in done.stderr
    done = run_qworker(tmp_path, "-A", "nothere.celery")
    assert done.returncode == 78 and "nothere" in done.stderr
