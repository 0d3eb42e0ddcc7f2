"""A real node for the canvas guide tests: `python -m qmulti -A proj` on a project that
is `guide_tasks.py` plus a three-line `proj.py`, and a producer app in the test process
with the same tasks."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import guide_tasks
import pytest

from helpers import wait_for
from qmulti import App

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "worker"))
from node_fixtures import NodeProcess  # noqa: E402 - tests/worker's node runner

HERE = Path(__file__).resolve().parent

PROJECT = '''
from pathlib import Path
from qmulti import App
from guide_tasks import define

app = App("guide", broker={url!r})
app.conf.update(worker_heartbeat_interval=0.5, worker_heartbeat_expiry=5.0)
define(app, Path.cwd() / "journal.jsonl")
'''


@dataclass
class GuideNode:
    """A running node and a producer app in this process with the same tasks."""

    kind: str
    root: Path
    app: App
    t: SimpleNamespace  # the tasks, as the guide names them: t.add, t.tsum, ...
    proc: NodeProcess

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

    def entries(self, **match: Any) -> list[dict[str, Any]]:
        return [e for e in guide_tasks.read_journal(self.journal)
                if all(e.get(k) == v for k, v in match.items())]

    def wait_entries(self, count: int, timeout: float = 20.0,
                     **match: Any) -> list[dict[str, Any]]:
        """The journal lines matching `match` once there are at least `count`."""
        wait_for(lambda: len(self.entries(**match)) >= count, timeout,
                 f"{count} journal entries {match} on the {self.kind} node")
        return self.entries(**match)

    def assert_alive(self) -> None:
        assert self.proc.proc.poll() is None, f"node exited:\n{self.proc.stderr()}"


def start_node(kind: str, root: Path, url: str) -> Iterator[GuideNode]:
    shutil.copy(HERE / "guide_tasks.py", root / "guide_tasks.py")
    (root / "proj.py").write_text(PROJECT.format(url=url))
    producer = App("guide", broker=url, set_as_current=False)
    tasks = guide_tasks.define(producer, root / "journal.jsonl")
    with pytest.MonkeyPatch.context() as mp:
        # The environment overrides an app's URLs; a developer's shell must not leak in.
        mp.delenv("QMULTI_BROKER_URL", raising=False)
        mp.delenv("QMULTI_RESULT_BACKEND", raising=False)
        with NodeProcess(root, "-A", "proj", "-c", "2", "-l", "warning",
                         name=f"guide-{kind}@%h") as proc:
            proc.wait_ready(60)
            try:
                yield GuideNode(kind, root, producer, tasks, proc)
            finally:
                producer.close()


# Examples that need the canvas branch's chain/chord/link work: strict, so each one that
# starts to pass fails the run until its marker is removed.
NEEDS_CANVAS = pytest.mark.xfail(strict=True, reason="needs chain/chord from branch canvas")
