"""``ksync metrics``: sync history and the shared limiter as Prometheus metrics, printed or served.

    ksync metrics                          # print the exposition once
    ksync metrics --bind 0.0.0.0:9745      # serve it at /metrics for Prometheus to scrape

Every number is read at scrape time from PostgreSQL (``workers.sync_metrics``) and from
the limiter's counters in Redis (``workers.ratelimit_metrics``), so one exporter serves
the whole fleet, any number of them agree, and a restart loses nothing.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, generate_latest, start_http_server

#: The exporter's default port (free in Prometheus's port list; any other works).
DEFAULT_PORT = 9745


def registry() -> CollectorRegistry:
    """Sync history, the shared limiter of every Klaviyo account, webhooks (workers/metrics.py)."""
    from workers.metrics import registry as everything

    return everything()


def exposition() -> str:
    return generate_latest(registry()).decode()


def parse_bind(bind: str) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``port`` -> (host, port); the host defaults to 127.0.0.1."""
    host, _, port = bind.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--bind {bind!r}: expected host:port, e.g. 0.0.0.0:{DEFAULT_PORT}")
    return host.strip("[]") or "127.0.0.1", int(port)


def serve(bind: str, console) -> None:
    """Serve /metrics until interrupted (Ctrl-C, or SIGTERM under a supervisor)."""
    host, port = parse_bind(bind)
    start_http_server(port, addr=host, registry=registry())
    console.print(f"serving Prometheus metrics at http://{host}:{port}/metrics")
    threading.Event().wait()
