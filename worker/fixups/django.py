"""The Django fix-up: `django.setup()` before task modules are imported, every installed
app's `tasks.py` for `autodiscover_tasks()`, and database connections that never go
stale in a long-lived pool child.

A pool child runs one task after another for hours; Django closes connections only at
the end of a web request, which never comes here. So, as Celery does, the consumer
closes connections that are broken or past `CONN_MAX_AGE` before and after each task
(`django.db.close_old_connections`). Right after fork the child drops the connections
it inherited without a word on the wire: closing them politely would end the parent's
database session too.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from qmulti.exceptions import ConfigError

log = logging.getLogger("qmulti")


class DjangoFixup:
    """Applies while `DJANGO_SETTINGS_MODULE` is set and Django is installed."""

    def __init__(self, django: Any) -> None:
        self._django = django

    @classmethod
    def for_environment(cls) -> DjangoFixup | None:
        try:
            import django
        except ImportError:
            log.warning("DJANGO_SETTINGS_MODULE is set but Django is not installed: not "
                        "applying the Django fix-ups")
            return None
        return cls(django)

    def _ready(self) -> bool:
        from django.apps import apps

        return bool(apps.ready)

    def on_import_modules(self) -> None:
        """`django.setup()` once: models and app registry ready before tasks import."""
        if self._ready():
            return
        module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
        try:
            self._django.setup()
        except Exception as exc:
            raise ConfigError(f"django.setup() failed for DJANGO_SETTINGS_MODULE={module}: "
                              f"{type(exc).__name__}: {exc}") from None

    def default_packages(self) -> list[str]:
        """The installed apps, in INSTALLED_APPS order, each by its package name."""
        self.on_import_modules()
        from django.apps import apps

        return [config.name for config in apps.get_app_configs()]

    def on_worker_process_init(self) -> None:
        if not self._ready():
            return
        for conn in _connections():
            raw = getattr(conn, "connection", None)
            if raw is None:
                continue
            fileno = getattr(raw, "fileno", None)
            if callable(fileno):  # a network database: shut our copy of the socket only
                try:
                    os.close(fileno())
                except (OSError, TypeError, ValueError, AttributeError):
                    pass
            try:
                conn.close()  # its socket is gone: nothing reaches the server
            except Exception:
                pass
            conn.connection = None

    def on_task_prerun(self) -> None:
        self._close_old()

    def on_task_postrun(self) -> None:
        self._close_old()

    def _close_old(self) -> None:
        if not self._ready():
            return
        from django.db import close_old_connections

        try:
            close_old_connections()
        except Exception as exc:  # a task must not fail for this; Django reconnects
            log.warning("Could not close stale database connections: %s", exc)


def _connections() -> list[Any]:
    from django.db import connections

    try:
        return list(connections.all(initialized_only=True))
    except TypeError:  # Django < 4.1
        return list(connections.all())
