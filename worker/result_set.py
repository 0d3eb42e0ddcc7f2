"""`ResultSet` and `GroupResult`: many task outcomes handled as one, as a group returns.

A GroupResult can be saved under its group id and restored in another process, so a
web request can start a group and a later request can ask how far it got. Waiting on
the members is push-based one by one (each `get` blocks on its own result), so a
group's `get()` returns as soon as its last member is stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from qmulti import states
from qmulti.appstate import get_current_app
from qmulti.exceptions import TimeoutError
from qmulti.result import AsyncResult

if TYPE_CHECKING:
    from qmulti.app import App

# Saved groups live in the result backend beside task results, under this prefix.
GROUP_KEY_PREFIX = "qmulti-group-"


class ResultSet:
    """An ordered collection of AsyncResults."""

    def __init__(self, results: Iterable[AsyncResult], app: App | None = None) -> None:
        self.results: list[AsyncResult] = list(results)
        self.app: App = app if app is not None else (
            self.results[0].app if self.results else get_current_app())

    def add(self, result: AsyncResult) -> None:
        if result not in self.results:
            self.results.append(result)

    def remove(self, result: AsyncResult | str) -> None:
        wanted = result if isinstance(result, str) else result.id
        for member in self.results:
            if member.id == wanted:
                self.results.remove(member)
                return
        raise KeyError(wanted)

    def discard(self, result: AsyncResult | str) -> None:
        try:
            self.remove(result)
        except KeyError:
            pass

    def update(self, results: Iterable[AsyncResult]) -> None:
        for result in results:
            self.add(result)

    def clear(self) -> None:
        self.results.clear()

    # -- state ---------------------------------------------------------------------------
    def successful(self) -> bool:
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        return any(r.failed() for r in self.results)

    def waiting(self) -> bool:
        return any(not r.ready() for r in self.results)

    def ready(self) -> bool:
        return all(r.ready() for r in self.results)

    def completed_count(self) -> int:
        """How many members succeeded (Celery counts successes only)."""
        return sum(1 for r in self.results if r.successful())

    def forget(self) -> None:
        for result in self.results:
            result.forget()

    def revoke(self, terminate: bool = False, **options: Any) -> None:
        for result in self.results:
            result.revoke(terminate=terminate, **options)

    # -- waiting -------------------------------------------------------------------------
    def get(self, timeout: float | None = None, propagate: bool = True,
            **options: Any) -> list[Any]:
        """Every member's value, in order; see `join`."""
        return self.join(timeout=timeout, propagate=propagate, **options)

    def join(self, timeout: float | None = None, propagate: bool = True,
             callback: Any = None, **_ignored: Any) -> list[Any]:
        """Wait for every member in order. `timeout` bounds the whole wait, not each
        member; a failed member raises its exception when `propagate`. `callback(id,
        value)` receives each value instead of the returned list, as in Celery."""
        deadline = None if timeout is None else time.monotonic() + timeout
        values: list[Any] = []
        for result in self.results:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                value = result.get(timeout=left, propagate=propagate)
            except TimeoutError:
                raise TimeoutError(f"the operation timed out: {len(values)} of "
                                   f"{len(self.results)} results after {timeout}s") from None
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    def iterate(self, timeout: float | None = None, propagate: bool = True) -> Iterator[Any]:
        """Each member's value in order, as it becomes available."""
        yield from self.join(timeout=timeout, propagate=propagate)

    # -- container -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[AsyncResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> AsyncResult:
        return self.results[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return other.results == self.results
        return NotImplemented

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(r.id for r in self.results)}]>"


class GroupResult(ResultSet):
    """The result of `group(...).apply_async()`: the members plus the group's id."""

    def __init__(self, id: str, results: Iterable[AsyncResult] = (),
                 app: App | None = None) -> None:
        super().__init__(results, app)
        self.id = id

    @property
    def children(self) -> list[AsyncResult]:
        return self.results

    def save(self, backend: Any = None) -> GroupResult:
        """Store the member ids under the group id, so `GroupResult.restore(id)` works
        in any process that shares the backend."""
        backend = backend or self.app.backend
        doc = {"task_id": self.id, "status": states.SUCCESS,
               "result": [r.id for r in self.results], "date_done": time.time()}
        backend.set(GROUP_KEY_PREFIX + self.id, states.SUCCESS,
                    json.dumps(doc).encode(), self.app.conf.result_expires)
        return self

    def delete(self, backend: Any = None) -> None:
        (backend or self.app.backend).forget(GROUP_KEY_PREFIX + self.id)

    @classmethod
    def restore(cls, id: str, backend: Any = None, app: App | None = None) -> GroupResult | None:
        """The saved group, or None if it was never saved (or has expired)."""
        app = app if app is not None else get_current_app()
        blob = (backend or app.backend).get(GROUP_KEY_PREFIX + id)
        if blob is None:
            return None
        ids = json.loads(blob)["result"]
        return cls(id, [AsyncResult(i, app=app) for i in ids], app=app)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"
