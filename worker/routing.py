"""Task routes and annotations: which queue a task goes to, which attributes it gets.

Both settings key on task names, exactly or by glob (`'tasks.*'`), and both may be a
single dict or a list of them, as in Celery. Routes are looked up on every publish (the
first route that matches wins, so a list reads top to bottom); annotations are applied
to task objects when they are registered and whenever the settings change (a later dict
overrides an earlier one, and a task's own name overrides `'*'`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qmulti.exceptions import ConfigError

RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")


def parse_rate(rate: str | float | int | None) -> float | None:
    """Tasks per second for `'10/s'`, `'10/m'`, `'10/h'` or a bare number; None = no limit.

    The node enforces it (a later issue); parsing here makes a typo a ConfigError when the
    task is declared or annotated, not a silent no-limit."""
    if rate is None or rate == "" or rate == 0:
        return None
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        return float(rate)
    match = _RATE.match(str(rate))
    if not match:
        raise ConfigError(f"bad rate limit {rate!r}: use '10/s', '10/m' or '10/h'")
    per_unit = float(match[1])
    return per_unit / RATE_UNITS[match[2] or "s"] if per_unit else None


def glob_matcher(pattern: str | re.Pattern[str]) -> Callable[[str], bool]:
    """Match a task name: a compiled regex, a glob where `*` is any run of characters, or
    an exact name."""
    if isinstance(pattern, re.Pattern):
        return lambda name: pattern.match(name) is not None
    if "*" in pattern:
        regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z")
        return lambda name: regex.match(name) is not None
    return lambda name: name == pattern


class _Table:
    """One dict of {name, glob or regex: value}: exact names first, then patterns in order."""

    def __init__(self, mapping: Mapping[Any, Any]) -> None:
        self.exact: dict[str, Any] = {}
        self.patterns: list[tuple[Callable[[str], bool], Any]] = []
        for key, value in mapping.items():
            if isinstance(key, str) and "*" not in key:
                self.exact[key] = value
            elif isinstance(key, (str, re.Pattern)):
                self.patterns.append((glob_matcher(key), value))
            else:
                raise ConfigError(f"route/annotation keys must be task names, globs or "
                                  f"compiled regexes, got {key!r}")

    def matches(self, name: str) -> list[Any]:
        """Every value that applies to `name`, most specific (exact) first."""
        found = [self.exact[name]] if name in self.exact else []
        found.extend(value for match, value in self.patterns if match(name))
        return found


def _as_route(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):  # Celery accepts a bare queue name
        return {"queue": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(f"a route must be a queue name or a dict like {{'queue': 'q'}}, "
                      f"got {value!r}")


class Router:
    """The compiled `task_routes` setting."""

    def __init__(self, routes: Sequence[Any]) -> None:
        self._entries: list[_Table | Callable[..., Any]] = [
            entry if callable(entry) and not isinstance(entry, Mapping) else _Table(entry)
            for entry in routes
        ]
        # Without router functions a name alone decides the route, so the App may
        # resolve a task's queue once instead of on every publish.
        self.by_name_only = all(isinstance(e, _Table) for e in self._entries)

    def route(self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
              options: Mapping[str, Any] | None = None, task: Any = None) -> dict[str, Any]:
        """The first matching route as a dict (`{'queue': ...}`, maybe `rate_limit`), or {}.

        A router function is called as Celery calls it:
        `router(name, args, kwargs, options, task=task)`, returning a route or None."""
        for entry in self._entries:
            if isinstance(entry, _Table):
                found = entry.matches(name)
                route = _as_route(found[0]) if found else None
            else:
                route = _as_route(entry(name, tuple(args), dict(kwargs or {}),
                                        dict(options or {}), task=task))
            if route:
                return route
        return {}

    def static_route(self, name: str) -> dict[str, Any]:
        """The route a name gets from the dict entries alone (router functions need the
        call's arguments); used to give a task the `rate_limit` its route carries."""
        for entry in self._entries:
            if isinstance(entry, _Table):
                found = entry.matches(name)
                if found:
                    return _as_route(found[0]) or {}
        return {}


def annotations_for(name: str, annotations: Sequence[Mapping[Any, Any]]) -> dict[str, Any]:
    """The attributes every matching annotation gives task `name`, merged: later dicts
    override earlier ones; within a dict, the exact name overrides a glob, which
    overrides `'*'`."""
    merged: dict[str, Any] = {}
    for ann in annotations:
        table = _Table({k: v for k, v in ann.items() if k != "*"})
        layers: list[Mapping[str, Any]] = []
        if "*" in ann:
            layers.append(ann["*"])
        layers.extend(reversed(table.matches(name)))  # exact (first) applied last
        for layer in layers:
            merged.update(layer)
    return merged
