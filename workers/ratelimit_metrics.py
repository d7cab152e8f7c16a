"""Prometheus view of the shared rate limiter.

``LimiterCollector`` reads ``RedisRateLimiter.stats()`` at scrape time, so any
process (a worker, Flower's host, the CLI) can export the fleet-wide numbers:
the counters live in Redis, not in the exporting process.

Examples:
    >>> from prometheus_client import REGISTRY
    >>> REGISTRY.register(LimiterCollector(limiter))
"""

from __future__ import annotations

import logging

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["LimiterCollector"]

log = logging.getLogger(__name__)

_LABELS = ["bucket", "account"]


class LimiterCollector:
    """Yields, per bucket that has seen traffic (idle buckets are skipped to
    keep the ~350 Klaviyo operations from flooding the scrape):

    - ``ksync_ratelimit_grants_total``, ``..._denials_total`` (denied attempts),
      ``..._wait_seconds_total`` (time callers slept in ``acquire``),
      ``..._cooldowns_total`` (429 cool-downs reported), labels bucket, account;
    - ``ksync_ratelimit_in_window`` and ``ksync_ratelimit_limit``, labels
      bucket, account, window (``burst``, ``steady``, ``daily``);
    - ``ksync_ratelimit_cooldown_remaining_seconds``;
    - ``ksync_ratelimit_up``: 0 when Redis could not be read.
    """

    def __init__(self, limiters):
        #: One limiter, a list of them, or a callable returning them at each scrape (every Klaviyo
        #: account a connection writes to: connections added later appear without a restart).
        self.limiters = limiters

    def describe(self):
        # Registration must not touch Redis.
        return []

    def _limiters(self) -> list:
        found = self.limiters() if callable(self.limiters) else self.limiters
        return list(found) if isinstance(found, (list, tuple)) else [found]

    def collect(self):
        up = GaugeMetricFamily("ksync_ratelimit_up", "1 if the limiter's Redis state could be read", labels=["account"])
        grants = CounterMetricFamily("ksync_ratelimit_grants", "Requests granted", labels=_LABELS)
        denials = CounterMetricFamily("ksync_ratelimit_denials", "Attempts denied (each retry counts)", labels=_LABELS)
        waited = CounterMetricFamily("ksync_ratelimit_wait_seconds", "Seconds callers slept waiting for a grant",
                                     labels=_LABELS)
        cooldowns = CounterMetricFamily("ksync_ratelimit_cooldowns", "Cool-downs requested (429s)", labels=_LABELS)
        remaining = GaugeMetricFamily("ksync_ratelimit_cooldown_remaining_seconds", "Shared pause left",
                                      labels=_LABELS)
        in_window = GaugeMetricFamily("ksync_ratelimit_in_window", "Grants inside the enforced window",
                                      labels=_LABELS + ["window"])
        limit = GaugeMetricFamily("ksync_ratelimit_limit", "Grants allowed per window", labels=_LABELS + ["window"])
        for limiter in self._limiters():
            account = limiter.account
            try:
                stats = limiter.stats()
            except Exception:  # a scrape must not raise; say so in a metric instead
                log.warning("rate limiter stats unavailable", exc_info=True)
                up.add_metric([account], 0)
                continue
            up.add_metric([account], 1)
            for bucket, s in sorted(stats.items()):
                if not (s.grants or s.denials or s.cooldowns or s.in_last_minute or s.cooldown_remaining):
                    continue
                labels = [bucket, account]
                grants.add_metric(labels, s.grants)
                denials.add_metric(labels, s.denials)
                waited.add_metric(labels, s.seconds_waited)
                cooldowns.add_metric(labels, s.cooldowns)
                remaining.add_metric(labels, s.cooldown_remaining)
                windows = [("burst", s.in_last_second, s.burst), ("steady", s.in_last_minute, s.steady)]
                if s.daily is not None:
                    windows.append(("daily", s.in_last_day, s.daily))
                for window, count, allowed in windows:
                    in_window.add_metric(labels + [window], count)
                    limit.add_metric(labels + [window], allowed)
        yield from (up, grants, denials, waited, cooldowns, remaining, in_window, limit)
