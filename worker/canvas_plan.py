"""Turning a canvas (chain, group, chord, nested) into the messages that start it.

Every id is fixed first (`freeze`), so the plan is deterministic: a chain step knows the
ids of the steps after it, a chord body knows its header's result ids. `plan` then
gives the chord records to create and the messages to publish now; the rest travels in
those messages (`chain`, `chord`, `link` options) and the node plans it again from there,
in the finish of the task before it (`qmulti.node.continuations`). The producer (`send`)
and the node share this code, so a chain started here and one continued on a node mean
the same thing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qmulti.canvas_base import HOOKS, KINDS, Signature, group, signature
from qmulti.canvas_options import CONTINUES
from qmulti.protocol import new_id
from qmulti.result import AsyncResult
from qmulti.result_set import GroupResult

if TYPE_CHECKING:
    from qmulti.app import App
    from qmulti.brokers.base import Message

DEFAULT_CHORD_MAX_SIZE = 100_000
# Options of a signature that are not the message's (they shape the canvas itself).
_NOT_SENT = frozenset({"group_id", "chord_size", "immutable", "link", "link_error"})
_SENT = frozenset({"countdown", "eta", "expires", "queue", "task_id", "serializer",
                   "time_limit", "soft_time_limit", "link", "link_error", "chain", "chord",
                   "chord_results", "group_index", "priority", "routing_key", "exchange",
                   "headers", "compression", "root_id", "parent_id"})

# A container's call options that reach its members (Celery: a group's go to every
# member, a chain's to its first task): where and how they run, not what they are.
_CARRIED = frozenset({"countdown", "eta", "expires", "queue", "serializer", "time_limit",
                      "soft_time_limit", "priority", "routing_key", "exchange", "headers",
                      "compression"})


@dataclass
class Plan:
    chords: list[tuple[str, int, Message]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # the task id of each message
    continues: bool = False  # some message carries a continuation (chain, link, chord)


def leaves(sig: Signature) -> list[Signature]:
    """A chord header's members: nested groups flattened into it."""
    if sig.subtask_type == "group":
        return [leaf for t in group(sig).tasks for leaf in leaves(t)]
    return [sig]


def freeze(sig: Signature, app: App) -> Any:
    """Fix every id in `sig` (in place) and return the result the caller gets."""
    kind = sig.subtask_type
    if kind == "chain":
        results = [freeze(step, app) for step in sig.kwargs["tasks"]]
        for before, after in zip(results, results[1:], strict=False):
            after.parent = before
        return results[-1]
    if kind == "group":
        gid = sig.options.setdefault("task_id", new_id())
        return GroupResult(gid, [freeze(t, app) for t in sig.kwargs["tasks"]], app=app)
    if kind == "chord":
        gid = sig.options.setdefault("group_id", new_id())
        header = GroupResult(gid, [freeze(t, app) for t in sig.kwargs["header"]], app=app)
        body = freeze(sig.kwargs["body"], app)
        body.parent = header
        return body
    task_id = sig.options.setdefault("task_id", new_id())
    return AsyncResult(task_id, app=app, task_name=sig.name)


def member_id(sig: Signature) -> str:
    """The id of the result that stands for `sig` in a chord header."""
    kind = sig.subtask_type
    if kind == "chain":
        return member_id(signature(sig.kwargs["tasks"][-1]))
    if kind == "chord":
        return member_id(signature(sig.kwargs["body"]))
    return str(sig.options["task_id"])


def attach(sig: Signature, key: str, value: Any) -> None:
    """Set an option on the task that finishes `sig` (a chain's last, a chord's body)."""
    kind = sig.subtask_type
    if kind == "chain":
        attach(sig.kwargs["tasks"][-1], key, value)
    elif kind == "chord":
        attach(sig.kwargs["body"], key, value)
    elif kind == "group":
        for t in sig.kwargs["tasks"]:
            attach(t, key, value)
    else:
        sig.options[key] = value


def _add(sig: Signature, key: str, items: Sequence[Any]) -> None:
    sig.options[key] = [*sig.options.get(key, ()), *items]


