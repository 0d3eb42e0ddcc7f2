"""The `qmulti` console script: hold start-up signals for `supervise` and `beat`, then run the CLI.

Kept tiny and apart from `cli` so that the long-running commands install their signal
handlers before importing anything heavy (see qmulti.system.startsignals). A launcher
may have blocked TERM, INT, HUP and QUIT for us (the systemd units run `env
--block-signal=...`, so a `systemctl stop` during interpreter start-up is a pending
signal, not a death): `hold()` unblocks them once its handlers exist. Every other
command gets them unblocked with their default meaning, so `qmulti start` stays
interruptible and a blocked TERM inherited by `qmulti status` still ends it.
"""

from __future__ import annotations

import signal
import sys

from qmulti.system import startsignals

# The commands whose main loop gives the stop signals a meaning of its own.
HOLDING = ("supervise", "beat")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] and args[0] in HOLDING:
        # A scheduler that supervise --beat started stops with it, as its nodes do.
        startsignals.hold(die_with_parent=args[0] == "beat")
    else:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, startsignals.HELD)
    from qmulti.supervisor.cli import main as cli_main

    return cli_main(args)
