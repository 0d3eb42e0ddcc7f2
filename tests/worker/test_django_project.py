"""A real Django project (tests/worker/django_project: settings, one app with one model
and a tasks.py of `@shared_task`s, proj/celery.py as Celery's Django guide writes it)
served by a real qworker: django.setup() before the tasks import, autodiscovery of the
installed apps' tasks.py, settings from `django.conf:settings` with the CELERY
namespace, and database connections closed around each task."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from node_fixtures import NodeProcess

from qmulti import App

pytest.importorskip("django")
pytestmark = pytest.mark.timeout(120)
PROJECT = Path(__file__).parent / "django_project"


def environ() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DJANGO_SETTINGS_MODULE", "QMULTI_BROKER_URL", "QMULTI_RESULT_BACKEND",
                 "NOTIFY_SOCKET"):
        env.pop(name, None)
    return env


def manage(root: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=root, env=environ(),
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def orm(root: Path, code: str) -> Any:
    """Run `code` in `manage.py shell` (the ORM of the project) and return the JSON it
    printed last."""
    out = manage(root, "shell", "-c", code)
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    manage(root, "migrate", "--noinput")
    return root


def test_django_project_runs_on_a_node(project: Path) -> None:
    with NodeProcess(project, "-A", "proj", "-c", "1", "-l", "info",
                     env=environ()) as node:
        node.wait_ready()
        log = node.stderr()
        assert "AppRegistryNotReady" not in log
        # autodiscover_tasks() found notes/tasks.py: add_note runs (an unregistered task
        # would be dead-lettered and its result a NotRegistered FAILURE)
        # The project's own code sends and waits, as a Django view would.
        sent = orm(project, "import json\n"
                            "from notes.tasks import add_note\n"
                            "r = add_note.delay('written by a task')\n"
                            "print(json.dumps([r.get(timeout=30), r.state]))")
        assert sent[0] >= 1 and sent[1] == "SUCCESS"
        rows = orm(project, "import json\n"
                            "from notes.models import Note\n"
                            "print(json.dumps(list(Note.objects.values('id', 'text', 'pid'))))")
        assert [r["text"] for r in rows] == ["written by a task"]
        assert rows[0]["id"] == sent[0]
        assert rows[0]["pid"] in [c.pid for c in node.children()]
        assert node.stop() == 0


def test_settings_come_from_the_celery_namespace(project: Path) -> None:
    """The node found the broker in CELERY_BROKER_URL (BROKER_URL, outside the namespace,
    names an unreachable Redis) and stored results at CELERY_RESULT_BACKEND."""
    app = App("producer", broker=f"sqlite:///{project / 'broker.sqlite3'}",
              backend=f"db+sqlite:///{project / 'results.sqlite3'}")
    try:
        with NodeProcess(project, "-A", "proj", "-c", "1", env=environ()) as node:
            node.wait_ready()
            r = app.send_task("notes.tasks.count_notes", check=False)
            assert r.get(timeout=30) == 0
            assert (project / "results.sqlite3").exists()
            assert node.stop() == 0
    finally:
        app.close()


def test_connections_are_closed_around_each_task(project: Path) -> None:
    """Django closes a connection only at the end of a web request; the node does it
    around each task, so a task never inherits the previous one's (maybe stale) one."""
    app = App("producer", broker=f"sqlite:///{project / 'broker.sqlite3'}",
              backend=f"db+sqlite:///{project / 'results.sqlite3'}")
    try:
        with NodeProcess(project, "-A", "proj", "-c", "1", env=environ()) as node:
            node.wait_ready()
            for i in range(3):
                assert isinstance(app.send_task("notes.tasks.add_note", (f"n{i}",),
                                                check=False).get(timeout=30), int)
                closed = app.send_task("notes.tasks.connection_was_closed", check=False)
                assert closed.get(timeout=30) is True
            assert node.stop() == 0
    finally:
        app.close()


class DjangoStyle:
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_SERIALIZER = "json"
    CELERY_RESULT_EXPIRES = 60
    BROKER_URL = "redis://outside-the-namespace:1/0"
    SECRET_KEY = "not a setting"
    INSTALLED_APPS = ["notes"]


def test_namespace_reads_only_prefixed_names_stripped_and_lowered() -> None:
    app = App("ns", set_as_current=False)
    app.config_from_object(DjangoStyle, namespace="CELERY")
    assert app.conf.broker_url == "memory://"
    assert app.conf.result_expires == 60
    changed = app.conf.changed()
    assert set(changed) == {"broker_url", "task_serializer", "result_expires"}


def test_autodiscover_waits_for_the_node_and_skips_apps_without_tasks(tmp_path: Path,
                                                                      monkeypatch: Any) -> None:
    """Not forced: nothing is imported until import_default_modules (the node's start);
    a package without tasks.py is skipped, an error inside one is raised."""
    for name, body in (("alpha", "from qmulti import shared_task\n\n@shared_task\n"
                                 "def ping():\n    return 'pong'\n"),
                       ("beta", None)):
        pkg = tmp_path / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        if body is not None:
            (pkg / "tasks.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = App("disc", broker="memory://", set_as_current=False)
    app.autodiscover_tasks(lambda: ["alpha", "beta"])
    assert "alpha.tasks" not in sys.modules
    assert "alpha.tasks" in app.import_default_modules()
    assert "alpha.tasks.ping" in app.tasks
    (tmp_path / "beta" / "tasks.py").write_text("import no_such_module_here\n")
    with pytest.raises(ModuleNotFoundError):
        app.autodiscover_tasks(["beta"], force=True)


def test_imports_setting_is_imported_after_django_setup(project: Path) -> None:
    """Without autodiscover: CELERY_IMPORTS names the tasks module, which imports models;
    the node sets Django up first, so it does not exit with AppRegistryNotReady."""
    celery_py = project / "proj" / "celery.py"
    celery_py.write_text(celery_py.read_text().replace(
        "app.autodiscover_tasks()", "app.conf.imports = ['notes.tasks']"))
    app = App("producer", broker=f"sqlite:///{project / 'broker.sqlite3'}",
              backend=f"db+sqlite:///{project / 'results.sqlite3'}")
    try:
        with NodeProcess(project, "-A", "proj", "-c", "1", "-l", "info",
                         env=environ()) as node:
            node.wait_ready()
            r = app.send_task("notes.tasks.add_note", ("via imports",), check=False)
            assert isinstance(r.get(timeout=30), int)
            assert node.stop() == 0
    finally:
        app.close()
