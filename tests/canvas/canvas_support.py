"""What the canvas tests share besides fixtures (conftest modules cannot be imported by
name once several test folders run together)."""

from __future__ import annotations

from typing import Any

from qmulti import App


def t(app: App, name: str) -> Any:
    """A task of the canvas test project (tests/canvas/conftest.py) by its short name."""
    return app.tasks[f"ctasks.{name}"]
