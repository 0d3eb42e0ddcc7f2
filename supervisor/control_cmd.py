"""`qmulti control CMD ARGS [-d NODES]`: change running nodes, on any host sharing the
broker. Prints one row a node (its reply); exits 1 when a node refused or did not
answer. `--json` prints `{nodename: reply}` as `app.control` returns it."""

from __future__ import annotations

import json
from typing import Any

from qmulti.exceptions import UsageError
from qmulti.supervisor import ctlargs
from qmulti.supervisor.ctlsend import ask, report_missing


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{what} must be a whole number, not {text!r}") from None


def _seconds(text: str, what: str) -> float | None:
    if text.lower() in ("none", "-", "0"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what} must be seconds, not {text!r}") from None
    if value < 0:
        raise UsageError(f"{what} cannot be negative: {text}")
    return value


USAGES = {
    "ping": "ping",
    "pool_grow": "pool_grow [N]",
    "pool_shrink": "pool_shrink [N]",
    "autoscale": "autoscale MAX MIN",
    "rate_limit": "rate_limit TASK RATE",
    "time_limit": "time_limit TASK SOFT [HARD]",
    "add_consumer": "add_consumer QUEUE",
    "cancel_consumer": "cancel_consumer QUEUE",
    "shutdown": "shutdown",
    "revoke": "revoke ID... [--terminate] [--signal SIG]",
    "terminate": "terminate SIGNAL ID...",
}
# how many words each takes: (at least, at most)
_COUNTS = {"ping": (0, 0), "pool_grow": (0, 1), "pool_shrink": (0, 1), "autoscale": (2, 2),
           "rate_limit": (2, 2), "time_limit": (2, 3), "add_consumer": (1, 1),
           "cancel_consumer": (1, 1), "shutdown": (0, 0), "revoke": (1, 999),
           "terminate": (2, 999)}


def _rate(task: str, rate: str) -> dict[str, Any]:
    from qmulti.routing import parse_rate

    value = None if rate.lower() in ("none", "0", "") else rate
    if value is not None:
        try:
            parse_rate(value)
        except Exception as exc:
            raise UsageError(str(exc)) from None
    return {"task_name": task, "rate_limit": value}


def arguments_for(command: str, words: list[str]) -> dict[str, Any]:
    """The request's arguments from the command's words; a usage error if they are wrong."""
    if command not in USAGES:
        raise UsageError(f"unknown control command {command!r}; one of: " + ", ".join(USAGES))
    low, high = _COUNTS[command]
    if not low <= len(words) <= high:
        raise UsageError(f"usage: qmulti control {USAGES[command]}")
    if command in ("pool_grow", "pool_shrink"):
        return {"n": _int(words[0], "N") if words else 1}
    if command == "autoscale":
        return {"max": _int(words[0], "MAX"), "min": _int(words[1], "MIN")}
    if command == "rate_limit":
        return _rate(words[0], words[1])
    if command == "time_limit":
        return {"task_name": words[0], "soft": _seconds(words[1], "the soft limit"),
                "hard": _seconds(words[2], "the hard limit") if len(words) > 2 else None}
    if command in ("add_consumer", "cancel_consumer"):
        return {"queue": words[0]}
    if command == "revoke":
        return {"task_id": words}
    if command == "terminate":
        return {"task_id": words[1:], "signal": words[0]}
    return {}


def run(argv: list[str]) -> int:
    p = ctlargs.parser("control", "Change running nodes: " + ", ".join(USAGES) + ".")
    p.add_argument("command", metavar="CMD", help="one of: " + ", ".join(USAGES))
    p.add_argument("words", nargs="*", metavar="ARGS")
    p.add_argument("--terminate", action="store_true", help="revoke: stop it if running")
    p.add_argument("--signal", default="TERM", help="revoke --terminate: TERM, KILL, USR1")
    ctlargs.add_destination(p)
    args = p.parse_args(argv)
    arguments = arguments_for(args.command, list(args.words))
    command = args.command
    app = ctlargs.make_app(args)
    destination = ctlargs.destinations(args.destination)
    if command in ("revoke", "terminate"):
        ids = arguments["task_id"]
        from qmulti.result import revoke_signal

        terminate = command == "terminate" or args.terminate
        try:
            name = revoke_signal(arguments.get("signal", args.signal)) if terminate else None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        for tid in ids:  # the marks first: they hold for nodes that are down right now
            app.AsyncResult(tid).revoke(terminate=terminate, signal=name)
        arguments = {"task_id": ids, "terminate": terminate, "signal": name}
        command = "revoke"
    replies, missing = ask(app, command, arguments, destination, args.timeout)
    refused = [n for n, r in replies.items() if not isinstance(r, dict) or "error" in r]
    if args.json:
        print(json.dumps(replies, indent=2, sort_keys=True, default=str))
    else:
        rows = [("NODE", "RESULT", "REPLY")]
        for node, reply in sorted(replies.items()):
            ok = isinstance(reply, dict) and "ok" in reply
            text = reply.get("ok") or reply.get("error") if isinstance(reply, dict) else reply
            rows.append((node, "ok" if ok else "error", str(text)))
        for line in ctlargs.table(rows):
            print(line)
    return max(report_missing(missing, args.timeout), 1 if refused else 0)
