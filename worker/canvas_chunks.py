"""`chunks`: a long list of argument tuples cut into parts, one starmap message a part."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from qmulti.canvas_base import Signature, _short, _task_dict, group, signature, xstarmap
from qmulti.result_set import GroupResult


class chunks(Signature):  # noqa: N801 - Celery's name
    """`add.chunks(zip(xs, ys), 10)`: the items in parts of `n`, one starmap message a
    part, sent as a group; `get()` is a list of lists."""

    def __init__(self, task: Any, it: Iterable[Any], n: int, **options: Any) -> None:
        sig = _task_dict(task)
        if int(n) < 1:
            raise ValueError(f"chunks need a chunk size of at least 1, not {n!r}")
        super().__init__("celery.chunks", (), {"task": sig, "it": list(it), "n": int(n)},
                         options, subtask_type="chunks", immutable=True, app=sig._app)

    def __repr__(self) -> str:
        inner = signature(self.kwargs["task"])
        return f"{inner.name}.chunks({_short(self.kwargs['it'])}, {self.kwargs['n']})"

    def group(self) -> group:
        task, items, n = self.kwargs["task"], self.kwargs["it"], self.kwargs["n"]
        parts = (items[i:i + n] for i in range(0, len(items), n))
        return group((xstarmap(task, part) for part in parts), app=self._app,
                     **self.options)

    def __call__(self, *args: Any, **kwargs: Any) -> GroupResult:
        return self.apply_async()

    def apply_async(self, args: Iterable[Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None, route_name: str | None = None,
                    **options: Any) -> GroupResult:
        return self.group().apply_async(**options)
