"""The seed's configuration: `CELERY_TIMEZONE = 'Europe/Oslo'`, `CELERY_ENABLE_UTC = True`
and a `crontab(minute='*')` entry send at each local minute (issue 13).

Waits for a real minute boundary (up to a minute), so it is marked `long`: collected
first, it overlaps the rest of the suite under `-n 2` instead of trailing it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_beat import Scheduler, schedulers, sends  # noqa: F401  (schedulers: a fixture)

from helpers import wait_for

CONFIG = '''
from qmulti.schedules import crontab

BROKER_URL = 'sqlite:///q.sqlite3'
CELERY_TIMEZONE = 'Europe/Oslo'
CELERY_ENABLE_UTC = True
CELERYBEAT_SCHEDULE = {
    'each-minute': {'task': 'tasks.add', 'schedule': crontab(minute='*'), 'args': (1, 2)},
}
'''
TASKS = '''
from qmulti import Celery
app = Celery('tasks')
app.config_from_object('celeryconfig')

@app.task
def add(x, y):
    return x + y
'''
OSLO = ZoneInfo("Europe/Oslo")


@pytest.mark.long
@pytest.mark.timeout(120)
def test_seed_config_crontab_sends_at_each_local_minute(
        tmp_path: Path, schedulers: list[Scheduler]) -> None:  # noqa: F811
    (tmp_path / "celeryconfig.py").write_text(CONFIG)
    (tmp_path / "tasks.py").write_text(TASKS)
    begun = time.time()
    beat = Scheduler(tmp_path, 0)
    schedulers.append(beat)
    wait_for(beat.started, 20, "scheduler started")
    log = beat.log.read_text()
    assert "in zone Europe/Oslo" in log, log
    got = wait_for(lambda: sends(tmp_path), 75, "the first minute's tick")
    (entry, due, at, _), = got
    local = datetime.fromtimestamp(due, OSLO)
    assert entry == "each-minute"
    assert (local.second, local.microsecond) == (0, 0), local
    assert begun < due <= begun + 61, "the first local minute after the start"
    assert at - due < 1.0
    # The next one is the following local minute, as --list prints it (local and UTC).
    listed = subprocess.run([sys.executable, "-m", "qmulti.supervisor", "beat", "--list",
                             "-A", "tasks"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=30)
    following = datetime.fromtimestamp(due + 60, OSLO).isoformat(timespec="seconds")
    assert f"next {following} (" in listed.stdout, listed.stdout + listed.stderr
    assert beat.stop() == 0
