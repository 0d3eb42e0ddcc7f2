"""The dashboard in a real browser (Debian's headless Chromium, driven by playwright)
against 3 real nodes on a private redis-server.

One stack for the module (starting Chromium alone takes seconds on a loaded
machine); each test leaves it as it found it, and reads counters relative to what
it found, so the tests do not depend on their order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard_stack import Stack, browser_missing, launch_browser
from helpers import wait_for
from qmulti import Celery
from qmulti.brokers import create_broker
from redis_server import RedisServer

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))]

NODES = ("w1", "w2", "w3")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("dash")
    with RedisServer(root) as redis:
        s = Stack(root, redis)
        try:
            for name in NODES:
                s.start_node(name, 2)
            s.start_dashboard()
            wait_for(lambda: s.node_names() >= {f"{n}@{_host()}" for n in NODES}, 60,
                     "3 nodes in the dashboard")
            yield s
        finally:
            s.close()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_browser(pw)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    # Playwright evaluates its wait conditions as strings, which the pages' CSP (no eval)
    # forbids; test_pages_keep_to_their_csp checks the pages under the real policy.
    context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    p = context.new_page()
    p.set_default_timeout(30_000)
    try:
        yield p
    finally:
        context.close()


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[Celery]:
    yield Celery("client", broker=stack.redis.url)


def _host() -> str:
    import socket

    return socket.gethostname()


def _counter(page: Any, name: str) -> int:
    return int(page.inner_text(f"#count-{name}"))


def test_nodes_page_shows_3_nodes(page: Any, stack: Stack, tmp_path: Path) -> None:
    page.goto(stack.url + "nodes")
    page.wait_for_function("document.querySelectorAll('#nodes tbody tr').length === 3")
    rows = page.locator("#nodes tbody tr")
    names = sorted(rows.nth(i).get_attribute("data-node") for i in range(3))
    assert names == sorted(f"{n}@{_host()}" for n in NODES)
    assert page.inner_text("#count-nodes") == "3"
    assert "running" in page.inner_text("#nodes")
    page.screenshot(path=str(tmp_path / "nodes.png"), full_page=True)
    assert (tmp_path / "nodes.png").stat().st_size > 1000


def test_succeeded_counter_rises_to_200_without_reload(page: Any, stack: Stack,
                                                       client: Celery, tmp_path: Path) -> None:
    page.goto(stack.url + "tasks")
    page.wait_for_function("document.body.dataset.version !== undefined")
    before = _counter(page, "SUCCESS")
    page.evaluate("window.__not_reloaded = true")
    results = [client.send_task("proj.add", (i, i)) for i in range(200)]
    page.wait_for_function(f"Number(document.getElementById('count-SUCCESS').textContent) "
                           f">= {before + 200}", timeout=90_000)
    assert page.evaluate("window.__not_reloaded") is True  # the same page, updated live
    assert _counter(page, "SUCCESS") == before + 200
    assert all(r.get(timeout=30) == 2 * i for i, r in enumerate(results))
    # The task list shows them, and a detail view has args, result and node.
    page.fill("#task-search", results[7].id)
    page.wait_for_selector(f'#tasks tr[data-task="{results[7].id}"]')
    page.screenshot(path=str(tmp_path / "tasks.png"), full_page=True)
    page.click(f'#tasks tr[data-task="{results[7].id}"] a')
    page.wait_for_selector("#task-detail dl")
    detail = page.inner_text("#task-detail")
    assert "proj.add" in detail and "[7,7]" in detail.replace(" ", "") and "14" in detail
    page.screenshot(path=str(tmp_path / "task.png"), full_page=True)


def test_poison_message_in_dead_letters_and_retry_republishes_once(
        page: Any, stack: Stack, tmp_path: Path) -> None:
    broker = create_broker(stack.redis.url)
    try:
        # A poison message on the nodes' queue: a node dead-letters it on its own.
        broker.publish("celery", "poison-1", b"this is not a task message")
        # And one on a queue no node consumes, so that a retry's effect can be counted.
        broker.publish("parked", "parked-1", b'{"task": "proj.add"}')
        broker.heartbeat("test-node", {"name": "test-node", "kind": "test"})
        [held] = broker.claim(["parked"], "test-node", "c", 1, 0)
        broker.dead_letter(held, "rejected by the test")
        broker.unregister("test-node")
        page.goto(stack.url + "dead")
        page.wait_for_selector('#dead tr[data-mid="poison-1"]', timeout=30_000)
        page.wait_for_selector('#dead tr[data-mid="parked-1"]')
        assert "rejected by the test" in page.inner_text("#dead")
        page.screenshot(path=str(tmp_path / "dead.png"), full_page=True)
        page.click('#dead tr[data-mid="parked-1"] button.retry')
        page.wait_for_function("document.getElementById('message').textContent"
                               ".includes('republished')")
        page.wait_for_selector('#dead tr[data-mid="parked-1"]', state="detached")
        details = broker.queue_details()["parked"]
        assert (details.ready, details.dead) == (1, 0)  # republished, once
        # A second retry (a double click, another tab) publishes nothing more.
        code, body, _ = stack.request("/api/dead/parked/parked-1/retry", "POST", {},
                                      {"X-CSRF-Token": stack.csrf()})
        assert code == 409 and b"no longer" in body
        assert broker.queue_details()["parked"].ready == 1
        assert [d.mid for d in broker.claim(["parked"], "x", "c", 10, 0)] == ["parked-1"]
    finally:
        broker.purge("parked")
        broker.close()


FRESH_WITHIN = 1.0  # issue 15: every page updates within 1 s


def _lags(truth: list[tuple[float, int]], seen: list[tuple[float, int]]) -> list[float]:
    """For each depth the broker reached, how long until the page showed it: the rise
    (the first non-zero depth) until the page shows any, then on the way down (no more
    sends) until the page shows that depth or a lower one."""
    top = max(range(len(truth)), key=lambda i: truth[i][1])
    first = next(at for at, v in truth if v > 0)
    lags = [next(t for t, v in seen if v > 0) - first]
    for at, depth in truth[top:]:
        before = [v for t, v in seen if t <= at]
        if before and before[-1] <= depth:
            lags.append(0.0)
        else:
            lags.append(next(t for t, v in seen if t > at and v <= depth) - at)
    return lags


def test_queue_depth_on_the_page_follows_the_broker_within_1s(
        page: Any, stack: Stack, client: Celery) -> None:
    """While the 3 nodes drain a small queue, every depth the broker reached is on the
    page (or a lower one) within a second: the page's own clock stamps each value it
    shows, and this test's reads of the broker stamp the truth, on the same machine."""
    broker = create_broker(stack.redis.url)
    try:
        page.goto(stack.url + "queues")
        page.wait_for_selector('#queues tr[data-queue="celery"]')
        wait_for(lambda: broker.queue_details()["celery"].ready == 0, 30, "an empty queue")
        page.evaluate("""() => {
          window.__seen = [];
          const read = () => {
            const cell = document.querySelector('#queues tr[data-queue="celery"] td.depth');
            const v = cell ? Number(cell.textContent) : null;
            const last = window.__seen[window.__seen.length - 1];
            if (v !== null && (!last || last[1] !== v)) window.__seen.push([Date.now() / 1000, v]);
          };
          read();
          new MutationObserver(read).observe(document.getElementById('main'),
                                             { childList: true, subtree: true });
        }""")
        truth: list[tuple[float, int]] = []

        def sample() -> None:
            depth = broker.queue_details()["celery"].ready
            if not truth or truth[-1][1] != depth:
                truth.append((time.time(), depth))

        # 6 pool children in all, 0.25 s a task: 60 tasks take a few seconds to drain.
        results = [client.send_task("proj.sleep", (0.25,)) for _ in range(60)]
        wait_for(lambda: (sample(), truth[-1][1] == 0 and len(truth) > 2)[1], 60,
                 "the nodes to drain the queue", interval=0.02)
        wait_for(lambda: page.evaluate("window.__seen")[-1][1] == 0, 10, "the page to show 0")
        seen = [(float(t), int(v)) for t, v in page.evaluate("window.__seen")]
        assert max(v for _, v in truth) > 6, truth  # there was a queue to watch drain
        lags = _lags(truth, seen)
        assert max(lags) <= FRESH_WITHIN, list(zip(truth, lags, strict=True))
        assert all(r.get(timeout=30) == 0.25 for r in results)
    finally:
        broker.close()


