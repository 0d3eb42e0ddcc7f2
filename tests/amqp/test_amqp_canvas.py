"""Canvas on an amqp:// broker, on real nodes: chains, groups, chords and link callbacks
with a Redis (and a SQLite) result backend, whose store sends each continuation once
(see qmulti/brokers/amqp/canvas.py); the one-line error with rpc:// only; and KILLs:
a pool child killed between the side store's step and RabbitMQ's ack, a relay killed
before it published, and a whole node KILLed while chains run on two nodes."""

from __future__ import annotations

import collections
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from ctl_support import Node, wait_answering

from helpers import wait_for

pytestmark = pytest.mark.timeout(120)

TASKS = '''
import os, signal, time
from pathlib import Path
from qmulti import App
from qmulti.signals import worker_process_init

ROOT = Path({root!r})
app = App('tasks', broker={broker!r}, backend={backend!r})
app.conf.update(worker_heartbeat_interval=0.5, worker_heartbeat_expiry=3.0)
if os.environ.get('CANVAS_CONSUMER_TIMEOUT'):  # long tasks: the hand-over (handover.py)
    app.conf.broker_transport_options = {{
        'consumer_timeout': float(os.environ['CANVAS_CONSUMER_TIMEOUT'])}}


@app.task
def add(x, y):
    return x + y


@app.task
def tsum(numbers):
    return sum(numbers)


@app.task
def note(value, tag='n'):
    with open(ROOT / 'notes.log', 'a') as f:
        f.write(f'{{tag}} {{value}}\\n')
    return value


@app.task(bind=True)
def step(self, value, key, seconds=0.0):
    """One chain step: appends 'key hostname' to runs.log, then returns value + 1."""
    with open(ROOT / 'runs.log', 'a') as f:
        f.write(f'{{key}} {{self.request.hostname}}\\n')
    time.sleep(seconds)
    return value + 1


def _kill_once(flag):
    """SIGKILL this process if `flag` exists, the first time only (rename is atomic)."""
    armed = ROOT / flag
    try:
        armed.rename(ROOT / (flag + '.fired'))
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


@worker_process_init.connect
def _fault_points(**_):
    """Crash points for the tests, armed by a file: 'ack.armed' KILLs the child after
    the side store sent a continuation and before RabbitMQ's ack; 'relay.armed' KILLs it
    in the relay, after it leased the continuation from the outbox and before it sent it;
    'carrier.armed' after it leased a carrier and before it used it (Redis side store)."""
    from qmulti.brokers.amqp import canvas, store

    ack_and_continue = canvas.AmqpCanvas.ack_and_continue
    ack = store.AmqpBroker.ack
    relay = canvas.AmqpCanvas.relay_outbox
    state = {{'continuing': False, 'relaying': False}}

    def continuing(self, *args, **kwargs):
        state['continuing'] = True
        try:
            return ack_and_continue(self, *args, **kwargs)
        finally:
            state['continuing'] = False

    def acking(self, deliveries):
        if state['continuing'] and not state['relaying']:
            _kill_once('ack.armed')
        return ack(self, deliveries)

    def relaying(self, *args, **kwargs):
        state['relaying'] = True
        try:
            return relay(self, *args, **kwargs)
        finally:
            state['relaying'] = False

    publish = store.AmqpBroker.publish

    def publishing(self, *args, **kwargs):
        if state['relaying']:
            _kill_once('relay.armed')
        return publish(self, *args, **kwargs)

    from qmulti.brokers.redis import RedisStore

    side_continue = RedisStore.ack_and_continue

    def side_continuing(self, *args, **kwargs):
        _kill_once('carrier.armed')
        return side_continue(self, *args, **kwargs)

    RedisStore.ack_and_continue = side_continuing
    canvas.AmqpCanvas.ack_and_continue = continuing
    store.AmqpBroker.ack = acking
    canvas.AmqpCanvas.relay_outbox = relaying
    store.AmqpBroker.publish = publishing
'''


def _project(root: Path, broker: str, backend: str) -> Any:
    (root / "tasks.py").write_text(textwrap.dedent(TASKS.format(
        root=str(root), broker=broker, backend=backend)))
    from qmulti import App

    return App("producer", broker=broker, backend=backend, set_as_current=False,
               worker_heartbeat_expiry=3.0)


class _Task:
    """`add.s(1, 2)` for a task of the node's project, by name (not imported here)."""

    def __init__(self, app: Any, name: str) -> None:
        from qmulti.canvas import signature

        self.sig = signature(f"tasks.{name}", app=app)

    def s(self, *args: Any, **kwargs: Any) -> Any:
        return self.sig.clone(args, kwargs)


def _sig(app: Any, name: str) -> _Task:
    return _Task(app, name)


def _runs(root: Path) -> collections.Counter[str]:
    log = root / "runs.log"
    lines = log.read_text().split("\n") if log.exists() else []
    return collections.Counter(line.split()[0] for line in lines if line)


def _notes(root: Path) -> list[str]:
    log = root / "notes.log"
    return sorted(log.read_text().splitlines()) if log.exists() else []


