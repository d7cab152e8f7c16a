"""The limiter shared by several real processes on a real Redis.

Six processes hammer two accounts at once for a few seconds with short
windows: four on account A (one of them calls a cool-down mid-run) and two on
account B, which also has a daily cap. Every grant's timestamp is the Redis
TIME the script decided at, so the checks below are exact and use upper
bounds only: a slow machine can make the run deliver less, never fail it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid

import pytest
import redis

from workers.ratelimit import Limit, RateLimitTimeout, RedisRateLimiter

RUN_SECONDS = 5.0
MARGIN_SECONDS = 0.005
LIMIT_A = Limit(burst=10, steady=40, burst_window=0.2, steady_window=2.0)
LIMIT_B = Limit(burst=10, steady=40, daily=60, burst_window=0.2, steady_window=2.0, daily_window=30.0)
COOL_DOWN_AFTER_SECONDS = 2.0
COOL_DOWN_SECONDS = 0.6
PROCESSES = [("A", LIMIT_A, True), ("A", LIMIT_A, False), ("A", LIMIT_A, False), ("A", LIMIT_A, False),
             ("B", LIMIT_B, False), ("B", LIMIT_B, False)]


def hammer(redis_url, namespace, account, limit, cools_down, barrier, results):
    """Acquire as fast as the limiter allows; report grant times (Redis µs)."""
    client = redis.Redis.from_url(redis_url)
    rl = RedisRateLimiter(client, {"op": limit}, account=account, namespace=namespace,
                          margin_seconds=MARGIN_SECONDS)
    grants = []
    attempt = rl.attempt

    def recording_attempt(bucket, **kwargs):
        result = attempt(bucket, **kwargs)
        if result.granted:
            grants.append(result.now_us)
        return result

    rl.attempt = recording_attempt
    pause = None
    barrier.wait()
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < RUN_SECONDS:
        try:
            rl.acquire("op", timeout=min(0.5, RUN_SECONDS - elapsed))
        except RateLimitTimeout:
            continue
        if cools_down and pause is None and elapsed >= COOL_DOWN_AFTER_SECONDS:
            # Just granted, as the second steady window opens: without the
            # pause the others would be granted at once (a 429 mid-stream).
            pause = tuple(rl.pause("op", COOL_DOWN_SECONDS))
    results.put((account, os.getpid(), grants, pause))
    client.close()


def max_in_window(times_us, window_us):
    """Most grants inside any half-open interval [t, t + window)."""
    times, start, best = sorted(times_us), 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_us:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.fixture(scope="module")
def run(redis_url):
    ctx = multiprocessing.get_context("fork")
    namespace = f"ksync:test:proc:{uuid.uuid4().hex[:8]}"
    barrier, results = ctx.Barrier(len(PROCESSES)), ctx.Queue()
    procs = [ctx.Process(target=hammer, args=(redis_url, namespace, account, limit, cools, barrier, results))
             for account, limit, cools in PROCESSES]
    for p in procs:
        p.start()
    out = [results.get(timeout=RUN_SECONDS + 30) for _ in procs]
    for p in procs:
        p.join(10)
    assert all(p.exitcode == 0 for p in procs)
    by_account = {"A": [], "B": []}
    for account, _, grants, _ in out:
        by_account[account].extend(grants)
    pauses = [pause for _, _, _, pause in out if pause]
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{namespace}:*"):
        client.delete(key)
    client.close()
    return {"per_process": out, "grants": by_account, "pause": pauses[0]}


def test_window_check_catches_an_overfull_window():
    assert max_in_window([0, 1, 2, 10], 10) == 3
    assert max_in_window([0, 1, 2, 10], 11) == 4
    assert max_in_window([], 5) == 0


@pytest.mark.parametrize("account,limit", [("A", LIMIT_A), ("B", LIMIT_B)])
def test_every_sliding_window_holds_at_most_its_limit_across_processes(run, account, limit):
    grants = run["grants"][account]
    assert len(grants) > limit.burst   # the run did hit the limiter
    for allowed, window in limit.windows():
        assert max_in_window(grants, round(window * 1_000_000)) <= allowed, (account, window)


def test_daily_cap_holds_across_processes(run):
    assert len(run["grants"]["B"]) <= LIMIT_B.daily


def test_cool_down_set_by_one_process_stops_every_process(run):
    until_us, now_us = run["pause"]
    grants = run["grants"]["A"]
    assert until_us - now_us == round(COOL_DOWN_SECONDS * 1_000_000)
    assert not [g for g in grants if now_us < g < until_us]
    others = [grants for account, _, grants, pause in run["per_process"] if account == "A" and not pause]
    assert any(g < now_us for proc in others for g in proc)        # they were running before
    assert any(g >= until_us for proc in others for g in proc)     # and resumed after


def test_two_accounts_do_not_share_budget(run):
    a, b = run["grants"]["A"], run["grants"]["B"]
    # A shared budget could never hold more than one steady limit per window.
    assert max_in_window(a + b, round(LIMIT_A.steady_window * 1_000_000)) > LIMIT_A.steady

