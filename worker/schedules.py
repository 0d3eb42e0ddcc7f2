"""When periodic tasks are due: `schedule(run_every)` and `crontab(...)`, as Celery has them.

A schedule answers one question, `next_after(t)`: the first due instant strictly after
unix time `t`. Every scheduler asks it with the same `t` (the last tick stored in the
broker), so they agree on the due times without talking to each other; a due time is
what makes a tick's identity, with the entry's name.

Crontabs are evaluated in the app's time zone (`timezone`, else UTC) on wall-clock
time. Across a DST change: a local time that does not exist (spring forward) runs once,
at the first valid instant after the gap; a local time that occurs twice (fall back)
runs once, at its first occurrence.
"""

from __future__ import annotations

import calendar
import math
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from qmulti.exceptions import ConfigError

UTC = timezone.utc
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}


class schedule:  # noqa: N801 - Celery's name
    """Every `run_every` (seconds or a timedelta). Due times are whole multiples of the
    interval since the epoch, so schedulers started at different moments agree."""

    def __init__(self, run_every: float | timedelta, relative: bool = False) -> None:
        seconds = run_every.total_seconds() if isinstance(run_every, timedelta) \
            else float(run_every)
        if not math.isfinite(seconds) or seconds <= 0:
            raise ConfigError(f"a schedule's run_every must be a positive number of seconds, "
                              f"not {run_every!r}")
        self.seconds = seconds
        self.relative = relative

    @property
    def run_every(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def next_after(self, t: float, tz: tzinfo = UTC) -> float:
        return (math.floor(t / self.seconds) + 1) * self.seconds

    def last_at_or_before(self, t: float) -> float:
        return math.floor(t / self.seconds) * self.seconds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, schedule) and other.seconds == self.seconds

    def __repr__(self) -> str:
        return f"<freq: {self.run_every}>"


def _parse_field(spec: Any, low: int, high: int, names: dict[str, int],
                 what: str) -> frozenset[int]:
    """Celery's crontab field syntax: `*`, `*/n`, `a-b`, `a-b/n`, lists, names; ints and
    iterables of ints too."""
    if isinstance(spec, int):
        values = {spec}
    elif isinstance(spec, (set, frozenset, list, tuple, range)):
        values = {int(v) for v in spec}
    else:
        values = set()
        for part in str(spec).replace(" ", "").lower().split(","):
            if not part:
                raise ConfigError(f"crontab {what}: empty item in {spec!r}")
            rng, _, step_text = part.partition("/")
            step = _number(step_text, names, what, spec) if step_text else 1
            if step < 1:
                raise ConfigError(f"crontab {what}: step must be at least 1 in {spec!r}")
            if rng == "*":
                start, stop = low, high
            elif "-" in rng:
                a, b = rng.split("-", 1)
                start, stop = _number(a, names, what, spec), _number(b, names, what, spec)
                if stop < start:  # wraps, e.g. fri-mon
                    values.update(range(start, high + 1, step))
                    start = low
            else:
                start = _number(rng, names, what, spec)
                stop = high if step_text else start
            values.update(range(start, stop + 1, step))
    if what == "day_of_week":
        values = {0 if v == 7 else v for v in values}  # 7 is Sunday too, as in cron
    bad = sorted(v for v in values if not low <= v <= high)
    if bad or not values:
        raise ConfigError(f"crontab {what}={spec!r}: values must be in {low}-{high}"
                          + (f", got {bad}" if bad else ""))
    return frozenset(values)


def _number(text: str, names: dict[str, int], what: str, spec: Any) -> int:
    if text in names:
        return names[text]
    if text[:3] in names and names is _DAYS:
        return names[text[:3]]
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"crontab {what}: cannot read {text!r} in {spec!r}") from None


