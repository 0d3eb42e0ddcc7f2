"""`app.autodiscover_tasks()`: import each package's tasks module, as Celery does.

Kept apart from the App so that the rules (callable lists, the framework's default
list, a missing tasks module skipped, any other import error raised) are in one place.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any


def discover(packages: Iterable[str] | Callable[[], Iterable[str]] | None,
             related_name: str | None, fixups: Sequence[Any] = ()) -> list[str]:
    """Import `<package>.<related_name>` (or the package itself when `related_name` is
    None) for each package; returns the modules imported.

    `packages` may be a callable, called now; None means the framework's list (Django:
    the installed apps). A package without the module is skipped; an error raised
    inside a module, or a package that does not exist, propagates: those are bugs the
    user must see."""
    if callable(packages):
        packages = packages()
    if packages is None:
        if not fixups:
            from qmulti import fixups as known

            fixups = known.active()
        packages = [package for fixup in fixups for package in fixup.default_packages()]
    found = []
    for package in packages:
        name = f"{package}.{related_name}" if related_name else package
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if related_name and exc.name == name:
                continue  # this package has no tasks module: nothing to find
            raise
        found.append(name)
    return found
