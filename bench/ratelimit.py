"""Fleet-wide rate-limit accuracy against the Klaviyo stand-in: ksync's limiter vs Celery's vs the seed's.

    python bench/ratelimit.py [--seconds 60] [--workers 4] [--burst 20] [--steady 300]

Method (``/work/shared/reference/celery-redis.md`` §8(a)):

- The Klaviyo stand-in runs in this process (a server thread) and enforces
  ``create_event`` at ``--burst`` per fixed 1-s window and ``--steady`` per
  fixed 60-s window (Klaviyo's shape: windows aligned to the clock, 429 plus
  ``Retry-After`` when one is full; a refused request does not count).
- Three variants run one after another in the same invocation, each on a fresh
  stand-in and, where it needs one, a fresh private Redis (``EmbeddedRedis``).
  Each sends ``POST /api/events`` from ``--workers`` processes as fast as its
  limiter lets it, with a backlog that never runs dry:

  1. ``ksync``: processes loop ``KlaviyoClient.track_event`` with
     ``RedisRateLimiter({"create_event": Limit(burst, steady)})`` on one shared
     Redis, i.e. one limiter for the fleet.
  2. ``celery_rate_limit``: real ``celery worker`` processes (``-c 1``,
     prefetch 1) on a private Redis broker; the task posts one event and
     carries Celery's own ``rate_limit=f"{steady}/m"``, which is per worker.
     The backlog (1.5x what the workers could take in the run) is enqueued
     before the workers are told to consume it (``bench/ratelimit_celery.py``).
  3. ``seed_bucket``: each process has its own ``LocalTokenBucket(10/s,
     capacity 20)``, the seed's shipped default.

  Clients never retry a 429 (``RetryPolicy(max_429=0)``), so every overrun is
  served and counted by the stand-in. (ksync's and the seed's client still
  report a 429 to their limiter as a cool-down, as in production.)

What the numbers mean. Every figure comes from the stand-in's request log
(its own arrival timestamps, one clock), over the measured span
``[t0, t0 + seconds)`` from the variant's first request:

- ``achieved_over_steady``: accepted requests per second / (steady / 60).
  Over a span of whole minutes, 1.0 is the steady budget used in full, and
  more means some sliding 60-s window held more than ``steady`` (the stand-in's
  fixed windows let up to 2x through across a minute boundary).
- ``offered_over_steady``: the same for all requests, 429s included: what the
  limiter let out. Celery's per-worker limit gives about workers x 1.0.
- ``worst_1s`` / ``worst_60s``: most accepted requests in any *sliding* 1-s /
  60-s window; ``worst_fixed_*``: in any clock-aligned window (what the
  stand-in enforces, so these never exceed the limits).
- ``accepted_over_bound``: accepted / the most any limiter keeping every
  sliding window within the limits could admit in the span,
  ``min(burst * ceil(T), steady * ceil(T / 60))``.
- ``http_429``: 429s the stand-in served in the span.
- ``minute_phase_s``: where ``t0`` fell in the stand-in's minute. With fixed
  windows, the baselines' accepted counts depend on it; ksync's do not.

Targets (printed, not asserted): ksync ``achieved_over_steady >= 0.97`` and no
429. ``achieved_over_steady`` is comparable with 1.0 only when ``--seconds`` is
a whole number of minutes: otherwise the burst that opens a minute counts in
full (in 15 s, a correct limiter may send the minute's 300, i.e. 4.0); read
``accepted_over_bound`` then. Stdout ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.ratelimit_celery import IDLE_QUEUE, NO_RETRY, TASK_NAME, WORK_QUEUE, bench_event, make_app  # noqa: E402
from klaviyo.client import KlaviyoClient  # noqa: E402
from klaviyo.exceptions import KlaviyoAPIError, KlaviyoRateLimitError  # noqa: E402
from klaviyo.limits import LocalTokenBucket, RateLimitTimeout  # noqa: E402
from sandbox.klaviyo import KlaviyoStandIn  # noqa: E402
from sandbox.redis import EmbeddedRedis, redis_server_binary  # noqa: E402
from workers.ratelimit import Limit, RedisRateLimiter  # noqa: E402

log = logging.getLogger("bench.ratelimit")

OPERATION = "create_event"
STEADY_WINDOW_SECONDS = 60
#: The seed's per-process bucket, as shipped: 10 tokens/s, capacity 20.
SEED_RATE, SEED_CAPACITY = 10.0, 20
#: Client processes start together this long after all of them are ready.
START_DELAY_SECONDS = 0.5
#: Traffic runs this much past the span, so the span is full to its end.
TAIL_SECONDS = 0.25
#: Celery backlog, as a multiple of what the workers could take in the run.
BACKLOG_FACTOR = 1.5
#: How long child processes and Celery workers get to start, and to stop before SIGKILL.
STARTUP_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 10

LIMITERS = {
    "ksync": "RedisRateLimiter Limit({burst}, {steady}), one Redis for all processes",
    "celery_rate_limit": "Celery rate_limit='{steady}/m' per worker (-c 1, prefetch 1)",
    "seed_bucket": f"LocalTokenBucket(rate={SEED_RATE:g}/s, capacity={SEED_CAPACITY}) per process, the seed's default",
}


# -- metrics from the stand-in's log ------------------------------------------------------------

def worst_sliding(times: list[float], width: float) -> int:
    """Most timestamps in any half-open window [s, s + width); ``times`` sorted."""
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - width:
            first += 1
        best = max(best, last - first + 1)
    return best


def worst_fixed(times: list[float], width: float) -> int:
    """Most timestamps in any clock-aligned window [n * width, (n + 1) * width)."""
    return max(Counter(int(t // width) for t in times).values(), default=0)


def admissible(seconds: float, burst: int, steady: int) -> int:
    """The most requests a limiter keeping every sliding window within the limits admits in ``seconds``."""
    return min(burst * math.ceil(seconds), steady * math.ceil(seconds / STEADY_WINDOW_SECONDS))


def measure(standin: KlaviyoStandIn, args) -> dict:
    """The variant's figures over [t0, t0 + seconds), t0 = its first request at the stand-in."""
    entries = standin.requests(op=OPERATION)
    if not entries:
        raise RuntimeError("the stand-in saw no request")
    t0 = min(e["t"] for e in entries)
    span = [e for e in entries if e["t"] < t0 + args.seconds]
    accepted = sorted(e["t"] for e in span if 200 <= e["status"] < 300)
    throttled = sum(1 for e in span if e["status"] == 429)
    per_second_steady = args.steady / STEADY_WINDOW_SECONDS
    return {
        "achieved_over_steady": round(len(accepted) / args.seconds / per_second_steady, 3),
        "offered_over_steady": round(len(span) / args.seconds / per_second_steady, 3),
        "accepted_over_bound": round(len(accepted) / admissible(args.seconds, args.burst, args.steady), 3),
        "accepted": len(accepted),
        "requests": len(span),
        "worst_1s": worst_sliding(accepted, 1.0),
        "worst_60s": worst_sliding(accepted, 60.0),
        "worst_fixed_1s": worst_fixed(accepted, 1.0),
        "worst_fixed_60s": worst_fixed(accepted, 60.0),
        "http_429": throttled,
        "other_errors": len(span) - len(accepted) - throttled,
        "minute_phase_s": round(t0 % STEADY_WINDOW_SECONDS, 1),
    }


