"""Doubling delays with a cap: restarts of one supervised node (1 s doubling to 60 s, reset
after 60 s of good running), and a node's retries of an unreachable broker.

A node that dies at once every time (broker down, a crash in a task module's
import) must not be restarted in a tight loop that eats the CPU and floods the
journal; a node that ran fine for a minute and then died is a new incident and
starts again from the short delay.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST = 1.0
CAP = 60.0
RESET_AFTER = 60.0


@dataclass
class Backoff:
    first: float = FIRST
    cap: float = CAP
    reset_after: float = RESET_AFTER
    upcoming: float = FIRST  # the delay the next failure gets

    def __post_init__(self) -> None:
        self.upcoming = self.first

    def next_delay(self, ran_for: float) -> float:
        """The delay before restarting a node that just died after `ran_for` seconds."""
        if ran_for >= self.reset_after:
            self.upcoming = self.first
        delay = self.upcoming
        self.upcoming = min(self.cap, self.upcoming * 2)
        return delay

    def reset(self) -> None:
        """It worked: the next failure starts again from the first delay."""
        self.upcoming = self.first
