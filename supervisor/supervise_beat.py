"""`qmulti supervise ... --beat`: one periodic-task scheduler beside the supervised nodes.

It is supervised as a node is (restarted with backoff if it dies, FATAL on exit 78,
stopped with the nodes, rolled on HUP, READY=1 on the same notify socket), so the
loop in `supervise.py` needs no case of its own: the scheduler is one more
`Supervised` whose program is `qmulti beat` instead of `qworker`. Any number of
schedulers may run (the broker sends each tick once), so a `--beat` on every host is
safe and leaves no single point of failure.

It takes the app, log level and broker environment of the first node; it has no
pidfile and logs to supervise's own stderr (the journal, under systemd).
"""

from __future__ import annotations

import dataclasses

from qmulti.supervisor.nodes import Node
from qmulti.supervisor.supervised import Supervised

# The node options `qmulti beat` understands too.
SHARED_OPTIONS = ("--app", "--loglevel")
FLAG = "--beat"


def take_flag(argv: list[str]) -> tuple[list[str], bool]:
    """`argv` without `--beat` (before any `--`), and whether it was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [word for word in argv[:end] if word != FLAG] + argv[end:]
    return kept, len(kept) != len(argv)


class SupervisedBeat(Supervised):
    """The scheduler's record: a node in every respect but its program and its pidfile."""

    def command(self) -> list[str]:
        return [self.node.command()[0], "-m", "qmulti.supervisor", "beat"]

    def tidy_pidfile(self) -> None:
        """It has none: its state lives in the broker."""


def beat_item(first: Node, env: dict[str, str]) -> SupervisedBeat:
    """The scheduler for the nodes of which `first` is the first."""
    options = tuple(opt for opt in first.options if opt.key in SHARED_OPTIONS)
    node = dataclasses.replace(first, name=f"beat@{first.host}", shortname="beat",
                               options=options, passthrough=(), pidfile="", logfile="")
    argv = [word for opt in options for word in opt.argv()]
    return SupervisedBeat(node, argv, "", env)
