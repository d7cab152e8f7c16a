"""Pipeline throughput: per-event task overhead against a no-op Celery task, and backfill events/s in bulk.

    python bench/pipeline.py [--noop-tasks 5000] [--post-tasks 2500] [--event-tasks 1500] [--probe-tasks 1000]
                             [--rounds 1] [--concurrency 2] [--orders 5000] [--backfill-workers 2]
                             [--parts overhead,backfill[,fairness][,scale]] [--profile] [--probe-backfill]
                             [--keep-logs DIR] [--fairness-backfill-orders 5000] [--fairness-small-orders 600]
                             [--fairness-window-days 0.9] [--fairness-topologies shared,split]
                             [--scale-orders 10000,100000]

Two measurements in one invocation (``/work/shared/reference/celery-redis.md``
§8(b): side by side, same machine, ratios):

1. ``overhead``: one ``LocalStack`` (embedded Redis broker, SQLite, both
   stand-ins; the Klaviyo stand-in's limits lifted with ``klaviyo_scale=1000``)
   and, back to back, one worker at a time started exactly as the stack starts
   ksync's (``sandbox.stack.worker``'s arguments: prefork ``-c --concurrency``,
   events on, ``celeryconfig``'s prefetch 1 and ``acks_late``), on one queue:

   a. ``noop``: ``--noop-tasks`` tasks of ``bench/pipeline_celery.py``, a no-op
      on ksync's ``celeryconfig`` and signal handlers whose only work is one
      Redis round trip recording Redis ``TIME``;
   b. ``post``: ``--post-tasks`` tasks of the same app doing only the HTTP call
      of ``track_event``: a planned event payload through ``load_event`` and
      ksync's Klaviyo client (shared Redis limiter included), no database, no
      markers. It splits the ratio into "one HTTP POST" and "ksync's bookkeeping";
   c. ``event``: ``--event-tasks`` real ``ksync.track_event`` tasks
      (``celery -A workers.app``) for event items planned by a real run: the
      run is created, its window read from the TikTok stand-in and planned with
      ``workers.sync`` in this process, then one task per item is enqueued as
      ``tasks.dispatch`` does. Each task claims its item, checks the Redis
      "sent" marker, takes a token from the shared Redis limiter, POSTs one
      event to the stand-in, sets the marker, marks the item succeeded and the
      event delivered, and runs the roll-up check. The no-op does none of that:
      the ratio is the whole cost of a ksync event task, HTTP and database
      included, over the Celery floor.

   ``--rounds`` repeats a-c (fresh items each time); the ratios reported are the
   medians of the rounds' ratios. Then, for the breakdown only (not the ratio):

   d. ``probe``: ``--probe-tasks`` more items through the same task in a worker
      started from ``bench/pipeline_probe.py`` (ksync's app with every step
      wrapped in a wall-clock and CPU timer). Its drain rate is printed, so the
      probe's own cost is visible;
   e. ``profile`` (``--profile``): the same again with cProfile in the pool
      children; the repo's functions by cumulative time and all functions by
      own time are printed.

   The backlog is enqueued before the worker starts, so the worker, not the
   producer, is the bottleneck. Drain rate = (n - 1) / (last - first
   completion): for no-ops from the Redis ``TIME`` each one recorded, for
   posts and events from the stand-in's arrival timestamps of the accepted
   requests. ``task_overhead_ratio`` = event ms per task / no-op ms per task
   (target <= 1.2); also post / no-op and event / post. CPU ms per task of the
   worker (main + pool), redis-server and this process (which hosts both
   stand-ins) are sampled over the same span, as is the share of the cores
   used by anything else on the machine ("others"). The shared limiter keeps
   Klaviyo's real budget, 3,500 ``create_event`` per 60 s: its sliding log is
   cleared before each phase that posts, and such a phase sends at most 3,400
   (limiter denials are reported; expect 0).

2. ``backfill``: a fresh ``LocalStack`` with ``--orders`` seeded orders,
   Klaviyo's real limits (``klaviyo_scale=1.0``), the default bulk threshold,
   ``--backfill-workers`` ksync workers of ``-c --concurrency`` on all queues,
   ``KSYNC_LAG_SECONDS=0``, then ``enqueue_sync(days_back=31)`` and wait for the
   run to finish. ``bulk_events_per_s`` = events accepted after the first
   accepted ``bulk_create_events`` request / (last - first accepted request),
   by the stand-in's arrival timestamps (the first request's events are left
   out so that n requests count n - 1 intervals). ``e2e_events_per_s`` = all
   events / (run finished - enqueued): reading, planning and profile import
   jobs included. Also: 429s served (expect 0), the ratio to the single-event
   ceiling (``create_event`` steady limit / 60 = 58.3/s), the run's timeline,
   each bulk task's duration from the worker logs and CPU seconds per process
   group. ``--rounds`` repeats it on fresh stacks (medians reported).
   ``--probe-backfill`` then runs it once more with probe workers and prints
   where ``sync_shop``, ``bulk_create_events`` and ``bulk_import_profiles``
   spend their time.

3. ``fairness`` (only when named in ``--parts``; ``bench/fairness.py``): one connection's
   small incremental sync alone, then while another connection's backfill of
   ``--fairness-backfill-orders`` runs; the ratio of its latencies (target <= 1.5).

4. ``scale`` (only when named in ``--parts``; ``bench/scale.py``): the backfill of part 2 at
   each of ``--scale-orders``, with each worker process's peak RSS sampled: bulk events/s
   against the 2,500/s bulk ceiling (target >= 0.9) and the largest size's peak RSS over the
   smallest's (target <= 1.5).

``--database-url`` points both parts at a PostgreSQL server instead of the
stack's SQLite file (a throwaway database per stack, dropped at the end); its
server processes then count under "others".

Stdout: readable tables, then one JSON line (always the last line). Logs go to
stderr. Every worker, server and stand-in is stopped on exit, on an exception
and on Ctrl-C (SIGINT or SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402

from bench.fairness import fairness_table, measure_fairness  # noqa: E402
from bench.scale import measure_scale, scale_table  # noqa: E402
from sandbox.redis import redis_server_binary  # noqa: E402
from sandbox.stack import ALL_QUEUES, DEMO_KLAVIYO_KEY, CeleryProcess, LocalStack, worker  # noqa: E402

log = logging.getLogger("bench.pipeline")

PARTS = ("overhead", "backfill", "fairness", "scale")
#: What runs without ``--parts``: fairness starts four stacks, so it is asked for by name.
DEFAULT_PARTS = ("overhead", "backfill")
#: The shared limiter's create_event budget is 3,500 per 60 s (+ margin); a phase stays clear of it.
MAX_EVENT_PHASE = 3400
#: Klaviyo stand-in limits for the overhead measurement: x1000, i.e. never in the way.
LIFTED_SCALE = 1000.0
#: The seeded shop plans about 3.3 events per order; seed enough orders for 2.5.
EVENTS_PER_ORDER_FLOOR = 2.5
POLL_SECONDS = 0.02
FINAL = ("succeeded", "partial", "failed")
TARGET_RATIO = 1.2
TARGET_BULK_EVENTS_PER_S = 1000.0
#: A drain phase shorter than this is noisy; say so.
MIN_PHASE_SECONDS = 10.0
TRACK_EVENT, BULK_EVENTS, SYNC_SHOP = "ksync.track_event", "ksync.bulk_create_events", "ksync.sync_shop"
BULK_PROFILES = "ksync.bulk_import_profiles"
IMPORT_STEPS = (
    ("wait_import_job", "sleep", "KlaviyoClient.wait_for_bulk_import: polling the job (0.5 s sleeps)"),
    ("finish_import_job", "DB", "delivery._finish_import_job: the job's outcome into the database, of which"),
    ("succeed_items", "DB", "  history.succeed_items, one UPDATE per call"),
    ("record_profiles", "DB", "  ledger.record_profiles, one upsert per batch"),
    ("http", "HTTP", "requests to the stand-in (create job, poll, errors)"),
)


# -- workers and process accounting ------------------------------------------------------------------

class AppWorker(CeleryProcess):
    """``sandbox.stack.worker``'s exact arguments, with a chosen ``-A`` module (ksync's, the no-op's, the probe's)."""

    def __init__(self, app_module: str, env: dict, name: str, log_dir: Path, concurrency: int, queues: str):
        base = worker(env, name, log_dir, concurrency, queues)
        super().__init__(base.args, env, base.log_path, base.ready_marker)
        self.app_module = app_module

    def start(self) -> "AppWorker":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "celery", "-A", self.app_module, *self.args],
                                            env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        return self


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """user + system CPU seconds of ``pid`` (and its live descendants with ``tree``)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *(root.children(recursive=True) if tree else [])]
    except psutil.NoSuchProcess:
        return 0.0
    return _cpu_of(procs)


