"""The `celery multi` node grammar: node names, `%` keys and per-node options.

Pure functions: the host name comes in as an argument and nothing touches the
filesystem, so `names`, `expand`, `get` and `show` create nothing (Celery's
multi creates the pid and log directories even for `names`).

How it reads, as Celery does:
- one argument that is a number, `3`, means `celery1..celery3` (`--range-prefix`
  changes `celery`); otherwise each argument is a node, `w1` or `w1@example.com`;
- a name without `@` gets `@` + the host (`-n`/`--hostname`/`--suffix` change it)
  and `--prefix` in front; `%h %n %d` in names expand from the host name;
- `-c:SPEC VALUE` sets an option for some nodes; SPEC is a comma list of node
  indexes (1 is the first), ranges `1-3`, short names `w1` or full names `w1@h`;
- in every option value `%h` is the node's full name, `%n` its short name, `%d`
  the host half of the node name (Celery's multi reads `%d` so), `%p`/`%N` are
  Celery's aliases of `%h`/`%n`, `%%` is `%`; `%i`/`%I` (pool child index) stay
  for the node to expand per child.
- pid and log files default to `%n.pid` and `%n%I.log` in the current directory.

Where Celery's reading is a trap we refuse with a usage error instead (exit 2,
one line): a SPEC naming no node or an index past the last node (Celery ignores
it or prints a traceback), `-n` with no value or with an `@` in it (Celery makes
`w1@None` or `celery1@w0@host`), an unknown `%` key (Celery: traceback), the same
node twice or two nodes with one pidfile, `0` nodes, and node names that
cannot be file names. Ranges and names in SPEC also work for named nodes (Celery
applies `-c:1-2` only to a count, and `-c:celery2` never to one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from qmulti.supervisor.nodes import Node
from qmulti.supervisor.options import URL_ENV, GrammarError, Option, ParsedArgs, tokenize
from qmulti.system.expand import expand as system_expand
from qmulti.system.expand import host_keys

DEFAULT_RANGE_PREFIX = "celery"
DEFAULT_PIDFILE = "%n.pid"
DEFAULT_LOGFILE = "%n%I.log"

_NAME_PART = re.compile(r"^[\w][\w.\-]*$")
_INDEX_RANGE = re.compile(r"^(\d+)-(\d+)$")
_BAD_RANGE = re.compile(r"^\d*-\d*$")
# celery multi's own knobs over its command line, which qmulti does not have.
_CELERY_ONLY = ("--cmd", "--append")

Keys = Mapping[str, str]


def expand(template: str, keys: Keys, what: str = "", escape: str = "%") -> str:
    """Replace `%x` from `keys`; an unknown key is a usage error naming the string.

    `%%` becomes `escape`: `%`, or `%%` again for a path the node expands once more.
    """

    def unknown(key: str) -> GrammarError:
        known = " ".join(f"%{k}" for k in keys)
        where = f" in {what}" if what else ""
        return GrammarError(
            f"unknown %{key}{where} {template!r}: use {known} (or %% for a literal %)")

    return system_expand(template, keys, unknown, escape=escape, word_keys_only=True)


def node_keys(name: str, shortname: str, host: str) -> dict[str, str]:
    """Keys for option values; `%i`/`%I` expand to themselves (the node's job)."""
    return {"h": name, "n": shortname, "d": host, "p": name, "N": shortname,
            "i": "%i", "I": "%I"}


@dataclass(frozen=True)
class Invocation:
    """Everything a command line asks for: the nodes and the controller settings."""

    nodes: tuple[Node, ...]
    timeout: float | None = None
    json: bool = False
    quiet: bool = False
    verbose: bool = False
    executable: str | None = None  # --executable: the Python that runs each node


def _split_name(full: str, word: str) -> tuple[str, str]:
    shortname, sep, host = full.partition("@")
    if not sep or not _NAME_PART.match(shortname) or not _NAME_PART.match(host):
        raise GrammarError(
            f"bad node name {word!r}: use NAME or NAME@HOST with letters, digits, . _ -"
        )
    return shortname, host


def node_names(parsed: ParsedArgs, hostname: str) -> list[tuple[str, str]]:
    """(shortname, host) of every node, in order. Consumes the naming options."""
    hkeys = host_keys(hostname)
    host_opt = parsed.take("--hostname", prefer="--hostname")
    range_prefix = parsed.take_value("--range-prefix") or DEFAULT_RANGE_PREFIX
    prefix = parsed.take_value("--prefix") or ""
    suffix = parsed.take_value("--suffix") or ""
    if host_opt is not None and host_opt.value is None:
        raise GrammarError(f"{host_opt.spelling} needs a host name, as in -n example.com")
    host = suffix or (host_opt.value if host_opt else None) or hostname
    if "@" in host:
        raise GrammarError(
            f"-n {host!r}: give the host half only (nodes are named by the NODES arguments)"
        )
    words = parsed.positional
    if not words:
        raise GrammarError("no nodes given: name them (w1 w2) or give a count (3)")
    if len(words) == 1 and words[0].isdigit():
        count = int(words[0])
        if count < 1:
            raise GrammarError(f"node count must be at least 1, got {words[0]}")
        words = [f"{range_prefix}{n}" for n in range(1, count + 1)]
        prefix = ""
    names: list[tuple[str, str]] = []
    for word in words:
        full = word if "@" in word else f"{prefix}{word}@{host}"
        if "%i" in full or "%I" in full:
            raise GrammarError(f"bad node name {word!r}: %i and %I are for paths, not names")
        pair = _split_name(expand(full, hkeys, "node name"), word)
        if pair in names:
            raise GrammarError(f"node {pair[0]}@{pair[1]} is given twice")
        names.append(pair)
    return names


def resolve_spec(opt: Option, names: list[tuple[str, str]]) -> list[int]:
    """Indexes (0-based) of the nodes a per-node option `-c:SPEC` applies to."""
    assert opt.spec is not None
    label = f"{opt.spelling}:{opt.spec}"
    listing = ", ".join(f"{s}@{h}" for s, h in names)
    found: list[int] = []
    for item in opt.spec.split(","):
        by_name = [i for i, (s, h) in enumerate(names) if item in (s, f"{s}@{h}")]
        if by_name:
            found.extend(by_name)
            continue
        ranged = _INDEX_RANGE.match(item)
        if item.isdigit():
            first = last = int(item)
        elif ranged:
            first, last = int(ranged.group(1)), int(ranged.group(2))
        elif _BAD_RANGE.match(item):
            raise GrammarError(f"{label}: bad range {item!r} (write FIRST-LAST, as in 1-3)")
        else:
            raise GrammarError(f"{label}: no node named {item!r} (nodes: {listing})")
        if first < 1 or last < first:
            raise GrammarError(f"{label}: bad range {item!r} (nodes are numbered from 1)")
        if last > len(names):
            raise GrammarError(f"{label}: index {last} is past the last node ({len(names)})")
        found.extend(range(first - 1, last))
    return found


def merge_options(parsed: ParsedArgs, names: list[tuple[str, str]]) -> list[list[Option]]:
    """Each node's options: the global ones, each replaced or extended per node.

    Keyed by option (so `-c 2 -c:2 5` gives node 2 `-c 5` where `-c 2` stood) and
    later wins, as Celery's merge does.
    """
    per_node: list[dict[str, Option]] = [{} for _ in names]
    globals_: dict[str, Option] = {}
    for opt in parsed.options:
        if opt.spec is None:
            globals_[opt.key] = opt
    for slot in per_node:
        slot.update(globals_)
    for opt in parsed.options:
        if opt.spec is None:
            continue
        plain = Option(opt.key, opt.spelling, opt.value)
        for index in resolve_spec(opt, names):
            per_node[index][opt.key] = plain
    return [list(slot.values()) for slot in per_node]


def _expand_option(opt: Option, keys: Keys) -> Option:
    if opt.value is None:
        return opt
    return Option(opt.key, opt.spelling, expand(opt.value, keys, opt.spelling))


def build(argv: list[str], hostname: str,
          expanduser: Callable[[str], str] = lambda p: p) -> Invocation:
    """Read a command line (after the command word) into nodes and settings.

    `expanduser` is how `~` in the pid and log paths is resolved; the CLI passes
    `os.path.expanduser`, tests a pure stand-in.
    """
    parsed = tokenize(argv)
    timeout_text = parsed.take_value("--timeout")
    json = parsed.take_flag("--json")
    quiet = parsed.take_flag("--quiet")
    verbose = parsed.take_flag("--verbose")
    executable = parsed.take_value("--executable")
    if executable is not None:
        executable = expanduser(executable)
    parsed.take("--nosplash")
    parsed.take("--no-color")
    parsed.take("--detach")  # always passed; a second one would only repeat it
    for key in _CELERY_ONLY:
        if parsed.take(key) is not None:
            raise GrammarError(f"{key} is a celery multi option that qmulti does not have")
    timeout = None
    if timeout_text is not None:
        try:
            timeout = float(timeout_text)
        except ValueError:
            timeout = -1.0
        if not timeout >= 0:
            raise GrammarError(f"--timeout {timeout_text!r}: give seconds, as in --timeout 30")
    names = node_names(parsed, hostname)
    nodes: list[Node] = []
    for (shortname, host), options in zip(names, merge_options(parsed, names), strict=True):
        name = f"{shortname}@{host}"
        keys = node_keys(name, shortname, host)
        paths = {"--pidfile": DEFAULT_PIDFILE, "--logfile": DEFAULT_LOGFILE}
        rest: list[Option] = []
        env: list[tuple[str, str]] = []
        for opt in options:
            if opt.key in paths:
                if opt.value is None:
                    raise GrammarError(f"{opt.spelling} needs a path")
                paths[opt.key] = opt.value
            elif opt.key == "--workdir" and opt.value is not None:
                rest.append(Option(opt.key, opt.spelling,
                                   expanduser(expand(opt.value, keys, opt.spelling))))
            elif opt.key in URL_ENV and opt.value is not None:
                env.append((URL_ENV[opt.key], opt.value))  # never expanded: a password may hold %
            else:
                rest.append(_expand_option(opt, keys))
        pidfile = expand(paths["--pidfile"], keys, "--pidfile")
        # The controller reads the pidfile the node's main process (index 0) writes.
        pidfile = expanduser(pidfile.replace("%I", "").replace("%i", "0"))
        logfile = expanduser(expand(paths["--logfile"], keys, "--logfile", escape="%%"))
        nodes.append(Node(name, shortname, host, tuple(rest), tuple(parsed.passthrough),
                          pidfile, logfile, tuple(env), executable))
    seen: dict[str, str] = {}
    for node in nodes:
        other = seen.setdefault(node.pidfile, node.name)
        if other != node.name:
            raise GrammarError(f"{other} and {node.name} would share the pidfile "
                               f"{node.pidfile}: put %n in --pidfile")
    return Invocation(tuple(nodes), timeout, json, quiet, verbose, executable)


def find(nodes: tuple[Node, ...], wanted: str) -> Node | None:
    """The node called `wanted` (full name, or short name when that is unique)."""
    for node in nodes:
        if node.name == wanted:
            return node
    matches = [node for node in nodes if node.shortname == wanted]
    return matches[0] if len(matches) == 1 else None
