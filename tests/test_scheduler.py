"""The nightly schedule: cron in a time zone, bad settings refused at start-up, a failed night survived."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lorag.core.errors import ConfigError
from lorag.finetune.schedule import Scheduler, next_run

UTC = ZoneInfo("UTC")


def test_next_run_follows_the_cron_in_its_time_zone() -> None:
    assert next_run("0 2 * * *", "UTC", datetime(2026, 11, 22, 1, 59, tzinfo=UTC)) == datetime(
        2026, 11, 22, 2, 0, tzinfo=UTC)
    assert next_run("0 2 * * *", "UTC", datetime(2026, 11, 22, 2, 0, tzinfo=UTC)).day == 23
    paris = next_run("0 2 * * *", "Europe/Paris", datetime(2026, 11, 22, 0, 0, tzinfo=UTC))
    assert paris.astimezone(UTC) == datetime(2026, 11, 22, 1, 0, tzinfo=UTC)  # 02:00 CET is 01:00 UTC


@pytest.mark.parametrize(("schedule", "zone", "message"), [("every night", "UTC", "not a cron"),
                                                           ("0 2 * * *", "Mars/Olympus", "IANA")])
def test_bad_schedules_are_refused_at_start_up(schedule: str, zone: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Scheduler(schedule, zone, lambda: None)


def test_the_scheduler_runs_when_due_and_survives_a_failed_night() -> None:
    ticks = iter(datetime(2026, 11, 22, tzinfo=UTC) + timedelta(hours=12 * n) for n in range(1000))
    now: list[datetime] = []
    calls: list[datetime] = []
    done = threading.Event()

    def clock() -> datetime:  # twelve hours pass between two looks at the clock
        now.append(next(ticks))
        return now[-1]

    def job() -> None:
        calls.append(now[-1])
        if len(calls) == 2:
            done.set()
        raise RuntimeError("the night failed")

    scheduler = Scheduler("0 2 * * *", "UTC", job, clock=clock)
    scheduler.start()
    try:
        assert done.wait(10), "the second night never ran after the first one failed"
    finally:
        scheduler.stop()
    assert [(call.day, call.hour) for call in calls[:2]] == [(22, 12), (23, 12)]