def _cpu_of(procs) -> float:
    """user + system CPU seconds of ``procs``, skipping those that have exited."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (all cores, since boot)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def postgres_cpu_seconds() -> float:
    """CPU seconds of the machine's live PostgreSQL server processes (with ``--database-url``, the
    throwaway database's backends are ours; a backend that exits takes its seconds with it)."""
    return _cpu_of(p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres")


def cpu_snapshot(stack: LocalStack, procs: list[CeleryProcess]) -> dict:
    """CPU seconds so far of our process groups, and of the whole machine (``all``)."""
    return {"worker": sum(cpu_seconds(p.process.pid, tree=True) for p in procs if p.process),
            "redis": cpu_seconds(stack.embedded_redis.process.pid) if stack.embedded_redis else 0.0,
            "bench": cpu_seconds(os.getpid()), "postgres": postgres_cpu_seconds(),
            "all": machine_busy_seconds(), "wall": time.monotonic()}


def cpu_delta(before: dict, after: dict, per: float) -> dict:
    """CPU ms per task of each group, plus ``foreign_share``: the share of the machine's cores that
    processes other than ours (other people's tests, say) used over the same span; 0 on a quiet machine."""
    ours = sum(after[g] - before[g] for g in ("worker", "redis", "bench", "postgres"))
    span = after["wall"] - before["wall"]
    out = {g: round((after[g] - before[g]) * 1000 / per, 3) for g in ("worker", "redis", "bench", "postgres")}
    foreign = (after["all"] - before["all"]) - ours
    out["foreign_share"] = round(max(0.0, foreign) / (span * (os.cpu_count() or 1)), 3) if span > 0 else None
    return out


def drain(stack: LocalStack, proc: CeleryProcess, count, n: int, timeout: float) -> dict:
    """Start ``proc`` on a pre-enqueued backlog; poll ``count()`` until it reaches ``n``.

    Returns CPU ms per completed task of each process group, sampled between the
    first poll that saw a completion and the one that saw the n-th.
    """
    stack.workers.append(proc)  # stack.stop() stops it whatever happens
    started = time.monotonic()
    proc.start()
    first = None
    while True:
        done = count()
        if done >= 1 and first is None:
            first = (done, cpu_snapshot(stack, [proc]))
        if done >= n:
            last = (done, cpu_snapshot(stack, [proc]))
            break
        if not proc.alive:
            raise RuntimeError(f"worker {proc.log_path.stem} exited early:\n{proc.tail()}")
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"only {done}/{n} tasks completed in {timeout:.0f}s; worker log:\n{proc.tail()}")
        time.sleep(POLL_SECONDS)
    return cpu_delta(first[1], last[1], max(1, last[0] - first[0]))


def drain_rate(name: str, stamps: list[float]) -> dict:
    stamps = sorted(stamps)
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    rate = (len(stamps) - 1) / span if span > 0 else float("nan")
    if span < MIN_PHASE_SECONDS:
        log.warning("%s: the drain took only %.1f s; raise its task count for a steadier figure", name, span)
    return {"tasks": len(stamps), "span_s": round(span, 3), "tasks_per_s": rate, "ms_per_task": 1000.0 / rate}


def activate(stack: LocalStack) -> None:
    """``stack.activate()``, plus a fresh producer pool: ``activate`` resets the app's connection pool but
    not ``app.amqp``'s producer pool, which would still publish to a previous stack's Redis."""
    from workers.app import app

    stack.activate()
    app.amqp._producer_pool = None


def keep_logs(stack: LocalStack, args, part: str) -> None:
    """Copy the stack's worker logs to ``--keep-logs`` (the stack's own directory is removed on stop)."""
    if args.keep_logs and stack.log_dir.is_dir():
        target = Path(args.keep_logs) / part
        shutil.copytree(stack.log_dir, target, dirs_exist_ok=True)
        log.info("worker logs of %s copied to %s", part, target)


TASK_DONE = re.compile(r"Task (?P<name>[\w.]+)\[[^\]]+\] succeeded in (?P<seconds>[0-9.e-]+)s")


def task_runtimes(log_dir: Path) -> dict[str, list[float]]:
    """Celery's own "Task X[id] succeeded in Ns" lines from the worker logs, by task name."""
    runtimes: dict[str, list[float]] = defaultdict(list)
    for path in sorted(log_dir.glob("*.log")):
        for match in TASK_DONE.finditer(path.read_text(errors="replace")):
            runtimes[match["name"]].append(float(match["seconds"]))
    return dict(runtimes)


# -- the probe's figures -----------------------------------------------------------------------------

def probe_clear(redis_url: str) -> None:
    from bench.pipeline_probe import PROBE_KEY

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(PROBE_KEY)
    finally:
        client.close()


def probe_read(redis_url: str) -> dict:
    """``{task: {step: {"wall": s, "cpu": s, "n": calls}}}`` summed over every pool child."""
    from bench.pipeline_probe import PROBE_KEY

    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.hgetall(PROBE_KEY)
    finally:
        client.close()
    out: dict = defaultdict(lambda: defaultdict(lambda: {"wall": 0.0, "cpu": 0.0, "n": 0}))
    for key, value in raw.items():
        task, step, field = key.decode().split("|")
        out[task][step][field] = int(value) if field == "n" else float(value)
    return {task: dict(steps) for task, steps in out.items()}


