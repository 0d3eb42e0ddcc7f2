"""Process titles: what `ps` and the controller see of a node and each pool child.

The controller counts busy children by parsing these titles, so their shape is part
of the contract: `qworker: <node> main`, `qworker: <node> child <i> idle`,
`qworker: <node> child <i> busy <task>[<id>]`. Only names and ids appear, never a URL.
"""

from __future__ import annotations

try:
    import setproctitle as _setproctitle
except ImportError:  # pragma: no cover - a declared dependency; titles are a nicety
    _setproctitle = None  # type: ignore[assignment]

PREFIX = "qworker:"


def set_title(text: str) -> None:
    if _setproctitle is not None:
        _setproctitle.setproctitle(text)


def main_title(node: str, state: str = "") -> str:
    return f"{PREFIX} {node} main" + (f" {state}" if state else "")


def child_title(node: str, index: int, task: str | None = None,
                task_id: str | None = None) -> str:
    if task is None:
        return f"{PREFIX} {node} child {index} idle"
    return f"{PREFIX} {node} child {index} busy {task}[{task_id}]"
