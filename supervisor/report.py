"""What cluster operations tell the user, and how the CLI turns it into lines.

The operations in `supervisor.cluster` never print: they hand one `NodeResult` a
node (and a few progress notes) to a `Reporter`. `TextReporter` renders them as
`w1@host: OK` lines; tests and `supervise` can pass their own reporter.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Protocol, TextIO


@dataclass(frozen=True)
class NodeResult:
    """The outcome of one operation on one node.

    `ok` says whether the node did what was asked (it drives the exit status);
    `status` is the word shown (`OK`, `FAILED`, `DOWN`, ...); `detail` is one line
    of why; `lines` are extra lines shown indented (a failed node's log tail).
    """

    name: str
    ok: bool
    status: str
    pid: int | None = None
    detail: str = ""
    lines: tuple[str, ...] = field(default_factory=tuple)


class Reporter(Protocol):
    def node(self, result: NodeResult) -> None:
        """One node's final outcome for this operation."""

    def progress(self, message: str) -> None:
        """Something the user should see while waiting (who is still busy, escalation)."""


def render(result: NodeResult) -> list[str]:
    """`w1@host: OK (pid 12)` / `w1@host: FAILED: reason` plus indented lines."""
    head = f"{result.name}: {result.status}"
    if result.pid is not None:
        head += f" (pid {result.pid})"
    if result.detail:
        head += f": {result.detail}"
    return [head, *(f"    {line}" for line in result.lines)]


class TextReporter:
    """Prints results to stdout and progress to stderr, and remembers failures."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None,
                 quiet: bool = False) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.results: list[NodeResult] = []

    def node(self, result: NodeResult) -> None:
        self.results.append(result)
        for line in render(result):
            print(line, file=self.out, flush=True)

    def progress(self, message: str) -> None:
        if not self.quiet:
            print(f"> {message}", file=self.err, flush=True)

    @property
    def all_ok(self) -> bool:
        return all(r.ok for r in self.results)


class CollectingReporter:
    """Keeps everything in memory; for callers that render later (and for tests)."""

    def __init__(self) -> None:
        self.results: list[NodeResult] = []
        self.messages: list[str] = []

    def node(self, result: NodeResult) -> None:
        self.results.append(result)

    def progress(self, message: str) -> None:
        self.messages.append(message)
