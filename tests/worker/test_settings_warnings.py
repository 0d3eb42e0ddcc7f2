"""Settings a Celery project brings: one WARNING line per process names those that have
no effect here; names that are no setting at all (Flask's config) stay quiet. Each case
runs in a process of its own, because the warning is once per process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run(tmp_path: Path, code: str) -> str:
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(code))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr


FLASK_CONFIG = '''
import logging
logging.basicConfig(level=logging.{level}, format="%(levelname)s %(name)s %(message)s")
from qmulti import Celery
flask_config = {{"DEBUG": True, "SECRET_KEY": "s3cret", "TESTING": False,
                "SESSION_COOKIE_NAME": "session", "JSON_SORT_KEYS": True,
                "CELERY_BROKER_URL": "memory://", "CELERY_RESULT_BACKEND": "memory://",
                "CELERY_SEND_EVENTS": True, "CELERYD_POOL_RESTARTS": True,
                "BROKER_FAILOVER_STRATEGY": "round-robin", "worker_disable_rate_limits": True,
                "task_serialiser": "json"}}
for n in range(3):  # several apps, several updates: still one line
    app = Celery("web" + str(n))
    app.conf.update(flask_config)
    app.conf.update(result_persistent=True, task_acks_late=False)
    app.broker  # connects: the report is due now
    app.conf.freeze()
print("ok")
'''


@pytest.mark.timeout(60)
def test_flask_config_gives_one_warning_line_naming_the_celery_names(tmp_path: Path) -> None:
    err = run(tmp_path, FLASK_CONFIG.format(level="WARNING"))
    lines = [line for line in err.splitlines() if line.startswith("WARNING")]
    assert len(lines) == 1, err
    line = lines[0]
    for name in ("CELERY_SEND_EVENTS", "CELERYD_POOL_RESTARTS", "BROKER_FAILOVER_STRATEGY",
                 "worker_disable_rate_limits", "result_persistent",
                 "task_serialiser (did you mean task_serializer?)",
                 "task_acks_late (qmulti always acks after the result is stored)"):
        assert name in line, line
    for quiet in ("DEBUG", "SECRET_KEY", "TESTING", "SESSION_COOKIE_NAME", "s3cret",
                  "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):  # the last two are ours
        assert quiet not in line, line


@pytest.mark.timeout(60)
def test_other_names_are_logged_at_debug_level(tmp_path: Path) -> None:
    err = run(tmp_path, FLASK_CONFIG.format(level="DEBUG"))
    assert "DEBUG qmulti.config SECRET_KEY in conf.update() is not a setting; ignored" in err
    assert "s3cret" not in err


@pytest.mark.timeout(60)
def test_a_config_module_with_a_lower_case_celery_name(tmp_path: Path) -> None:
    (tmp_path / "celeryconfig.py").write_text(
        "import os\nbroker_url = 'memory://'\nworker_disable_rate_limits = True\n"
        "imports = ()\n")
    err = run(tmp_path, '''
        from qmulti import Celery
        app = Celery("x")
        app.config_from_object("celeryconfig")
        app.conf.freeze()
    ''')
    assert err.count("WARNING") <= 1
    assert "without effect in qmulti, ignored: worker_disable_rate_limits" in err
    assert "os" not in err.split("ignored:")[1]  # a module's own imports are not settings


@pytest.mark.timeout(60)
def test_settings_qmulti_has_warn_about_nothing(tmp_path: Path) -> None:
    err = run(tmp_path, '''
        from qmulti import Celery
        app = Celery("x", broker="memory://", task_acks_late=True, task_track_started=True,
                     CELERY_ALWAYS_EAGER=False, result_extended=True)
        app.conf.freeze()
        app.broker
    ''')
    assert "WARNING" not in err and "warning" not in err.lower(), err
