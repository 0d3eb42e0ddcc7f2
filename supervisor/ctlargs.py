"""What `qmulti inspect/control/purge/result/call` share: their argument parser (errors
are one line, exit 2) and the app they talk through.

The app comes from `-A MODULE` (as for the nodes), else a broker URL (`-b URL`, or
QMULTI_BROKER_URL), else the default store `sqlite:///qmulti.sqlite3` of the current
directory. None of these commands creates a store: a SQLite file that does not exist
is an error saying so, not a new empty broker.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, NoReturn

from qmulti.exceptions import ConfigError, QmultiError, UsageError
from qmulti.urls import mask_url, parse_url

URL_ENV_VAR = "QMULTI_BROKER_URL"
DEFAULT_URL = "sqlite:///qmulti.sqlite3"


class Parser(argparse.ArgumentParser):
    """argparse whose errors are our one-line UsageError (the CLI prints it, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see qmulti {self.prog.split()[-1]} --help)")


def parser(command: str, description: str) -> Parser:
    p = Parser(prog=f"qmulti {command}", description=description)
    p.add_argument("-A", "--app", help="the app module, as for the nodes (-A proj)")
    p.add_argument("-b", "--broker", help=f"broker URL (default ${URL_ENV_VAR}, else "
                                          f"the app's, else {DEFAULT_URL})")
    return p


def add_destination(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--destination", help="only these nodes: w1@host,w2@host")
    p.add_argument("-t", "--timeout", type=float, default=1.0,
                   help="seconds to wait for replies (default 1)")
    p.add_argument("-j", "--json", action="store_true", help="print JSON (see README)")


def destinations(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("-d needs node names, for example -d w1@host,w2@host")
    return names


def make_app(args: argparse.Namespace) -> Any:
    """The app to talk through; a missing SQLite store is an error, never made."""
    from qmulti import App

    url = args.broker or os.environ.get(URL_ENV_VAR)
    if args.app:
        from qmulti.node.loader import load_app

        app = load_app(args.app)
        if url:
            app.conf.broker_url = url
    else:
        app = App("qmulti-cli", broker=url or DEFAULT_URL, set_as_current=False)
    broker_url = parse_url(app.conf.broker_url, "broker")
    if broker_url.kind == "sqlite":
        from qmulti.brokers.sqlite.schema import db_path

        path = db_path(broker_url.url)
        if not os.path.isfile(path):
            raise ConfigError(f"no broker store at {path}; start a node first, or pass -A "
                              "MODULE or -b URL")
    elif broker_url.kind == "memory":
        raise ConfigError("memory:// is private to one process; use the nodes' broker URL")
    return app


def where(app: Any) -> str:
    """The broker as shown to the user: masked."""
    try:
        return mask_url(str(app.conf.broker_url))
    except QmultiError:  # pragma: no cover - checked in make_app
        return "?"


def load_json(text: str | None, what: str, kind: type) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{what} is not JSON ({exc}): {text!r}") from None
    if not isinstance(value, kind):
        raise UsageError(f"{what} must be a JSON {'list' if kind is list else 'object'}, "
                         f"not {text!r}")
    return value


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Aligned columns, two spaces apart, no trailing blanks."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]
