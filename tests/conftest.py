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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what the drills printed (their figures) even in a quiet run, so CI's log
    reports them; pytest-xdist forwards each test's captured output in its report."""
    lines: list[str] = []
    for report in terminalreporter.stats.get("passed", []):
        if "tests/drills/" not in report.nodeid or report.when != "call":
            continue
        for title, content in report.sections:
            if "stdout" in title and content.strip():
                lines.append(f"{report.nodeid}:")
                lines.extend(f"    {line}" for line in content.strip().splitlines())
    if lines:
        terminalreporter.section("drill figures")
        for line in lines:
            terminalreporter.write_line(line)