#: For a send task: (step, kind, what); "complete", "client.other" and "celery" are derived.
SEND_STEPS = (
    ("claim", "DB", "delivery._claim: one UPDATE ... RETURNING, its commit, the run's shop (cached)"),
    ("already_sent", "Redis", "delivery._already_sent: MGET sent markers"),
    ("load_event", "Python", "payloads.load_event: payload -> KlaviyoEvent, per event"),
    ("limiter", "Redis", "RedisRateLimiter.acquire: one Lua call"),
    ("http", "HTTP", "requests -> stand-in and back (the stand-in's own time included)"),
    ("client.other", "Python", "Klaviyo client minus limiter and HTTP: validation, JSON, tenacity"),
    ("set_markers", "Redis", "delivery._set_markers: SET sent markers"),
    ("complete", "DB", "rest of the body: succeed_items + ledger.mark_delivered + commit"),
    ("finish_if_done", "DB", "sync.finish_if_done: roll-up check (an exists probe on open items)"),
    ("celery", "Celery", "prerun -> postrun minus the body (owner token, settings, trace)"),
)
SYNC_STEPS = (
    ("read_window", "HTTP", "sync.read_window: paging TikTok's orders"),
    ("known_state", "DB", "sync.known_state: ledger, delivered, in-flight, profile hashes"),
    ("plan_window", "Python", "planning.plan_window: events and profiles"),
    ("upsert_orders", "DB", "ledger.upsert_orders: the orders ledger (ORM)"),
    ("insert_items", "DB", "history.insert_items: one row per item"),
    ("record_plan.other", "DB", "rest of record_plan: flush, run row, commit"),
    ("dispatch", "Celery", "tasks.dispatch: item ids + enqueue the bulk tasks"),
    ("sync_shop.other", "mixed", "create/begin the run, lock, finish_if_done"),
)


def send_breakdown(steps: dict) -> dict:
    """Per task mean wall and CPU ms of each step of a send task (track_event or bulk_create_events)."""
    tasks = steps.get("task", {}).get("n", 0)
    if not tasks:
        return {}
    get = {k: (v["wall"], v["cpu"]) for k, v in steps.items()}
    zero = (0.0, 0.0)

    def minus(a, *bs):
        return (get.get(a, zero)[0] - sum(get.get(b, zero)[0] for b in bs),
                get.get(a, zero)[1] - sum(get.get(b, zero)[1] for b in bs))

    get["client.other"] = minus("client", "limiter", "http")
    get["complete"] = minus("body", "claim", "already_sent", "load_event", "client", "set_markers", "finish_if_done")
    get["celery"] = minus("task", "body")
    out = {k: {"wall_ms": round(w * 1000 / tasks, 3), "cpu_ms": round(c * 1000 / tasks, 3)} for k, (w, c) in get.items()}
    out["tasks"] = tasks
    return out


def sync_breakdown(steps: dict) -> dict:
    if not steps.get("task", {}).get("n"):
        return {}
    get = {k: (v["wall"], v["cpu"]) for k, v in steps.items()}
    zero = (0.0, 0.0)

    def minus(a, *bs):
        return (get.get(a, zero)[0] - sum(get.get(b, zero)[0] for b in bs),
                get.get(a, zero)[1] - sum(get.get(b, zero)[1] for b in bs))

    get["record_plan.other"] = minus("record_plan", "known_state", "plan_window", "upsert_orders", "insert_items")
    get["sync_shop.other"] = minus("task", "read_window", "record_plan", "dispatch")
    return {k: {"wall_s": round(w, 3), "cpu_s": round(c, 3)} for k, (w, c) in get.items()}


