"""Send one control request from the command line and gather the replies, turning each
way it can fail into one line: no node alive, a destination that is not alive, no
reply in time."""

from __future__ import annotations

import sys
from typing import Any

from qmulti.exceptions import QmultiError
from qmulti.supervisor.ctlargs import where


def ask(app: Any, command: str, arguments: dict[str, Any], destination: list[str] | None,
        timeout: float) -> tuple[dict[str, Any], list[str]]:
    """(replies by node, the nodes asked that did not answer). Raises when no node is
    alive, a destination is not, or nobody answered."""
    live = app.control.nodes()
    if not live:
        raise QmultiError(f"no node is alive on {where(app)} (none has a fresh heartbeat)")
    if destination:
        unknown = [d for d in destination if d not in live]
        if unknown:
            raise QmultiError(f"no live node named {', '.join(unknown)} on {where(app)}; "
                              f"live: {', '.join(live)}")
    targets = destination or list(live)
    replies = app.control.broadcast(command, arguments, destination=targets, reply=True,
                                    timeout=timeout) or []
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply)
    if not merged:
        raise QmultiError(f"no node answered {command} within {timeout:g}s (asked: "
                          f"{', '.join(targets)})")
    return merged, [t for t in targets if t not in merged]


def report_missing(missing: list[str], timeout: float) -> int:
    """One stderr line per node that did not answer; the exit status."""
    for name in missing:
        print(f"{name}: no reply within {timeout:g}s", file=sys.stderr)
    return 1 if missing else 0
