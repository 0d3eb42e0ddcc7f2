"""What every section shares: sizes, collected figures and errors, stopping a node.

A failure in one phase becomes a line in the report rather than the end of the run, so
Celery's reference figures print whatever state our side is in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.side import Node


@dataclass
class Outcome:
    figures: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def attempt(self, what: str, fn: Callable[[], None]) -> bool:
        try:
            fn()
            return True
        except Exception as exc:  # noqa: BLE001 - any failure of a side is a finding
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")
            return False


@dataclass(frozen=True)
class Sizes:
    tasks: int
    round_trips: int
    rounds: int  # controller start/stopwait repetitions (median reported)
    repeats: int  # Redis-section repetitions per side, alternating sides (best reported)
    concurrency: int = 2
    queued: int = 100_000  # the dashboard section's deep queue
    idle_settle: float = 1.0  # seconds idle before RSS is read
    beat_seconds: float = 30.0  # the beat section's run per side


def stop_node(node: Node, out: Outcome) -> None:
    """Stop warmly; a warm stop that fails or is slow is a finding too."""
    start = time.monotonic()
    alive = node.proc.poll() is None
    node.stop()
    took = time.monotonic() - start
    if alive and node.proc.returncode != 0:
        out.errors.append(f"warm stop: exit {node.proc.returncode} after {took:.1f} s")
    elif took > 10:
        out.errors.append(f"warm stop of an idle node took {took:.1f} s")