class crontab:  # noqa: N801 - Celery's name
    """`crontab(minute='*', hour='*', day_of_week='*', day_of_month='*',
    month_of_year='*')`; day_of_week 0 (or 7) is Sunday. As in Celery, a day must match
    both day_of_week and day_of_month."""

    def __init__(self, minute: Any = "*", hour: Any = "*", day_of_week: Any = "*",
                 day_of_month: Any = "*", month_of_year: Any = "*", **_ignored: Any) -> None:
        self._orig = (minute, hour, day_of_week, day_of_month, month_of_year)
        self.minute = _parse_field(minute, 0, 59, {}, "minute")
        self.hour = _parse_field(hour, 0, 23, {}, "hour")
        self.day_of_week = _parse_field(day_of_week, 0, 7, _DAYS, "day_of_week")
        self.day_of_month = _parse_field(day_of_month, 1, 31, {}, "day_of_month")
        self.month_of_year = _parse_field(month_of_year, 1, 12, _MONTHS, "month_of_year")
        if not any(self._day_ok(y, m, d) for y in range(2024, 2033)
                   for m in self.month_of_year for d in self.day_of_month):
            raise ConfigError(f"{self!r} never matches a real day")

    def _day_ok(self, year: int, month: int, day: int) -> bool:
        if day > calendar.monthrange(year, month)[1]:
            return False
        weekday = (calendar.weekday(year, month, day) + 1) % 7  # 0 = Sunday
        return weekday in self.day_of_week

    def _next_wall(self, wall: datetime) -> datetime:
        """The first matching wall-clock minute at or after `wall` (naive, whole minute)."""
        t = wall
        for _ in range(100_000):
            if t.month not in self.month_of_year:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = datetime(year, month, 1)
            elif t.day not in self.day_of_month or not self._day_ok(t.year, t.month, t.day):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            elif t.hour not in self.hour:
                t = datetime(t.year, t.month, t.day, t.hour) + timedelta(hours=1)
            elif t.minute not in self.minute:
                t = t + timedelta(minutes=1)
            else:
                return t
        raise ConfigError(f"{self!r} has no due time within years")  # pragma: no cover

    def next_after(self, t: float, tz: tzinfo = UTC) -> float:
        """The first due instant strictly after unix time `t`, evaluated in `tz`."""
        local = datetime.fromtimestamp(t, tz)
        wall = local.replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        while True:
            wall = self._next_wall(wall)
            instant = _wall_to_instant(wall, tz)
            if instant > t:
                return instant
            wall += timedelta(minutes=1)  # a repeated hour's second pass: already due once

    def __eq__(self, other: object) -> bool:
        return isinstance(other, crontab) and (
            self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year
        ) == (other.minute, other.hour, other.day_of_week, other.day_of_month,
              other.month_of_year)

    def __repr__(self) -> str:
        m, h, dow, dom, moy = (str(x) for x in self._orig)
        return f"<crontab: {m} {h} {dow} {dom} {moy} (m/h/dM/MY/d)>"


def _wall_to_instant(wall: datetime, tz: tzinfo) -> float:
    """Unix time of a local wall-clock time: its first occurrence; for a time inside a
    spring-forward gap, the first valid instant after the gap (the transition)."""
    instant = wall.replace(tzinfo=tz, fold=0).timestamp()
    if datetime.fromtimestamp(instant, tz).replace(tzinfo=None) == wall:
        return instant
    # In the gap: the two folds give instants either side of the transition; the
    # transition is the first whole minute whose wall time is past `wall`.
    other = wall.replace(tzinfo=tz, fold=1).timestamp()
    low, high = int(min(instant, other) // 60), int(math.ceil(max(instant, other) / 60))
    while low < high:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid * 60, tz).replace(tzinfo=None) > wall:
            high = mid
        else:
            low = mid + 1
    return float(low * 60)


def as_schedule(value: Any) -> schedule | crontab:
    """What a `beat_schedule` entry's `schedule` may be: seconds, a timedelta, or a
    schedule object. `solar` is refused: qmulti has no solar schedules."""
    if isinstance(value, (schedule, crontab)):
        return value
    if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
        return schedule(value)
    if type(value).__name__ == "solar":
        raise ConfigError("solar schedules are not supported by qmulti; use crontab()")
    raise ConfigError(f"unsupported schedule {value!r}: use seconds, a timedelta, "
                      "qmulti.schedules.schedule(...) or crontab(...)")


def zone(name: str | None, enable_utc: bool = True) -> tzinfo:
    """The zone crontabs are evaluated in: `timezone`, else UTC (as Celery with
    enable_utc), else the local zone."""
    if name:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {name!r} in the timezone setting "
                              "(install tzdata where the system has no zone files)") from None
    if enable_utc:
        return UTC
    return datetime.now().astimezone().tzinfo or UTC
