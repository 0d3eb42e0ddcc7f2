"""`amqp://user:pass@host:port/vhost`, as Celery (kombu) reads it.

The path is the virtual host with its leading slash removed, so Celery's default
`amqp://guest:guest@localhost:5672//` names the vhost `/`, an empty path also means `/`,
and `%2F` is a slash inside a name. `pyamqp://` is the same; `amqps://` adds TLS and
defaults to port 5671.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from qmulti.exceptions import ConfigError
from qmulti.urls import mask_url

SCHEMES = ("amqp", "pyamqp", "amqps")


@dataclass(frozen=True)
class AmqpTarget:
    host: str
    port: int
    userid: str
    password: str = field(repr=False)
    vhost: str
    ssl: bool
    masked: str  # the URL without its password, for logs and errors

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_amqp_url(url: str) -> AmqpTarget:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad broker URL {mask_url(url)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"{mask_url(url)!r} is not an amqp:// URL")
    tls = scheme == "amqps"
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return AmqpTarget(
        host=parts.hostname or "localhost",
        port=port or (5671 if tls else 5672),
        userid=unquote(parts.username) if parts.username else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        vhost=unquote(path) or "/",
        ssl=tls,
        masked=mask_url(url),
    )
