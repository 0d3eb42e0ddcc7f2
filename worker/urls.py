"""Broker and backend URLs: parsing into a scheme we support, and masking for display.

Every place that shows a URL to a person (logs, process titles, `qmulti show`,
exception messages) goes through `mask_url`, so a password never leaves the process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from qmulti.exceptions import ConfigError

DEFAULT_BROKER_URL = "sqlite:///qmulti.sqlite3"
SCHEMES = {
    "redis": "redis", "rediss": "redis", "redis+socket": "redis", "unix": "redis",
    "sentinel": "redis",  # Redis under Sentinel: `sentinel://h1:26379;sentinel://h2:26379`
    "sqlite": "sqlite", "memory": "memory",
    "amqp": "amqp", "pyamqp": "amqp", "amqps": "amqp", "rpc": "rpc",
}
# Celery's database backend names an SQLAlchemy dialect after `db+`; these are the ones
# we store results in (SQLite through our own store, PostgreSQL through psycopg).
DB_DIALECTS = {
    "sqlite": "sqlite",
    "postgresql": "postgres", "postgresql+psycopg": "postgres", "postgresql+psycopg2": "postgres",
}
_PASSWORD = re.compile(r"^(?P<head>[a-z0-9+.-]+://[^:@/]*:)(?P<pw>[^@/]*)(?P<tail>@.*)$", re.I)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&]*", re.I)


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***`; safe to log or show. A list of URLs
    joined by `;` (Sentinel's) is masked part by part."""
    if ";" in url:
        return ";".join(mask_url(part) for part in url.split(";"))
    url = _PASSWORD.sub(lambda m: m["head"] + "***" + m["tail"], url)
    return _QUERY_PASSWORD.sub(lambda m: m["key"] + "***", url)


@dataclass(frozen=True)
class ParsedURL:
    """Which kind of store a URL names; the store itself parses the details."""

    kind: str  # "redis", "sqlite", "memory", "amqp"; "postgres", "rpc": result backends only
    url: str

    def __str__(self) -> str:
        return mask_url(self.url)


def parse_url(url: str | None, what: str = "broker") -> ParsedURL:
    """Check the scheme up front, so a typo fails at start (exit 78), not at first use."""
    if not url:
        url = DEFAULT_BROKER_URL
    if not isinstance(url, str):
        raise ConfigError(f"{what} URL must be a string, got {type(url).__name__}")
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise ConfigError(f"bad {what} URL {mask_url(url)!r}: {exc}") from None
    if scheme.startswith("db+"):
        return _parse_db(url, scheme[3:], what)
    kind = SCHEMES.get(scheme)
    if kind == "rpc" and what == "broker":
        raise ConfigError(f"{mask_url(url)!r} is a result backend URL, not a broker: set it "
                          "as result_backend beside an amqp:// broker")
    if kind is None:
        supported = ("redis://, rediss://, redis+socket://, sentinel://, sqlite:///, memory://, "
                     "amqp://")
        raise ConfigError(
            f"unsupported {what} URL {mask_url(url)!r}: use one of {supported}"
        )
    return ParsedURL(kind, url)


def _parse_db(url: str, dialect: str, what: str) -> ParsedURL:
    """`db+DIALECT://...` (Celery's database backend): `db+sqlite:///results.sqlite3` is
    our SQLite store at that path; `db+postgresql://` is the PostgreSQL backend."""
    supported = "db+sqlite:///path, db+postgresql://user@host/db (+psycopg, +psycopg2)"
    kind = DB_DIALECTS.get(dialect)
    if kind is None:
        raise ConfigError(f"unsupported {what} URL {mask_url(url)!r}: the database dialect "
                          f"{dialect!r} is not one qmulti stores results in; use one of "
                          f"{supported}, or redis://")
    if what == "broker":
        raise ConfigError(f"{mask_url(url)!r} is a result backend URL, not a broker: set it "
                          "as result_backend and use redis:// or sqlite:/// as the broker")
    if kind == "sqlite":
        return ParsedURL(kind, url[len("db+"):])
    return ParsedURL(kind, url)
