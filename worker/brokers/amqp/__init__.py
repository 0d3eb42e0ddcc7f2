"""RabbitMQ: the `amqp://` broker (`store.py`) and the `rpc://` result backend (`rpc.py`).

Needs py-amqp (`pip install 'qmulti[amqp]'`), imported only when such a URL is used.
"""

from __future__ import annotations

from typing import Any

from qmulti.exceptions import ConfigError
from qmulti.urls import parse_url

try:
    import amqp  # noqa: F401 - checked here so the error says what to install
except ImportError:  # pragma: no cover - the extra is part of the test environment
    raise ConfigError("amqp:// needs the py-amqp client: pip install 'qmulti[amqp]'") from None

from qmulti.brokers.amqp.rpc import RpcBackend  # noqa: E402
from qmulti.brokers.amqp.store import AmqpBroker  # noqa: E402

__all__ = ["AmqpBroker", "RpcBackend", "backend_for"]


def backend_for(url: str | None, broker: Any) -> RpcBackend | None:
    """The backend beside an amqp:// broker when it is RabbitMQ's own: `rpc://`, also
    when none is configured (Celery's examples pair amqp:// with rpc://)."""
    if not url:
        return RpcBackend("rpc://", broker)
    kind = parse_url(url, "result backend").kind
    if kind == "rpc":
        return RpcBackend(url, broker)
    if kind == "amqp":
        raise ConfigError("amqp:// is not a result backend (Celery removed it): use rpc:// "
                          "or redis://")
    return None