def test_pool_grow_shows_the_new_size(page: Any, stack: Stack, tmp_path: Path) -> None:
    name = f"w2@{_host()}"
    page.goto(stack.url + "nodes")
    cell = f'#nodes tr[data-node="{name}"] td.pool'
    page.wait_for_selector(cell)
    size = int(page.inner_text(cell))
    page.click(f'#nodes tr[data-node="{name}"] button.grow')
    page.wait_for_function(f"(document.querySelector('{cell}') || {{}}).textContent === "
                           f"'{size + 1}'", timeout=30_000)
    others = [r for r in stack.get("/api/nodes") if r["name"] != name]
    assert all(r["pool"] == 2 for r in others)
    page.screenshot(path=str(tmp_path / "nodes-grown.png"), full_page=True)
    page.click(f'#nodes tr[data-node="{name}"] button.shrink')  # as found
    page.wait_for_function(f"document.querySelector('{cell}').textContent === '{size}'",
                           timeout=30_000)


def test_revoke_with_terminate_from_the_task_view(page: Any, stack: Stack, client: Celery,
                                                  tmp_path: Path) -> None:
    from qmulti.exceptions import TaskRevokedError

    running = client.send_task("proj.sleep", (60,))
    wait_for(lambda: running.state == "STARTED", 30, "the task to start")
    page.on("dialog", lambda dialog: dialog.accept())  # the "are you sure" confirm
    page.goto(stack.url + f"tasks/{running.id}")
    page.wait_for_selector("#task-detail button.terminate")
    detail = page.inner_text("#task-detail")
    assert "STARTED" in detail and "@" in detail  # running, on a node (named in the row)
    page.screenshot(path=str(tmp_path / "task-running.png"), full_page=True)
    began = time.monotonic()
    page.click("#task-detail button.terminate")
    page.wait_for_function("document.getElementById('message').textContent"
                           ".includes('revoked (terminate)')")
    with pytest.raises(TaskRevokedError):
        running.get(timeout=30)
    assert running.state == "REVOKED"
    assert time.monotonic() - began < 15  # stopped, not left to sleep out its 60 s


