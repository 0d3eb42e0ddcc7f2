"""The unit files keep contract section 6: always parsed, `systemd-analyze verify`ed if present."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qmulti.supervisor.cluster import QUIT_GRACE

UNITS = Path(__file__).resolve().parents[2] / "systemd"
SERVICES = ("qmulti.service", "qworker@.service", "qmulti-beat.service")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string((UNITS / name).read_text())
    return parser


def command(parser: configparser.ConfigParser, key: str) -> str:
    """A command line with its backslash continuations joined."""
    return " ".join(parser["Service"][key].replace("\\\n", " ").split())


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (UNITS / "qmulti.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_qmulti_service_is_a_notify_supervisor() -> None:
    service = unit("qmulti.service")["Service"]
    assert service["Type"] == "notify"
    start = command(unit("qmulti.service"), "ExecStart")
    assert re.search(r"\bqmulti supervise\b", start)
    assert re.search(r"kill -HUP \$MAINPID", service["ExecReload"])
    assert service["KillMode"] == "mixed"
    assert "78" in service["RestartPreventExitStatus"].split()
    assert service["EnvironmentFile"].strip()
    # systemd must wait longer than supervise's own stop (--timeout, then QUIT_GRACE to KILL).
    assert "--timeout ${QMULTI_STOP_TIMEOUT}" in start
    stop_timeout = float(env_example()["QMULTI_STOP_TIMEOUT"])
    assert float(service["TimeoutStopSec"]) > stop_timeout + QUIT_GRACE


def test_qworker_template_runs_one_foreground_node() -> None:
    service = unit("qworker@.service")["Service"]
    assert service["Type"] == "notify"
    start = command(unit("qworker@.service"), "ExecStart")
    assert re.search(r"\bqworker\b", start) and "--detach" not in start
    assert "%i" in start
    assert service["KillMode"] == "mixed"
    assert "78" in service["RestartPreventExitStatus"].split()
    assert service["EnvironmentFile"].strip()


@pytest.mark.parametrize("name", SERVICES)
def test_no_secret_on_any_command_line(name: str) -> None:
    service = unit(name)["Service"]
    for key in ("ExecStart", "ExecReload", "ExecStop", "ExecStartPre"):
        if key not in service:
            continue
        line = command(unit(name), key)
        assert not re.search(r"://[^/\s]*@", line), f"{key} holds a URL with credentials"
        assert not re.search(r"(^|\s)(-b|--broker|--result-backend)(\s|=)", line), \
            f"{key} passes a broker URL on the command line; use QMULTI_BROKER_URL"
    broker = env_example()["QMULTI_BROKER_URL"]
    assert broker.startswith("redis://")  # the example env file is where the URL lives


def test_tmpfiles_entry_makes_the_run_and_log_directories() -> None:
    lines = [line.split() for line in (UNITS / "qmulti-tmpfiles.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    made = {fields[1] for fields in lines if fields[0] == "d"}
    assert {"/run/qmulti", "/var/log/qmulti"} <= made
    start = command(unit("qmulti.service"), "ExecStart")
    assert "--pidfile=/run/qmulti/" in start and "--logfile=/var/log/qmulti/" in start


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (apt-get install systemd)")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart's binary exists: point the units at this venv's scripts.
    bindir = os.path.dirname(sys.executable)
    if not os.access(os.path.join(bindir, "qmulti"), os.X_OK):
        pytest.skip(f"no qmulti script in {bindir} (pip install -e . first)")
    for name in SERVICES:
        text = (UNITS / name).read_text().replace("/srv/app/.venv/bin/", bindir + "/")
        (tmp_path / name).write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in SERVICES)],
                          capture_output=True, text=True, timeout=60)
    ours = [line for line in (proc.stdout + proc.stderr).splitlines()
            if "qmulti" in line or "qworker" in line]
    assert proc.returncode == 0 and not ours, proc.stdout + proc.stderr


def test_beat_unit_is_notify_and_not_restarted_on_a_config_error() -> None:
    service = unit("qmulti-beat.service")["Service"]
    assert service["Type"] == "notify"
    assert "78" in service["RestartPreventExitStatus"].split()
    start = command(unit("qmulti-beat.service"), "ExecStart")
    assert " beat -A " in start and "redis://" not in start  # the URL lives in the env file


@pytest.mark.parametrize("name", SERVICES)
def test_units_block_the_stop_signals_until_our_handlers_exist(name: str) -> None:
    """A stop during interpreter start-up must stay pending, not kill (issue 11)."""
    start = command(unit(name), "ExecStart")
    match = re.match(r"/usr/bin/env --block-signal=(\S+) /srv/app/\.venv/bin/q", start)
    assert match, start
    assert set(match.group(1).split(",")) == {"TERM", "INT", "HUP", "QUIT"}


def test_qmulti_service_can_run_a_scheduler_beside_the_nodes() -> None:
    start = command(unit("qmulti.service"), "ExecStart")
    assert "supervise $QMULTI_NODES $QMULTI_BEAT " in start
    assert env_example()["QMULTI_BEAT"] in ("", "--beat")
