"""The shared rate limiter, decision by decision.

Exact cases inject "now" (µs) into the script, so they test the algorithm,
not the machine's speed. Every test runs on fakeredis (Lua) and on the real
Redis of the ``redis_client`` fixture. Times below are offsets from T0 in µs.
"""

from __future__ import annotations

import pickle
import time
import uuid

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.ratelimit import (
    Limit, RateLimitTimeout, RedisRateLimiter, klaviyo_limits,
)

T0 = 1_790_000_000_000_000  # µs since the epoch, late 2026
S = 1_000_000  # µs per second


@pytest.fixture(params=["fakeredis", "redis"])
def client(request):
    if request.param == "fakeredis":
        return fakeredis.FakeRedis(server=fakeredis.FakeServer())
    return request.getfixturevalue("redis_client")


@pytest.fixture
def make(client):
    """Build limiters in a namespace of their own; delete its keys afterwards."""
    namespace = f"ksync:test:{uuid.uuid4().hex[:8]}"

    def build(limits, account="acct", margin_seconds=0.0, **kwargs):
        return RedisRateLimiter(client, limits, account=account, namespace=namespace,
                                margin_seconds=margin_seconds, **kwargs)

    build.client = client
    build.keys = lambda: list(client.scan_iter(match=f"{namespace}:*"))
    yield build
    for key in build.keys():
        client.delete(key)


def decisions(rl, bucket, offsets_us):
    """(granted, wait in µs) for attempts at T0 + each offset."""
    out = []
    for offset in offsets_us:
        a = rl.attempt(bucket, now_us=T0 + offset)
        assert a.now_us == T0 + offset
        out.append((a.granted, round(a.wait * S)))
    return out


# --- exact decisions -------------------------------------------------------

def test_burst_grants_exactly_burst_per_window_then_waits_for_the_oldest(make):
    rl = make({"op": Limit(3, 100)})
    assert decisions(rl, "op", [0, 100_000, 200_000, 300_000, 999_999, 1_000_000, 1_000_000]) == [
        (True, 0), (True, 0), (True, 0),
        (False, 700_000),   # the grant at 0 leaves at 1 s
        (False, 1),         # one µs early
        (True, 0),          # the window is half-open: at exactly 1 s it has left
        (False, 100_000),   # now the grant at 0.1 s is the one to leave
    ]


def test_steady_window_limits_after_bursts_and_waits_for_the_oldest_grant(make):
    rl = make({"op": Limit(2, 5, steady_window=10.0)})
    got = decisions(rl, "op", [0, 0, 0, S, S, 2 * S, 3 * S, 10 * S - 1, 10 * S, 10 * S, 10 * S])
    assert got == [
        (True, 0), (True, 0), (False, S),                   # burst of 2
        (True, 0), (True, 0), (True, 0),                    # 5 in the steady window
        (False, 7 * S), (False, 1),                         # the first grant leaves at 10 s
        (True, 0), (True, 0), (False, 1 * S),               # both grants at 0 left; then burst again
    ]


def test_daily_cap_holds_after_the_steady_window_has_room(make):
    rl = make({"op": Limit(5, 10, daily=3, steady_window=10.0, daily_window=100.0)})
    assert decisions(rl, "op", [0, 20 * S, 40 * S, 60 * S, 99 * S, 100 * S]) == [
        (True, 0), (True, 0), (True, 0), (False, 40 * S), (False, 1 * S), (True, 0),
    ]


def test_margin_widens_every_window(make):
    rl = make({"op": Limit(1, 2, burst_window=1.0, steady_window=10.0)}, margin_seconds=0.05)
    assert decisions(rl, "op", [0, S, 1_050_000, 2 * S, 10_050_000, 10_100_000]) == [
        (True, 0), (False, 50_000), (True, 0),
        (False, 8_050_000),        # steady: 2 per 10.05 s, the first left at 10.05 s
        (True, 0), (False, 1_000_000),          # burst and steady both free up at 11.1 s
    ]


