"""Schedules: crontab next-due times against Celery's recorded answers, interval
alignment, field syntax and its errors.

tests/worker/crontab_cases.json was recorded with Celery 5.7's `crontab` (scratch
script: `c.nowfun = lambda: after; after + c.remaining_estimate(after)`) for 14
expressions x 3 zones x 10 instants, including Europe/Oslo's 2026 DST days, month ends
and the 2028 leap day. Where Celery's answer is wrong by its own expression (its known
DST defects: a wall time the expression does not match, or a time before `after`), the
case carries `expected`, and this test checks that Celery's answer really is wrong.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from qmulti.exceptions import ConfigError
from qmulti.schedules import as_schedule, crontab, schedule, zone

CASES = json.loads((Path(__file__).with_name("crontab_cases.json")).read_text())


def _matches(cron: crontab, instant: float, tz: ZoneInfo) -> bool:
    t = datetime.fromtimestamp(instant, tz)
    return (t.minute in cron.minute and t.hour in cron.hour and t.month in cron.month_of_year
            and t.day in cron.day_of_month and cron._day_ok(t.year, t.month, t.day))


def _transition(instant: float, tz: ZoneInfo) -> bool:
    """A spring-forward instant: where a skipped local time runs."""
    return (datetime.fromtimestamp(instant, tz).utcoffset()
            != datetime.fromtimestamp(instant - 1, tz).utcoffset())


def test_the_table_is_large_and_covers_dst_days() -> None:
    assert len(CASES) >= 60
    assert any(c["after"].startswith("2026-03-29") and c["zone"] == "Europe/Oslo"
               for c in CASES)
    assert any(c["after"].startswith("2026-10-25") for c in CASES)
    assert any(c["after"].startswith("2028-02-28") for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['cron']}@{c['zone']}@{c['after']}")
def test_next_due_matches_celery(case: dict) -> None:
    tz = ZoneInfo(case["zone"])
    cron = crontab(**case["cron"])
    after = datetime.fromisoformat(case["after"]).timestamp()
    ours = cron.next_after(after, tz)
    celery = datetime.fromisoformat(case["celery_next"]).timestamp()
    if "expected" not in case:
        assert ours == celery
        return
    assert ours == datetime.fromisoformat(case["expected"]).timestamp()
    # Ours is a due time of the expression, after `after`; Celery's is not one, or is
    # not after `after`, or comes after ours (a due time skipped).
    assert ours > after and (_matches(cron, ours, tz) or _transition(ours, tz))
    assert not _matches(cron, celery, tz) or celery <= after or celery > ours


def test_dst_gap_runs_once_at_the_first_valid_instant() -> None:
    oslo = ZoneInfo("Europe/Oslo")
    cron = crontab(minute="*/15", hour=2)  # 02:00-02:45 do not exist on 2026-03-29
    start = datetime(2026, 3, 29, 0, 0, tzinfo=oslo).timestamp()
    first = cron.next_after(start, oslo)
    assert datetime.fromtimestamp(first, oslo) == datetime(2026, 3, 29, 3, 0, tzinfo=oslo)
    second = cron.next_after(first, oslo)
    assert datetime.fromtimestamp(second, oslo).date().isoformat() == "2026-03-30"


def test_repeated_hour_runs_once() -> None:
    oslo = ZoneInfo("Europe/Oslo")
    cron = crontab(minute=30, hour=2)  # 02:30 happens twice on 2026-10-25
    t = datetime(2026, 10, 25, 0, 0, tzinfo=oslo).timestamp()
    dues = []
    for _ in range(2):
        t = cron.next_after(t, oslo)
        dues.append(datetime.fromtimestamp(t, timezone.utc))
    assert dues[1] - dues[0] > timedelta(hours=23)


def test_interval_schedules_align_so_schedulers_agree() -> None:
    every = schedule(5)
    assert every.next_after(12.0) == 15.0 and every.next_after(15.0) == 20.0
    assert schedule(timedelta(minutes=1)).next_after(61.0) == 120.0
    assert as_schedule(10) == schedule(10)
    assert as_schedule(timedelta(seconds=3)).seconds == 3.0


@pytest.mark.parametrize("fields, error", [
    ({"minute": "61"}, "minute"), ({"hour": "*/0"}, "step"), ({"day_of_week": "funday"},
                                                              "day_of_week"),
    ({"day_of_month": 31, "month_of_year": 2}, "never matches"), ({"minute": "1,,2"}, "empty"),
])
def test_bad_fields_are_config_errors(fields: dict, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        crontab(**fields)


def test_field_syntax() -> None:
    c = crontab(minute="0-10/5,30", hour="*/6", day_of_week="mon-fri,sun")
    assert c.minute == {0, 5, 10, 30} and c.hour == {0, 6, 12, 18}
    assert c.day_of_week == {0, 1, 2, 3, 4, 5}
    assert crontab(day_of_week="7").day_of_week == {0}
    assert crontab(month_of_year="jan,dec").month_of_year == {1, 12}


def test_zone_and_solar() -> None:
    assert zone(None, True) is timezone.utc
    assert str(zone("Europe/Oslo")) == "Europe/Oslo"
    with pytest.raises(ConfigError, match="unknown time zone"):
        zone("Mars/Olympus")

    class solar:  # noqa: N801 - stands in for Celery's class of that name
        pass

    with pytest.raises(ConfigError, match="solar"):
        as_schedule(solar())
    with pytest.raises(ConfigError, match="positive"):
        schedule(0)
