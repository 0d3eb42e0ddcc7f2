"""What a fresh interpreter loads, read from `python -X importtime`: `import qmulti`
loads no node and no broker module, and `qmulti show 3` no broker and no redis client.

Each case runs in a new process (this one has long since imported everything), in an
empty directory so no user module can stand in for ours.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def loaded_modules(tmp_path: Path, *args: str) -> list[str]:
    """The modules `python -X importtime ARGS` imports, in import order."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CELERY_"))}
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = []
    for line in proc.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package", one line a module
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                modules.append(name)
    assert "encodings" in modules, "importtime's output was not understood"
    return modules


def under(modules: list[str], *packages: str) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


@pytest.mark.parametrize("code", ["import qmulti", "import qmulti; qmulti.Celery",
                                  "from qmulti import Celery, Task, shared_task, current_app"])
def test_import_qmulti_loads_no_node_and_no_broker(tmp_path: Path, code: str) -> None:
    modules = loaded_modules(tmp_path, "-c", code)
    assert "qmulti" in modules
    assert under(modules, "qmulti.node", "qmulti.brokers", "redis") == []


def test_a_connection_does_load_the_broker(tmp_path: Path) -> None:
    # the control: the same reading sees brokers when they are used
    modules = loaded_modules(
        tmp_path, "-c", "import qmulti; qmulti.Celery('t', broker='memory://').broker")
    assert "qmulti.brokers.memory" in modules
    assert under(modules, "qmulti.node", "qmulti.brokers.redis", "redis") == []


def test_qmulti_show_loads_no_broker(tmp_path: Path) -> None:
    modules = loaded_modules(tmp_path, "-m", "qmulti.supervisor", "show", "3")
    assert "qmulti.supervisor.cli" in modules
    assert under(modules, "qmulti.brokers", "redis", "qmulti.node") == []
