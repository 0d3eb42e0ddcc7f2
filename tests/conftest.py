"""Shared fixtures. pyproject's `pythonpath` puts the tests folder on sys.path, so
`helpers` and `redis_server` import the same way from every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import postgres_db
from redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (see tests/redis_server.py), killed after the test."""
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this session's own on the machine's PostgreSQL (tests/postgres_db.py);
    skips the test with the reason when no server answers."""
    why = postgres_db.unavailable()
    if why:
        pytest.skip(why)
    with postgres_db.temporary_database() as url:
        yield url


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long: about a minute of mostly waiting (a real minute "
                            "boundary, a 30 s drill); collected first so that under -n 2 it "
                            "overlaps the rest of the suite instead of trailing it")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("long") is None)  # stable: long first


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what the drills printed (their figures) even in a quiet run, so CI's log
    reports them; pytest-xdist forwards each test's captured output in its report."""
    lines: list[str] = []
    for report in terminalreporter.stats.get("passed", []):
        drill = ("tests/drills/" in report.nodeid or "test_beat.py" in report.nodeid
                 or "tests/amqp/test_amqp_chaos" in report.nodeid
                 or "tests/amqp/test_amqp_delays" in report.nodeid)
        if not drill or report.when != "call":
            continue
        for title, content in report.sections:
            if "stdout" in title and content.strip():
                lines.append(f"{report.nodeid}:")
                lines.extend(f"    {line}" for line in content.strip().splitlines())
    if lines:
        terminalreporter.section("drill figures")
        for line in lines:
            terminalreporter.write_line(line)
