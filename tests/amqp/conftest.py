"""RabbitMQ fixtures: a vhost of the session's own on the machine's server (see
rabbit_vhost.py), emptied after each test, and the amqp:// store factory that the reused
broker contract tests run on."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rabbit_vhost

StoreFactory = Callable[..., Any]

# The node tests' helpers (node_fixtures) and the suites reused here live in tests/worker,
# the remote-control helpers (ctl_support) in tests/control,
# the chaos drill's project helper in tests/drills.
for _folder in ("worker", "drills", "control"):
    _path = str(Path(__file__).parent.parent / _folder)
    if _path not in sys.path:
        sys.path.append(_path)


class Vhost:
    """This session's vhost as one test sees it: `queues` collects the work queues the
    test used, deleted at its end (with what they hold) so the next test starts empty."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = rabbit_vhost.url(name)
        self.queues: set[str] = {"celery"}


@pytest.fixture(scope="session")
def session_vhost() -> Iterator[str]:
    """One vhost for the session (per xdist worker), made at its first RabbitMQ test and
    deleted at its end; skips every RabbitMQ test, with the reason, when the machine's
    server does not answer."""
    why = rabbit_vhost.unavailable()
    if why:
        pytest.skip(why)
    try:
        (name,) = rabbit_vhost.create(1)
    except RuntimeError as exc:
        pytest.skip(f"cannot make a RabbitMQ vhost: {exc}".splitlines()[0])
    try:
        rabbit_vhost.warm(name)
        yield name
    finally:
        rabbit_vhost.delete([name])


@pytest.fixture
def amqp_vhost(session_vhost: str) -> Iterator[Vhost]:
    vhost = Vhost(session_vhost)
    yield vhost
    from qmulti.brokers.amqp import topology

    rabbit_vhost.reset(vhost.name, vhost.queues,
                       [topology.level_name(k) for k in range(topology.LEVELS)])


@pytest.fixture
def amqp_url(amqp_vhost: Vhost) -> str:
    """`amqp://guest:guest@127.0.0.1:5672/<this session's vhost>`, emptied after the test."""
    return amqp_vhost.url


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QMULTI_BROKER_URL", raising=False)
    monkeypatch.delenv("QMULTI_RESULT_BACKEND", raising=False)


@pytest.fixture
def store_factory(amqp_vhost: Vhost, tmp_path: Path) -> Iterator[StoreFactory]:
    """`make(max_deliveries=5)`: a new connection to this test's vhost, as another process
    would have, with node records in a SQLite side store shared by all of them."""
    from qmulti.brokers.amqp import AmqpBroker

    made: list[Any] = []
    side = f"sqlite:///{tmp_path / 'side.db'}"

    def make(**options: Any) -> Any:
        options.setdefault("result_backend", side)
        store = AmqpBroker(amqp_vhost.url, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        amqp_vhost.queues.update(store._declared)
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Any:
    return store_factory()


@pytest.fixture(scope="session")
def private_rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A rabbitmq-server of the session's own (rabbit_private.py), for tests that
    restart the broker; started at its first use (10-30 s on a loaded 2-core machine)."""
    import rabbit_private

    why = rabbit_private.unavailable()
    if why:
        pytest.skip(why)
    server = rabbit_private.PrivateRabbit(tmp_path_factory.mktemp("rabbit"))
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - the reason, on one line, then skip
        server.stop()
        pytest.skip(f"private rabbitmq-server did not start: {exc}".splitlines()[0])
    try:
        yield server
    finally:
        server.stop()
