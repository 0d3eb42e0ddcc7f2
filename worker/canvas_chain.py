"""`chain` and `chord`: tasks that run one after the other, and a group with a callback.

`chain(a, b, c)` (or `a | b | c`) runs `b` with `a`'s result prepended to its
arguments (unless `b` is immutable), and so on; its result is the last step's, whose
`.parent` is the step before. A group followed by another step becomes a chord, as in
Celery. `chord(header, body)` runs the header tasks in parallel and then the body with
the list of their results; a failed header task fails the body with `ChordError`.
Each next step is sent by the node in the finish of the step before (see
`canvas_plan.py`), so it is sent exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from qmulti.appstate import get_current_app
from qmulti.canvas_base import KINDS, Signature, group, signature

if TYPE_CHECKING:
    from qmulti.app import App


def _steps(tasks: Iterable[Any], app: App | None) -> list[Signature]:
    """The steps as Celery reads them: nested chains flattened, a group of one unrolled
    to its member, and a group followed by a task made a chord with that body."""
    flat: list[Signature] = []
    for t in tasks:
        sig = signature(t, app=app)
        if isinstance(sig, group) and len(sig.tasks) == 1:
            sig = signature(sig.tasks[0], app=app)
        flat += sig.tasks if isinstance(sig, chain) else [sig]
    out: list[Signature] = []
    for sig in flat:
        before = out[-1] if out else None
        if (isinstance(before, group) and len(before.tasks) > 1
                and sig.subtask_type not in ("group", "chain", "chord")):
            out[-1] = chord(before, sig, app=app)
        else:
            out.append(sig)
    return out


class _Composite(Signature):
    """What chain and chord share: sent through `canvas_plan.send`, eager through apply."""

    @property
    def app(self) -> App:
        if self._app is not None:
            return self._app
        first = self._first()
        return first.app if first is not None else get_current_app()

    def _first(self) -> Signature | None:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def freeze(self, _id: str | None = None, **_ignored: Any) -> Any:
        """Fix every id now: the result (the last step's, the body's) is known before
        sending, and `apply_async` sends under these ids."""
        from qmulti.canvas_plan import freeze

        return freeze(self, self.app)

    def apply_async(self, args: Iterable[Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None, route_name: str | None = None,
                    **options: Any) -> Any:
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        from qmulti.canvas_plan import send

        link, link_error = options.pop("link", None), options.pop("link_error", None)
        sig = self.clone(args, kwargs) if args or kwargs else self
        return send(sig, link, link_error, **options)


class chain(_Composite):  # noqa: N801 - Celery's name
    """Steps run in order, each result passed on to the next."""

    def __init__(self, *tasks: Any, app: App | None = None, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
            tasks = tuple(tasks[0])  # chain([a, b]) or chain(generator)
        super().__init__("celery.chain", (), {"tasks": _steps(tasks, app)}, options,
                         subtask_type="chain", app=app)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: App | None = None) -> chain:
        return cls(*d["kwargs"]["tasks"], app=app, **dict(d.get("options") or {}))

    @property
    def tasks(self) -> list[Signature]:
        return self["kwargs"]["tasks"]

    def _first(self) -> Signature | None:
        return self.tasks[0] if self.tasks else None

    def clone(self, args: Iterable[Any] | None = None,
              kwargs: Mapping[str, Any] | None = None, **options: Any) -> chain:
        steps = [t.clone() for t in self.tasks]
        if steps and (args or kwargs):
            steps[0] = steps[0].clone(args, kwargs)
        return chain(*steps, app=self._app, **{**self.options, **options})

    def link(self, callback: Any) -> Any:
        return self.tasks[-1].link(callback)

    def link_error(self, errback: Any) -> Any:
        for step in self.tasks:
            step.link_error(errback)
        return errback

    def __or__(self, other: Any) -> chain:
        return chain(*self.tasks, other, app=self._app)

    def apply(self, args: Iterable[Any] | None = None,
              kwargs: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """Run every step here, in order (task_always_eager)."""
        from qmulti.canvas_eager import run_chain

        return run_chain(self, tuple(args or ()), dict(kwargs or {}), options)

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks)


class chord(_Composite):  # noqa: N801 - Celery's name
    """`chord(header)(body)` or `chord(header, body)()`: the body gets the header's
    results as a list, in header order."""

    def __init__(self, header: Any, body: Any = None, app: App | None = None,
                 **options: Any) -> None:
        if isinstance(header, Mapping) and header.get("subtask_type") == "chord":
            d = header
            header, body = d["kwargs"]["header"], d["kwargs"]["body"]
            options = {**d.get("options", {}), **options}
        members = group(header, app=app).tasks if not isinstance(header, group) \
            else header.tasks
        if isinstance(header, group) and header.id and "group_id" not in options:
            options["group_id"] = header.id
        super().__init__("celery.chord", (), {
            "header": [signature(t, app=app) for t in members],
            "body": None if body is None else signature(body, app=app)},
            options, subtask_type="chord", app=app)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: App | None = None) -> chord:
        return cls(d, app=app)

    @property
    def tasks(self) -> list[Signature]:
        return self["kwargs"]["header"]

    @property
    def body(self) -> Signature | None:
        return self["kwargs"]["body"]

    def _first(self) -> Signature | None:
        return self.tasks[0] if self.tasks else self.body

    def clone(self, args: Iterable[Any] | None = None,
              kwargs: Mapping[str, Any] | None = None, **options: Any) -> chord:
        header = [t.clone(args, kwargs) for t in self.tasks]
        body = None if self.body is None else self.body.clone()
        return chord(header, body, app=self._app, **{**self.options, **options})

    def __call__(self, body: Any = None, **options: Any) -> Any:  # type: ignore[override]
        if body is not None:
            return chord(self.tasks, body, app=self._app, **self.options).apply_async(**options)
        return self.apply_async(**options)

    def apply_async(self, args: Iterable[Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None, route_name: str | None = None,
                    body: Any = None, **options: Any) -> Any:
        if body is not None:
            return chord(self.tasks, body, app=self._app,
                         **self.options).apply_async(args, kwargs, **options)
        if self.body is None:
            raise ValueError("a chord needs a body: chord(header)(body) or "
                             "chord(header, body)()")
        return super().apply_async(args, kwargs, **options)

    def link(self, callback: Any) -> Any:
        assert self.body is not None
        return self.body.link(callback)

    def link_error(self, errback: Any) -> Any:
        assert self.body is not None
        return self.body.link_error(errback)

    def apply(self, args: Iterable[Any] | None = None,
              kwargs: Mapping[str, Any] | None = None, body: Any = None,
              **options: Any) -> Any:
        from qmulti.canvas_eager import run_chord

        sig = self if body is None else chord(self.tasks, body, app=self._app)
        return run_chord(sig, tuple(args or ()), dict(kwargs or {}), options)

    def __repr__(self) -> str:
        return f"chord([{', '.join(repr(t) for t in self.tasks)}], {self.body!r})"


KINDS.update(chain=chain, chord=chord)
