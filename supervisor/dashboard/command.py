"""`qmulti dashboard -A proj [--port 5555] [--address 127.0.0.1] [--auth USER:PASSWORD]`.

Foreground, like `qmulti beat`: TERM or INT stops it (exit 0). It prints one line
with its address once it listens (`--port 0` picks a free port: the line says
which). Without the `dashboard` extra it says which pip command installs it and
exits 78 (EX_CONFIG: running it again will not help). `Dashboard` is also what
`qmulti supervise --dashboard` starts beside its nodes.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from qmulti.exceptions import QmultiError, UsageError

INSTALL_HINT = ("qmulti dashboard: the web dashboard needs its extra; install it with: "
                "pip install 'qmulti[dashboard]'")
EX_CONFIG = 78
DEFAULT_PORT = 5555
# A change in the broker reaches the pages within one interval plus one tick's reads:
# 0.5 s leaves a loaded machine's slow tick (up to 0.5 s) inside the 1 s the pages
# promise, and a tick's reads are O(1) per queue and node, so a shorter one is cheap.
DEFAULT_REFRESH = 0.5


def missing_extra() -> str | None:
    """The install line when Flask or prometheus_client is missing, else None."""
    try:
        import flask  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    return None


class Dashboard:
    """The collector thread plus the HTTP server thread; `start()` listens at once (so a
    busy port fails the caller, not a thread)."""

    def __init__(self, app: Any, address: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 auth: tuple[str, str] | None = None,
                 interval: float = DEFAULT_REFRESH) -> None:
        from werkzeug.serving import make_server

        from qmulti.supervisor.dashboard.actions import Actions
        from qmulti.supervisor.dashboard.collector import Collector
        from qmulti.supervisor.dashboard.security import Guard
        from qmulti.supervisor.dashboard.web import create_app

        self.collector = Collector(app, interval)
        self.guard = Guard(auth, address)
        web = create_app(self.collector, Actions(app, self.collector), self.guard)
        # Bound here, not by Werkzeug: its server prints and exits on a busy port.
        sock = _listen(address, port)
        try:
            self.server = make_server(address, port, web, threaded=True, fd=sock.fileno())
        finally:
            sock.close()  # the server holds its own duplicate
        self.server.daemon_threads = True
        self.address = address
        self.port = int(self.server.port)
        self._thread = threading.Thread(target=self.server.serve_forever, name="dashboard-http",
                                        daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/"

    def start(self) -> Dashboard:
        self.collector.tick()  # the first page already has data
        self.collector.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.collector.stop()
        self.server.shutdown()
        self.server.server_close()


def _listen(address: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
        family = infos[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise QmultiError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4])
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise QmultiError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    return sock


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qmulti dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("-A", "--app", required=True, help="the app, as qworker's -A")
    parser.add_argument("-b", "--broker", default=None, help="broker URL (else the app's)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--auth", default=None,
                        help="USER:PASSWORD for basic auth (or $QMULTI_DASHBOARD_AUTH)")
    parser.add_argument("--refresh", type=float, default=DEFAULT_REFRESH,
                        help=f"seconds between broker reads (default {DEFAULT_REFRESH})")
    parser.add_argument("-l", "--loglevel", default="warning")
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> tuple[tuple[str, str] | None, float]:
    from qmulti.supervisor.dashboard.security import AUTH_ENV_VAR, parse_auth

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: give 0-65535")
    if not 0.1 <= args.refresh <= 60:
        raise UsageError(f"--refresh {args.refresh}: give 0.1-60 seconds")
    return parse_auth(args.auth if args.auth is not None else os.environ.get(AUTH_ENV_VAR)), \
        args.refresh


def load(spec: str, broker: str | None) -> Any:
    from qmulti.node.loader import load_app

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app = load_app(spec)
    if broker:
        app.conf.update(broker_url=broker)
    return app


def run(argv: list[str]) -> int:
    try:
        args = _parse(argv)
    except SystemExit as exc:  # argparse printed its line already
        return 0 if exc.code == 0 else 2
    hint = missing_extra()
    if hint is not None:
        print(hint, file=sys.stderr)
        return EX_CONFIG
    level = getattr(logging, str(args.loglevel).upper(), None)
    if not isinstance(level, int):
        print(f"qmulti dashboard: unknown log level {args.loglevel!r}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format="[%(asctime)s: %(levelname)s/dashboard] %(message)s")
    if level > logging.DEBUG:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line a request
    auth, interval = options(args)  # a UsageError: cli.main prints it, exit 64
    app = load(args.app, args.broker)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    dashboard = Dashboard(app, args.address, args.port, auth, interval).start()
    print(f"dashboard: {dashboard.url} (broker {dashboard.collector.url})", flush=True)
    try:
        stopped.wait()
    finally:
        dashboard.stop()
    return 0