# -- variants 1 and 3: client processes with a limiter each ---------------------------------------

def make_limiter(kind: str, redis_url: str | None, burst: int, steady: int):
    if kind == "ksync":
        return RedisRateLimiter(redis.Redis.from_url(redis_url), {OPERATION: Limit(burst, steady)},
                                account="bench", namespace="ksync:bench")
    return LocalTokenBucket(rate=SEED_RATE, capacity=SEED_CAPACITY)


def client_loop(kind, index, url, api_key, redis_url, burst, steady, seconds, ready, go, go_at, results):
    """One client process: post events from ``go_at`` until the deadline; report counts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    client = KlaviyoClient(api_key, base_url=url, rate_limiter=make_limiter(kind, redis_url, burst, steady),
                           retry=NO_RETRY, timeout=10)
    ready.put(index)
    go.wait()
    deadline = go_at.value + seconds + TAIL_SECONDS
    time.sleep(max(0.0, go_at.value - time.time()))
    counts, n = Counter(), index * 10_000_000
    while time.time() < deadline:
        client.limiter_timeout = max(0.0, deadline - time.time())  # never wait for a grant past the end
        n += 1
        try:
            client.track_event(bench_event(n))
            counts["accepted"] += 1
        except RateLimitTimeout:
            break
        except KlaviyoRateLimitError:
            counts["http_429"] += 1
        except KlaviyoAPIError:
            counts["error"] += 1
    results.put((index, dict(counts)))


def _collect(q, procs, count: int, timeout: float) -> list:
    """``count`` items from ``q``, failing fast if a process died first."""
    items, deadline = [], time.monotonic() + timeout
    while len(items) < count:
        try:
            items.append(q.get(timeout=0.5))
        except queue.Empty:
            dead = [p.name for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"client processes failed or hung: {dead or 'timeout'}")
    return items


def run_client_processes(kind: str, args, standin: KlaviyoStandIn, redis_url: str | None) -> None:
    ctx = mp.get_context("spawn")  # no fork of a process serving HTTP from threads
    ready, results, go, go_at = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    procs = [ctx.Process(target=client_loop, name=f"{kind}-{i}", daemon=True,
                         args=(kind, i, standin.url, standin.api_key, redis_url, args.burst, args.steady,
                               args.seconds, ready, go, go_at, results))
             for i in range(args.workers)]
    try:
        for p in procs:
            p.start()
        _collect(ready, procs, len(procs), STARTUP_TIMEOUT_SECONDS)
        go_at.value = time.time() + START_DELAY_SECONDS
        go.set()
        counts = _collect(results, procs, len(procs), args.seconds + STARTUP_TIMEOUT_SECONDS)
        log.info("%s per process (whole run): %s", kind, dict(sorted(counts)))
    finally:
        stop_processes(procs)


def stop_processes(procs) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(STOP_TIMEOUT_SECONDS)
        if p.is_alive():
            p.kill()
            p.join()


# -- variant 2: real Celery workers ----------------------------------------------------------------

def start_celery_worker(index: int, env: dict, logdir: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "celery", "-A", "bench.ratelimit_celery", "worker",
            "-c", "1", "-P", "prefork", "--prefetch-multiplier", "1", "-Q", IDLE_QUEUE,
            "-n", f"bench{index}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-l", "WARNING", "-f", str(logdir / f"worker{index}.log")]
    # Own session (process group): Ctrl-C reaches only us, and we stop the worker and its pool child together.
    return subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop_celery_workers(workers: list[subprocess.Popen]) -> None:
    """SIGTERM each worker's process group, then SIGKILL whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for w in workers:
            try:
                os.killpg(w.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for w in workers:
            try:
                w.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if all(_group_gone(w.pid) for w in workers):
            return


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_for_workers(app, workers: list[subprocess.Popen], logdir: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if any(w.poll() is not None for w in workers):
            break
        if len(app.control.ping(timeout=1.0)) >= len(workers):
            return
    tails = {p.name: p.read_text(errors="replace")[-800:] for p in sorted(logdir.glob("*.log"))}
    raise RuntimeError(f"celery workers did not all start: {tails}")


def enqueue_backlog(app, count: int) -> None:
    with app.producer_or_acquire() as producer:
        for n in range(count):
            app.send_task(TASK_NAME, args=(n,), queue=WORK_QUEUE, producer=producer)


def wait_first_request(standin: KlaviyoStandIn, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = standin.requests(op=OPERATION)
        if entries:
            return entries[0]["t"]
        time.sleep(0.05)
    raise RuntimeError("celery workers sent nothing to the stand-in")


def run_celery(args, standin: KlaviyoStandIn, broker_url: str) -> int:
    """Start the workers idle, enqueue the backlog, then let all of them consume at once; returns the backlog."""
    env = {**os.environ, "KSYNC_BENCH_BROKER_URL": broker_url, "KSYNC_BENCH_RATE_LIMIT": f"{args.steady}/m",
           "KSYNC_BENCH_KLAVIYO_URL": standin.url, "KSYNC_BENCH_API_KEY": standin.api_key,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    capacity = args.workers * (args.steady / STEADY_WINDOW_SECONDS * args.seconds + 1)
    backlog = math.ceil(BACKLOG_FACTOR * capacity)
    app = make_app(broker_url, rate_limit=None)
    logdir = Path(tempfile.mkdtemp(prefix="ksync-bench-celery-"))
    workers: list[subprocess.Popen] = []
    try:
        workers = [start_celery_worker(i, env, logdir) for i in range(args.workers)]
        wait_for_workers(app, workers, logdir)
        enqueue_backlog(app, backlog)
        replies = app.control.add_consumer(WORK_QUEUE, reply=True, timeout=5.0)
        log.info("celery: %d workers up, backlog %d, %d consuming", len(workers), backlog, len(replies))
        t0 = wait_first_request(standin)
        time.sleep(max(0.0, t0 + args.seconds + TAIL_SECONDS - time.time()))
    finally:
        stop_celery_workers(workers)
        app.close()
        shutil.rmtree(logdir, ignore_errors=True)
    return backlog


# -- one variant, one fresh stand-in (and Redis) ------------------------------------------------------

def standin_for(args) -> KlaviyoStandIn:
    return KlaviyoStandIn(limits={OPERATION: (args.burst, args.steady, None)})


def run_variant(name: str, args) -> dict:
    log.info("variant %s: %s, %d workers, %gs", name, LIMITERS[name].format(**vars(args)), args.workers, args.seconds)
    extra = {}
    with standin_for(args) as standin:
        if name == "seed_bucket":
            run_client_processes("seed", args, standin, redis_url=None)
        else:
            with EmbeddedRedis() as server:
                if name == "ksync":
                    run_client_processes("ksync", args, standin, server.url)
                else:
                    extra["backlog"] = run_celery(args, standin, server.url)
        result = measure(standin, args)
    return {**result, **extra, "limiter": LIMITERS[name].format(**vars(args))}


VARIANTS = ("ksync", "celery_rate_limit", "seed_bucket")


# -- report ------------------------------------------------------------------------------------------

def environment() -> dict:
    import celery
    import kombu

    version = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True).stdout.split()
    return {"python": platform.python_version(), "celery": celery.__version__, "kombu": kombu.__version__,
            "redis_server": next((v.split("=", 1)[1] for v in version if v.startswith("v=")), "?"),
            "nproc": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}


def table(variants: dict, args) -> str:
    head = (f"{'variant':<18} {'achieved/steady':>15} {'offered/steady':>14} {'acc/bound':>9} "
            f"{'worst 1s slide/fixed':>20} {'worst 60s slide/fixed':>21} {'429s':>6} {'phase':>5}")
    rows = [f"create_event limit at the stand-in: {args.burst}/s and {args.steady}/min (fixed windows); "
            f"{args.workers} workers; span {args.seconds:g}s", head, "-" * len(head)]
    for name, v in variants.items():
        rows.append(f"{name:<18} {v['achieved_over_steady']:>15.3f} {v['offered_over_steady']:>14.3f} "
                    f"{v['accepted_over_bound']:>9.3f} {v['worst_1s']:>11}/{v['worst_fixed_1s']:<8} "
                    f"{v['worst_60s']:>12}/{v['worst_fixed_60s']:<8} {v['http_429']:>6} {v['minute_phase_s']:>5.1f}")
    rows += [f"  {name}: {v['limiter']}" for name, v in variants.items()]
    return "\n".join(rows)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured span per variant (default 60)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes per variant (default 4)")
    parser.add_argument("--burst", type=int, default=20, help="create_event limit per 1-s window (default 20)")
    parser.add_argument("--steady", type=int, default=300, help="create_event limit per 60-s window (default 300)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown or args.seconds <= 0 or args.workers < 1 or args.burst < 1 or args.steady < 1:
        parser.error(f"bad arguments{f': unknown variants {sorted(unknown)}' if unknown else ''}")
    return args


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through every finally: children and servers are stopped


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    if args.seconds % STEADY_WINDOW_SECONDS:
        log.warning("span %gs is not a whole number of minutes: achieved_over_steady is not comparable with 1.0; "
                    "read accepted_over_bound", args.seconds)
    try:
        variants = {name: run_variant(name, args) for name in args.variants}
    except KeyboardInterrupt:
        log.warning("interrupted; everything started has been stopped")
        return 130
    print(table(variants, args), flush=True)
    print(json.dumps({"case": "ratelimit", "seconds": args.seconds, "workers": args.workers, "burst": args.burst,
                      "steady": args.steady, "bound": admissible(args.seconds, args.burst, args.steady),
                      "variants": variants, "env": environment()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
