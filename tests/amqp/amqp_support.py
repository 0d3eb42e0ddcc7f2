"""Shared by the RabbitMQ process tests: load another test module's text, and a node
project on an amqp:// broker."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_test_module(name: str) -> ModuleType:
    """tests/worker/<name>.py as a module of its own (its tests are not collected here)."""
    path = Path(__file__).parent.parent / "worker" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"amqp_reuse_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
