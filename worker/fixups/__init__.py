"""Framework fix-ups, as Celery's: what a node must do for the framework a project is
written in. Today that is Django, applied when `DJANGO_SETTINGS_MODULE` is set.

The App asks `active()` for the fix-ups of this process when the node imports its
modules; each fix-up has the same four no-op-able hooks, so the node stays unaware
of which framework it serves.
"""

from __future__ import annotations

import os
from typing import Protocol


class Fixup(Protocol):
    def on_import_modules(self) -> None:
        """Before the app's imports and autodiscovery (the framework must be set up)."""

    def default_packages(self) -> list[str]:
        """Packages `autodiscover_tasks()` looks in when given none."""

    def on_worker_process_init(self) -> None:
        """In a pool child right after fork: drop what the parent process opened."""

    def on_task_prerun(self) -> None:
        """In the consumer, before a task runs."""

    def on_task_postrun(self) -> None:
        """In the consumer, after a task returned or raised."""


def active() -> list[Fixup]:
    """The fix-ups that apply to this process now."""
    found: list[Fixup] = []
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        from qmulti.fixups.django import DjangoFixup

        fixup = DjangoFixup.for_environment()
        if fixup is not None:
            found.append(fixup)
    return found