def test_fractional_waits_keep_microsecond_precision_as_strings(make):
    rl = make({"op": Limit(1, 100, burst_window=0.333333)})
    rl.attempt("op", now_us=T0)
    raw = rl._script(keys=rl._keys["op"], args=["acquire", T0 + 1, 0, *rl._windows["op"]])
    assert raw[1] in (b"0.333332", "0.333332")  # a string: an integer reply would read 0
    assert rl.attempt("op", now_us=T0 + 7).wait == pytest.approx(0.333326, abs=1e-9)


def test_timestamps_near_2_to_the_31_seconds_stay_exact(make):
    rl = make({"op": Limit(1, 100, burst_window=0.000003)})
    base = 2**31 * S - 5
    assert [rl.attempt("op", now_us=base + d)[:2] for d in (0, 2, 3, 5)] == [
        (True, 0.0), (False, 0.000001), (True, 0.0), (False, 0.000001)]


def test_denied_attempts_consume_nothing(make):
    rl = make({"op": Limit(1, 100)})
    decisions(rl, "op", [0, 1, 2, 3])
    assert rl.stats(now_us=T0 + 3)["op"].in_last_minute == 1
    assert decisions(rl, "op", [S]) == [(True, 0)]


def test_a_lowered_limit_waits_for_enough_grants_to_leave(make):
    wide = make({"op": Limit(4, 100)})   # same namespace and account: same keys
    decisions(wide, "op", [0, 10, 20, 30])
    narrow = make({"op": Limit(2, 100)})
    # Three grants must leave for one more to fit under 2: the one at 20.
    assert decisions(narrow, "op", [40]) == [(False, S - 20)]


# --- cool-down ---------------------------------------------------------------

def test_cool_down_blocks_every_limiter_of_the_account_until_it_ends(make):
    worker_a, worker_b = make({"op": Limit(10, 100)}), make({"op": Limit(10, 100)})
    pause = worker_a.pause("op", 3, now_us=T0)
    assert (pause.until_us, pause.remaining) == (T0 + 3 * S, 3.0)
    assert decisions(worker_b, "op", [0, 2 * S, 3 * S - 1, 3 * S]) == [
        (False, 3 * S), (False, S), (False, 1), (True, 0)]


def test_cool_down_is_the_clients_429_hook_and_blocks_acquire(make):
    rl = make({"op": Limit(10, 100)})
    assert rl.cool_down("op", 2) is None      # Retry-After: 2
    assert 1.9 < rl.try_acquire("op") <= 2.0
    with pytest.raises(RateLimitTimeout) as caught:
        rl.acquire("op", timeout=1.0)
    assert 1.9 < caught.value.retry_in <= 2.0


def test_cool_down_only_extends_and_counts_every_call(make):
    rl = make({"op": Limit(10, 100)})
    assert rl.pause("op", 3, now_us=T0).until_us == T0 + 3 * S
    assert rl.pause("op", 1, now_us=T0 + S).until_us == T0 + 3 * S   # shorter: ignored
    assert rl.pause("op", 5, now_us=T0 + S).until_us == T0 + 6 * S   # longer: extends
    assert rl.pause("op", 0, now_us=T0 + S).until_us == T0 + 6 * S
    assert decisions(rl, "op", [6 * S - 1, 6 * S]) == [(False, 1), (True, 0)]
    stats = rl.stats(now_us=T0 + 2 * S)["op"]
    assert (stats.cooldowns, stats.cooldown_remaining) == (4, 4.0)


def test_wait_is_the_longest_of_pause_and_windows(make):
    rl = make({"op": Limit(1, 100)})
    rl.attempt("op", now_us=T0)
    rl.pause("op", 0.25, now_us=T0)
    assert decisions(rl, "op", [0]) == [(False, S)]            # window outlasts the pause
    rl.pause("op", 2, now_us=T0)
    assert decisions(rl, "op", [0]) == [(False, 2 * S)]        # pause outlasts the window