@pytest.fixture
def redis_env(tmp_path: Path, amqp_url: str, redis_server: Any) -> Any:
    app = _project(tmp_path, amqp_url, redis_server.url)
    node = Node(tmp_path, "n1@here", "-c", "2")
    try:
        wait_answering(app, ["n1@here"])
        yield app, tmp_path, node
    finally:
        node.close()
        app.close()


def test_chain_group_chord_and_links_with_a_redis_backend(redis_env: Any) -> None:
    from qmulti.canvas import chain, chord, group

    app, root, node = redis_env
    add, tsum, note = _sig(app, "add"), _sig(app, "tsum"), _sig(app, "note")

    r = chain(add.s(1, 2), add.s(3), add.s(4)).apply_async()
    assert r.get(timeout=30) == 10
    assert r.parent.get(timeout=5) == 6 and r.parent.parent.get(timeout=5) == 3
    # AsyncResult.children: each step names the one its finish sent.
    assert [c.id for c in r.parent.parent.children] == [r.parent.id]
    assert [c.id for c in r.parent.children] == [r.id]

    g = group(add.s(i, i) for i in range(10)).apply_async()
    assert g.get(timeout=30) == [2 * i for i in range(10)]
    assert g.completed_count() == 10

    c = chord([add.s(i, 1) for i in range(10)], tsum.s()).apply_async()
    assert c.get(timeout=30) == sum(range(1, 11))
    assert c.parent.get(timeout=5) == list(range(1, 11))

    linked = add.s(2, 3)
    linked.link(note.s(tag="linked"))
    assert linked.apply_async(link=note.s(tag="also")).get(timeout=30) == 5
    wait_for(lambda: _notes(root) == ["also 5", "linked 5"], 30, "both link callbacks")

    # A chain with a countdown on its second step: the eta survives the outbox.
    began = time.time()
    later = chain(add.s(1, 1), add.s(1).set(countdown=1.5)).apply_async()
    assert later.get(timeout=30) == 3
    assert time.time() - began >= 1.4
    assert "Traceback" not in node.text(), node.text()[-3000:]


def test_chord_with_a_sqlite_backend(tmp_path: Path, amqp_url: str) -> None:
    from qmulti.canvas import chain, chord

    app = _project(tmp_path, amqp_url, f"sqlite:///{tmp_path / 'results.db'}")
    node = Node(tmp_path, "n1@here", "-c", "2")
    try:
        wait_answering(app, ["n1@here"])
        add, tsum = _sig(app, "add"), _sig(app, "tsum")
        c = chord([add.s(i, i) for i in range(10)], tsum.s()).apply_async()
        assert c.get(timeout=30) == 90
        assert chain(add.s(1, 1), add.s(1), add.s(1)).apply_async().get(timeout=30) == 4
        assert "Traceback" not in node.text(), node.text()[-3000:]
    finally:
        node.close()
        app.close()


def test_rpc_only_refuses_a_canvas_with_one_line(tmp_path: Path, amqp_url: str) -> None:
    from qmulti.canvas import chain, chord
    from qmulti.exceptions import ConfigError

    app = _project(tmp_path, amqp_url, "rpc://")
    try:
        add, tsum = _sig(app, "add"), _sig(app, "tsum")
        sends = [lambda: chain(add.s(1, 1), add.s(1)).apply_async(),
                 lambda: chord([add.s(1, 1)], tsum.s()).apply_async(),
                 lambda: add.s(1, 1).apply_async(link=add.s(1)),
                 lambda: app.send_task("tasks.add", (1, 1), link=add.s(1))]
        for send in sends:
            with pytest.raises(ConfigError) as caught:
                send()
            text = str(caught.value)
            assert "\n" not in text and "result_backend redis://" in text, text
        assert not app.broker.stats().queues.get("celery")  # nothing was sent
    finally:
        app.close()


def test_rpc_only_a_group_works_and_a_foreign_producers_link_runs_at_least_once(tmp_path: Path,
                                                              amqp_url: str) -> None:
    """A plain group needs no continuation. A message from a producer that did not
    check (Celery's, say) still gets its link callback, published then acked, with one
    warning that names the setting."""
    from qmulti.canvas import group

    app = _project(tmp_path, amqp_url, "rpc://")
    node = Node(tmp_path, "n1@here", "-c", "1")
    try:
        add, note = _sig(app, "add"), _sig(app, "note")
        # A plain group sends no continuation: it works over rpc://, as in Celery.
        assert group(add.s(i, i) for i in range(5)).apply_async().get(timeout=30) == [
            0, 2, 4, 6, 8]
        m = app.compose("tasks.add", (2, 3), link=note.s(tag="linked"))
        app.broker.publish(m.queue, m.mid, m.body, m.eta)
        wait_for(lambda: _notes(tmp_path) == ["linked 5"], 30, "the link callback")
        text = node.text()
        assert "at least once" in text and "result_backend redis://" in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    finally:
        node.close()
        app.close()


def _arm(root: Path, flag: str) -> None:
    (root / flag).write_text("")


