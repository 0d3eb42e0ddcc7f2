"""Tokenizing a `qmulti` command line into node names, options and pass-through args.

The grammar is `celery multi`'s, which no off-the-shelf parser reads: options may
carry a per-node suffix (`-c:1-3 4`, `--logfile:w1=x.log`), node names and options
mix freely, and everything qmulti does not know is handed to each `qworker`. So the
argv is walked by hand here, into plain data; `supervisor.grammar` then turns that
data into nodes. Nothing here touches the filesystem.

Where Celery's reading is a trap we read better:
- a long option known to take a value accepts `--loglevel info` as well as
  `--loglevel=info` (Celery turns `info` into a node name);
- a known option whose value is missing (`-n` at the end, `-c:1` followed by
  another option) is a usage error, not an option with the value `None`;
- `-p`/`--pidfile`, `-f`/`--logfile`, `-c`/`--concurrency`... are one option each,
  so a per-node `-p:w2 x.pid` replaces a global `--pidfile=y.pid` instead of both
  reaching the node.
Unknown long options without `=` stay flags, and unknown short options take the
next non-option word, exactly as Celery reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qmulti.exceptions import UsageError


class GrammarError(UsageError):
    """A malformed qmulti command line; the CLI prints it on one line and exits 2."""


# qworker options that take a value: long name -> short alias (or None). Keep in
# step with worker/cli.py: an option missing here still works as `--opt=value`.
QWORKER_VALUE_OPTIONS: dict[str, str | None] = {
    "--app": "-A",
    "--loglevel": "-l",
    "--concurrency": "-c",
    "--queues": "-Q",
    "--pool": "-P",
    "--max-tasks-per-child": None,
    "--max-memory-per-child": None,
    "--time-limit": None,
    "--soft-time-limit": None,
    "--prefetch-multiplier": None,
    "--uid": None,
    "--gid": None,
    "--workdir": None,  # `~` expanded here, as in --pidfile and --logfile
    # Celery's (worker/node/compat.py)
    "--autoscale": None,
    "--optimization": "-O",
    "--exclude-queues": "-X",
    "--statedb": "-S",
}
# Celery's `-b URL` and `--result-backend URL`: qworker reads them from the
# environment, which keeps a password out of `ps` (see nodes.Node.env).
URL_OPTIONS: dict[str, str | None] = {"--broker": "-b", "--result-backend": None}
URL_ENV = {"--broker": "QMULTI_BROKER_URL", "--result-backend": "QMULTI_RESULT_BACKEND"}

# Options qmulti itself reads and never passes on as they are written.
# The node's paths: qmulti manages them (probes the pidfile, tails the log), then
# passes them expanded.
PATH_OPTIONS: dict[str, str] = {"--pidfile": "-p", "--logfile": "-f"}
# Naming the nodes (Celery's multi reads `-n` as the host half of every name).
NAMING_OPTIONS: dict[str, str | None] = {
    "--hostname": "-n",
    "--range-prefix": None,
    "--prefix": None,
    "--suffix": None,
}
# The controller's own settings. `--executable` is the Python that runs each node
# (Celery's name for it).
CONTROL_VALUE_OPTIONS: dict[str, str | None] = {"--timeout": None, "--executable": None}
CONTROL_FLAGS: dict[str, str | None] = {
    "--json": None,
    "--quiet": "-q",
    "--verbose": None,
    "--nosplash": None,
    "--no-color": None,
}
# qworker flags that must not swallow the next word; --detach is always passed.
QWORKER_FLAGS: dict[str, str | None] = {
    "--detach": "-D", "--task-events": "-E", "--beat": "-B", "--purge": None,
    "--discard": None, "--without-gossip": None, "--without-mingle": None,
    "--without-heartbeat": None,
}

_VALUE_OPTIONS = {**QWORKER_VALUE_OPTIONS, **URL_OPTIONS, **PATH_OPTIONS, **NAMING_OPTIONS,
                  **CONTROL_VALUE_OPTIONS}
_FLAGS = {**CONTROL_FLAGS, **QWORKER_FLAGS}
_SHORT_TO_LONG = {short: long for long, short in {**_VALUE_OPTIONS, **_FLAGS}.items() if short}


@dataclass(frozen=True)
class Option:
    """One option as the user wrote it.

    `key` is the long name for known options (so `-c` and `--concurrency` are one
    option) and the spelling itself otherwise; `spelling` is kept so `show` prints
    `-c 4` where the user wrote `-c 4`. `spec` is the per-node part after `:`.
    """

    key: str
    spelling: str
    value: str | None
    spec: str | None = None

    def argv(self) -> list[str]:
        """The words a node receives: `--opt=value`, `-o value`, or the flag alone."""
        if self.value is None:
            return [self.spelling]
        if self.spelling.startswith("--"):
            return [f"{self.spelling}={self.value}"]
        return [self.spelling, self.value]


@dataclass
class ParsedArgs:
    """The command line split into its parts, before any node exists."""

    positional: list[str] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    passthrough: list[str] = field(default_factory=list)

    def take(self, key: str, prefer: str | None = None) -> Option | None:
        """Remove every global `key` option and return the last one (last wins).

        With `prefer`, the last one spelt so wins over the other spellings, as
        Celery reads `--hostname` before `-n` whatever their order.
        Per-node forms of a qmulti-only option make no sense and are refused.
        """
        found: Option | None = None
        preferred: Option | None = None
        kept: list[Option] = []
        for opt in self.options:
            if opt.key != key:
                kept.append(opt)
                continue
            if opt.spec is not None:
                raise GrammarError(
                    f"{opt.spelling}:{opt.spec}: {opt.spelling} cannot be given per node"
                )
            found = opt
            if opt.spelling == prefer:
                preferred = opt
        self.options = kept
        return preferred or found

    def take_value(self, key: str, default: str | None = None) -> str | None:
        opt = self.take(key)
        return default if opt is None else opt.value

    def take_flag(self, key: str) -> bool:
        return self.take(key) is not None


def takes_value(key: str) -> bool:
    return key in _VALUE_OPTIONS


def _looks_like_option(word: str) -> bool:
    return word.startswith("-") and word != "-"


def tokenize(argv: list[str]) -> ParsedArgs:
    """Split argv (without the command word) into names, options and pass-through."""
    parsed = ParsedArgs()
    words = [w for w in argv if w != ""]  # as Celery: empty words are dropped
    pos = 0
    while pos < len(words):
        word = words[pos]
        pos += 1
        if word == "--":
            parsed.passthrough = words[pos:]
            break
        if not _looks_like_option(word):
            parsed.positional.append(word)
            continue
        long = word.startswith("--")
        body = word[2:] if long else word[1:]
        value: str | None = None
        has_inline = long and "=" in body
        if has_inline:
            body, value = body.split("=", 1)
        name, sep, spec = body.partition(":")
        if not name or (sep and not spec):
            raise GrammarError(f"{word}: malformed option (per-node form is -c:SPEC VALUE)")
        spelling = ("--" if long else "-") + name
        key = spelling if long else _SHORT_TO_LONG.get(spelling, spelling)
        if not has_inline:
            next_word = words[pos] if pos < len(words) else None
            wants = takes_value(key) or (not long and key not in _FLAGS)
            if wants and next_word is not None and not _looks_like_option(next_word):
                value = next_word
                pos += 1
            elif takes_value(key):
                raise GrammarError(f"{word} needs a value, as in {word} VALUE")
        parsed.options.append(Option(key, spelling, value, spec if sep else None))
    return parsed
