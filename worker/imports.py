"""The modules a node imports at start: `imports`, `include`, and `autodiscover_tasks`.

Discovery is lazy, as in Celery: `app.autodiscover_tasks([...])` in a project's
celery.py only records the request, because that module is usually imported while the
packages it names are still being imported themselves (a Django project's apps, or
`proj/__init__.py` importing `proj.celery`); the node runs it at start, after
`imports`, and `force=True` runs it at once.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable

from qmulti.exceptions import ConfigError

Packages = Iterable[str] | Callable[[], Iterable[str]] | None


def import_listed(names: Iterable[str]) -> list[str]:
    """Import each module; one that does not exist is a ConfigError (exit 78)."""
    names = list(dict.fromkeys(names))
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                raise ConfigError(
                    f"cannot import {name!r} listed in imports/include: no module named "
                    f"{exc.name!r} (is the current directory the project root?)") from None
            raise
    return names


def discover(packages: Packages, related_name: str | None) -> list[str]:
    """Import `<package>.<related_name>` for every package that has one; returns the
    modules imported. A package without that module is skipped (most Django apps have
    no tasks.py); an error inside an existing one propagates, as it is the user's bug."""
    if callable(packages):
        packages = packages()
    if packages is None:
        packages = default_packages()
    found: list[str] = []
    for package in packages:
        name = f"{package}.{related_name}" if related_name else package
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name in (name, package) or (exc.name and package.startswith(exc.name + ".")):
                if exc.name != name:
                    raise ConfigError(f"autodiscover_tasks: no package named {package!r}"
                                      ) from None
                continue
            raise
        found.append(name)
    return found


def default_packages() -> list[str]:
    """What `autodiscover_tasks()` with no packages searches: Django's installed apps
    when Django is configured (the node sets it up first when DJANGO_SETTINGS_MODULE is
    set), else nothing."""
    if "django" not in sys.modules and "django.conf" not in sys.modules:
        return []
    try:
        from django.apps import apps  # type: ignore[import-not-found]

        if apps.ready:
            return [config.name for config in apps.get_app_configs()]
        from django.conf import settings  # type: ignore[import-not-found]

        return [str(name) for name in getattr(settings, "INSTALLED_APPS", ())]
    except Exception:  # Django importable but not configured: nothing to search
        return []


def pending_discovery(requests: list[tuple[Packages, str | None]]) -> list[str]:
    """Run the recorded `autodiscover_tasks` requests, oldest first, and forget them."""
    found: list[str] = []
    while requests:
        packages, related_name = requests.pop(0)
        found += discover(packages, related_name)
    return found
