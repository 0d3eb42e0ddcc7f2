"""What a node's main process tells its consumers about its own standing with the broker.

Two numbers in one shared anonymous mmap, made before the pool forks (threads read the
same object): when the node's heartbeat last reached the broker (CLOCK_MONOTONIC, the
same clock in every process), and how many times a heartbeat reply said the node had been
judged dead. Reading them costs a few nanoseconds and no broker call, so a consumer checks
before every claim and before every prefetched task:

- it claims only while the node's heartbeat is fresh (younger than the expiry) and, after
  a broker error of its own, only once a heartbeat has succeeded since: leases taken by a
  node the others may be judging dead are the ones that get run twice;
- when the reaped count moves, the node's leases went back to the queue and its prefetched
  messages are someone else's: the consumer drops them unrun.
"""

from __future__ import annotations

import mmap
import struct
import time

_LAYOUT = struct.Struct("=dq")  # last good heartbeat (monotonic seconds), times reaped


class Liveness:
    def __init__(self, expiry: float) -> None:
        self.expiry = expiry
        self._mem = mmap.mmap(-1, _LAYOUT.size)

    def _read(self) -> tuple[float, int]:
        beat, reaped = _LAYOUT.unpack_from(self._mem, 0)
        return float(beat), int(reaped)

    # -- the main process writes -------------------------------------------------------------
    def beat(self, reaped: bool = False) -> None:
        """A heartbeat just reached the broker; `reaped`: its reply said the node had been
        judged dead since the one before."""
        _, count = self._read()
        _LAYOUT.pack_into(self._mem, 0, time.monotonic(), count + int(reaped))

    # -- consumers read ----------------------------------------------------------------------
    @property
    def last_beat(self) -> float:
        return self._read()[0]

    @property
    def reaped(self) -> int:
        return self._read()[1]

    def may_claim(self, not_before: float = 0.0) -> bool:
        """Whether the node stands well with the broker: its last heartbeat is younger
        than the expiry and newer than `not_before` (a consumer's own broker error)."""
        beat = self.last_beat
        return beat > not_before and time.monotonic() - beat < self.expiry
