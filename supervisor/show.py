"""The read-only commands `names`, `show`, `expand` and `get`, as lists of lines.

Kept apart from the CLI so tests can run them with a fixed host name, and so
they stay pure: they build nodes and render them, and create no file or
directory (Celery's multi makes the pid and log directories even here).

What they print, next to `celery multi` (the recorded outputs live in
tests/supervisor/test_show.py):
- `names` and `expand` print what Celery prints.
- `show` prints the command qmulti runs for each node with `qworker` for the
  program (qmulti runs `python -m qmulti`, the same thing): Celery's
  `python -m celery [-A app] worker --detach ... --executable=python` becomes
  `qworker --detach [-A app] ...`; options keep their order; `-n`, `--pidfile`
  and `--logfile` always come last and always appear, since qmulti manages
  them; pid and log paths default to `./%n.pid` and `./%n%I.log`, not
  /var/run/celery and /var/log/celery; words after `--` follow without the
  `--` (Celery passes the `--` too); `-b URL`/`--result-backend URL` are
  passed in the node's environment (QMULTI_BROKER_URL, QMULTI_RESULT_BACKEND,
  so no password shows in `ps`) and shown first as `VAR=URL`; URL passwords
  show as `***`; `%%` in --logfile stays `%%` (the node expands the path once
  more); words are shell-quoted where needed, so the line can be pasted.
- `--executable PY` runs each node with that Python (`PY -m qmulti`); `~` expands
  in `--workdir`, `--pidfile` and `--logfile`; `--help` anywhere before `--` prints
  the usage; `--hostname` wins over `-n` whatever their order, as in Celery.
- `get NODE` prints that node's qworker arguments without the program (Celery
  prints its argv without the executable); NODE may be the short name when it
  is unique (Celery needs `w1@host`), and an unknown NODE is an error line and
  exit 1 (Celery prints nothing).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from qmulti.supervisor.grammar import build, expand, find, host_keys, node_keys
from qmulti.supervisor.options import GrammarError

ExpandUser = Callable[[str], str]


def _same(path: str) -> str:
    return path


def names(argv: list[str], hostname: str, expanduser: ExpandUser = _same) -> list[str]:
    return [node.name for node in build(argv, hostname, expanduser).nodes]


def show(argv: list[str], hostname: str, expanduser: ExpandUser = _same) -> list[str]:
    return [node.show_line() for node in build(argv, hostname, expanduser).nodes]


def expand_template(argv: list[str], hostname: str,
                    expanduser: ExpandUser = _same) -> list[str]:
    if not argv:
        raise GrammarError("expand needs a template, as in: qmulti expand %n.pid 3")
    template, rest = argv[0], argv[1:]
    return [expand(template, node_keys(n.name, n.shortname, n.host), "template")
            for n in build(rest, hostname, expanduser).nodes]


class NoSuchNode(LookupError):
    """`get` named a node the command line does not define (exit 1)."""


def get(argv: list[str], hostname: str, expanduser: ExpandUser = _same) -> list[str]:
    if not argv:
        raise GrammarError("get needs a node name, as in: qmulti get w1 w1 w2 -c 2")
    wanted, rest = argv[0], argv[1:]
    nodes = build(rest, hostname, expanduser).nodes
    wanted = expand(wanted, host_keys(hostname), "node name")  # as the NODES were
    node = find(nodes, wanted)
    if node is None:
        listing = ", ".join(n.name for n in nodes)
        raise NoSuchNode(f"no node named {wanted!r} among {listing}")
    return [shlex.join(node.display_argv())]
