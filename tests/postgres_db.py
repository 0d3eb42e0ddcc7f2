"""A database of its own on this machine's PostgreSQL (127.0.0.1:5432, trust auth, user
postgres), made for one test session and dropped after it.

Tests never write to a shared database: each session (each pytest-xdist worker too)
creates `qmulti_test_<random>` and drops it, connections and all, at the end. With no
server answering, the tests that need one are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

HOST = os.environ.get("QMULTI_TEST_PGHOST", "127.0.0.1")
PORT = int(os.environ.get("QMULTI_TEST_PGPORT", "5432"))
USER = os.environ.get("QMULTI_TEST_PGUSER", "postgres")


def _admin_url() -> str:
    return f"postgresql://{USER}@{HOST}:{PORT}/postgres"


def unavailable() -> str | None:
    """Why no test database can be made here, or None when one can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(_admin_url(), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"no PostgreSQL server answers at {HOST}:{PORT} as {USER}: {first}"


@contextmanager
def temporary_database() -> Iterator[str]:
    """Yield the URL (`postgresql://postgres@127.0.0.1:5432/qmulti_test_...`) of a new
    empty database; drop it afterwards, ending any session still on it."""
    import psycopg

    name = f"qmulti_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_url(), autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{USER}@{HOST}:{PORT}/{name}"
    finally:
        with psycopg.connect(_admin_url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