def test_cool_down_rejects_infinite_pauses(make):
    with pytest.raises(ValueError):
        make({"op": Limit(1, 1)}).cool_down("op", float("inf"))


# --- isolation, names, validation ---------------------------------------------

def test_two_accounts_do_not_share_budget(make):
    a = make({"op": Limit(1, 100)}, account="shop-a")
    b = make({"op": Limit(1, 100)}, account="shop-b")
    assert decisions(a, "op", [0, 1]) == [(True, 0), (False, S - 1)]
    assert decisions(b, "op", [2]) == [(True, 0)]
    a.pause("op", 10, now_us=T0 + 3)
    assert decisions(b, "op", [S + 2]) == [(True, 0)]


def test_buckets_of_one_account_do_not_share_budget(make):
    rl = make({"a": Limit(1, 100), "b": (1, 100)})
    assert decisions(rl, "a", [0, 1]) == [(True, 0), (False, S - 1)]
    assert decisions(rl, "b", [2]) == [(True, 0)]


def test_unknown_bucket_raises_key_error_naming_it(make):
    rl = make({"op": Limit(1, 1)})
    for call in (lambda: rl.acquire("nope", timeout=0), lambda: rl.try_acquire("nope"),
                 lambda: rl.cool_down("nope", 1)):
        with pytest.raises(KeyError, match="nope"):
            call()


def test_limits_accept_tuples_and_mappings_and_reject_nonsense(make):
    rl = make({"t": (10, 150, None, 0.2, 2.0), "m": {"burst": 1, "steady": 2, "daily": 3}})
    assert rl.limits["t"] == Limit(10, 150, None, 0.2, 2.0)
    assert rl.limits["m"].daily == 3
    for bad in [(0, 1), (1, 0), (1, 1, 0), (1.5, 2), (True, 2), (1, 1, None, 0.0)]:
        with pytest.raises(ValueError):
            Limit(*bad)
    with pytest.raises(ValueError):
        make({"{x}": (1, 1)})


def test_repr_shows_account_hash_and_bucket_names_only(client):
    rl = RedisRateLimiter.for_klaviyo(client, "pk_live_SECRET123", namespace="ksync:test:repr")
    text = repr(rl)
    assert rl.account in text and "add_profiles_to_list" in text
    assert "SECRET" not in text and "pk_" not in text and "burst" not in text


# --- real time: blocking, expiry, TTLs ------------------------------------------

def test_acquire_sleeps_for_the_returned_wait_instead_of_polling(make):
    rl = make({"op": Limit(1, 100, burst_window=0.2)})
    calls = []
    original = rl.attempt
    rl.attempt = lambda bucket, **kw: calls.append(1) or original(bucket, **kw)
    assert rl.acquire("op") < 0.05
    waited = rl.acquire("op", timeout=2.0)
    assert waited >= 0.19          # lower bound only: the Redis window must have passed
    assert len(calls) <= 4         # about one denied try, one granted: no busy loop
    assert 0.19 <= rl.stats()["op"].seconds_waited <= waited + 0.01


def test_acquire_gives_up_at_once_when_the_wait_exceeds_the_timeout(make):
    rl = make({"op": Limit(1, 100, burst_window=30.0)})
    rl.acquire("op")
    started = time.monotonic()
    with pytest.raises(RateLimitTimeout) as caught:
        rl.acquire("op", timeout=1.0)
    assert time.monotonic() - started < 0.5
    exc = caught.value
    assert exc.bucket == "op" and 29 < exc.retry_in <= 30 and exc.waited < 0.5
    assert "'op'" in str(exc)
    assert pickle.loads(pickle.dumps(exc)).retry_in == exc.retry_in   # Celery pickles exceptions


