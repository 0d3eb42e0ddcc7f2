"""`qmulti result ID [--traceback] [--json]`: a task's state and result, read once.

Unlike `celery result`, it never blocks on a task that has not finished: it prints the
state it has now (PENDING, STARTED, ...).
"""

from __future__ import annotations

import json

from qmulti.supervisor import ctlargs


def run(argv: list[str]) -> int:
    p = ctlargs.parser("result", "Show a task's state and result.")
    p.add_argument("task_id", metavar="ID")
    p.add_argument("--traceback", action="store_true", help="the traceback of a failure")
    p.add_argument("-j", "--json", action="store_true",
                   help="print {id, state, result, traceback}")
    args = p.parse_args(argv)
    app = ctlargs.make_app(args)
    res = app.AsyncResult(args.task_id)
    state = res.state
    result = res.result if res.ready() else res.info
    if isinstance(result, BaseException):
        result = f"{type(result).__name__}: {result}"
    traceback = res.traceback
    if args.json:
        print(json.dumps({"id": res.id, "state": state, "result": result,
                          "traceback": traceback}, indent=2, default=repr))
        return 0
    if args.traceback:
        print(traceback or f"{res.id}: no traceback (state {state})")
        return 0
    for line in ctlargs.table([("id:", res.id), ("state:", state),
                               ("result:", json.dumps(result, default=repr))]):
        print(line)
    return 0
