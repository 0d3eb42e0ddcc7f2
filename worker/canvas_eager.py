"""Chains, chords, links and `replace` run in the caller (`apply()`, task_always_eager):
the same meaning as on a node, with EagerResults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qmulti import states
from qmulti.canvas_base import KINDS, Signature, signature
from qmulti.canvas_options import sig_list
from qmulti.exceptions import ChordError
from qmulti.protocol import new_id
from qmulti.result import EagerResult
from qmulti.result_set import GroupResult


def run(sig: Signature, prefix: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None) -> Any:
    kind = sig.subtask_type
    if kind == "chain":
        return run_chain(sig, prefix, dict(kwargs or {}), dict(options or {}))
    if kind == "chord":
        return run_chord(sig, prefix, dict(kwargs or {}), dict(options or {}))
    if kind in ("group", "chunks"):
        g = sig.group() if kind == "chunks" else sig  # type: ignore[attr-defined]
        members = [run(signature(t, app=sig._app), prefix, kwargs) for t in g.tasks]
        return GroupResult(g.options.get("task_id") or new_id(), members, app=sig.app)
    return sig.apply(prefix, kwargs, **dict(options or {}))


def failed(result: Any) -> Any:
    """The first failed result in `result` (a group's members too), or None."""
    if isinstance(result, GroupResult):
        return next((f for r in result.results if (f := failed(r)) is not None), None)
    return result if result.state == states.FAILURE else None


def value(result: Any) -> Any:
    if isinstance(result, GroupResult):
        return [value(r) for r in result.results]
    return result.get(propagate=False)


def run_chain(sig: Any, prefix: tuple[Any, ...], kwargs: dict[str, Any],
              options: Mapping[str, Any]) -> Any:
    steps = list(sig.tasks)
    result: Any = None
    for i, step in enumerate(steps):
        if step is None:
            continue
        step = signature(step, app=sig._app)
        if i + 1 < len(steps) and step.subtask_type == "group":
            # a group followed by a step: a chord
            step = KINDS["chord"](step.tasks, steps[i + 1], app=sig._app)
            steps[i + 1] = None
        before = result
        result = run(step, prefix if i == 0 else (value(before),), kwargs if i == 0 else None)
        if before is not None:
            result.parent = before
        if failed(result) is not None:
            break
    return result


def run_chord(sig: Any, prefix: tuple[Any, ...], kwargs: dict[str, Any],
              options: Mapping[str, Any]) -> Any:
    header = GroupResult(new_id(), [run(signature(t, app=sig._app), prefix, kwargs)
                                    for t in sig.tasks], app=sig.app)
    body = signature(sig.body, app=sig._app)
    culprit = failed(header)
    if culprit is not None:
        exc = ChordError(f"Dependency {culprit.id} raised {culprit.result!r}")
        result = EagerResult(body.options.get("task_id") or new_id(), exc, states.FAILURE,
                             name=body.name)
        for errback in sig_list(body.options.get("link_error")):
            errback_sig = signature(errback, app=sig._app)
            run(errback_sig, (result.id,))
    else:
        result = run(body, (value(header),))
    result.parent = header
    return result


def after(task_id: str, state: str, retval: Any, options: Mapping[str, Any]) -> None:
    """An eager task's links (and the rest of a chain it was sent with)."""
    if state == states.SUCCESS:
        for cb in sig_list(options.get("link")):
            run(signature(cb), (retval,))
        rest = sig_list(options.get("chain"))
        if rest:
            run_chain(KINDS["chain"](*rest), (retval,), {}, {})
    elif state == states.FAILURE:
        for eb in sig_list(options.get("link_error")):
            run(signature(eb), (task_id,))
