"""The `qmulti` console script: hold start-up signals for `supervise`, then run the CLI.

Kept tiny and apart from `cli` so that `supervise` installs its signal handlers
before importing anything heavy (see qmulti.system.startsignals). Other commands
keep the default TERM and INT: `qmulti start` must stay interruptible.
"""

from __future__ import annotations

import sys

from qmulti.system import startsignals


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["supervise"]:
        startsignals.hold()
    from qmulti.supervisor.cli import main as cli_main

    return cli_main(args)
