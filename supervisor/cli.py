"""`qmulti COMMAND NODES... [options]`: the entry point.

The grammar is `celery multi`'s and too irregular for click or argparse, so the
command word is dispatched here and the rest read by `supervisor.grammar`.
This is the only place that maps errors to exit statuses and prints them (one
line, no traceback); the commands below return an exit status.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

from qmulti.exceptions import QmultiError, UsageError
from qmulti.pidfiles.errors import PidfileError
from qmulti.supervisor import exitcodes, show
from qmulti.supervisor.grammar import Invocation, build
from qmulti.supervisor.report import TextReporter

USAGE = """\
usage: qmulti start    NODES [--timeout S] [qworker options]
       qmulti stop     NODES
       qmulti stopwait NODES [--timeout S]
       qmulti restart  NODES [--timeout S] [qworker options]
       qmulti kill     NODES
       qmulti status   NODES [--json]
       qmulti show     NODES [qworker options]
       qmulti names    NODES
       qmulti expand   TEMPLATE NODES
       qmulti get      NODE NODES [qworker options]
       qmulti supervise NODES [qworker options]
       qmulti beat     -A MODULE [-l LEVEL] [--list]   (periodic tasks; run any number)
       qmulti events   [--json] [-A MODULE | -b URL] [--oldest] [--limit N] [--timeout S]
       qmulti inspect  CMD [-d NODES] [-A MODULE|-b URL] [--timeout S] [--json]
       qmulti control  CMD [ARGS] [-d NODES] [-A MODULE|-b URL] [--timeout S] [--json]
       qmulti purge    [-Q QUEUES] [-X QUEUES] [-f] [-A MODULE|-b URL]
       qmulti result   ID [--traceback] [--json] [-A MODULE|-b URL]
       qmulti call     NAME [--args JSON] [--kwargs JSON] [--queue Q] [--countdown S]
NODES: a count (3 -> celery1..celery3) or names (w1 w2 w1@example.com).
Per-node options: -c:1-3 4, -c:w1 8, --logfile:w2=w2.log; `--` passes the rest to
every node; %h %n %d in options, %i %I in paths (expanded per pool child).
Defaults: --pidfile=%n.pid --logfile=%n%I.log in the current directory.
--timeout S: start/restart wait S seconds for a node to consume (default 30);
stopwait/restart send QUIT to a node still running after S seconds, then KILL."""

Command = Callable[[list[str]], int]


def _invocation(argv: list[str]) -> Invocation:
    return build(argv, socket.gethostname(), os.path.expanduser)


def _lines(render: Callable[[list[str], str, Callable[[str], str]], list[str]]) -> Command:
    """A read-only command: print its lines; an unknown `get` node is exit 1."""

    def run(argv: list[str]) -> int:
        try:
            lines = render(argv, socket.gethostname(), os.path.expanduser)
        except show.NoSuchNode as exc:
            print(f"qmulti get: {exc}", file=sys.stderr)
            return exitcodes.EX_FAILURE
        for line in lines:
            print(line)
        return exitcodes.EX_OK

    return run


def _cluster_command(operation: str) -> Command:
    """A command that acts on running nodes; imported late so `show` stays light."""

    def run(argv: list[str]) -> int:
        from qmulti.supervisor import cluster, status

        invocation = _invocation(argv)
        if operation == "status":
            return status.run_status(invocation)
        reporter = TextReporter(quiet=invocation.quiet)
        getattr(cluster, operation)(invocation, reporter, os.getcwd())
        return exitcodes.EX_OK if reporter.all_ok else exitcodes.EX_FAILURE

    return run


def cmd_beat(argv: list[str]) -> int:
    from qmulti.supervisor import beat_cmd

    return beat_cmd.run(argv)


def cmd_events(argv: list[str]) -> int:
    from qmulti.supervisor import events_cmd

    return events_cmd.run(argv)


def cmd_supervise(argv: list[str]) -> int:
    """Foreground: runs the nodes as children until TERM/INT (imported late, as above)."""
    from qmulti.supervisor import supervise

    return supervise.run(_invocation(argv), os.getcwd())


def _module_command(module: str) -> Command:
    """A command of its own module (inspect, control, ...), imported when run."""

    def run(argv: list[str]) -> int:
        import importlib

        return int(importlib.import_module(f"qmulti.supervisor.{module}").run(argv))

    return run


COMMANDS: dict[str, Command] = {
    "start": _cluster_command("start"),
    "stop": _cluster_command("stop"),
    "stopwait": _cluster_command("stopwait"),
    "restart": _cluster_command("restart"),
    "kill": _cluster_command("kill"),
    "status": _cluster_command("status"),
    "show": _lines(show.show),
    "names": _lines(show.names),
    "expand": _lines(show.expand_template),
    "get": _lines(show.get),
    "supervise": cmd_supervise,
    "beat": cmd_beat,
    "events": cmd_events,
    "inspect": _module_command("inspect_cmd"),
    "control": _module_command("control_cmd"),
    "purge": _module_command("purge_cmd"),
    "result": _module_command("result_cmd"),
    "call": _module_command("call_cmd"),
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # `--help` anywhere before a `--` asks for the usage (words after `--` are the nodes').
    before = args[:args.index("--")] if "--" in args else args
    own_help = bool(args) and args[0] in ("inspect", "control", "purge", "result", "call")
    if not args or args[0] in ("help", "-h") or ("--help" in before and not own_help):
        print(USAGE, file=sys.stdout if args else sys.stderr)
        return exitcodes.EX_OK if args else exitcodes.EX_USAGE
    command = COMMANDS.get(args[0])
    if command is None:
        known = " ".join(COMMANDS)
        print(f"qmulti: unknown command {args[0]!r}; commands: {known}", file=sys.stderr)
        return exitcodes.EX_USAGE
    try:
        return command(args[1:])
    except UsageError as exc:
        print(f"qmulti {args[0]}: {exc}", file=sys.stderr)
        return exitcodes.EX_USAGE
    except (QmultiError, PidfileError, OSError) as exc:
        print(f"qmulti {args[0]}: {exc}", file=sys.stderr)
        return exitcodes.EX_FAILURE
    except KeyboardInterrupt:
        print(f"qmulti {args[0]}: interrupted", file=sys.stderr)
        return exitcodes.EX_FAILURE


if __name__ == "__main__":
    sys.exit(main())
