"""Every Prometheus metric ksync exports, in one registry (``ksync metrics``, ``/metrics`` of
``ksync serve``): sync history (``sync_metrics``), the shared limiters (``ratelimit_metrics``), and
webhooks with the realtime latency (here). Every number is read from Redis and the database at
scrape time, so the web processes and workers all add to the same counters (safe under gunicorn
and prefork alike)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from . import clients, realtime


class RealtimeCollector:
    """``ksync_webhooks_total{type, outcome}``, ``ksync_webhooks_rejected_total{reason}``,
    ``ksync_realtime_total{what}`` and ``ksync_realtime_latency_seconds`` (webhook received ->
    record accepted by Klaviyo)."""

    def describe(self):
        return []

    def collect(self):
        counters, latency = realtime.stats(clients.redis_client())
        webhooks = CounterMetricFamily("ksync_webhooks", "TikTok notifications received, by type and outcome",
                                       labels=["type", "outcome"])
        rejected = CounterMetricFamily("ksync_webhooks_rejected", "Notifications refused (signature, stale, malformed)",
                                       labels=["reason"])
        other = CounterMetricFamily("ksync_realtime", "Targeted-sync counters (fetches, orders already known...)",
                                    labels=["what"])
        for name, value in sorted(counters.items()):
            parts = name.split(":")
            if parts[0] == "webhooks" and len(parts) == 3:
                webhooks.add_metric(parts[1:], value)
            elif parts[0] == "webhooks_rejected":
                rejected.add_metric(parts[1:2], value)
            else:
                other.add_metric([name], value)
        buckets = [(f"{bound:g}", latency.get(f"le:{bound:g}", 0.0)) for bound in realtime.LATENCY_BUCKETS]
        buckets.append(("+Inf", latency.get("count", 0.0)))
        histogram = HistogramMetricFamily("ksync_realtime_latency_seconds",
                                          "From a webhook received to its records accepted by Klaviyo",
                                          buckets=buckets, sum_value=latency.get("sum", 0.0))
        yield from (webhooks, rejected, other, histogram)


def registry() -> CollectorRegistry:
    from .connections import account_limiters
    from .ratelimit_metrics import LimiterCollector
    from .sync_metrics import SyncCollector

    found = CollectorRegistry()
    found.register(SyncCollector())
    found.register(LimiterCollector(account_limiters))
    found.register(RealtimeCollector())
    return found