def profile_summary(directory: Path, top: int = 20) -> dict:
    """The pool children's cProfile dumps merged: repo functions by cumulative time, all by own time."""
    files = sorted(str(p) for p in directory.glob("prof-*.pstats"))
    if not files:
        return {}
    stats = pstats.Stats(*files)
    per_task = 0
    repo, own = [], []
    for (path, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():
        if func == "send_event" and path.endswith("workers/delivery.py"):
            per_task = nc
        name = f"{os.path.relpath(path, ROOT) if path.startswith(str(ROOT)) else path}:{line}:{func}"
        name = re.sub(r"^.*site-packages/", "", name)
        row = {"function": name, "calls": nc, "tottime_s": tt, "cumtime_s": ct}
        if path.startswith(str(ROOT)) and "/.venv/" not in path and "/bench/" not in path:
            repo.append(row)
        own.append(row)
    for rows in (repo, own):
        for r in rows:
            r["cum_ms_per_task"] = r["cumtime_s"] * 1000 / per_task if per_task else None
            r["own_ms_per_task"] = r["tottime_s"] * 1000 / per_task if per_task else None
    repo.sort(key=lambda r: -r["cumtime_s"])
    own.sort(key=lambda r: -r["tottime_s"])
    return {"tasks": per_task, "repo_by_cumulative": repo[:top], "all_by_own_time": own[:top]}


@contextlib.contextmanager
def bench_database(server_url: str | None):
    """None (the stack's SQLite file), or a throwaway database created on ``server_url`` and dropped after."""
    if not server_url:
        yield None
        return
    from db.engine import normalise_url
    from sandbox.postgres import throwaway_database

    if not normalise_url(server_url).startswith("postgresql"):
        raise SystemExit("--database-url must be a PostgreSQL URL")
    with throwaway_database(server_url, prefix="ksync_bench") as url:
        yield url


def database_label(server_url: str | None) -> str:
    if not server_url:
        return "sqlite (WAL; the LocalStack default)"
    from sqlalchemy.engine import make_url

    from db.engine import normalise_url

    url = make_url(normalise_url(server_url))
    return f"postgresql {url.host}:{url.port or 5432} (throwaway databases)"


# -- measurement 1: per-event task overhead ------------------------------------------------------------

def plan_run() -> tuple[str, list[int]]:
    """A real run, read and planned in this process as ``ksync.sync_shop`` does; its event item ids."""
    from db import history
    from db.engine import session_scope
    from settings import get_settings
    from workers import clients, sync
    from workers.planning import EVENT

    settings = get_settings()
    shop = settings.shop_ciphers[0]
    with session_scope() as session:
        run_id = history.create_run(session, shop=shop, sync_type="manual", trigger="bench",
                                    options={"days_back": 31}).id
    window = sync.begin(run_id, None, settings)
    orders, invalid = sync.read_window(clients.tiktok(shop), run_id, window)
    plan = sync.record_plan(run_id, orders, invalid)
    with session_scope() as session:
        events = history.item_ids(session, run_id, EVENT)
    log.info("planned run %s: %d orders -> %d events, %d profiles (the profiles stay pending)", run_id[:8],
             len(orders), len(plan.events), len(plan.profiles))
    return run_id, events


def shared_limiter():
    from workers import clients
    from workers.ratelimit import RedisRateLimiter

    return RedisRateLimiter.for_klaviyo(clients.redis_client(), DEMO_KLAVIYO_KEY)


def clear_limiter_log(limiter, bucket: str = "create_event") -> None:
    """Start the phase with an empty sliding log, as on a fresh deployment (the counters are kept)."""
    log_key, pause_key, _stats = limiter._bucket_keys(bucket)
    limiter.redis.delete(log_key, pause_key)


def enqueue_events(run_id: str, item_ids: list[int]) -> float:
    """One ``ksync.track_event`` per item, sent as ``tasks.dispatch`` sends them; returns tasks/s."""
    from workers.app import app
    from workers.tasks import track_event

    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for item_id in item_ids:
            track_event.apply_async((run_id, item_id), producer=producer)
    return len(item_ids) / (time.perf_counter() - started)


def wait_items_final(item_ids: list[int], timeout: float = 60) -> Counter:
    """Wait until none of ``item_ids`` is open (the tasks' DB work after the HTTP call is done)."""
    from sqlalchemy import func, select

    from db.engine import session_scope
    from db.models import SyncItem

    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            rows = session.execute(select(SyncItem.status, func.count()).where(SyncItem.id.in_(item_ids))
                                   .group_by(SyncItem.status)).all()
        statuses = Counter({s: n for s, n in rows})
        if statuses["pending"] + statuses["sending"] == 0 or time.monotonic() > deadline:
            return statuses
        time.sleep(0.1)


def event_count(stack: LocalStack):
    """A cheap poll of the stand-in's accepted create_event count since now."""
    counters = stack.klaviyo.sandbox.counters
    base = counters.requests.get("create_event", {}).get(202, 0)
    return lambda: counters.requests.get("create_event", {}).get(202, 0) - base


def run_noop_phase(stack: LocalStack, args, name: str) -> dict:
    from bench import pipeline_celery as bench_app

    app = bench_app.app
    app.conf.broker_url = stack.redis_url
    client = redis.Redis.from_url(stack.redis_url)
    try:
        client.delete(bench_app.DONE_KEY)
        started = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for n in range(args.noop_tasks):
                bench_app.noop.apply_async((n,), producer=producer)
        enqueue_rate = args.noop_tasks / (time.perf_counter() - started)
        log.info("%s: %d no-op tasks enqueued (%.0f/s); starting the worker", name, args.noop_tasks, enqueue_rate)
        proc = AppWorker("bench.pipeline_celery", stack.env, name, stack.log_dir, args.concurrency,
                         bench_app.BENCH_QUEUE)
        cpu = drain(stack, proc, lambda: client.llen(bench_app.DONE_KEY), args.noop_tasks, args.phase_timeout)
        proc.stop()
        stamps = [float(v) for v in client.lrange(bench_app.DONE_KEY, 0, -1)]
    finally:
        client.close()
        app.close()
    result = {**drain_rate(name, stamps), "enqueue_per_s": enqueue_rate, "cpu_ms_per_task": cpu}
    log.info("%s: %.1f tasks/s", name, result["tasks_per_s"])
    return result


def item_payloads(item_ids: list[int]) -> list[dict]:
    from sqlalchemy import select

    from db.engine import session_scope
    from db.models import SyncItem

    with session_scope() as session:
        return [p for _, p in session.execute(select(SyncItem.id, SyncItem.payload)
                                              .where(SyncItem.id.in_(item_ids)).order_by(SyncItem.id))]


def run_klaviyo_phase(stack: LocalStack, args, name: str, n: int, enqueue, app_module: str, queue: str,
                      item_ids: list[int] | None = None, extra_env: dict | None = None) -> dict:
    """Drain ``n`` tasks that each POST one event to the stand-in. ``enqueue()`` sends them and returns
    tasks/s; with ``item_ids``, also wait for those items to be final (the DB work after the POST)."""
    limiter = shared_limiter()
    clear_limiter_log(limiter)
    before = limiter.stats()["create_event"]
    rate_in = enqueue()
    log.info("%s: %d tasks enqueued (%.0f/s); starting the worker (-A %s -Q %s)", name, n, rate_in, app_module, queue)
    since = time.time()
    proc = AppWorker(app_module, {**stack.env, **(extra_env or {})}, name, stack.log_dir, args.concurrency, queue)
    cpu = drain(stack, proc, event_count(stack), n, args.phase_timeout)
    statuses = wait_items_final(item_ids) if item_ids else None
    proc.stop()
    after = limiter.stats()["create_event"]
    entries = stack.klaviyo.requests(op="create_event", since=since)
    stamps = [e["t"] for e in entries if e["status"] == 202]
    result = {**drain_rate(name, stamps), "enqueue_per_s": rate_in, "cpu_ms_per_task": cpu,
              "requests_not_202": len(entries) - len(stamps),
              "limiter_denials": after.denials - before.denials, "limiter_grants": after.grants - before.grants}
    if statuses is not None:
        result["items"] = dict(statuses)
    if (statuses is not None and statuses["succeeded"] != len(item_ids)) or result["requests_not_202"] \
            or result["limiter_denials"]:
        log.warning("%s: not a clean phase: items %s, %d non-202 answers, %d limiter denials", name,
                    dict(statuses or {}), result["requests_not_202"], result["limiter_denials"])
    log.info("%s: %.1f tasks/s", name, result["tasks_per_s"])
    return result


def run_post_phase(stack: LocalStack, args, item_ids: list[int], name: str) -> dict:
    """The baseline with only the HTTP call: ``bench.pipeline.post_event`` with the planned payloads."""
    from bench import pipeline_celery as bench_app

    payloads = item_payloads(item_ids)
    app = bench_app.app
    app.conf.broker_url = stack.redis_url

    def enqueue() -> float:
        started = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for payload in payloads:
                bench_app.post_event.apply_async((payload,), producer=producer)
        return len(payloads) / (time.perf_counter() - started)

    try:
        return run_klaviyo_phase(stack, args, name, len(payloads), enqueue, "bench.pipeline_celery",
                                 bench_app.BENCH_QUEUE)
    finally:
        app.close()


def run_event_phase(stack: LocalStack, args, run_id: str, item_ids: list[int], name: str,
                    app_module: str = "workers.app", extra_env: dict | None = None) -> dict:
    """Real ``ksync.track_event`` tasks for planned items, on the ``events`` queue."""
    return run_klaviyo_phase(stack, args, name, len(item_ids), lambda: enqueue_events(run_id, item_ids), app_module,
                             "events", item_ids, extra_env)


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure_overhead(args) -> dict:
    with bench_database(args.database_url) as database_url:
        return _measure_overhead(args, database_url)


def _measure_overhead(args, database_url: str | None) -> dict:
    need = args.rounds * (args.event_tasks + args.post_tasks) + args.probe_tasks * (2 if args.profile else 1)
    orders = math.ceil(need / EVENTS_PER_ORDER_FLOOR)
    log.info("overhead: stack with %d orders, Klaviyo stand-in limits x%g, one worker -c %d at a time", orders,
             LIFTED_SCALE, args.concurrency)
    stack = LocalStack(orders=orders, workers=0, concurrency=args.concurrency, klaviyo_scale=LIFTED_SCALE,
                       database_url=database_url, extra_env={"KSYNC_LAG_SECONDS": "0"})
    profile_dir = Path(tempfile.mkdtemp(prefix="ksync-bench-prof-")) if args.profile else None
    rounds, probe, profile = [], None, None
    try:
        stack.start(start_workers=False)
        activate(stack)
        run_id, events = plan_run()
        if len(events) < need:
            raise RuntimeError(f"the run planned {len(events)} events; {need} needed")
        cursor = 0

        def take(n):
            nonlocal cursor
            cursor += n
            return events[cursor - n:cursor]

        for r in range(args.rounds):
            suffix = f"{r + 1}" if args.rounds > 1 else ""
            noop = run_noop_phase(stack, args, f"noop{suffix}")
            post = run_post_phase(stack, args, take(args.post_tasks), f"post{suffix}") if args.post_tasks else None
            event = run_event_phase(stack, args, run_id, take(args.event_tasks), f"event{suffix}")
            rounds.append({"noop": noop, "post": post, "event": event,
                           "ratio": event["ms_per_task"] / noop["ms_per_task"],
                           "post_over_noop": post["ms_per_task"] / noop["ms_per_task"] if post else None,
                           "event_over_post": event["ms_per_task"] / post["ms_per_task"] if post else None})
        if args.probe_tasks:
            probe_clear(stack.redis_url)
            probe = run_event_phase(stack, args, run_id, take(args.probe_tasks), "probe", "bench.pipeline_probe")
            probe["breakdown_ms"] = send_breakdown(probe_read(stack.redis_url).get(TRACK_EVENT, {}))
        if profile_dir:
            profile = run_event_phase(stack, args, run_id, take(args.probe_tasks), "profile", "bench.pipeline_probe",
                                      {"KSYNC_BENCH_PROFILE_DIR": str(profile_dir)})
            profile["cprofile"] = profile_summary(profile_dir)
    finally:
        keep_logs(stack, args, "overhead")
        stack.stop()
        if profile_dir:
            shutil.rmtree(profile_dir, ignore_errors=True)
    return {"rounds": rounds, "probe": probe, "profile": profile, "orders": orders,
            "ratio": spread([r["ratio"] for r in rounds]),
            "post_over_noop": spread([r["post_over_noop"] for r in rounds]) if args.post_tasks else None,
            "event_over_post": spread([r["event_over_post"] for r in rounds]) if args.post_tasks else None,
            "post_tasks_per_s": spread([r["post"]["tasks_per_s"] for r in rounds]) if args.post_tasks else None,
            "noop_tasks_per_s": spread([r["noop"]["tasks_per_s"] for r in rounds]),
            "event_tasks_per_s": spread([r["event"]["tasks_per_s"] for r in rounds]),
            "noop_ms_per_task": statistics.median(r["noop"]["ms_per_task"] for r in rounds),
            "event_ms_per_task": statistics.median(r["event"]["ms_per_task"] for r in rounds)}


# -- measurement 3 (fairness) with probe workers ----------------------------------------------------------

def start_probe_workers(stack: LocalStack, args) -> None:
    """``--backfill-workers`` probe workers (``bench/pipeline_probe.py``) on every queue."""
    for i in range(args.backfill_workers):
        proc = AppWorker("bench.pipeline_probe", stack.env, f"p{i + 1}", stack.log_dir, args.concurrency, ALL_QUEUES)
        stack.workers.append(proc)
        proc.start().wait_ready()


def small_sync_breakdown(stack: LocalStack) -> dict:
    """Where the ``ksync.track_event`` tasks spent their time: only the small sync sends single
    events (a backfill sends in bulk), so these are its own."""
    return send_breakdown(probe_read(stack.redis_url).get(TRACK_EVENT, {}))


# -- measurement 2: backfill through the bulk path -------------------------------------------------------

def backfill_once(args, name: str, probe: bool = False, watch=None) -> dict:
    with bench_database(args.database_url) as database_url:
        return _backfill_once(args, name, probe, database_url, watch)


def _backfill_once(args, name: str, probe: bool, database_url: str | None, watch=None) -> dict:
    from db import history
    from db.engine import session_scope
    from settings import get_settings
    from workers.api import enqueue_sync
    from workers.ratelimit import klaviyo_limits

    log.info("%s: %d orders, Klaviyo's real limits, %d %sworkers x -c %d", name, args.orders, args.backfill_workers,
             "probe " if probe else "", args.concurrency)
    stack = LocalStack(orders=args.orders, workers=0 if probe else args.backfill_workers,
                       concurrency=args.concurrency, klaviyo_scale=1.0, database_url=database_url,
                       extra_env={"KSYNC_LAG_SECONDS": "0"})
    try:
        stack.start()
        if probe:
            for i in range(args.backfill_workers):
                proc = AppWorker("bench.pipeline_probe", stack.env, f"p{i + 1}", stack.log_dir, args.concurrency,
                                 ALL_QUEUES)
                stack.workers.append(proc)
                proc.start().wait_ready()
        activate(stack)
        if watch is not None:  # e.g. bench.scale's RSS sampler
            watch(stack)
        threshold = get_settings().bulk_threshold
        cpu_before = cpu_snapshot(stack, stack.workers)
        enqueued = time.time()
        run_id = enqueue_sync(days_back=31)
        seen: dict[str, float] = {}
        deadline = time.monotonic() + args.backfill_timeout
        while True:
            with session_scope() as session:
                run = history.get_run(session, run_id)
                phase, status = run.phase, run.status
            seen.setdefault(phase, time.time())
            if status in FINAL:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} not finished after {args.backfill_timeout:.0f}s (phase {phase})")
            dead = [w for w in stack.workers if not w.alive]
            if dead:
                raise RuntimeError("a worker died:\n" + "\n".join(w.tail() for w in dead))
            time.sleep(0.1)
        cpu_after = cpu_snapshot(stack, stack.workers)
        with session_scope() as session:
            run = history.get_run(session, run_id)
            counts = history.item_counts(session, run_id)
            run_info = {"status": run.status, "orders_read": run.orders_read, "items_total": run.items_total,
                        "succeeded": run.success_count, "failed": run.failed_count,
                        "started": run.started_at.timestamp(), "finished": run.finished_at.timestamp()}
        limiter = shared_limiter().stats()
        summary = stack.klaviyo.summary()
        bulk = stack.klaviyo.requests(op="bulk_create_events")
        imports = stack.klaviyo.requests(op="bulk_import_profiles")
        store = stack.klaviyo.store
        with store.lock:
            per_arrival = Counter(e.received for e in store.events.values())
        runtimes = task_runtimes(stack.log_dir)
        probed = probe_read(stack.redis_url) if probe else None
    finally:
        keep_logs(stack, args, name)
        stack.stop()

    accepted = sorted(e["t"] for e in bulk if e["status"] == 202)
    sizes = [per_arrival.get(t, 0) for t in accepted]
    events_sent = sum(sizes)
    span = accepted[-1] - accepted[0] if len(accepted) > 1 else 0.0
    bulk_rate = (events_sent - sizes[0]) / span if span > 0 else float("nan")
    e2e = run_info["finished"] - enqueued
    ceiling = klaviyo_limits()["create_event"].steady / 60
    timeline = {"run_started": run_info["started"] - enqueued,
                "dispatched_seen": seen.get("dispatched", float("nan")) - enqueued,
                "first_profile_import": (imports[0]["t"] - enqueued) if imports else None,
                "first_bulk_events": accepted[0] - enqueued if accepted else None,
                "last_bulk_events": accepted[-1] - enqueued if accepted else None,
                "run_finished": e2e}
    result = {
        "bulk_events_per_s": bulk_rate, "e2e_events_per_s": events_sent / e2e,
        "bulk_over_single_ceiling": bulk_rate / ceiling, "e2e_over_single_ceiling": events_sent / e2e / ceiling,
        "single_event_ceiling_per_s": ceiling,
        "events_sent": events_sent,
        "events_planned": counts.get(("event", "succeeded"), 0) + counts.get(("event", "failed"), 0),
        "events_stored": summary["events"], "duplicates_dropped": summary["duplicates_dropped"]["total"],
        "bulk_requests": len(bulk), "bulk_accepted": len(accepted), "bulk_span_s": span, "batch_sizes": sizes,
        "bulk_arrivals_s": [round(t - enqueued, 3) for t in accepted], "profile_import_requests": len(imports),
        "http_429": summary["http_429"]["total"], "http_429_by_op": summary["http_429"]["by_op"],
        "limiter": {op: {"grants": s.grants, "denials": s.denials, "seconds_waited": round(s.seconds_waited, 3)}
                    for op, s in limiter.items() if s.grants or s.denials},
        "e2e_s": e2e, "timeline_s": {k: (round(v, 3) if v is not None else None) for k, v in timeline.items()},
        "task_runtimes_s": {task: {"n": len(v), "sum": round(sum(v), 3), "median": round(statistics.median(v), 3),
                                   "max": round(max(v), 3)} for task, v in sorted(runtimes.items())},
        "cpu_s": {g: round(cpu_after[g] - cpu_before[g], 2) for g in ("worker", "redis", "bench", "postgres")},
        "foreign_share": cpu_delta(cpu_before, cpu_after, 1)["foreign_share"],
        "run": {k: v for k, v in run_info.items() if k not in ("started", "finished")},
        "bulk_threshold": threshold, "orders": args.orders,
    }
    if probed is not None:
        result["probe"] = {"bulk_create_events_ms": send_breakdown(probed.get(BULK_EVENTS, {})),
                           "sync_shop_s": sync_breakdown(probed.get(SYNC_SHOP, {})),
                           "bulk_import_profiles_s": {k: {"wall_s": round(v["wall"], 3), "cpu_s": round(v["cpu"], 3),
                                                          "calls": v["n"]}
                                                      for k, v in probed.get(BULK_PROFILES, {}).items()}}
    log.info("%s: %.0f events/s first->last bulk request, %.0f events/s end to end", name, bulk_rate,
             events_sent / e2e)
    return result


