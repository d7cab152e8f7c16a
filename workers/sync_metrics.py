"""Prometheus view of sync history: runs, records and watermarks, read from the database at scrape time.

Why from the database: every worker process on every host already writes each run's
outcome, each record's status and each connection's watermark there. A counter kept in a
worker's memory would count that process only (Celery's prefork children each have
their own) and vanish when the child is recycled; merging them needs a shared
directory and breaks across hosts. Read from sync history, the numbers are the
fleet's, from any process, however many workers run: safe under prefork by
construction, with nothing to merge. ``LimiterCollector`` does the same for the
shared rate limiter's Redis counters (429s, waits).

Metrics (statuses are whatever strings the rows hold, so a new status needs no change):

- ``ksync_runs_total{connection,sync_type,status}``: runs that ended, by final status. A counter:
  a final run never changes (``db.models.FINAL_RUN_STATUSES``).
- ``ksync_runs_open{connection,sync_type,status}``: runs queued or running now.
- ``ksync_run_last_finished_timestamp_seconds{connection,sync_type,status}``.
- ``ksync_records_total{connection,kind,status}``: records whose outcome is final (succeeded,
  failed, skipped, unsent...: anything not in ``OPEN_ITEM_STATUSES``). A counter.
- ``ksync_records_open{connection,kind,status}``: records pending or being sent now.
- ``ksync_watermark_timestamp_seconds{connection,shop,stream}`` and ``ksync_watermark_age_seconds``:
  per connection that is not paused (a paused or removed connection's watermark ages by
  intent, and would only set the staleness alert off; one that needs re-authorization does
  age for a reason, and stays).
- ``ksync_sync_interval_seconds``: ``KSYNC_SYNC_INTERVAL_SECONDS``, so alert rules can
  say "older than N intervals" without repeating the setting.
- ``ksync_metrics_up``: 0 when sync history could not be read (the rest is then absent).

Cost: a records table grows by every record of every run, so counting it whole at
every scrape would grow without bound. The records of a finished run never change,
so each finished run is counted once and kept in memory (a few dozen bytes per run);
each scrape counts only open runs and runs that finished since the last one, through
the (run_id, status) index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

__all__ = ["SyncCollector"]

log = logging.getLogger(__name__)

#: Run ids per ``IN (...)`` when counting records (well under every database's parameter limit).
RUN_CHUNK = 500
#: Runs created this long before the oldest run still counted live are looked at again, so that a
#: run stamped by a host whose clock is behind is not missed.
CLOCK_SKEW = timedelta(hours=1)


class SyncCollector:
    """Collects sync-history metrics from ``session_scope`` (default: ``DATABASE_URL``) at each scrape."""

    def __init__(self, session_scope=None, sync_interval_seconds: float | None = None, clock=time.time):
        if session_scope is None:
            from db.engine import session_scope
        if sync_interval_seconds is None:
            from settings import get_settings

            sync_interval_seconds = get_settings().sync_interval_seconds
        self._sessions = session_scope
        self._interval = sync_interval_seconds
        self._clock = clock
        self._lock = threading.Lock()  # scrapes may come in parallel (a threaded HTTP server)
        #: Record counts of finished runs, counted once: {(connection, kind, status): n}, and their run ids.
        self._settled: Counter = Counter()
        self._settled_runs: set[str] = set()
        #: Runs created before this are all settled (counted and kept), so they are not read again.
        self._since = datetime.min.replace(tzinfo=timezone.utc)

    def describe(self):
        return []  # registration must not touch the database

    def collect(self):
        up = GaugeMetricFamily("ksync_metrics_up", "1 if sync history could be read")
        try:
            with self._lock, self._sessions() as session:
                families = self._families(session)
        except Exception:  # a scrape must not raise; say so in a metric instead
            log.warning("sync history unavailable for metrics", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    # -- reading ----------------------------------------------------------------------------------

    def _families(self, session) -> list:
        from db.models import FINAL_RUN_STATUSES, OPEN_ITEM_STATUSES, SyncRun

        runs_total = CounterMetricFamily("ksync_runs", "Runs that ended, by final status",
                                         labels=["connection", "sync_type", "status"])
        runs_open = GaugeMetricFamily("ksync_runs_open", "Runs queued or running now",
                                      labels=["connection", "sync_type", "status"])
        last = GaugeMetricFamily("ksync_run_last_finished_timestamp_seconds",
                                 "When the last run of this kind ended with this status",
                                 labels=["connection", "sync_type", "status"])
        connection = func.coalesce(SyncRun.connection_id, SyncRun.shop)
        rows = session.execute(select(connection, SyncRun.sync_type, SyncRun.status, func.count(),
                                      func.max(SyncRun.finished_at))
                               .group_by(connection, SyncRun.sync_type, SyncRun.status))
        for shop, sync_type, status, count, finished in rows:
            labels = [shop, sync_type, status]
            if status in FINAL_RUN_STATUSES:
                runs_total.add_metric(labels, count)
                if finished is not None:
                    last.add_metric(labels, _epoch(finished))
            else:
                runs_open.add_metric(labels, count)

        records_total = CounterMetricFamily("ksync_records", "Records whose outcome is final, by status",
                                            labels=["connection", "kind", "status"])
        records_open = GaugeMetricFamily("ksync_records_open", "Records pending or being sent now",
                                         labels=["connection", "kind", "status"])
        live = self._record_counts(session, FINAL_RUN_STATUSES, OPEN_ITEM_STATUSES)
        for (shop, kind, status), count in sorted((self._settled + live).items()):
            family = records_open if status in OPEN_ITEM_STATUSES else records_total
            family.add_metric([shop, kind, status], count)

        return [runs_total, runs_open, last, records_total, records_open, *self._watermarks(session),
                GaugeMetricFamily("ksync_sync_interval_seconds", "KSYNC_SYNC_INTERVAL_SECONDS: the beat's period "
                                  "per connection", value=self._interval)]

    def _record_counts(self, session, final_statuses, open_statuses) -> Counter:
        """Counts of the runs not settled yet; runs that turn out settled are moved to ``_settled``."""
        from db.models import SyncItem, SyncRun

        runs = session.execute(select(SyncRun.id, func.coalesce(SyncRun.connection_id, SyncRun.shop), SyncRun.status,
                                      SyncRun.created_at)
                               .where(SyncRun.created_at >= self._since))
        pending = {run_id: (shop, status, created) for run_id, shop, status, created in runs
                   if run_id not in self._settled_runs}
        per_run: dict[str, Counter] = {run_id: Counter() for run_id in pending}
        ids = list(pending)
        for start in range(0, len(ids), RUN_CHUNK):
            chunk = ids[start:start + RUN_CHUNK]
            rows = session.execute(select(SyncItem.run_id, SyncItem.kind, SyncItem.status, func.count())
                                   .where(SyncItem.run_id.in_(chunk))
                                   .group_by(SyncItem.run_id, SyncItem.kind, SyncItem.status))
            for run_id, kind, status, count in rows:
                per_run[run_id][(pending[run_id][0], kind, status)] += count
        live, unsettled = Counter(), []
        for run_id, counts in per_run.items():
            _, status, created = pending[run_id]
            settled = status in final_statuses and not any(s in open_statuses for _, _, s in counts)
            if settled:  # a finished run whose records are all final: they never change again
                self._settled.update(counts)
                self._settled_runs.add(run_id)
            else:
                live.update(counts)
                unsettled.append(created)
        if unsettled:
            self._since = max(self._since, min(unsettled) - CLOCK_SKEW)
        elif pending:
            self._since = max(self._since, max(created for _, _, created in pending.values()) - CLOCK_SKEW)
        return live

    def _watermarks(self, session) -> list:
        from db.models import Connection, SyncState

        stamp = GaugeMetricFamily("ksync_watermark_timestamp_seconds",
                                  "Orders updated before this are synced (the connection's watermark)",
                                  labels=["connection", "shop", "stream"])
        age = GaugeMetricFamily("ksync_watermark_age_seconds", "Seconds since the watermark (how far behind)",
                                labels=["connection", "shop", "stream"])
        now = self._clock()
        rows = session.execute(select(SyncState.connection_id, Connection.shop_cipher, SyncState.stream,
                                      SyncState.watermark)
                               .join(Connection, Connection.id == SyncState.connection_id)
                               .where(Connection.status != "paused"))
        for connection_id, shop, stream, watermark in rows:
            if watermark is not None:
                stamp.add_metric([connection_id, shop, stream], _epoch(watermark))
                age.add_metric([connection_id, shop, stream], max(0.0, now - _epoch(watermark)))
        return [stamp, age]


def _epoch(value: datetime) -> float:
    return value.timestamp()
