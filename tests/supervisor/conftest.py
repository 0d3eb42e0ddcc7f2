"""Fixtures for the controller's process tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_harness import Cluster, make_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A tmp project (tasks.py on a SQLite broker); kills every process it led to."""
    c = make_cluster(tmp_path)
    try:
        yield c
    finally:
        c.kill_all()