def measure_backfill(args) -> dict:
    rounds = [backfill_once(args, f"backfill{r + 1}" if args.rounds > 1 else "backfill") for r in range(args.rounds)]
    probed = backfill_once(args, "backfill-probe", probe=True) if args.probe_backfill else None
    return {"rounds": rounds, "probe": probed,
            "bulk_events_per_s": spread([r["bulk_events_per_s"] for r in rounds]),
            "e2e_events_per_s": spread([r["e2e_events_per_s"] for r in rounds])}


# -- report ----------------------------------------------------------------------------------------------

def environment(args) -> dict:
    import celery
    import kombu
    import sqlalchemy

    version = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True).stdout.split()
    return {"python": platform.python_version(), "celery": celery.__version__, "kombu": kombu.__version__,
            "sqlalchemy": sqlalchemy.__version__, "database": database_label(args.database_url),
            "redis_server": next((v.split("=", 1)[1] for v in version if v.startswith("v=")), "?"),
            "nproc": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}


def _range(s: dict, fmt: str = ".1f") -> str:
    return f"{s['median']:{fmt}}" + (f" ({s['min']:{fmt}}-{s['max']:{fmt}})" if s["min"] != s["max"] else "")


def send_rows(b: dict, per_slot: float | None = None, unit: str = "ms/task") -> list[str]:
    head = f"  {'step':<16} {'kind':<7} {'wall':>8} {'cpu':>8} {'wait':>8}" + (" {:>7}".format("% slot") if per_slot else "")
    rows = [head + f"   ({unit}; wait = wall - cpu: locks, I/O, the other side, CPU queue)"]
    for key, kind, what in SEND_STEPS:
        s = b.get(key, {"wall_ms": 0.0, "cpu_ms": 0.0})
        pct = f" {100 * s['wall_ms'] / per_slot:>6.1f}%" if per_slot else ""
        rows.append(f"  {key:<16} {kind:<7} {s['wall_ms']:>8.2f} {s['cpu_ms']:>8.2f} {s['wall_ms'] - s['cpu_ms']:>8.2f}"
                    f"{pct}  {what}")
    t = b["task"]
    pct = f" {100 * t['wall_ms'] / per_slot:>6.1f}%" if per_slot else ""
    rows.append(f"  {'task total':<16} {'':<7} {t['wall_ms']:>8.2f} {t['cpu_ms']:>8.2f} "
                f"{t['wall_ms'] - t['cpu_ms']:>8.2f}{pct}  prerun -> postrun")
    groups = {"DB": ("claim", "complete", "finish_if_done"), "HTTP": ("http",),
              "Redis": ("already_sent", "limiter", "set_markers"),
              "Python": ("load_event", "client.other", "celery")}
    rows.append("  by kind (wall/cpu): " + ", ".join(
        f"{g} {sum(b.get(k, {}).get('wall_ms', 0) for k in ks):.1f}/{sum(b.get(k, {}).get('cpu_ms', 0) for k in ks):.1f}"
        for g, ks in groups.items()))
    return rows


