"""Fixtures of the Sentinel tests: a private master, replica and three sentinels."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The drills' project and node helpers (tests/drills/drill_support.py) serve here too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "drills"))

from sentinel_cluster import SentinelCluster  # noqa: E402


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    with SentinelCluster(tmp_path) as running:
        yield running
