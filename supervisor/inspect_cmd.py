"""`qmulti inspect CMD [-d NODES] [-A app] [--timeout S] [--json]`: what the nodes do.

`--json` prints Celery's shape, `{nodename: reply}`, with the replies as
`app.control.inspect()` returns them (documented in the README). The human form is one
aligned table per command.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from qmulti.supervisor import ctlargs
from qmulti.supervisor.ctlsend import ask, report_missing

COMMANDS = ("ping", "active", "reserved", "scheduled", "stats", "registered",
            "active_queues", "revoked", "query_task", "conf")


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tasks(replies: dict[str, Any], running: bool) -> list[tuple[str, ...]]:
    head = ("NODE", "ID", "NAME", "ARGS", "KWARGS") + (("RUNTIME",) if running else ())
    rows = [head]
    now = time.time()
    for node, tasks in sorted(replies.items()):
        for t in tasks or []:
            row: tuple[str, ...] = (node, str(t.get("id")), str(t.get("name")),
                                    _short(t.get("args")), _short(t.get("kwargs")))
            if running:
                start = t.get("time_start")
                row += (f"{now - start:.1f}s" if isinstance(start, (int, float)) else "-",)
            rows.append(row)
    return rows


def _stats(replies: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [("NODE", "PID", "HOST", "POOL", "CHILDREN", "ACTIVE", "FINISHED", "UPTIME",
             "QUEUES")]
    for node, s in sorted(replies.items()):
        pool = s.get("pool") or {}
        rows.append((node, str(s.get("pid")), str(s.get("hostname")),
                     str(pool.get("implementation")), str(pool.get("max-concurrency")),
                     str(s.get("active")), str(s.get("finished")), f"{s.get('uptime')}s",
                     ",".join(s.get("queues") or [])))
    return rows


def _each(head: tuple[str, str], show: Callable[[Any], list[str]]) -> Callable[..., Any]:
    def rows(replies: dict[str, Any]) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = [head]
        for node, reply in sorted(replies.items()):
            items = show(reply) or ["-"]
            out.extend((node if i == 0 else "", item) for i, item in enumerate(items))
        return out

    return rows


def _query(replies: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [("NODE", "ID", "STATE", "NAME")]
    for node, found in sorted(replies.items()):
        for tid, (state, info) in sorted((found or {}).items()):
            rows.append((node, tid, state, str(info.get("name"))))
    return rows


RENDER: dict[str, Callable[[dict[str, Any]], list[tuple[str, ...]]]] = {
    "ping": _each(("NODE", "REPLY"), lambda r: [str(r.get("ok") or r.get("error"))]),
    "active": lambda r: _tasks(r, True),
    "reserved": lambda r: _tasks(r, False),
    "scheduled": lambda r: _tasks(r, False),
    "stats": _stats,
    "registered": _each(("NODE", "TASK"), lambda r: list(r)),
    "active_queues": _each(("NODE", "QUEUE"), lambda r: [q.get("name") for q in r]),
    "revoked": _each(("NODE", "TASK ID"), lambda r: list(r)),
    "query_task": _query,
    "conf": _each(("NODE", "SETTING"), lambda r: [f"{k} = {v!r}" for k, v in sorted(r.items())]),
}


def run(argv: list[str]) -> int:
    p = ctlargs.parser("inspect", "Ask the nodes what they are doing.")
    p.add_argument("command", choices=COMMANDS, metavar="CMD",
                   help="one of: " + ", ".join(COMMANDS))
    p.add_argument("ids", nargs="*", help="task ids (query_task)")
    ctlargs.add_destination(p)
    args = p.parse_args(argv)
    arguments: dict[str, Any] = {}
    if args.command == "query_task":
        if not args.ids:
            raise ctlargs.UsageError("query_task needs task ids: qmulti inspect query_task ID")
        arguments["ids"] = args.ids
    elif args.ids:
        raise ctlargs.UsageError(f"inspect {args.command} takes no arguments")
    app = ctlargs.make_app(args)
    replies, missing = ask(app, args.command, arguments,
                           ctlargs.destinations(args.destination), args.timeout)
    if args.json:
        print(json.dumps(replies, indent=2, sort_keys=True, default=str))
    else:
        for line in ctlargs.table(RENDER[args.command](replies)):
            print(line)
    return report_missing(missing, args.timeout)
