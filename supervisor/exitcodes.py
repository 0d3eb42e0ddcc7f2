"""Exit statuses of `qmulti` (contract section 4), one place so scripts can rely on them."""

from __future__ import annotations

EX_OK = 0  # every node did what was asked
EX_FAILURE = 1  # at least one node did not (FAILED start, stopwait gave up, not running...)
EX_USAGE = 2  # the command line is wrong: nothing was done
