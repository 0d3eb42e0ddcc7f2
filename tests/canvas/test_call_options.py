"""A container's call options reach its messages (Celery: a group's go to every member,
a chain's to its first task): `chain(...).apply_async(queue='q2')` must not quietly send
to the default queue. Read off a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from qmulti import App
from qmulti.canvas import chain, group

pytestmark = pytest.mark.timeout(60)


def make(tmp_path: Path) -> tuple[App, object]:
    app = App("opts", broker=f"sqlite:///{tmp_path / 'q.sqlite3'}")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    return app, add


def queues(app: App) -> dict[str, int]:
    return {q: n for q, n in app.broker.stats().queues.items() if n}


def test_a_chain_sends_its_first_step_where_the_call_says(tmp_path: Path) -> None:
    app, add = make(tmp_path)
    chain(add.s(1, 1), add.s(1), add.s(1)).apply_async(queue="q2")
    assert queues(app) == {"q2": 1}


def test_a_group_of_chains_sends_every_first_step_where_the_call_says(tmp_path: Path) -> None:
    app, add = make(tmp_path)
    group(chain(add.s(1, 1), add.s(1)), chain(add.s(2, 2), add.s(2)), add.s(3, 3)
          ).apply_async(queue="q2", priority=3)
    assert queues(app) == {"q2": 3}


def test_the_call_wins_over_a_member_own_option(tmp_path: Path) -> None:
    app, add = make(tmp_path)
    chain(add.s(1, 1).set(queue="own"), add.s(1)).apply_async(queue="q2")
    assert queues(app) == {"q2": 1}
    chain(add.s(1, 1).set(queue="own"), add.s(1)).apply_async()
    assert queues(app) == {"q2": 1, "own": 1}
