"""`qmulti supervise NODES ... --dashboard [--dashboard-port N] [--dashboard-address A]
[--dashboard-auth USER:PASSWORD]`: the dashboard as threads of the supervisor.

The options are taken out of the argument list before the node grammar reads it (it
would pass them on to every qworker). The app and broker are the first node's, as
`qmulti status` finds them. Taking the options imports nothing of the web stack.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from qmulti.exceptions import ConfigError, UsageError

VALUED = ("--dashboard-port", "--dashboard-address", "--dashboard-auth")


def take_options(argv: list[str]) -> tuple[list[str], dict[str, str] | None]:
    """(argv without the dashboard's options, those options or None when not asked)."""
    end = argv.index("--") if "--" in argv else len(argv)
    rest, opts, asked = [], {}, False
    i = 0
    while i < end:
        word = argv[i]
        key, eq, value = word.partition("=")
        if word == "--dashboard":
            asked = True
        elif key in VALUED:
            if not eq:
                if i + 1 >= end:
                    raise UsageError(f"{key} needs a value")
                i += 1
                value = argv[i]
            opts[key] = value
        else:
            rest.append(word)
        i += 1
    rest += argv[end:]
    if opts and not asked:
        raise UsageError(f"{sorted(opts)[0]} needs --dashboard")
    return rest, (opts if asked else None)


def start(inv: Any, cwd: str, opts: dict[str, str]) -> Any:
    from qmulti.supervisor import brokerinfo
    from qmulti.supervisor.dashboard.command import DEFAULT_PORT, missing_extra
    from qmulti.supervisor.dashboard.security import AUTH_ENV_VAR, parse_auth

    hint = missing_extra()
    if hint is not None:
        raise ConfigError(hint.removeprefix("qmulti dashboard: "))
    try:
        port = int(opts.get("--dashboard-port", DEFAULT_PORT))
    except ValueError:
        raise UsageError("--dashboard-port needs a number") from None
    auth = parse_auth(opts.get("--dashboard-auth", os.environ.get(AUTH_ENV_VAR)))
    node = inv.nodes[0]
    spec = brokerinfo._option(node, "--app")
    if spec is None:
        raise UsageError("--dashboard needs -A MODULE")
    url, _options = brokerinfo.broker_settings(node, dict(os.environ), cwd)
    from qmulti.supervisor.dashboard.command import Dashboard, load

    previous = os.getcwd()
    os.chdir(cwd)
    try:
        app = load(spec, url)
    finally:
        os.chdir(previous)
    dashboard = Dashboard(app, opts.get("--dashboard-address", "127.0.0.1"), port, auth)
    dashboard.start()
    print(f"qmulti supervise: dashboard: {dashboard.url} (broker {dashboard.collector.url})",
          file=sys.stderr, flush=True)
    return dashboard
