"""Store fixtures: one factory per broker kind, so the contract suite runs the same tests
on memory://, sqlite:/// and redis:// (a private redis-server per test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qmulti import App
from qmulti.brokers.memory import MemoryStore
from qmulti.brokers.sqlite import SqliteStore

STORE_KINDS = ["memory", "sqlite", "redis"]

StoreFactory = Callable[..., Any]


@pytest.fixture(params=STORE_KINDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """`make(max_deliveries=5)`: a store instance on this test's private backing store.

    Every instance made for sqlite and redis is a new connection to the same file or
    server, as another process would have; memory:// has no sharing, so the factory hands
    out one instance per distinct option set.
    """
    kind = request.param
    made: list[Any] = []
    if kind == "memory":
        shared: dict[tuple[tuple[str, Any], ...], MemoryStore] = {}

        def make(**options: Any) -> Any:
            key = tuple(sorted(options.items()))
            if key not in shared:
                shared[key] = MemoryStore("memory://", **options)
            return shared[key]

    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'broker.db'}"

        def make(**options: Any) -> Any:
            store = SqliteStore(url, **options)
            made.append(store)
            return store

    else:
        from qmulti.brokers.redis import RedisStore

        server = request.getfixturevalue("redis_server")

        def make(**options: Any) -> Any:
            store = RedisStore(server.url, **options)
            made.append(store)
            return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Any:
    """The store under test, with default options."""
    return store_factory()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment overrides the app's URLs; a developer's shell must not leak in."""
    monkeypatch.delenv("QMULTI_BROKER_URL", raising=False)
    monkeypatch.delenv("QMULTI_RESULT_BACKEND", raising=False)


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """An app on memory:// and on a private sqlite file, for API tests in one process."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'q.db'}"
    the_app = App("proj", broker=url)
    yield the_app
    the_app.close()
