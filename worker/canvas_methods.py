"""The canvas side of `Task` (`add.s(2, 2)`, `add.si(...)`, `add.map(...)`,
`self.replace(sig)`) and the builtin tasks that run a map in one message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import qmulti.canvas  # noqa: F401 - chain and chord join the signature kinds
from qmulti.canvas_base import (
    HOOKS,
    MAP_TASK,
    STARMAP_TASK,
    Signature,
    signature,
    xmap,
    xstarmap,
)
from qmulti.canvas_chunks import chunks
from qmulti.exceptions import Ignore

if TYPE_CHECKING:
    from qmulti.app import App


# -- the node's side: the builtin tasks that run a map in one message ------------------
def _run_map(task: Mapping[str, Any], it: Iterable[Any]) -> list[Any]:
    call = signature(task).type
    return [call(item) for item in it]


def _run_starmap(task: Mapping[str, Any], it: Iterable[Any]) -> list[Any]:
    call = signature(task).type
    return [call(*item) for item in it]


def register_builtins(app: App) -> None:
    """Give `app` the builtin tasks that `map`/`starmap`/`chunks` publish. The node does
    this at start; a producer on first use."""
    for name, fun in ((MAP_TASK, _run_map), (STARMAP_TASK, _run_starmap)):
        if name not in app.tasks:
            app.task(name=name, typing=False)(fun)


HOOKS["register_builtins"] = register_builtins


class Replaced(Ignore):
    """Raised by `Task.replace`: the node sends `sig` in this task's place (with its id,
    its links and its place in a chain or chord) in the finish of this task."""

    def __init__(self, sig: Signature) -> None:
        super().__init__(f"replaced by {sig!r}")
        self.sig = sig


class CanvasMethods:
    """The canvas side of `Task`."""

    name: str

    def signature(self, args: Iterable[Any] | None = None, *starargs: Any,
                  **starkwargs: Any) -> Signature:
        return Signature(self, args, *starargs, **starkwargs)

    subtask = signature

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        return Signature(self, args, kwargs, immutable=True)

    def map(self, it: Iterable[Any]) -> xmap:
        return xmap(Signature(self), it)

    def starmap(self, it: Iterable[Any]) -> xstarmap:
        return xstarmap(Signature(self), it)

    def chunks(self, it: Iterable[Any], n: int) -> chunks:
        return chunks(Signature(self), it, n)

    def replace(self, sig: Any) -> None:
        """End this task and run `sig` in its place, as Celery's `Task.replace`: callers
        waiting on this task's result get the replacement's, and what was to run after
        this task (chain, links, chord) runs after the replacement. Eager: runs it now."""
        raise Replaced(signature(sig))
