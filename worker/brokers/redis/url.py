"""Redis URLs into connection settings, checked before any connection is made.

Parsing is pure (no I/O) so a malformed URL fails at start with exit 78 and the same
message on every host. Every message shows the URL through `mask_url`. Neither redis-py
nor `ssl` is imported here: every process of a node parses its URL, and those two cost
~20 MiB each process (see resp.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from qmulti.brokers.redis.resp import Endpoint
from qmulti.exceptions import ConfigError
from qmulti.urls import mask_url

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 6379
_SOCKET_SCHEMES = frozenset({"redis+socket", "unix"})
_TCP_SCHEMES = frozenset({"redis", "rediss"})
# ssl.CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED (ints by the ssl module's contract; they
# compare equal to its enum), spelled out so that parsing a redis:// URL never loads ssl.
_CERT_REQS = {
    "none": 0, "cert_none": 0,
    "optional": 1, "cert_optional": 1,
    "required": 2, "cert_required": 2,
}
_SSL_PATHS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_TRANSPORTS = ("tcp", "tls", "unix")


@dataclass(frozen=True)
class RedisTarget:
    """Where a Redis store lives, plus how to name it to people.

    `kwargs` keeps redis-py's keyword names (host, port, path, db, username, password,
    ssl_*), so a tool or test can still hand them to redis-py; our client reads them
    through `endpoint`.
    """

    transport: str  # one of _TRANSPORTS
    kwargs: dict[str, Any] = field(repr=False)  # holds the password: never shown
    where: str = ""  # "host:port" or the socket path, for error messages
    masked: str = ""  # the URL with the password masked

    def endpoint(self, connect_timeout: float, socket_timeout: float) -> Endpoint:
        """The settings of our own client (worker/brokers/resp.py)."""
        return Endpoint(tls=self.transport == "tls", connect_timeout=connect_timeout,
                        socket_timeout=socket_timeout, **self.kwargs)

    @property
    def connection_class(self) -> type:
        """The redis-py connection class for this URL, for code that still talks through
        redis-py (tests, tools); imported here only, never on the runtime path."""
        from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection
        return {"tcp": Connection, "tls": SSLConnection,
                "unix": UnixDomainSocketConnection}[self.transport]


def parse_redis_url(url: str) -> RedisTarget:
    """Split `redis://`, `rediss://`, `redis+socket://` and `unix://` URLs.

    Accepts the password in the netloc (`:pw@`, `user:pw@`) or as `?password=`, the db as
    the path (`/3`) or as `?db=` / `?virtual_host=` (kombu's spelling).
    """
    masked = mask_url(url)
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if scheme in _TCP_SCHEMES:
            host = parts.hostname or DEFAULT_HOST
            port = parts.port or DEFAULT_PORT
    except ValueError as exc:  # a port that is not a number, a bad IPv6 literal
        raise ConfigError(f"bad redis URL {masked!r}: {exc}") from None
    password = query.pop("password", None) or password
    username = query.pop("username", None) or username
    kwargs: dict[str, Any] = {"password": password or None, "username": username}
    if scheme in _SOCKET_SCHEMES:
        path = unquote(parts.path)
        if not path or path == "/":
            raise ConfigError(f"bad redis URL {masked!r}: give the socket path, "
                              "as redis+socket:///run/redis/redis.sock")
        db_text = query.pop("db", None) or query.pop("virtual_host", None) or "0"
        kwargs["path"] = path
        transport = "unix"
        where = path
    elif scheme in _TCP_SCHEMES:
        db_text = parts.path.lstrip("/") or query.pop("db", None) or \
            query.pop("virtual_host", None) or "0"
        kwargs.update(host=host, port=port)
        where = f"{host}:{port}"
        transport = "tcp"
        if scheme == "rediss":
            transport = "tls"
            kwargs.update(_ssl_options(query, masked))
    else:
        raise ConfigError(f"bad redis URL {masked!r}: the scheme must be redis://, "
                          "rediss://, redis+socket:// or unix://")
    query.pop("db", None)
    query.pop("virtual_host", None)
    if not db_text.isdigit():
        raise ConfigError(f"bad redis URL {masked!r}: the database must be a number, "
                          f"got {db_text!r}")
    kwargs["db"] = int(db_text)
    return RedisTarget(transport, kwargs, where, masked)


def _ssl_options(query: dict[str, str], masked: str) -> dict[str, Any]:
    """The TLS settings of a `rediss://` URL (`ssl_cert_reqs=required|optional|none`)."""
    out: dict[str, Any] = {}
    reqs = query.pop("ssl_cert_reqs", None)
    if reqs is not None:
        try:
            out["ssl_cert_reqs"] = _CERT_REQS[reqs.lower()]
        except KeyError:
            raise ConfigError(f"bad redis URL {masked!r}: ssl_cert_reqs must be required, "
                              f"optional or none, got {reqs!r}") from None
    for name in _SSL_PATHS:
        if name in query:
            out[name] = query.pop(name)
    return out