@pytest.mark.parametrize(("flag", "runs"), [
    # The continuation was sent (the side store's step) but RabbitMQ never got the ack:
    # the step runs again, and its second finish sends nothing.
    ("ack.armed", {"a": 2, "b": 1, "c": 1}),
    # The step's ack is done and its continuation is leased to a relay that dies: the
    # node's reaper takes it back once the relay's record expires, and relays it.
    ("relay.armed", {"a": 1, "b": 1, "c": 1}),
], ids=["between_the_side_store_and_the_ack", "a_relay_before_it_sent"])
def test_a_child_killed(redis_env: Any, flag: str, runs: dict[str, int]) -> None:
    from qmulti.canvas import chain

    app, root, node = redis_env
    step = _sig(app, "step")
    _arm(root, flag)
    r = chain(step.s(0, "a"), step.s("b"), step.s("c")).apply_async()
    assert r.get(timeout=60) == 3
    assert (root / f"{flag}.fired").exists()
    assert _runs(root) == runs, _runs(root)


def test_a_child_killed_holding_a_carrier(redis_env: Any, redis_server: Any) -> None:
    """Its carrier goes back when the node gives back what the child held, and is used
    by a later finish: none is left leased or waiting."""
    from qmulti.brokers.amqp.canvas import CARRIER
    from qmulti.brokers.redis import RedisStore
    from qmulti.canvas import chain

    app, root, node = redis_env
    step = _sig(app, "step")
    _arm(root, "carrier.armed")
    r = chain(step.s(0, "a"), step.s("b"), step.s("c")).apply_async()
    assert r.get(timeout=60) == 3
    assert (root / "carrier.armed.fired").exists()
    assert _runs(root) == {"a": 2, "b": 1, "c": 1}, _runs(root)
    side = RedisStore(redis_server.url)
    try:
        def clean() -> bool:
            stats = side.stats()
            return stats.leased == 0 and not stats.queues.get(CARRIER)

        if not clean():  # a carrier given back after the last finish waits for the next
            assert chain(step.s(0, "d"), step.s("e")).apply_async().get(timeout=30) == 2
        wait_for(clean, 10, f"no carrier left leased or waiting: {side.stats()}")
    finally:
        side.close()


def test_a_chain_of_long_tasks_handed_over_to_the_side_store(
        tmp_path: Path, amqp_url: str, redis_server: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that runs past half the consumer_timeout has its lease held in the side
    store: its finish acks it there with its continuation, in one step."""
    from qmulti.canvas import chain

    monkeypatch.setenv("CANVAS_CONSUMER_TIMEOUT", "1.0")
    app = _project(tmp_path, amqp_url, redis_server.url)
    node = Node(tmp_path, "n1@here", "-c", "2")
    try:
        wait_answering(app, ["n1@here"])
        step = _sig(app, "step")
        r = chain(step.s(0, "a", 1.5), step.s("b", 1.5), step.s("c")).apply_async()
        assert r.get(timeout=60) == 3
        assert _runs(tmp_path) == {"a": 1, "b": 1, "c": 1}, _runs(tmp_path)
        text = node.text()
        assert text.count("is now held in the result backend") >= 2, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    finally:
        node.close()
        app.close()


def test_a_node_killed_while_chains_run(tmp_path: Path, amqp_url: str,
                                        redis_server: Any) -> None:
    """Two nodes run 20 chains of 5 steps; one is KILLed (main process and children)
    mid-way. Every chain completes, and a step ran more than once only where a run of it
    or of the step before it (whose finish sends it) was on the killed node."""
    from qmulti.canvas import chain

    app = _project(tmp_path, amqp_url, redis_server.url)
    victim = Node(tmp_path, "victim@here", "-c", "2")
    other = Node(tmp_path, "other@here", "-c", "2")
    try:
        wait_answering(app, ["victim@here", "other@here"])
        step = _sig(app, "step")
        chains = [chain([step.s(0, f"c{c}.0", 0.05)] +
                        [step.s(f"c{c}.{k}", 0.05) for k in range(1, 5)]).apply_async()
                  for c in range(20)]
        log = tmp_path / "runs.log"

        def on_victim() -> int:
            return log.read_text().count("victim@here") if log.exists() else 0

        wait_for(lambda: on_victim() >= 10, 60, "the victim to run some steps")
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        assert [r.get(timeout=90) for r in chains] == [5] * 20
        ran: dict[str, list[str]] = collections.defaultdict(list)
        for line in log.read_text().splitlines():
            key, host = line.split()
            ran[key].append(host)
        assert len(ran) == 100, sorted(ran)
        for c in range(20):
            for k in range(5):
                hosts = ran[f"c{c}.{k}"]
                before = ran[f"c{c}.{k - 1}"] if k else []
                if len(hosts) > 1:
                    assert "victim@here" in hosts + before, (f"c{c}.{k}", hosts, before)
        again = sum(len(h) - 1 for h in ran.values())
        print(f"\nnode KILL: {on_victim()} run(s) on the victim, {again} re-run(s)")
        assert "Traceback" not in other.text(), other.text()[-3000:]
    finally:
        victim.close()
        other.close()
        app.close()