def plan(app: App, sig: Signature, out: Plan, prefix: tuple[Any, ...] = (),
         rest: Sequence[Any] = (), parent: tuple[str | None, str | None] = (None, None)
         ) -> None:
    """Add to `out` what starts `sig` with `prefix` prepended to its arguments (the result
    before it) and `rest` (dicts) to run after it. `parent`: (root id, parent id)."""
    kind = sig.subtask_type
    if kind == "chain":
        steps = list(sig.kwargs["tasks"])
        plan(app, signature(steps[0], app=app), out, prefix, [*steps[1:], *rest], parent)
    elif kind == "group" and rest:  # a group followed by anything is a chord (Celery's rule)
        head = signature(rest[0], app=app)
        up = KINDS["chord"](group(sig).tasks, head, app=app, group_id=sig.options.get("task_id"))
        plan(app, up, out, prefix, rest[1:], parent)
    elif kind == "group":
        for t in sig.kwargs["tasks"]:
            plan(app, signature(t, app=app), out, prefix, (), parent)
    elif kind == "chord":
        _plan_chord(app, sig, out, prefix, rest, parent)
    elif kind == "chunks":
        plan(app, sig.group(), out, prefix, rest, parent)  # type: ignore[attr-defined]
    else:
        out.ids.append(sig.options.setdefault("task_id", new_id()))  # a link is not frozen
        if rest or any(sig.options.get(k) for k in CONTINUES):
            out.continues = True
        out.messages.append(message(app, sig, prefix, rest, parent))


def _plan_chord(app: App, sig: Signature, out: Plan, prefix: tuple[Any, ...],
                rest: Sequence[Any], parent: tuple[str | None, str | None]) -> None:
    header = [leaf for t in sig.kwargs["header"] for leaf in leaves(signature(t, app=app))]
    body = copy.deepcopy(signature(sig.kwargs["body"], app=app))
    limit = int(app.conf.chord_max_size or DEFAULT_CHORD_MAX_SIZE)
    if len(header) > limit:
        raise ValueError(f"a chord of {len(header):,} header tasks is over chord_max_size "
                         f"({limit:,}): split the work into smaller chords, or raise "
                         "chord_max_size")
    if rest:
        attach(body, "chain", [*body.options.get("chain", ()), *rest])  # after the body
    if not header:  # Celery runs the body at once with an empty list
        plan(app, body, out, ([],), (), parent)
        return
    chord_id = str(sig.options.get("group_id") or new_id())
    ids = [member_id(m) for m in header]
    at = Plan()
    attach(body, "chord_results", {"ids": ids, "immutable": body.immutable})
    plan(app, body, at, (), (), parent)
    if len(at.messages) != 1 or at.chords:
        raise ValueError("a chord body must be one task or a chain of tasks")
    body_msg = at.messages[0]
    out.chords.append((chord_id, len(header), body_msg))
    ref = {"id": chord_id, "queue": body_msg.queue}
    for member in header:
        member = copy.deepcopy(member)
        attach(member, "chord", ref)
        plan(app, member, out, prefix, (), parent)


def message(app: App, sig: Signature, prefix: tuple[Any, ...], rest: Sequence[Any],
            parent: tuple[str | None, str | None]) -> Message:
    args = sig.args if sig.immutable else (*prefix, *sig.args)
    options = {k: v for k, v in sig.options.items() if k in _SENT}
    if rest:
        options["chain"] = [r if type(r) is dict else wire(r) for r in rest]
    root_id, parent_id = parent
    return app.compose(sig.name, args, sig.kwargs, root_id=root_id, parent_id=parent_id,
                       **options)


# Keys of a signature's dict that `signature(d)` defaults when absent or empty.
_DEFAULTED = frozenset({"args", "kwargs", "options", "subtask_type", "immutable",
                        "chord_size"})


def wire(sig: Any) -> dict[str, Any]:
    """A chain step as it travels in the message before it: without its empty defaults.

    Every step carries all the steps after it, so a chain of n costs n^2/2 entries in
    JSON, encoded and decoded once per step; a bare `add.s(1)` shrinks to a third. A
    step that arrived in a message is a plain dict, in this form already, and is passed
    on as it is (no per-step copy of the rest of the chain)."""
    return {k: v for k, v in dict.items(sig) if v or k not in _DEFAULTED}