def overhead_table(m: dict, args) -> str:
    c = args.concurrency
    rows = [f"Measurement 1: per-event task overhead; one worker at a time, prefork -c {c}, prefetch 1, acks_late, "
            f"events on, same Redis broker",
            f"{'phase':<8} {'tasks':>6} {'span s':>7} {'tasks/s':>8} {'ms/task':>8} {'slot ms':>8}   "
            f"{'CPU ms/task: worker':>19} {'redis':>6} {'stand-ins':>9} {'others':>7}"]
    rows.append("-" * len(rows[-1]))
    many = len(m["rounds"]) > 1
    phases = [(f"{k}{i + 1 if many else ''}", r[k]) for i, r in enumerate(m["rounds"]) for k in ("noop", "post", "event")
              if r[k]]
    phases += [(k, m[k]) for k in ("probe", "profile") if m[k]]
    for label, p in phases:
        cpu = p["cpu_ms_per_task"]
        rows.append(f"{label:<8} {p['tasks']:>6} {p['span_s']:>7.2f} {p['tasks_per_s']:>8.1f} {p['ms_per_task']:>8.2f} "
                    f"{c * p['ms_per_task']:>8.2f}   {cpu['worker']:>19.2f} {cpu['redis']:>6.2f} {cpu['bench']:>9.2f} "
                    f"{100 * (cpu['foreign_share'] or 0):>6.0f}%")
    ratio = m["ratio"]
    verdict = "meets" if ratio["median"] <= TARGET_RATIO else "MISSES"
    rows += [f"task_overhead_ratio = event ms/task / no-op ms/task = {_range(ratio, '.2f')} "
             f"({verdict} the <= {TARGET_RATIO} target)"]
    if m["post_over_noop"]:
        rows += [f"  split: post (the same POST, no DB) / no-op = {_range(m['post_over_noop'], '.2f')}; "
                 f"event / post (ksync's claim, markers, DB) = {_range(m['event_over_post'], '.2f')}"]
    rows += ["  ms/task = 1 / drain rate of the whole worker; slot ms = ms/task x concurrency (a pool process's time "
             "per task).",
             "  The ratio is the whole cost of ksync's event task over the Celery floor: it makes 1 HTTP POST (to the "
             "stand-in, in",
             "  this process), 3 DB transactions (claim + run lookup; succeed + ledger; roll-up check) and 3 Redis "
             "calls (marker",
             "  check, limiter, marker set); the no-op makes 1 Redis call, post_event only the POST (limiter "
             "included).",
             "  'stand-ins' = CPU of this process (mostly the Klaviyo stand-in answering the POSTs); 'others' = share "
             "of the cores",
             "  used by processes not ours during the phase (0% on a quiet machine; if not, the absolute rates are "
             "depressed)."]
    probe = m["probe"]
    if probe and probe.get("breakdown_ms"):
        slot = c * probe["ms_per_task"]
        rows += ["", f"Where an event task's time goes: probe phase ({probe['tasks_per_s']:.1f} tasks/s under the probe, "
                     f"slot {slot:.1f} ms), mean per task in a pool child", *send_rows(probe["breakdown_ms"], slot)]
        outside = slot - probe["breakdown_ms"]["task"]["wall_ms"]
        rows.append(f"  outside the task: {outside:.1f} ms of the {slot:.1f} ms slot (broker fetch, ack, events, pool "
                    f"IPC, the probe's flush); the whole no-op slot is {c * m['noop_ms_per_task']:.1f} ms")
    prof = (m["profile"] or {}).get("cprofile")
    if prof:
        rows += ["", f"cProfile of the profile phase's pool children ({prof['tasks']} tasks; cProfile inflates Python-"
                     f"heavy code): repo functions by cumulative ms/task"]
        rows += [f"  {r['cum_ms_per_task'] or 0:>7.2f}  {r['calls']:>6}x  {r['function']}"
                 for r in prof["repo_by_cumulative"][:14]]
        rows.append("  all functions by own ms/task")
        rows += [f"  {r['own_ms_per_task'] or 0:>7.2f}  {r['calls']:>6}x  {r['function']}"
                 for r in prof["all_by_own_time"][:12]]
    return "\n".join(rows)


