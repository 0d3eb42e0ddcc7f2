"""`python -m qmulti.demo`: the zero-setup tour on the embedded SQLite broker.

It starts a real node (`qworker -A worker.demo -c 2`) in a fresh temporary directory,
so the default broker `sqlite:///qmulti.sqlite3` lands there; sends a thousand tasks;
prints their results and the time taken; and stops the node warmly with TERM, which
must exit 0. Nothing is needed but this package: no server, no config.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from qmulti import App

app = App("demo")


@app.task(name="qmulti.demo.add")  # explicit: run as __main__ the module name differs
def add(x: int, y: int) -> int:
    return x + y


def _wait_ready(sock: socket.socket, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Block on the node's sd_notify READY=1, the same signal systemd and qmulti use."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: the node exited with {proc.returncode} before it was ready")
        sock.settimeout(min(0.5, max(deadline - time.monotonic(), 0.01)))
        try:
            data = sock.recv(4096).decode(errors="replace")
        except TimeoutError:
            continue
        if "READY=1" in data.splitlines():
            return
    raise SystemExit(f"demo: the node was not consuming after {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qmulti.demo", description=__doc__)
    parser.add_argument("-n", "--tasks", type=int, default=1000, help="how many tasks to send")
    parser.add_argument("-c", "--concurrency", type=int, default=2, help="pool children")
    opts = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="qmulti-demo-") as tmp:
        os.chdir(tmp)  # the default broker URL is relative to the current directory
        notify_path = os.path.join(tmp, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify_path)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        env.pop("QMULTI_BROKER_URL", None)
        env.pop("QMULTI_RESULT_BACKEND", None)
        cmd = [sys.executable, "-m", "qmulti", "-A", "qmulti.demo", "-c", str(opts.concurrency),
               "-n", "demo@%h", "-l", "warning"]
        print(f"demo: starting a node in {tmp}: qworker {' '.join(cmd[3:])}")
        node = subprocess.Popen(cmd, env=env)
        try:
            _wait_ready(sock, node, 30)
            print(f"demo: node consuming; sending {opts.tasks} add(i, i) tasks")
            started = time.perf_counter()
            results = [add.delay(i, i) for i in range(opts.tasks)]
            sent = time.perf_counter()
            values = [r.get(timeout=60) for r in results]
            done = time.perf_counter()
        finally:
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)  # warm stop: finish, give back, exit 0
            code = node.wait(60)
            sock.close()
            app.close()

    wrong = sum(1 for i, v in enumerate(values) if v != 2 * i)
    elapsed = done - started
    print(f"demo: {len(values)} results, {wrong} wrong; first {values[:5]}, last {values[-3:]}")
    print(f"demo: sent in {sent - started:.2f}s, all results in {elapsed:.2f}s "
          f"({len(values) / elapsed:,.0f} tasks/s round trip)")
    print(f"demo: node stopped warmly with exit status {code}")
    return 0 if wrong == 0 and code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
