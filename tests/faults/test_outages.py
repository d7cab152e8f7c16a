"""Outages of what ksync depends on, mid-run: every run finishes, nothing lost, nothing stored twice."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.faults.harness import full, run_under_fault
from tests.faults.postgres import PrivatePostgres, binaries


def later(seconds: float, action) -> None:
    def run():
        time.sleep(seconds)
        action()

    threading.Thread(target=run, daemon=True).start()


@pytest.mark.parametrize("appendonly", [pytest.param(True, marks=pytest.mark.skipif(
    not full(), reason="slower variant: runs in `make faults`")), False], ids=["aof", "no-aof"])
def test_redis_restarted_mid_run(fault_stack, appendonly):
    stack = fault_stack(orders=1500, workers=2, redis_url=None, redis_appendonly=appendonly)

    def restart():
        stack.embedded_redis.restart()
        return f"redis-server restarted ({'queues kept on disk' if appendonly else 'queued messages lost'})"

    name = "Redis restarted mid-run" + (" (AOF)" if appendonly else " (no persistence: queues lost)")
    result = run_under_fault(stack, name, restart, 1, at=None, timeout=420)
    assert result.clean, result
    assert all(w.alive for w in stack.workers)


@pytest.mark.skipif(binaries() is None and os.environ.get("CI") != "true",
                    reason="no PostgreSQL server binaries to run a private cluster")
def test_postgresql_stopped_mid_run(fault_stack):
    outage = 30 if full() else 12
    with PrivatePostgres() as pg:
        stack = fault_stack(orders=1500, workers=2, database_url=pg.url)

        def stop():
            pg.stop()
            later(outage, pg.start)
            return f"PostgreSQL stopped for {outage} s"

        result = run_under_fault(stack, f"PostgreSQL stopped for {outage} s", stop, 1, at=None, timeout=420)
        assert result.clean, result
        assert result.run_status == "succeeded"


def test_klaviyo_5xx_then_a_429_storm(fault_stack):
    first = 20 if full() else 10
    stack = fault_stack(orders=400, workers=2, extra_env={"KSYNC_BULK_THRESHOLD": "100000"}, klaviyo_scale=5)

    def storm():
        stack.klaviyo.set_faults(error_rate=0.5, duration=first, seed=1)
        later(first, lambda: stack.klaviyo.set_faults(force_429_rate=0.7, retry_after=1, duration=10, seed=2))
        return f"50% 5xx for {first} s, then 70% 429 for 10 s"

    result = run_under_fault(stack, "Klaviyo 50% 5xx, then a 429 storm", storm, 1, at=(0.5, 2.0), timeout=420)
    assert result.clean, result
    assert result.run_status == "succeeded"
    assert result.notes["faults_injected"] > 0


def test_malformed_klaviyo_answers(fault_stack):
    stack = fault_stack(orders=300, workers=2, extra_env={"KSYNC_BULK_THRESHOLD": "100000"}, klaviyo_scale=5)
    kinds = iter(["html", "truncated", "unexpected"])

    def garble():
        def next_kind():
            kind = next(kinds, None)
            if kind:
                stack.klaviyo.set_faults(malformed_rate=0.3, malformed_kind=kind, duration=4, seed=3)
                later(4, next_kind)

        next_kind()
        return "30% HTML pages, then truncated JSON, then unexpected 200 bodies, 4 s each"

    result = run_under_fault(stack, "malformed Klaviyo answers", garble, 1, at=(0.5, 1.5), timeout=300)
    assert result.clean, result
    assert all(w.alive for w in stack.workers)


def test_tiktok_token_expiry_mid_paging_and_429s(fault_stack):
    stack = fault_stack(orders=3000, workers=2)

    def expire():
        stack.tiktok.expire_access_token()
        stack.tiktok.set_faults(force_429=4)
        return "access token expired, next 4 requests 429"

    result = run_under_fault(stack, "TikTok token expiry mid-paging + 429s", expire, 1, at="reading")
    assert result.clean, result
    assert result.run_status == "succeeded"
    counters = stack.tiktok.counters()
    assert counters["token_refreshes"] == 1 and counters["http_429"] >= 1
