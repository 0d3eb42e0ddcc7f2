"""`qmulti beat -A MODULE [-l LEVEL] [--list]`: a periodic-task scheduler in the foreground.

Run as many as you like, on any hosts: the broker sends each tick once (see
qmulti.node.beat). Systemd-friendly: READY=1 once it schedules, STOPPING=1 and exit 0
on TERM or INT at any moment; a bad -A or a bad schedule exits 78 (EX_CONFIG), which a
restart cannot fix.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from qmulti.exceptions import BrokerError, ConfigError
from qmulti.system import exitcodes as node_exit
from qmulti.system import startsignals
from qmulti.system.notify import Notifier

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
FORMAT = "[%(asctime)s: %(levelname)s/beat] %(message)s"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qmulti beat", description=__doc__.splitlines()[0])
    parser.add_argument("-A", "--app", required=True, help="the app, as qworker's -A")
    parser.add_argument("-l", "--loglevel", default="info")
    parser.add_argument("-n", "--name", default=None,
                        help="this scheduler's name in logs (default beat@<host>:<pid>)")
    parser.add_argument("--list", action="store_true",
                        help="print each entry with its next due time and exit")
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    stop: list[Any] = []  # the running Beat, or None once a stop was asked before it ran

    def on_stop(signum: int, frame: Any) -> None:
        if stop and stop[-1] is not None:
            stop[-1].stop()
        else:
            stop.append(None)

    # Handlers first: a TERM from systemd at any instant is a clean stop. QUIT too (there
    # is nothing to finish); HUP keeps its default meaning.
    for sig in STOP_SIGNALS:
        signal.signal(sig, on_stop)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    # What the entry point held while we imported (qmulti.system.startsignals), replayed.
    for signum in startsignals.take():
        if signum in STOP_SIGNALS:
            on_stop(signum, None)
        else:
            signal.raise_signal(signum)
    try:
        args = _parse(argv)
    except SystemExit as exc:  # argparse printed the one line already
        return 0 if exc.code == 0 else 2
    level = getattr(logging, str(args.loglevel).upper(), None)
    if not isinstance(level, int):
        print(f"qmulti beat: unknown log level {args.loglevel!r}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr)
    notifier = Notifier.from_env()
    try:
        from qmulti.node.beat import Beat
        from qmulti.node.loader import load_app

        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        app = load_app(args.app)
        app.import_default_modules()
        name = args.name or f"beat@{os.uname().nodename}:{os.getpid()}"
        beat = Beat(app, name)
        if args.list:
            for line in beat.listing():
                print(line)
            return 0
    except ConfigError as exc:
        print(f"qmulti beat: {exc}", file=sys.stderr)
        notifier.fatal(str(exc), node_exit.EX_CONFIG)
        return node_exit.EX_CONFIG
    except BrokerError as exc:
        print(f"qmulti beat: {exc}", file=sys.stderr)
        return 1
    if None in stop:  # TERM arrived while loading
        return 0
    stop.append(beat)
    notifier.ready(f"scheduling {len(beat.entries)} entries")
    beat.run()
    notifier.stopping()
    logging.getLogger("qmulti.beat").info("beat %s: stopped (%d tick(s) sent)", name,
                                          beat.sent)
    return 0
