"""A beat schedule aligned to the clock, so that two beats started by mistake fire together.

Celery's interval schedules count from when beat started; two beats started a
minute apart would fire a minute apart and each task would land in a different
period. ``aligned_every(600)`` fires at every multiple of 600 s since the epoch,
so duplicate firings share a period and the task's per-period dedupe drops one.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from celery.schedules import schedstate, schedule


class aligned_every(schedule):
    def __init__(self, seconds: float, **kwargs):
        super().__init__(run_every=timedelta(seconds=seconds), **kwargs)
        self.interval = float(seconds)

    def is_due(self, last_run_at: datetime):
        now = self.now().timestamp()
        last = last_run_at.timestamp()
        due = math.floor(now / self.interval) > math.floor(last / self.interval)
        next_in = (math.floor(now / self.interval) + 1) * self.interval - now
        return schedstate(is_due=due, next=max(next_in, 0.5))

    def __repr__(self) -> str:
        return f"<aligned_every {self.interval:g}s>"

    def __reduce__(self):
        return self.__class__, (self.interval,)


def period_key(seconds: float, now: datetime | None = None) -> str:
    """The period a beat firing belongs to: ``"<seconds>:<index>"`` (index = floor(epoch / seconds))."""
    now = now or datetime.now(timezone.utc)
    return f"{int(seconds)}:{math.floor(now.timestamp() / seconds)}"