def with_links(sig: Signature, link: Any, link_error: Any) -> Signature:
    """Celery's rules: a chain's callback follows its last step and its errback every
    step; a chord's go to its body; a group's to every member."""
    from qmulti.canvas_options import sig_list

    kind = sig.subtask_type
    for key, items in (("link", sig_list(link)), ("link_error", sig_list(link_error))):
        if not items:
            continue
        if kind == "chain" and key == "link_error":
            for step in sig.kwargs["tasks"]:
                with_links(step, None, items)
        elif kind in ("chain", "chord", "group"):
            targets = {"chain": [sig.kwargs.get("tasks", [None])[-1]],
                       "chord": [sig.kwargs.get("body")],
                       "group": sig.kwargs.get("tasks", [])}[kind]
            for t in targets:
                with_links(t, items if key == "link" else None,
                           items if key == "link_error" else None)
        else:
            _add(sig, key, items)
    return sig


def send(sig: Signature, link: Any = None, link_error: Any = None, **options: Any) -> Any:
    """Start a canvas from the producer: chord records first, then the messages."""
    app = sig.app
    sig = copy.deepcopy(sig)
    task_id = options.pop("task_id", None)
    sig.options.update(options)
    if task_id and sig.subtask_type in ("chain", "chord"):
        attach(sig, "task_id", task_id)  # Celery: the chain's id is its last task's
    elif task_id:
        sig.options["task_id"] = task_id
    with_links(sig, link, link_error)
    push_down(sig, app)
    result = freeze(sig, app)
    out = Plan()
    plan(app, sig, out)  # everything checked and encoded before anything is sent
    broker = app.broker
    from qmulti.brokers.base import marker_ttl  # here: `import qmulti` loads no broker

    if out.continues or out.chords:
        broker.check_canvas()  # before anything is sent: all of it or none
    life = marker_ttl(app.conf.result_expires)  # as long as its members' results
    for chord_id, size, body in out.chords:
        broker.chord_init(chord_id, size, body, life)
    broker.publish_many(out.messages)
    return result


def push_down(sig: Signature, app: App) -> None:
    """Give a group's members, and a chain's first step, the container's own call
    options (`chain(...).apply_async(queue='q')`): a container is never a message, so
    without this they would be dropped. The call's options win over a member's own, as
    in `Signature.apply_async`."""
    kind = sig.subtask_type
    if kind not in ("chain", "group"):
        return
    carried = {k: v for k, v in sig.options.items() if k in _CARRIED}
    if not carried:
        return
    tasks = sig.kwargs["tasks"]
    for i in range(len(tasks) if kind == "group" else min(1, len(tasks))):
        member = signature(tasks[i], app=app)
        member.options.update(carried)
        push_down(member, app)
        tasks[i] = member


def send_members(app: App, members: Sequence[Signature], options: dict[str, Any],
                 group_id: str, link: Any, link_error: Any) -> GroupResult | None:
    """A plain group's members (cloned already) in one broker call (`publish_many`), or
    None where each must go through its own `apply_async`: eager mode, publish hooks
    to run per message, or an option this plan does not carry."""
    known = _SENT | _NOT_SENT
    if app.conf.task_always_eager or app.middleware.publishing or \
            not known.issuperset(options):
        return None
    out = Plan()
    results = []
    for sig in members:
        if not known.issuperset(sig.options):
            return None
        sig.options.update(options)  # the call's options win, as in Signature.apply_async
        with_links(sig, link, link_error)
        task = app.tasks.get(sig.name)
        if task is not None and task.typing:
            task._check_arguments(sig.args, sig.kwargs)
        results.append(freeze(sig, app))
        plan(app, sig, out)  # every member encoded before anything is sent
    if out.continues:
        app.broker.check_canvas()
    app.broker.publish_many(out.messages)
    return GroupResult(group_id, results, app=app)



HOOKS["send"] = send
HOOKS["send_members"] = send_members
