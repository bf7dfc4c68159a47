"""The nightly schedule: run every task at the times a cron expression names (02:00 UTC by default).

Runs in a thread of the API process in the embedded default (the embedded vector store admits one process), or
as its own process with `lorag scheduler` beside a Qdrant server. A night that fails is logged and the next one
runs as usual; a missed night (the process was down) is not made up, because the next one retrains from scratch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter

from lorag.core.errors import ConfigError

logger = logging.getLogger(__name__)


def next_run(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after `after` that `schedule` names, in `timezone`.

    >>> next_run("0 2 * * *", "UTC", datetime(2026, 11, 22, 3, 0, tzinfo=ZoneInfo("UTC"))).isoformat()
    '2026-11-23T02:00:00+00:00'
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"LORAG_FINETUNE__TIMEZONE {timezone!r} is not an IANA time zone "
                          "(e.g. Europe/Paris)") from None
    try:
        return croniter(schedule, after.astimezone(zone)).get_next(datetime)
    except (CroniterBadCronError, ValueError) as error:
        raise ConfigError(f"LORAG_FINETUNE__SCHEDULE {schedule!r} is not a cron expression: {error}") from None


class Scheduler:
    def __init__(self, schedule: str, timezone: str, job: Callable[[], object],
                 clock: Callable[[], datetime] | None = None) -> None:
        next_run(schedule, timezone, datetime.now(ZoneInfo("UTC")))  # refuse a bad schedule at start-up
        self.schedule = schedule
        self.timezone = timezone
        self.job = job
        self.clock = clock or (lambda: datetime.now(ZoneInfo("UTC")))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_forever(self) -> None:
        while not self._stop.is_set():
            due = next_run(self.schedule, self.timezone, self.clock())
            logger.info("next nightly run at %s", due.isoformat())
            while not self._stop.is_set():
                left = (due - self.clock()).total_seconds()
                if left <= 0:
                    break
                self._stop.wait(min(left, 60.0))  # re-read the clock each minute: sleeps drift, clocks jump
            if not self._stop.is_set():
                self._run_once()

    def _run_once(self) -> None:
        try:
            self.job()
        except Exception:  # an edge: one bad night must not stop the next ones
            logger.exception("nightly run failed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="lorag-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
