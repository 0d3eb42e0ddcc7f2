"""The dashboard's task table: each task counted once per final state whichever source
reports it (events, stored results) and however often; runtimes; search; the cap."""

from __future__ import annotations

from qmulti.supervisor.dashboard.nodes import out_rates
from qmulti.supervisor.dashboard.tasks import TaskTable


def _doc(state: str, when: float, **extra: object) -> dict[str, object]:
    return {"status": state, "date_done": when, "name": "proj.add", "args": [1, 2],
            "kwargs": {}, "worker": "w1@h", **extra}


def test_a_result_seen_twice_counts_once() -> None:
    table = TaskTable()
    table.observe_result("t1", _doc("STARTED", 100.0))
    table.observe_result("t1", _doc("SUCCESS", 100.5))
    table.observe_result("t1", _doc("SUCCESS", 100.5))
    assert table.counts == {("proj.add", "SUCCESS"): 1}
    assert table.totals()["SUCCESS"] == 1 and table.totals()["STARTED"] == 0
    row = table.get("t1")
    assert row is not None and row["runtime"] == 0.5 and row["node"] == "w1@h"
    _, hist = table.snapshot_counts()
    assert hist["proj.add"].count == 1 and abs(hist["proj.add"].total - 0.5) < 1e-9


def test_events_and_results_agree_on_one_count() -> None:
    table = TaskTable()
    table.observe_event({"type": "task-received", "uuid": "t2", "name": "proj.mul",
                         "args": "(2, 3)", "kwargs": "{}", "timestamp": 10.0})
    table.observe_event({"type": "task-started", "uuid": "t2", "timestamp": 10.1,
                         "hostname": "w2@h"})
    table.observe_event({"type": "task-succeeded", "uuid": "t2", "timestamp": 10.3,
                         "runtime": 0.2, "result": "6"})
    table.observe_result("t2", {"status": "SUCCESS", "date_done": 10.3})  # the same news
    table.observe_event({"type": "task-failed", "uuid": "t3", "timestamp": 11.0,
                         "exception": "ValueError('x')"})
    assert table.counts == {("proj.mul", "SUCCESS"): 1, ("unknown", "FAILURE"): 1}
    assert table.get("t3")["exception"] == "ValueError('x')"
    _, hist = table.snapshot_counts()
    assert hist["proj.mul"].count == 1  # the event's runtime


def test_search_newest_first_by_id_name_and_state() -> None:
    table = TaskTable()
    for i in range(5):
        table.observe_result(f"id-{i}", _doc("SUCCESS" if i % 2 else "FAILURE", 100.0 + i))
    assert [r["id"] for r in table.search()] == ["id-4", "id-3", "id-2", "id-1", "id-0"]
    assert [r["id"] for r in table.search(state="success")] == ["id-3", "id-1"]
    assert [r["id"] for r in table.search("ID-2")] == ["id-2"]
    assert len(table.search("proj.ADD", limit=2)) == 2


def test_the_cap_forgets_the_oldest() -> None:
    table = TaskTable(cap=3)
    for i in range(5):
        table.observe_result(f"t{i}", _doc("SUCCESS", float(i)))
    assert [r["id"] for r in table.search()] == ["t4", "t3", "t2"]
    assert table.final_ids == {"t2", "t3", "t4"}
    assert table.counts[("proj.add", "SUCCESS")] == 5  # counted when seen; never lowered


def test_children_by_parent() -> None:
    table = TaskTable()
    table.observe_result("p", _doc("SUCCESS", 1.0))
    table.observe_result("c1", _doc("SUCCESS", 2.0, parent_id="p"))
    table.observe_result("c2", _doc("STARTED", 3.0, parent_id="p"))
    assert table.get("p")["children"] == ["c1", "c2"]


def test_out_rates_share_a_node_between_its_queues() -> None:
    prev = {"processed": {"a": (10, ["q1"]), "b": (0, ["q1", "q2"])}}
    cur = {"processed": {"a": (20, ["q1"]), "b": (4, ["q1", "q2"]), "new": (50, ["q3"])}}
    assert out_rates(prev, cur, 2.0) == {"q1": 6.0, "q2": 1.0}
    assert out_rates(None, cur, 2.0) == {}