def backfill_table(m: dict) -> str:
    verdict = "meets" if m["bulk_events_per_s"]["median"] >= TARGET_BULK_EVENTS_PER_S else "MISSES"
    rows = ["Measurement 2: backfill through the bulk path, Klaviyo's real limits "
            f"(bulk_create_events 10/s, 150/min; single create_event ceiling "
            f"{m['rounds'][0]['single_event_ceiling_per_s']:.1f}/s)",
            f"  bulk_events_per_s {_range(m['bulk_events_per_s'])}  first -> last accepted bulk request "
            f"({verdict} the >= {TARGET_BULK_EVENTS_PER_S:.0f} target)",
            f"  e2e_events_per_s  {_range(m['e2e_events_per_s'])}  enqueue -> run finished (reading and planning included)"]
    for i, r in enumerate(m["rounds"] + ([m["probe"]] if m["probe"] else [])):
        label = "probed run" if m["probe"] is r else (f"round {i + 1}" if len(m["rounds"]) > 1 else "run")
        t = r["timeline_s"]
        rt = r["task_runtimes_s"]
        rows += [
            f"  {label}: {r['orders']} orders -> {r['events_sent']} events in {r['bulk_accepted']} bulk requests "
            f"({r['bulk_requests']} sent, {r['http_429']} x 429), {r['profile_import_requests']} profile import job(s); "
            f"{r['bulk_events_per_s']:.0f} events/s bulk ({r['bulk_over_single_ceiling']:.1f}x the ceiling) over "
            f"{r['bulk_span_s']:.1f} s, {r['e2e_events_per_s']:.0f} events/s e2e "
            f"({r['e2e_over_single_ceiling']:.1f}x) over {r['e2e_s']:.1f} s",
            f"    timeline (s after enqueue): run started {t['run_started']}, planned+dispatched {t['dispatched_seen']}, "
            f"bulk events {t['first_bulk_events']} .. {t['last_bulk_events']}, profile import {t['first_profile_import']}, "
            f"finished {t['run_finished']}",
            "    task runtimes (Celery log, s): " + ", ".join(
                f"{k.split('.')[-1]} n={v['n']} median {v['median']} max {v['max']}" for k, v in rt.items()),
            f"    CPU s during the run: workers {r['cpu_s']['worker']}, redis {r['cpu_s']['redis']}, "
            f"stand-ins (this process) {r['cpu_s']['bench']}, postgres {r['cpu_s']['postgres']}, "
            f"others {100 * (r['foreign_share'] or 0):.0f}% of the "
            f"cores; limiter denials "
            f"{sum(v['denials'] for v in r['limiter'].values())}",
        ]
    probe = (m["probe"] or {}).get("probe")
    if probe:
        bulk = probe["bulk_create_events_ms"]
        if bulk:
            rows += ["", f"  Where a bulk_create_events task's time goes (probed run, mean per task of up to 1,000 "
                         f"events, {bulk['tasks']} tasks):", *send_rows(bulk, unit="ms/task")]
        imports = probe.get("bulk_import_profiles_s")
        if imports and imports.get("task"):
            rows += ["", f"  Where bulk_import_profiles' time goes (probed run, seconds summed over "
                         f"{imports['task']['calls']} task run(s); calls = times the step ran):",
                     f"  {'step':<18} {'kind':<7} {'wall':>7} {'cpu':>7} {'calls':>6}"]
            for key, kind, what in IMPORT_STEPS:
                st = imports.get(key, {"wall_s": 0, "cpu_s": 0, "calls": 0})
                rows.append(f"  {key:<18} {kind:<7} {st['wall_s']:>7.2f} {st['cpu_s']:>7.2f} {st['calls']:>6}  {what}")
            rows.append(f"  {'task total':<18} {'':<7} {imports['task']['wall_s']:>7.2f} {imports['task']['cpu_s']:>7.2f}")
        sync = probe["sync_shop_s"]
        if sync:
            rows += ["", "  Where sync_shop's time goes (probed run, seconds for the one task):",
                     f"  {'step':<18} {'kind':<7} {'wall':>7} {'cpu':>7}"]
            for key, kind, what in SYNC_STEPS:
                s = sync.get(key, {"wall_s": 0, "cpu_s": 0})
                rows.append(f"  {key:<18} {kind:<7} {s['wall_s']:>7.2f} {s['cpu_s']:>7.2f}  {what}")
            rows.append(f"  {'task total':<18} {'':<7} {sync['task']['wall_s']:>7.2f} {sync['task']['cpu_s']:>7.2f}")
    return "\n".join(rows)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--noop-tasks", type=int, default=5000, help="no-op tasks per round (default 5000)")
    parser.add_argument("--event-tasks", type=int, default=1500,
                        help=f"ksync.track_event tasks per round (default 1500, at most {MAX_EVENT_PHASE})")
    parser.add_argument("--post-tasks", type=int, default=2500,
                        help="HTTP-only baseline tasks per round (post_event: the same POST, no DB) (default 2500; 0 skips)")
    parser.add_argument("--probe-tasks", type=int, default=1000,
                        help="track_event tasks under the timing probe (and under --profile) (default 1000; 0 skips)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the noop/post/event phases, and the backfill run, this many times; medians reported (default 1)")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes per worker (default 2)")
    parser.add_argument("--orders", type=int, default=5000, help="orders seeded for the backfill (default 5000)")
    parser.add_argument("--backfill-workers", type=int, default=2, help="workers for the backfill (default 2)")
    parser.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)} (default {','.join(DEFAULT_PARTS)})")
    parser.add_argument("--fairness-backfill-orders", type=int, default=5000,
                        help="fairness: orders of the connection that backfills (default 5000)")
    parser.add_argument("--fairness-small-orders", type=int, default=600,
                        help="fairness: orders (over 30 days) of the connection whose incremental sync is timed (default 600)")
    parser.add_argument("--fairness-window-days", type=float, default=0.9,
                        help="fairness: the incremental sync's window in days, under one (default 0.9)")
    parser.add_argument("--fairness-probe", action="store_true",
                        help="fairness: probe workers on every queue (one layout), and where the small sync's "
                             "single event sends spend their time, alone and contended")
    parser.add_argument("--fairness-topologies", default="shared,split",
                        help="fairness: worker layouts, comma-separated: shared (every worker on every queue), "
                             "split (backfill workers apart, niced) (default shared,split)")
    parser.add_argument("--scale-orders", default="10000,100000",
                        help="scale: backfill sizes, comma-separated (default 10000,100000)")
    parser.add_argument("--profile", action="store_true", help="add a cProfile phase to the overhead measurement")
    parser.add_argument("--probe-backfill", action="store_true",
                        help="run the backfill once more with probe workers and print its breakdown")
    parser.add_argument("--database-url", metavar="URL",
                        help="a PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432/postgres): each stack gets "
                             "a throwaway database on it, dropped at the end (default: the stack's own SQLite file)")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the worker logs of each part to DIR/<part>")
    parser.add_argument("--phase-timeout", type=float, default=180, help="seconds per drain phase (default 180)")
    parser.add_argument("--backfill-timeout", type=float, default=600, help="seconds per backfill run (default 600)")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    args.scale_orders = [int(n) for n in args.scale_orders.split(",") if n.strip()]
    args.fairness_topologies = [t.strip() for t in args.fairness_topologies.split(",") if t.strip()]
    if not set(args.fairness_topologies) <= {"shared", "split"}:
        parser.error("--fairness-topologies takes shared and/or split")
    unknown = set(args.parts) - set(PARTS)
    if unknown or not args.parts:
        parser.error(f"--parts: unknown {sorted(unknown)}" if unknown else "--parts is empty")
    if not (args.noop_tasks >= 2 and 2 <= args.event_tasks <= MAX_EVENT_PHASE
            and all(n == 0 or 2 <= n <= MAX_EVENT_PHASE for n in (args.probe_tasks, args.post_tasks))):
        parser.error(f"need --noop-tasks >= 2, 2 <= --event-tasks <= {MAX_EVENT_PHASE}, --post-tasks and --probe-tasks 0 or "
                     f"2..{MAX_EVENT_PHASE} (an event phase stays inside the shared limiter's 3,500/min budget)")
    if args.profile and not args.probe_tasks:
        parser.error("--profile needs --probe-tasks > 0")
    if min(args.rounds, args.concurrency, args.orders, args.backfill_workers) < 1:
        parser.error("--rounds, --concurrency, --orders and --backfill-workers must be >= 1")
    return args