def test_acquire_times_out_after_sleeping_when_other_workers_take_the_slot(make):
    rl = make({"op": Limit(1, 100, burst_window=0.1)})
    rl.acquire("op")
    other = make({"op": Limit(1, 100, burst_window=0.1)})
    original = rl.attempt

    def rival_first(bucket, **kw):   # another worker always wins the freed slot
        other.attempt(bucket)
        return original(bucket, **kw)

    rl.attempt = rival_first
    with pytest.raises(RateLimitTimeout) as caught:
        rl.acquire("op", timeout=0.25)
    assert 0.0 < caught.value.retry_in <= 0.1


def test_idle_bucket_expires_and_comes_back_full(make):
    rl = make({"op": Limit(2, 3, burst_window=0.05, steady_window=0.15)})
    assert [rl.attempt("op").granted for _ in range(3)] == [True, True, False]
    log_key = rl._keys["op"][0]
    assert 0 < make.client.pttl(log_key) <= 150
    time.sleep(0.3)
    assert not make.client.exists(log_key)
    assert [rl.attempt("op").granted for _ in range(3)] == [True, True, False]


def test_every_key_always_has_a_ttl(make):
    rl = make({"op": Limit(1, 2, daily=5, steady_window=2.0, daily_window=3.0)}, margin_seconds=0.05)
    steps = [lambda: rl.attempt("op"), lambda: rl.attempt("op"), lambda: rl.cool_down("op", 0.5),
             lambda: rl.attempt("op"), rl.stats, lambda: rl.acquire("op", timeout=0)]
    for step in steps:
        try:
            step()
        except RateLimitTimeout:
            pass
        keys = make.keys()
        assert keys
        for key in keys:
            assert make.client.pttl(key) > 0, key
    log_key, pause_key, stats_key = rl._keys["op"]
    assert 2900 < make.client.pttl(log_key) <= 3050         # longest window + margin
    assert make.client.pttl(pause_key) <= 500
    assert make.client.pttl(stats_key) > 6 * 86400 * 1000   # counters outlive a week's idling


# --- stats, Klaviyo limits, metrics ----------------------------------------------

def test_stats_counts_grants_denials_and_window_occupancy(make):
    rl = make({"op": Limit(2, 3, daily=10, daily_window=3600.0), "idle": Limit(1, 1)})
    decisions(rl, "op", [0, 1, 2, 2 * S, 3 * S])
    stats = rl.stats(now_us=T0 + 3 * S)
    op = stats["op"]
    assert (op.grants, op.denials, op.cooldowns, op.seconds_waited) == (3, 2, 0, 0.0)
    assert (op.in_last_second, op.in_last_minute, op.in_last_day) == (0, 3, 3)
    assert (op.burst, op.steady, op.daily) == (2, 3, 10)
    assert stats["idle"].grants == 0 and stats["idle"].in_last_day is None


def test_klaviyo_limits_come_from_the_spec_and_scale_down_but_not_to_zero():
    limits = klaviyo_limits()
    assert len(limits) > 300
    assert limits["create_event"] == Limit(350, 3500, None)
    assert limits["query_flow_values"] == Limit(1, 2, 225)
    half = klaviyo_limits(scale=0.5)
    assert half["create_event"] == Limit(175, 1750, None)
    assert half["query_flow_values"] == Limit(1, 1, 112)


def test_for_klaviyo_hashes_the_key_and_applies_scale_and_overrides(client):
    rl = RedisRateLimiter.for_klaviyo(client, "pk_live_SECRET", scale=0.1,
                                      overrides={"create_event": (5, 50, None)}, namespace="ksync:test:fk")
    assert len(rl.account) == 12 and "SECRET" not in rl.account
    assert rl.account == RedisRateLimiter.for_klaviyo(client, "pk_live_SECRET").account
    assert rl.account != RedisRateLimiter.for_klaviyo(client, "pk_live_OTHER").account
    assert rl.limits["create_event"] == Limit(5, 50)
    assert rl.limits["get_profiles"] == klaviyo_limits(0.1)["get_profiles"]
    with pytest.raises(ValueError):
        RedisRateLimiter.for_klaviyo(client, "")


