"""RabbitMQ fixtures: a fresh vhost of our own per test on the machine's server, and the
amqp:// store factory that the reused broker contract tests run on."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rabbit_vhost

StoreFactory = Callable[..., Any]

# The node tests' helpers (node_fixtures) and the suites reused here live in tests/worker.
WORKER_TESTS = str(Path(__file__).parent.parent / "worker")
if WORKER_TESTS not in sys.path:
    sys.path.append(WORKER_TESTS)


OPT_IN = "QMULTI_TEST_AMQP"


@pytest.fixture(scope="session")
def vhost_pool() -> Iterator[rabbit_vhost.VhostPool]:
    if os.environ.get(OPT_IN) != "1":
        # Each test vhost gets the 28 quorum queues of the delay ladder: a session's pool
        # of 40 made ~1,100 on the machine's shared RabbitMQ, and leftovers of killed
        # sessions once wedged it (vhost add/delete took 60 s, then it would not boot).
        # Until the ladder is declared lazily and the pool is small, these tests run only
        # when asked for.
        pytest.skip(f"RabbitMQ tests are opt-in: set {OPT_IN}=1 (they use the machine's "
                    "RabbitMQ on 127.0.0.1:5672 with vhosts of their own)")
    why = rabbit_vhost.unavailable()
    if why:
        pytest.skip(why)
    pool = rabbit_vhost.VhostPool()
    yield pool
    pool.close()


@pytest.fixture
def amqp_url(vhost_pool: rabbit_vhost.VhostPool) -> str:
    """`amqp://guest:guest@127.0.0.1:5672/<a vhost no other test uses>`."""
    return rabbit_vhost.url(vhost_pool.take())


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QMULTI_BROKER_URL", raising=False)
    monkeypatch.delenv("QMULTI_RESULT_BACKEND", raising=False)


@pytest.fixture
def store_factory(amqp_url: str, tmp_path: Path) -> Iterator[StoreFactory]:
    """`make(max_deliveries=5)`: a new connection to this test's vhost, as another process
    would have, with node records in a SQLite side store shared by all of them."""
    from qmulti.brokers.amqp import AmqpBroker

    made: list[Any] = []
    side = f"sqlite:///{tmp_path / 'side.db'}"

    def make(**options: Any) -> Any:
        store = AmqpBroker(amqp_url, result_backend=side, **options)
        if not made:
            # The delay ladder exists once any eta was sent; declaring its 28 quorum
            # queues takes seconds on a loaded machine, which sub-second etas must not see.
            from qmulti.brokers.amqp import topology

            store.link.run(topology.declare_ladder)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Any:
    return store_factory()
