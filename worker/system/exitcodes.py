"""Exit statuses of the `qworker` process.

They follow sysexits(3) so that systemd units and `qmulti` can tell a node that a
restart might fix from one that will fail the same way again.
"""

from __future__ import annotations

EX_OK = 0  # clean stop: every running task finished and was stored
EX_FAILURE = 1  # anything else; a supervisor may retry
EX_USAGE = 64  # bad command line: retrying with the same arguments cannot help
EX_CONFIG = 78  # bad -A, bad broker URL, wrong password: FATAL under `supervise`
