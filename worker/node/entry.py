"""The `qworker` console script: hold start-up signals first, then run the CLI."""

from __future__ import annotations

from typing import NoReturn

from qmulti.system import startsignals


def main() -> NoReturn:
    startsignals.hold(die_with_parent=True)
    from qmulti.node.cli import main as cli_main

    cli_main()
