"""A node as the controller sees it: a name, its qworker options and its two paths.

Built only by `supervisor.grammar`; a plain value with no filesystem effect, so
`show` and friends can make as many as they like.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass

from qmulti.supervisor.options import Option
from qmulti.urls import mask_url

PROGRAM = "qworker"
_NODE_KEY = re.compile(r"%([%iI])")


def _mask_word(word: str) -> str:
    """Mask a URL password in `URL` or `--opt=URL` (secrets never reach `show`)."""
    if "://" not in word:
        return word
    head, sep, tail = word.partition("=")
    if sep and "://" in tail and "://" not in head:
        return head + sep + mask_url(tail)
    return mask_url(word)


@dataclass(frozen=True)
class Node:
    """One `qworker` of the cluster.

    `pidfile` is fully expanded. `logfile` keeps `%i`/`%I`, which the node expands
    once per pool child, so it is a template here; `main_logfile` is the file the
    node's main process writes (index 0), the one `start` tails on failure.
    Paths are as the user gave them (relative to the current directory).
    """

    name: str  # "w1@host"
    shortname: str  # "w1"
    host: str  # "host"
    options: tuple[Option, ...]
    passthrough: tuple[str, ...]
    pidfile: str
    logfile: str
    # Extra environment for the node: broker/backend URLs given as -b/--result-backend,
    # passed as QMULTI_BROKER_URL/QMULTI_RESULT_BACKEND so no password shows in `ps`.
    env: tuple[tuple[str, str], ...] = ()
    executable: str | None = None  # --executable: the Python to run the node with

    def command(self) -> list[str]:
        """The program words before the arguments: this Python, or --executable's."""
        return [self.executable or sys.executable, "-m", "qmulti"]

    @property
    def main_logfile(self) -> str:
        main = {"i": "0", "I": "", "%": "%"}  # as the node expands it for index 0
        return _NODE_KEY.sub(lambda m: main.get(m.group(1), m.group(0)), self.logfile)

    def argv(self, cwd: str | None = None) -> list[str]:
        """The qworker arguments, in the order `celery multi show` prints them.

        With `cwd`, relative paths become absolute: the detached node may change its
        directory, and the controller must find the same files afterwards.
        """
        pidfile, logfile = self.pidfile, self.logfile
        if cwd is not None:
            pidfile = os.path.join(cwd, pidfile)
            logfile = os.path.join(cwd, logfile)
        words = ["--detach"]
        for opt in self.options:
            words.extend(opt.argv())
        words += ["-n", self.name, f"--pidfile={pidfile}", f"--logfile={logfile}"]
        words.extend(self.passthrough)
        return words

    def display_argv(self) -> list[str]:
        """`argv()` with any URL password masked: what `show` and `get` print."""
        return [_mask_word(word) for word in self.argv()]

    def show_line(self) -> str:
        env = [f"{key}={mask_url(value)}" for key, value in self.env]
        program = [self.executable, "-m", "qmulti"] if self.executable else [PROGRAM]
        return shlex.join([*env, *program, *self.display_argv()])