def test_every_page_renders_and_is_screenshotted(page: Any, stack: Stack, client: Celery,
                                                 tmp_path: Path) -> None:
    later = client.send_task("proj.add", (5, 5), countdown=3600)
    for name, ready in (("nodes", "#nodes"), ("queues", "#queues"), ("charts", "#chart-depths"),
                        ("tasks", "#tasks"), ("dead", "#dead"), ("scheduled", "#periodic")):
        page.goto(stack.url + name)
        page.wait_for_selector(ready)
        page.wait_for_function("document.getElementById('live').textContent === 'live'")
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert "tick" in page.inner_text("#periodic")  # the app's beat_schedule entry
    page.wait_for_function(f"document.getElementById('scheduled').textContent"
                           f".includes('{later.id}')", timeout=30_000)
    assert "proj.add" in page.inner_text("#scheduled")
    page.goto(stack.url + "queues")
    page.wait_for_selector('#queues tr[data-queue="celery"]')


def test_metrics_counters_match_the_tasks_run(stack: Stack, client: Celery) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    ok = [client.send_task("proj.mul", (i, 3)) for i in range(30)]
    bad = [client.send_task("proj.fail", (i,)) for i in range(5)]
    assert [r.get(timeout=60) for r in ok] == [3 * i for i in range(30)]
    for r in bad:
        with pytest.raises(ValueError):
            r.get(timeout=60)

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body, headers = stack.request("/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        out = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def matched() -> dict[Any, float] | None:
        got = samples()
        done = (got.get(("qmulti_tasks_total", (("name", "proj.mul"), ("state", "SUCCESS"))))
                == 30 and got.get(("qmulti_tasks_total",
                                   (("name", "proj.fail"), ("state", "FAILURE")))) == 5)
        return got if done else None

    got = wait_for(matched, 30, "/metrics to count the 35 tasks")
    assert ("qmulti_tasks_total", (("name", "proj.mul"), ("state", "FAILURE"))) not in got
    assert got[("qmulti_nodes_up", ())] == 3
    for n in NODES:
        assert got[("qmulti_node_pool_size", (("node", f"{n}@{_host()}"),))] >= 1
    assert ("qmulti_queue_depth", (("queue", "celery"),)) in got
    assert got[("qmulti_broker_up", ())] == 1
    # The API serves what the pages show.
    snap = stack.get("/api/snapshot")
    assert {"nodes", "queues", "totals", "dead", "scheduled", "periodic"} <= set(snap)
    assert snap["broker"]["url"] == stack.redis.url  # no password on this server
    assert json.loads(json.dumps(snap)) == snap


def test_pages_keep_to_their_csp(browser: Any, stack: Stack) -> None:
    """Under the real policy (no inline script, no eval, nothing from elsewhere) every page
    renders and goes live, and the browser reports no violation."""
    context = browser.new_context()
    p = context.new_page()
    problems: list[str] = []
    p.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: problems.append(str(e)))
    try:
        for name in ("nodes", "queues", "charts", "tasks", "dead", "scheduled"):
            p.goto(stack.url + name)
            p.locator("#live", has_text="live").wait_for(timeout=30_000)
            assert p.locator("#main > *").count() > 0, name
        assert problems == []
    finally:
        context.close()
