"""Signatures and groups: a task call as data, and many calls sent as one (the base of
`qmulti.canvas`, which adds chain and chord).

A `Signature` is a plain dict of Celery's shape (`task`, `args`, `kwargs`, `options`,
`subtask_type`, `immutable`, `chord_size`), so it travels in task arguments and in
settings as JSON, and a node rebuilds it with `signature(d)`. `group` publishes its
members and returns a `GroupResult`; `map`, `starmap` and `chunks` run many calls of
one task inside a single message (the node's builtin `celery.map` / `celery.starmap`).

Continuations (chain, chord, link callbacks: `canvas_chain.py`, `canvas_plan.py`) are
published by the node in the same atomic step that stores a result and acks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from qmulti.appstate import get_current_app
from qmulti.protocol import new_id
from qmulti.result import AsyncResult
from qmulti.result_set import GroupResult

if TYPE_CHECKING:
    from qmulti.app import App
    from qmulti.task import Task

MAP_TASK = "celery.map"  # Celery's builtin names, so a mixed fleet agrees on them
STARMAP_TASK = "celery.starmap"


class Signature(dict):  # type: ignore[type-arg]
    """One task call: name, partial arguments and execution options."""

    def __init__(self, task: Any = None, args: Iterable[Any] | None = None,
                 kwargs: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None, subtask_type: str | None = None,
                 immutable: bool = False, app: App | None = None, **ex: Any) -> None:
        if isinstance(task, Mapping):  # from its dict form
            super().__init__(task)
            self["args"] = tuple(self.get("args") or ())  # JSON made it a list
            self["kwargs"] = dict(self.get("kwargs") or {})
            self["options"] = dict(self.get("options") or {})
            self._app = app
            self._type = None
            return
        self._app = app
        self._type = None if isinstance(task, str) or task is None else task
        name = task if isinstance(task, str) or task is None else task.name
        super().__init__(task=name, args=tuple(args or ()), kwargs=dict(kwargs or {}),
                         options={**(options or {}), **ex}, subtask_type=subtask_type,
                         immutable=immutable, chord_size=None)

    # -- fields --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self["task"]

    task = name

    @property
    def args(self) -> tuple[Any, ...]:
        return tuple(self.get("args") or ())

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.get("kwargs") or {})

    @property
    def options(self) -> dict[str, Any]:
        return self["options"]

    @property
    def subtask_type(self) -> str | None:
        return self.get("subtask_type")

    @property
    def immutable(self) -> bool:
        return bool(self.get("immutable"))

    @property
    def id(self) -> str | None:
        return self.options.get("task_id")

    @property
    def app(self) -> App:
        if self._app is not None:
            return self._app
        if self._type is not None:
            return self._type.app
        return get_current_app()

    @property
    def type(self) -> Task:
        """The registered task this signature calls (KeyError if it is not here)."""
        if self._type is None:
            self._type = self.app.tasks[self.name]
        return self._type

    # -- building ------------------------------------------------------------------------
    def _merge(self, args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None,
               options: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any],
                                                    dict[str, Any]]:
        """Partial arguments: new args go before the stored ones, new kwargs over them;
        an immutable signature keeps its own arguments and takes only options."""
        merged_options = {**self.options, **options}
        if self.immutable:
            return self.args, self.kwargs, merged_options
        return (tuple(args or ()) + self.args, {**self.kwargs, **(kwargs or {})},
                merged_options)

    def clone(self, args: Iterable[Any] | None = None,
              kwargs: Mapping[str, Any] | None = None, **options: Any) -> Signature:
        new_args, new_kwargs, new_options = self._merge(args, kwargs, options)
        return self._copy(dict(self, args=new_args, kwargs=new_kwargs, options=new_options))

    def _copy(self, d: Mapping[str, Any], app: App | None = None) -> Signature:
        """The same kind of signature holding `d`, whatever its constructor takes."""
        new = type(self).__new__(type(self))
        dict.__init__(new, d)
        new._app = app if app is not None else self._app
        new._type = self._type if app is None else None
        return new

    partial = clone

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Update the options in place (`add.s(2, 2).set(countdown=10)`); returns self."""
        if immutable is not None:
            self["immutable"] = bool(immutable)
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = bool(immutable)

    def freeze(self, _id: str | None = None, **_ignored: Any) -> AsyncResult:
        """Fix the task id before sending, so the result is known in advance."""
        task_id = self.options.setdefault("task_id", _id or new_id())
        return AsyncResult(task_id, app=self.app, task_name=self.name)

    # -- calling -------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here and now, as a plain function call."""
        call_args, call_kwargs, _ = self._merge(args, kwargs, {})
        return self.type(*call_args, **call_kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Iterable[Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None, route_name: str | None = None,
                    **options: Any) -> Any:
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        for key in ("link", "link_error"):  # added to the signature's own, as Celery
            if key in options and self.options.get(key):
                call_options[key] = [*_as_list(self.options[key]), *_as_list(options[key])]
        task = self._type if self._type is not None else self.app.tasks.get(self.name)
        if task is not None:
            return task.apply_async(call_args, call_kwargs, **call_options)
        return self.app.send_task(self.name, call_args, call_kwargs, **call_options)

    def apply(self, args: Iterable[Any] | None = None,
              kwargs: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """Run eagerly in this process; an EagerResult."""
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        return self.type.apply(call_args, call_kwargs, **call_options)

    # -- continuations (sent by the node in the finish of this task) --------------------
    def link(self, callback: Any) -> Any:
        """Run `callback` with this task's result prepended, after it succeeds."""
        self.options.setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback: Any) -> Any:
        """Run `errback` when this task fails: `errback(request, exc, traceback)` on the
        node for a task taking three arguments, else sent with the task id as argument."""
        self.options.setdefault("link_error", []).append(errback)
        return errback

    def on_error(self, errback: Any) -> Signature:
        self.link_error(errback)
        return self

    def __or__(self, other: Any) -> Any:
        return KINDS["chain"](self, other)

    def __invert__(self) -> Any:
        """`~sig`: send it and wait for the value (Celery's shorthand in its guide)."""
        return self.apply_async().get()

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def __reduce__(self) -> Any:
        return signature, (dict(self),)

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        import copy

        return self._copy(copy.deepcopy(dict(self), memo))


class group(Signature):  # noqa: N801 - Celery's name
    """Many calls sent at once: `group(add.s(i, i) for i in range(10))()` ->
    GroupResult. Partial arguments and options given at the call apply to every member."""

    def __init__(self, *tasks: Any, app: App | None = None, **options: Any) -> None:
        if len(tasks) == 1 and isinstance(tasks[0], Mapping) and \
                tasks[0].get("subtask_type") == "group":
            d = tasks[0]
            members = [signature(t, app=app) for t in d["kwargs"]["tasks"]]
            options = {**d.get("options", {}), **options}
        else:
            if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
                tasks = tuple(tasks[0])  # group([a, b]) or group(generator)
            members = [signature(t, app=app) for t in tasks]
        super().__init__("celery.group", (), {"tasks": members}, options,
                         subtask_type="group", app=app)

    @property
    def tasks(self) -> list[Signature]:
        return self["kwargs"]["tasks"]

    @property
    def app(self) -> App:
        if self._app is not None:
            return self._app
        return self.tasks[0].app if self.tasks else get_current_app()

    def clone(self, args: Iterable[Any] | None = None,
              kwargs: Mapping[str, Any] | None = None, **options: Any) -> group:
        return group([t.clone(args, kwargs) for t in self.tasks], app=self._app,
                     **{**self.options, **options})

    def __call__(self, *args: Any, **kwargs: Any) -> GroupResult:
        return self.apply_async(args, kwargs)

    def freeze(self, _id: str | None = None, group_id: str | None = None,
               **_ignored: Any) -> GroupResult:  # type: ignore[override]
        """Fix the group's id and every member's, as Celery does: the GroupResult is
        known before sending, and `apply_async` sends under these ids."""
        gid = self.options.setdefault("task_id", _id or group_id or new_id())
        return GroupResult(gid, [t.freeze() for t in self.tasks], app=self.app)

    def apply_async(self, args: Iterable[Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None, route_name: str | None = None,
                    **options: Any) -> GroupResult:
        options = {**self.options, **options}
        group_id = options.pop("task_id", None) or options.pop("group_id", None) or new_id()
        link, link_error = options.pop("link", None), options.pop("link_error", None)
        members = [t.clone(args, kwargs) for t in self.tasks]
        if any(t.subtask_type in _COMPOSITE for t in members):  # chains, chords inside
            return HOOKS["send"](group(members, app=self._app, task_id=group_id, **options),
                                 link=link, link_error=link_error)
        sent = HOOKS["send_members"](self.app, members, options, group_id, link, link_error)
        if sent is not None:  # published in one broker call
            return sent
        # Eager mode or publish hooks: each member through its own task.apply_async.
        results = [t.apply_async(**options, **_links(link, link_error)) for t in members]
        return GroupResult(group_id, results, app=self.app)

    def apply(self, args: Iterable[Any] | None = None,
              kwargs: Mapping[str, Any] | None = None, **options: Any) -> GroupResult:
        results = [task.clone(args, kwargs).apply(**options) for task in self.tasks]
        return GroupResult(options.get("task_id") or new_id(), results, app=self.app)

    def __iter__(self) -> Iterator[Signature]:  # type: ignore[override]
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __or__(self, other: Any) -> Any:
        """Celery's rule: a group followed by a task is a chord with that task as its body;
        a group of one is its one member."""
        if len(self.tasks) > 1 and isinstance(other, Signature) and \
                other.subtask_type not in _COMPOSITE:
            return KINDS["chord"](self, other, app=self._app)
        return KINDS["chain"](self, other)

    def skew(self, start: float = 1.0, stop: float | None = None,
             step: float = 1.0) -> group:
        """Spread the members' start: countdowns start, start + step, ... (up to stop)."""
        at = float(start)
        for t in self.tasks:
            t.set(countdown=at)
            at += step
            if stop is not None:
                at = min(at, float(stop))
        return self

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"


_COMPOSITE = frozenset({"chain", "chord", "group"})


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, Mapping) else list(value)


def _links(link: Any, link_error: Any) -> dict[str, Any]:
    return {k: v for k, v in (("link", link), ("link_error", link_error)) if v}


def _task_dict(task: Any) -> Signature:
    return task if isinstance(task, Signature) else Signature(task)


class xmap(Signature):  # noqa: N801 - Celery's name
    """`add.map([1, 2, 3])` for a one-argument task: one message, a list of results."""

    _builtin = MAP_TASK
    _kind = "xmap"

    def __init__(self, task: Any, it: Iterable[Any], **options: Any) -> None:
        if isinstance(task, Mapping) and task.get("subtask_type") == self._kind:
            super().__init__(task, app=options.pop("app", None))
            return
        sig = _task_dict(task)
        super().__init__(self._builtin, (), {"task": sig, "it": list(it)}, options,
                         subtask_type=self._kind, immutable=True, app=sig._app)

    def apply_async(self, args: Iterable[Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None, route_name: str | None = None,
                    **options: Any) -> Any:
        HOOKS["register_builtins"](self.app)  # canvas_methods
        queue = options.pop("queue", None) or self.options.get("queue")
        if queue is None:  # the mapped task's own route, as if it were called itself
            inner = signature(self.kwargs["task"], app=self._app)
            queue = inner.options.get("queue") or getattr(
                self.app.tasks.get(inner.name), "queue", None)
        return super().apply_async(queue=queue, **options)

    def __repr__(self) -> str:
        inner = signature(self.kwargs["task"])
        return f"[{inner.name}(x) for x in {_short(self.kwargs['it'])}]"


class xstarmap(xmap):  # noqa: N801 - Celery's name
    """`add.starmap([(1, 2), (3, 4)])`: each item is the argument tuple of one call."""

    _builtin = STARMAP_TASK
    _kind = "xstarmap"

    def __repr__(self) -> str:
        inner = signature(self.kwargs["task"])
        return f"[{inner.name}(*x) for x in {_short(self.kwargs['it'])}]"


# Every kind of signature by its `subtask_type`; `canvas_chain` adds chain and chord, and
# `canvas_plan` the `send` hook (they build on this module, so it cannot import them).
KINDS: dict[str, Any] = {"group": group, "xmap": xmap, "xstarmap": xstarmap}
HOOKS: dict[str, Any] = {}


def signature(varies: Any, *args: Any, app: App | None = None, **kwargs: Any) -> Signature:
    """A Signature from a task name, a task, a dict (the JSON form) or a signature."""
    if isinstance(varies, Signature) and not args and not kwargs:
        return varies.clone() if app is None else varies._copy(dict(varies), app=app)
    if isinstance(varies, Mapping) and not isinstance(varies, Signature):
        kind = KINDS.get(str(varies.get("subtask_type")))
        if kind is not None and getattr(kind, "from_dict", None) is not None:
            return kind.from_dict(varies, app=app)  # type: ignore[attr-defined]
        if kind is group:
            return group(varies, app=app)
        if kind is not None:
            return kind(varies, (), app=app)  # type: ignore[call-arg]
        return Signature(varies, app=app)
    return Signature(varies, *args, app=app, **kwargs)


subtask = signature  # Celery's old name


def maybe_signature(d: Any, app: App | None = None) -> Signature | None:
    return None if d is None else signature(d, app=app)


def _short(items: list[Any]) -> str:
    text = repr(list(itertools.islice(items, 3)))
    return text if len(items) <= 3 else text[:-1] + ", ...]"
