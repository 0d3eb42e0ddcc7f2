"""The canvas options a task message may carry, in their JSON form.

`link`/`link_error`: signatures run after the task succeeds / fails. `chain`: the steps
still to run after it, in order. `chord`: its membership of a chord (`{"id", "queue"}`:
the chord's id and its body's queue). `chord_results`: on a chord body, the header's
result ids to read (`{"ids": [...], "immutable": bool}`). The node reads them in
`qmulti.node.continuations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CANVAS_OPTIONS = frozenset({"link", "link_error", "chain", "chord", "chord_results",
                            "group_id", "group_index"})
# Those that make a message's finish send something on (see Broker.check_canvas).
CONTINUES = ("link", "link_error", "chain", "chord")


def sig_list(value: Any, key: str = "link") -> list[dict[str, Any]]:
    """One signature or a list of them, as plain dicts."""
    if value is None:
        return []
    if type(value) is list and all(type(v) is dict for v in value):
        return value  # plain already (a chain passed on by a node): no copy, no ABC test
    if isinstance(value, Mapping):
        return [dict(value)]
    if isinstance(value, (list, tuple)) and all(isinstance(v, Mapping) for v in value):
        return [dict(v) for v in value]
    raise TypeError(f"{key} must be a signature or a list of signatures "
                    f"(add.s(...)), not {value!r}")


def canvas_options(options: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("link", "link_error", "chain"):
        found = sig_list(options.get(key), key)
        if found:
            out[key] = found
    for key in ("chord", "chord_results", "group_id", "group_index"):
        if options.get(key) is not None:
            out[key] = options[key]
    return out


def takes_request(sig: Any) -> bool:
    """Celery's two errback styles: `errback(request, exc, traceback)`, called where the
    task failed, for a task registered here that takes three arguments or more; else
    `errback(task_id)`, sent as a task."""
    import inspect

    try:
        task = sig.app.tasks[sig.name]
    except Exception:
        return False
    fun = getattr(task, "run", None) or getattr(task, "fun", None)
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        return False
    if getattr(task, "bind", False) and params:
        params = params[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) - len(sig.args) >= 3 or any(
        p.kind == p.VAR_POSITIONAL for p in params)
