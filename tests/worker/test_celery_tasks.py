"""Celery's task features on real nodes: update_state and custom states, Ignore, Reject
and a raised Retry, autoretry with backoff, the request's fields and the task tree,
result_extended, app-level ignore_result, task loggers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_fixtures import NodeProcess, producer, write_tasks

from helpers import wait_for

TASKS = '''
from qmulti import Ignore, Reject, Retry
from qmulti.utils.log import get_task_logger

logger = get_task_logger(__name__)


@app.task(bind=True)
def progress(self, total, pause):
    for i in range(total):
        self.update_state(state="PROGRESS", meta={"current": i, "total": total})
        time.sleep(pause)
    return {"current": total, "total": total, "status": "done"}


@app.task(bind=True)
def custom_then_ignore(self):
    self.update_state(state="HALFWAY", meta={"note": "kept"})
    raise Ignore()


@app.task
def rejected():
    raise Reject("not for us", requeue=False)


@app.task(bind=True)
def raises_retry(self):
    if self.request.retries < 2:
        raise Retry(when=0.2)
    return self.request.retries


@app.task(bind=True, autoretry_for=(ConnectionError,), retry_backoff=True,
          retry_jitter=False, max_retries=3)
def backoff(self, path):
    with open(path, "a") as f:
        f.write(f"{time.time()}\\n")
    raise ConnectionError("still down")


@app.task(bind=True, autoretry_for=(KeyError,), dont_autoretry_for=(LookupError,),
          max_retries=5)
def not_retried(self):
    raise KeyError("KeyError is a LookupError: no autoretry")


def _fields(request):
    return {k: getattr(request, k) for k in (
        "id", "task", "retries", "args", "kwargs", "hostname", "delivery_info", "eta",
        "called_directly", "root_id", "parent_id")}


@app.task(bind=True)
def whoami(self, *args, **kwargs):
    return _fields(self.request)


@app.task(bind=True)
def parent(self):
    by_delay = whoami.delay(1)
    by_name = app.send_task("tasks.whoami", (2,))
    return [by_delay.id, by_name.id]


@app.task
def logs(word):
    logger.info("said %s", word)
    return word
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, NodeProcess]]:
    root = tmp_path_factory.mktemp("celery_tasks")
    write_tasks(root, extra_config="app.conf.update(result_extended=True)\n",
                extra_tasks=TASKS)
    with NodeProcess(root, "-A", "tasks", "-c", "2", "-l", "info") as node:
        node.wait_ready()
        yield root, node


@pytest.fixture
def app(project: tuple[Path, NodeProcess]) -> Any:
    return producer(project[0])


@pytest.mark.timeout(60)
def test_update_state_shows_progress_then_success(app: Any) -> None:
    result = app.send_task("tasks.progress", (4, 0.4))
    seen: list[dict[str, Any]] = []

    def progressing() -> bool:
        if result.state == "PROGRESS":
            seen.append(result.info)
        return len(seen) >= 2
    wait_for(progressing, 20, "two PROGRESS readings")
    assert all(set(info) == {"current", "total"} and info["total"] == 4 for info in seen)
    assert result.get(timeout=20) == {"current": 4, "total": 4, "status": "done"}
    assert result.state == "SUCCESS" and result.info["status"] == "done"


@pytest.mark.timeout(60)
def test_ignore_acks_and_stores_nothing_more(app: Any, project: tuple[Path, NodeProcess]) -> None:
    result = app.send_task("tasks.custom_then_ignore")
    wait_for(lambda: "ignored" in project[1].stderr() and result.id in project[1].stderr(),
             20, "the ignore")
    assert result.state == "HALFWAY" and result.info == {"note": "kept"}
    stats = wait_for(lambda: (s := app.broker.stats()).leased == 0 and s, 10, "the ack")
    assert sum(stats.queues.values()) == 0


@pytest.mark.timeout(60)
def test_reject_dead_letters(app: Any) -> None:
    result = app.send_task("tasks.rejected")
    dead = wait_for(lambda: [d for d in app.broker.dead_letters() if result.id.encode()
                             in d.body], 20, "the dead letter")
    assert "not for us" in dead[0].reason


@pytest.mark.timeout(60)
def test_retry_raised_by_the_task(app: Any) -> None:
    assert app.send_task("tasks.raises_retry").get(timeout=20) == 2


@pytest.mark.timeout(90)
def test_retry_backoff_without_jitter_waits_1_2_4(app: Any, project: tuple[Path, NodeProcess],
                                                  tmp_path: Path) -> None:
    stamps = tmp_path / "tries.txt"
    result = app.send_task("tasks.backoff", (str(stamps),))
    with pytest.raises(ConnectionError, match="still down"):
        result.get(timeout=40)
    times = [float(line) for line in stamps.read_text().split()]
    assert len(times) == 4  # the first try and max_retries=3 retries
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    for gap, want in zip(gaps, (1, 2, 4), strict=True):
        assert want - 0.05 <= gap <= want + 1.5, gaps
    err = project[1].stderr()
    logged = re.findall(rf"tasks\.backoff\[{result.id}\] retry (\d) in ([\d.]+)s", err)
    assert logged == [("1", "1.0"), ("2", "2.0"), ("3", "4.0")]
    assert result.retries == 3


@pytest.mark.timeout(60)
def test_dont_autoretry_for_wins(app: Any) -> None:
    result = app.send_task("tasks.not_retried")
    with pytest.raises(KeyError):
        result.get(timeout=20)
    assert result.retries == 0


@pytest.mark.timeout(60)
def test_request_fields_and_result_extended(app: Any) -> None:
    result = app.send_task("tasks.whoami", (1, "a"), {"k": [1]}, queue="celery")
    fields = result.get(timeout=20)
    assert fields["id"] == result.id and fields["task"] == "tasks.whoami"
    assert (fields["args"], fields["kwargs"], fields["retries"]) == ([1, "a"], {"k": [1]}, 0)
    assert fields["hostname"].startswith("w1@") and fields["called_directly"] is False
    assert fields["delivery_info"]["queue"] == "celery" and fields["eta"] is None
    assert (fields["root_id"], fields["parent_id"]) == (result.id, None)
    assert (result.name, result.args, result.kwargs) == ("tasks.whoami", [1, "a"], {"k": [1]})
    assert result.worker == fields["hostname"] and result.queue == "celery"
    assert result.date_done is not None and result.retries == 0


@pytest.mark.timeout(60)
def test_tasks_sent_by_a_task_name_it_as_parent(app: Any) -> None:
    top = app.send_task("tasks.parent")
    child_ids = top.get(timeout=20)
    for child_id in child_ids:
        fields = app.AsyncResult(child_id).get(timeout=20)
        assert (fields["parent_id"], fields["root_id"]) == (top.id, top.id)


@pytest.mark.timeout(60)
def test_task_logger_names_the_task(app: Any, project: tuple[Path, NodeProcess]) -> None:
    result = app.send_task("tasks.logs", ("hello",))
    assert result.get(timeout=20) == "hello"
    line = f"tasks.logs[{result.id}]: said hello"
    wait_for(lambda: line in project[1].stderr(), 10, "the task's log line")
    assert re.search(r"\[\d{4}-\d\d-\d\d [\d:,]+: INFO/w1@[^\]]+\] " + re.escape(line),
                     project[1].stderr())


IGNORING = '''
app.conf.update(task_ignore_result=True, task_store_errors_even_if_ignored=True)

@app.task(ignore_result=False)
def kept(x):
    return x
'''


@pytest.mark.timeout(60)
def test_app_level_ignore_result_and_store_errors(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_config=IGNORING)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info") as node:
        node.wait_ready()
        ignored = app.send_task("tasks.add", (1, 2))
        failed = app.send_task("tasks.boom", ("stored anyway",))
        assert app.send_task("tasks.kept", (7,)).get(timeout=20) == 7  # one child: in order
        with pytest.raises(ValueError, match="stored anyway"):
            failed.get(timeout=20)
        wait_for(lambda: f"tasks.add[{ignored.id}] succeeded" in node.stderr(), 10, "add")
        assert ignored.state == "PENDING"
        assert app.backend.get(ignored.id) is None
        assert node.stop() == 0
    assert json.loads(app.backend.get(failed.id))["status"] == "FAILURE"
