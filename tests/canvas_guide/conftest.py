"""Fixtures for the canvas guide tests: one real `qworker` on a private redis-server and
one on an embedded SQLite file, each started once per test session and shared (a node per
test would cost most of the time budget), plus an eager app on memory:// for the examples
that are about signatures only.

Tests never share state through the nodes: each waits on its own result ids or journal
tokens, so the order they run in does not matter.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import guide_tasks
import pytest
from guide_nodes import GuideNode, start_node

from qmulti import App
from redis_server import RedisServer

KINDS = ["redis", "sqlite"]


@pytest.fixture(scope="session")
def redis_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuideNode]:
    root = tmp_path_factory.mktemp("guide-redis")
    with RedisServer(root, appendonly=False) as server:
        yield from start_node("redis", root, server.url)


@pytest.fixture(scope="session")
def sqlite_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuideNode]:
    root = tmp_path_factory.mktemp("guide-sqlite")
    yield from start_node("sqlite", root, f"sqlite:///{root / 'q.sqlite3'}")


@pytest.fixture(params=KINDS)
def node(request: pytest.FixtureRequest) -> Iterator[GuideNode]:
    """The chain and chord examples run on both stores; the producer is current, so a
    signature made by task name (`signature('tasks.add')`) finds this node's app."""
    the_node: GuideNode = request.getfixturevalue(f"{request.param}_node")
    the_node.app.set_current()
    yield the_node
    the_node.assert_alive()


@pytest.fixture
def rnode(redis_node: GuideNode) -> Iterator[GuideNode]:
    """The redis node alone, for examples that are not about chains or chords."""
    redis_node.app.set_current()
    yield redis_node
    redis_node.assert_alive()


@pytest.fixture
def eager(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """The guide's tasks on a memory:// app that runs every call in this process, for the
    examples about signatures only."""
    app = App("guide-eager", broker="memory://")
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    tasks = guide_tasks.define(app, tmp_path / "journal.jsonl")
    tasks.app = app
    yield tasks
    app.close()


@pytest.fixture
def token() -> str:
    """A value no other test uses, to find this test's journal lines."""
    return uuid.uuid4().hex

