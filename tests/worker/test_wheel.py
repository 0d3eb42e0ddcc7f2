"""The built wheel: one top-level package `qmulti` and nothing named `worker`,
`supervisor` or `pidfiles`, which would shadow a user's own modules of those names.

The wheel is built from a copy of the three folders and pyproject.toml, so the build
leaves nothing in the checkout, then installed without dependencies into a new venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"worker": "qmulti", "supervisor": "qmulti/supervisor", "pidfiles": "qmulti/pidfiles"}

pytestmark = pytest.mark.timeout(600)


def _run(*cmd: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=500)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    src = tmp_path_factory.mktemp("src")
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    proc = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", ".", "-w", "dist",
                cwd=src)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (built,) = (src / "dist").glob("qmulti-*.whl")
    yield built


def test_the_wheel_holds_qmulti_alone(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"qmulti"}
    dist_info = next(t for t in top if t.endswith(".dist-info"))
    top_level = zipfile.ZipFile(wheel).read(f"{dist_info}/top_level.txt").decode().split()
    assert top_level == ["qmulti"]


def test_every_source_file_and_the_lua_scripts_are_inside(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".lua"):
                expected.add(f"{package}/{path.relative_to(ROOT / folder).as_posix()}")
    assert expected - names == set(), "missing from the wheel (pyproject's packages list?)"
    lua = {n for n in names if n.startswith("qmulti/brokers/redis/lua/") and n.endswith(".lua")}
    assert "qmulti/brokers/redis/lua/claim.lua" in lua
    assert len(lua) == len(list((ROOT / "worker/brokers/redis/lua").glob("*.lua")))


def test_the_console_scripts_point_into_qmulti(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = archive.read(entry_points).decode()
    assert "qworker = qmulti.node.entry:main" in text
    assert "qmulti = qmulti.supervisor.entry:main" in text


def test_installed_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel,
                     cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    for name in ("worker", "supervisor", "pidfiles"):
        proc = _run(python, "-c", f"import {name}", cwd=tmp_path)
        assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr, (name, proc.stderr)
    proc = _run(python, "-c", "from qmulti import Celery, App, shared_task, current_app, Task;"
                "assert Celery is App; import qmulti.supervisor.cli, qmulti.pidfiles",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (venv / "bin" / "qworker").exists() and (venv / "bin" / "qmulti").exists()


def test_this_venv_has_no_top_level_worker(tmp_path: Path) -> None:
    # the editable install maps qmulti alone; the tests never add the repo root
    for name in ("worker", "supervisor", "pidfiles"):
        proc = _run(sys.executable, "-c", f"import {name}", cwd=tmp_path)
        assert "ModuleNotFoundError" in proc.stderr, (name, proc.stderr)
