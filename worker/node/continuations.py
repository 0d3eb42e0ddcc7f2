"""What a finishing task sends on (canvas), built in the pool child before its finish.

`after` turns the task's canvas options (`link`, `link_error`, `chain`, `chord`: see
`qmulti.canvas_options`) and its outcome into a `Continuation`, which `broker.finish`
publishes in the same atomic step that stores the result and acks the message, once.
Chord records a next step needs are created first (`chord_init` is idempotent, and the
ids are fixed in the message, so a re-run creates the same record). `chord_args` gives a
chord body its header's results, read from the backend when the body runs, so no
script ever builds JSON.
"""

from __future__ import annotations

from typing import Any

from qmulti import protocol
from qmulti.brokers.base import ChordPart, Continuation, marker_ttl
from qmulti.canvas_base import signature
from qmulti.canvas_options import CANVAS_OPTIONS, takes_request
from qmulti.canvas_plan import Plan, attach, freeze, plan, with_links
from qmulti.exceptions import ChordError
from qmulti.node.retry import retrying
from qmulti.states import FAILURE, SUCCESS


def has_canvas(options: Any) -> bool:
    return bool(options) and not CANVAS_OPTIONS.isdisjoint(options)


def after(rt: Any, env: protocol.Envelope, state: str, retval: Any, request: Any = None,
          exc: BaseException | None = None, tb: str | None = None) -> Continuation | None:
    """The continuation of a task that ended in `state` (SUCCESS or FAILURE)."""
    opts = env.options
    if not has_canvas(opts):
        return None
    app = rt.app
    out = Plan()
    parent = (env.root_id or env.id, env.id)
    if state == SUCCESS:
        for cb in opts.get("link") or ():
            plan(app, signature(cb, app=app), out, (retval,), (), parent)
        rest = opts.get("chain") or ()
        if rest:
            plan(app, signature(rest[0], app=app), out, (retval,), rest[1:], parent)
    elif state == FAILURE:
        for eb in opts.get("link_error") or ():
            sig = signature(eb, app=app)
            if takes_request(sig):
                _call_errback(rt, sig, request, exc, tb)
            else:
                plan(app, sig, out, (env.id,), (), parent)
    _init_chords(rt, out)
    ref = opts.get("chord")
    part = ChordPart(str(ref["id"]), str(ref["queue"]), env.id) if ref else None
    if not out.messages and part is None:
        return None
    return Continuation(env.id, tuple(out.messages), part, tuple(i for i in out.ids if i))


def revoked(env: protocol.Envelope) -> Continuation | None:
    """A revoked (or expired) chord member still reports, so its chord fails at once."""
    ref = (env.options or {}).get("chord")
    if not ref:
        return None
    return Continuation(env.id, (), ChordPart(str(ref["id"]), str(ref["queue"]), env.id))


def with_children(extended: Any, request: Any, then: Continuation | None) -> Any:
    """The stored result's extras plus `children`: what the task sent while it ran and
    what its finish sends (AsyncResult.children)."""
    sent = list(getattr(request, "children", None) or ())
    if then is not None:
        sent += then.children
    if not sent:
        return extended
    return {**(extended or {}), "children": sent}


def replaced(rt: Any, env: protocol.Envelope, sig: Any) -> Continuation:
    """`Task.replace(sig)`: `sig` under this task's id, with its links, chain and chord."""
    app = rt.app
    sig = signature(sig, app=app)
    opts = env.options or {}
    with_links(sig, opts.get("link"), opts.get("link_error"))
    attach(sig, "task_id", env.id)
    if opts.get("chord"):
        attach(sig, "chord", opts["chord"])
    freeze(sig, app)
    out = Plan()
    plan(app, sig, out, (), opts.get("chain") or (), (env.root_id or env.id, env.id))
    _init_chords(rt, out)
    return Continuation(f"{env.id}:replaced", tuple(out.messages))


def _init_chords(rt: Any, out: Plan) -> None:
    life = marker_ttl(rt.ttl)
    for chord_id, size, body in out.chords:  # idempotent, so retried through an outage
        retrying(rt, lambda c=chord_id, n=size, b=body: rt.broker.chord_init(c, n, b, life))


def _call_errback(rt: Any, sig: Any, request: Any, exc: BaseException | None,
                  tb: str | None) -> None:
    """A new-style errback runs here, as Celery runs it in the worker."""
    try:
        sig(request, exc, tb)
    except Exception:
        rt.log.exception("errback %s of task %s raised (ignored)", sig.name,
                         getattr(request, "id", "?"))


def chord_args(rt: Any, env: protocol.Envelope, args: list[Any]) -> list[Any]:
    """A chord body's arguments: the header's results first, or ChordError naming the
    first header task that did not succeed."""
    spec = env.options["chord_results"]
    ids = [str(i) for i in spec["ids"]]
    if rt.backend is None:
        raise ChordError("a chord needs a result backend to read its header's results")
    docs = [None if blob is None else protocol.decode_result(blob, rt.accept)
            for blob in retrying(rt, lambda: rt.backend.get_many(ids))]
    for task_id, doc in zip(ids, docs, strict=True):
        if doc is not None and doc.get("status") not in (SUCCESS, None, "PENDING",
                                                          "STARTED", "RETRY"):
            cause = doc.get("result")
            shown = protocol.exception_from_dict(cause) if isinstance(cause, dict) else cause
            raise ChordError(f"Dependency {task_id} raised {shown!r}")
    values = []
    for task_id, doc in zip(ids, docs, strict=True):
        if doc is None or doc.get("status") != SUCCESS:
            raise ChordError(f"Dependency {task_id} has no result (expired, or ignored: "
                             "a chord's header tasks must store their results)")
        values.append(doc.get("result"))
    return args if spec.get("immutable") else [values, *args]