def _terminate(signum, frame):
    log.warning("signal %d: stopping everything started", signum)
    raise SystemExit(128 + signum)  # unwinds through every finally: workers, Redis and stand-ins are stopped


def _clean(value):
    """JSON-ready: floats rounded, NaN as null."""
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started with SIGINT ignored
    result: dict = {"case": "pipeline"}
    tables = []
    try:
        if "overhead" in args.parts:
            m = measure_overhead(args)
            tables.append(overhead_table(m, args))
            result.update({
                "task_overhead_ratio": m["ratio"]["median"],
                "noop_tasks_per_s": m["noop_tasks_per_s"]["median"],
                "event_tasks_per_s": m["event_tasks_per_s"]["median"],
                "noop_ms_per_task": m["noop_ms_per_task"], "event_ms_per_task": m["event_ms_per_task"],
                "ratio_target": TARGET_RATIO, "ratio_target_met": m["ratio"]["median"] <= TARGET_RATIO,
                "post_tasks_per_s": (m["post_tasks_per_s"] or {}).get("median"),
                "post_over_noop_ratio": (m["post_over_noop"] or {}).get("median"),
                "event_over_post_ratio": (m["event_over_post"] or {}).get("median"),
            })
        if "backfill" in args.parts:
            b = measure_backfill(args)
            tables.append(backfill_table(b))
            first = b["rounds"][0]
            result.update({
                "bulk_events_per_s": b["bulk_events_per_s"]["median"],
                "e2e_events_per_s": b["e2e_events_per_s"]["median"],
                "bulk_over_single_ceiling": b["bulk_events_per_s"]["median"] / first["single_event_ceiling_per_s"],
                "bulk_http_429": sum(r["http_429"] for r in b["rounds"]),
                "bulk_target": TARGET_BULK_EVENTS_PER_S,
                "bulk_target_met": b["bulk_events_per_s"]["median"] >= TARGET_BULK_EVENTS_PER_S,
            })
        if "fairness" in args.parts:
            f = measure_fairness(args, bench_database, activate,
                                 probe=(start_probe_workers, small_sync_breakdown) if args.fairness_probe else None)
            tables.append(fairness_table(f))
            result.update({"fairness_ratio": f["ratio"], "fairness_target": f["target"],
                           "fairness_ratio_by_topology": {k: v["ratio"] for k, v in f["topologies"].items()},
                           "fairness_target_met": f["ratio"] <= f["target"], "fairness": f})
        if "scale" in args.parts:
            sc = measure_scale(args, backfill_once)
            tables.append(scale_table(sc))
            result.update({"scale": sc, "scale_rss_ratio": sc["rss_ratio"],
                           "scale_rss_target_met": sc["rss_ratio"] is not None and sc["rss_ratio"] <= sc["target_rss_ratio"]})
        if "overhead" in args.parts:
            result["overhead"] = {"concurrency": args.concurrency, "orders": m["orders"], "ratio": m["ratio"],
                                  "rounds": m["rounds"], "probe": m["probe"], "profile": m["profile"]}
        if "backfill" in args.parts:
            result["backfill"] = b
    except KeyboardInterrupt:
        log.warning("interrupted; everything started has been stopped")
        return 130
    result["rounds"] = args.rounds
    result["env"] = environment(args)
    print("\n\n".join(tables), flush=True)
    print(json.dumps(_clean(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
