"""`qmulti events [--json] [-A APP | -b URL] [--oldest] [--limit N] [--timeout S]`: a live
tail of the event stream that nodes started with `-E` write (see qmulti.events).

One line an event. Human lines are aligned columns: time, type, node, then the task
(`name[uuid]`) and the event's own fields. `--json` prints each event as one JSON
object, exactly the dict a `Receiver` handler gets (Celery's field names), keys sorted.
Ctrl-C or TERM ends it with exit 0; a closed pipe (`| head`) too. A broker that goes
away while tailing is waited for (one line on stderr), and the tail resumes where it
stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any, TextIO

from qmulti.exceptions import BrokerConnectionError, UsageError

URL_ENV_VAR = "QMULTI_BROKER_URL"
RETRY = 1.0  # seconds between tries while the broker is away
# fields shown before the rest, in this order; the common ones are in the columns
_FIRST = ("name", "args", "kwargs", "result", "runtime", "exception", "retries", "eta",
          "active", "processed", "freq", "requeue", "terminated", "signum", "expired")
_COMMON = frozenset({"type", "timestamp", "hostname", "utcoffset", "pid", "clock", "uuid",
                     "local_received", "traceback", "sw_ident", "sw_ver", "sw_sys"})


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2 (see supervisor/cli)
        raise UsageError(f"{message}; see qmulti events --help")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="qmulti events", description="live tail of the nodes' -E events")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("-A", "--app", help="the app, as qworker's -A (its broker_url is read)")
    p.add_argument("-b", "--broker", help=f"broker URL (default: ${URL_ENV_VAR}, then -A)")
    p.add_argument("--oldest", action="store_true",
                   help="start with the oldest event still in the stream, not now")
    p.add_argument("--limit", type=int, help="stop after N events")
    p.add_argument("--timeout", type=float, help="stop after S seconds without an event")
    return p.parse_args(argv)


def _broker_settings(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The broker URL, and the app's store options when `-A` names it: an amqp://
    broker keeps the event stream in the app's result backend."""
    if args.broker:
        return str(args.broker), {}
    if os.environ.get(URL_ENV_VAR):
        return os.environ[URL_ENV_VAR], {}
    if args.app:
        from qmulti.brokers import store_options
        from qmulti.node.loader import load_app

        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        conf = load_app(args.app).conf
        url = str(conf.broker_url)
        if url.lower().startswith(("amqp", "pyamqp")):
            return url, {"result_backend": store_options(conf).get("result_backend")}
        return url, {}
    from qmulti.urls import DEFAULT_BROKER_URL

    return DEFAULT_BROKER_URL, {}


def render(event: dict[str, Any]) -> str:
    """One aligned human line."""
    ts = event.get("timestamp")
    when = (time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"
            if isinstance(ts, (int, float)) else "?")
    task = ""
    if event.get("uuid"):
        task = f"{event.get('name') or ''}[{event['uuid']}]"
    rest = [f"{k}={event[k]}" for k in _FIRST if k in event and event[k] is not None
            and k != "name"]
    rest += [f"{k}={v}" for k, v in sorted(event.items())
             if k not in _COMMON and k not in _FIRST and v is not None]
    return " ".join(filter(None, [f"{when}  {str(event.get('type')):<16} "
                                  f"{str(event.get('hostname') or ''):<24}", task, *rest]))


def run(argv: list[str]) -> int:
    args = _parse(argv)
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    from qmulti.brokers import create_broker
    from qmulti.events.reader import NOW, OLDEST_NAME, EventReader
    from qmulti.urls import parse_url

    url, options = _broker_settings(args)
    broker = create_broker(parse_url(url, "broker").url, **{**options, "connect_timeout": 3.0})
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        reader = EventReader(broker, OLDEST_NAME if args.oldest else NOW)
        return _tail(reader, args, sys.stdout)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # stdout closed by the reader of the pipe: nothing more to say, and no traceback
        # when Python flushes it at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        broker.close()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _tail(reader: Any, args: argparse.Namespace, out: TextIO) -> int:
    seen = 0
    idle_since = time.monotonic()
    away = False
    while True:
        wait = 1.0
        if args.timeout is not None:
            wait = min(wait, max(args.timeout - (time.monotonic() - idle_since), 0.0))
        try:
            batch = reader.read(wait)
        except BrokerConnectionError as exc:
            if not away:
                print(f"qmulti events: {exc}; waiting for it", file=sys.stderr, flush=True)
            away = True
            time.sleep(RETRY)
            continue
        if away:
            print("qmulti events: broker reachable again", file=sys.stderr, flush=True)
            away = False
        if batch:
            idle_since = time.monotonic()
        elif args.timeout is not None and time.monotonic() - idle_since >= args.timeout:
            return 0
        for event in batch:
            out.write((json.dumps(event, sort_keys=True, default=str) if args.json
                       else render(event)) + "\n")
            seen += 1
            if args.limit is not None and seen >= args.limit:
                out.flush()
                return 0
        out.flush()