def test_prometheus_collector_exports_fleet_counters(make):
    from prometheus_client import CollectorRegistry, generate_latest
    from workers.ratelimit_metrics import LimiterCollector

    rl = make({"op": Limit(1, 5), "idle": Limit(1, 1)}, account="acct")
    rl.attempt("op")                 # granted
    rl.attempt("op")                 # denied
    rl.cool_down("op", 1)
    registry = CollectorRegistry()
    registry.register(LimiterCollector(rl))
    labels = {"bucket": "op", "account": "acct"}
    value = registry.get_sample_value
    assert value("ksync_ratelimit_grants_total", labels) == 1
    assert value("ksync_ratelimit_denials_total", labels) == 1
    assert value("ksync_ratelimit_cooldowns_total", labels) == 1
    assert value("ksync_ratelimit_in_window", {**labels, "window": "burst"}) == 1
    assert value("ksync_ratelimit_limit", {**labels, "window": "steady"}) == 5
    assert value("ksync_ratelimit_up", {"account": "acct"}) == 1
    text = generate_latest(registry).decode()
    assert 'bucket="idle"' not in text


# --- the script against a reference model ------------------------------------------

class Model:
    """The limiter by definition: a grant at ``t`` is allowed when ``t`` is past
    every pause and each window (W = window + margin) holds fewer than its limit
    grants in (t - W, t]; the wait is the distance to the earliest such ``t``."""

    def __init__(self, limit: Limit, margin_us: int):
        self.windows = [(n, round((w + margin_us / S) * S)) for n, w in limit.windows()]
        self.grants: list[int] = []
        self.pause_until = 0

    def allowed(self, t):
        return t >= self.pause_until and all(
            sum(g > t - w for g in self.grants) < n for n, w in self.windows)

    def attempt(self, now):
        candidates = sorted({now, self.pause_until, *(g + w for g in self.grants for _, w in self.windows)})
        wait = next(t for t in candidates if t >= now and self.allowed(t)) - now
        if wait == 0:
            self.grants.append(now)
        return wait == 0, wait

    def cool_down(self, now, pause_us):
        if pause_us > 0:
            self.pause_until = max(self.pause_until, now + pause_us)


@pytest.fixture(scope="module", params=["fakeredis", "redis"])
def property_client(request):
    """Module-scoped, as hypothesis re-runs the test body with one fixture value."""
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis(server=fakeredis.FakeServer())
        return
    import redis
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield client
    for key in client.scan_iter(match="ksync:prop:*"):
        client.delete(key)
    client.close()


limits_strategy = st.builds(
    lambda burst, extra, daily, bw, sw, dw: Limit(
        burst, burst + extra, daily, bw / S, sw / S, dw / S),
    st.integers(1, 4), st.integers(0, 6), st.none() | st.integers(1, 12),
    st.integers(100_000, 1_000_000), st.integers(100_000, 3_000_000), st.integers(100_000, 6_000_000),
)
ops_strategy = st.lists(
    st.tuples(st.sampled_from(["acquire"] * 6 + ["cooldown"]),
              st.integers(0, 700_000), st.integers(100_000, 2_000_000)),
    min_size=1, max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=limits_strategy, margin_us=st.integers(0, 50_000), ops=ops_strategy)
def test_script_agrees_with_the_reference_model(property_client, limit, margin_us, ops):
    rl = RedisRateLimiter(property_client, {"op": limit},
                          account=uuid.uuid4().hex, namespace="ksync:prop", margin_seconds=margin_us / S)
    model = Model(limit, margin_us)
    now = T0
    for kind, step, pause in ops:
        now += step
        if kind == "cooldown":
            rl.pause("op", pause / S, now_us=now)
            model.cool_down(now, pause)
        else:
            got = rl.attempt("op", now_us=now)
            assert (got.granted, round(got.wait * S)) == model.attempt(now)
    for n, w in model.windows:      # and the invariant itself
        grants = sorted(model.grants)
        assert all(sum(g <= x < g + w for x in grants) <= n for g in grants)
