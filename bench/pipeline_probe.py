"""ksync's own Celery app with a timing probe, for the breakdowns of ``bench/pipeline.py``.

    celery -A bench.pipeline_probe worker -Q events ...

Same app, same tasks, same configuration as ``celery -A workers.app``: this
module imports ``workers.app`` and only wraps (at import, before the pool forks)
the steps the sync goes through, timing each in the pool child that runs it,
both wall time (``perf_counter``) and the child's CPU time (``thread_time``):

    task (prerun -> postrun)              Celery's trace around the task function
      delivery.send_event / send_event_batch / send_profile_batch   the task body ("body")
        delivery._claim                   DB: UPDATE ... claim, SELECT, refresh each item, get run
        delivery._already_sent            Redis MGET of the "sent" markers
        delivery.load_event               payload dict -> KlaviyoEvent (once per event)
        KlaviyoClient.track_event / bulk_create_events ("client"), of which:
          RedisRateLimiter.acquire          the shared limiter (one Lua call)
          requests.Session.request          the HTTP round trip (the stand-in's time included)
        delivery._set_markers             Redis SET of the "sent" markers
        delivery.finish_if_done           DB: the roll-up check (an exists probe on open items)
        (rest of the body)                DB: succeed_items + ledger.mark_delivered + commit
      KlaviyoClient.wait_for_bulk_import  polling a profile import job (sleeps)
      delivery._finish_import_job         the job's outcome into the database, of which
                                          history.succeed_items and ledger.record_profiles
                                          (also counted inside the send tasks, with
                                          ledger.mark_delivered)
      sync.read_window                    paging TikTok's orders
      sync.record_plan                    planning and recording, of which known_state,
                                          plan_window, ledger.upsert_orders, history.insert_items
      tasks.dispatch                      enqueueing the send tasks

Sums are kept per task name. After every task the child adds them to the Redis
hash ``PROBE_KEY`` (one pipelined round trip, itself timed as ``probe.flush``),
so the probe costs a little throughput; the bench reports the probed drain rate
beside the clean one. Fields: ``<task>|<step>|wall``, ``|cpu`` (seconds) and ``|n``.

With ``KSYNC_BENCH_PROFILE_DIR`` set, every pool child also runs ``cProfile``
and writes ``<dir>/prof-<pid>.pstats`` every ``PROFILE_DUMP_EVERY`` tasks.
"""

from __future__ import annotations

import cProfile
import functools
import os
import time
from collections import defaultdict
from pathlib import Path

import requests
from celery import signals

from db import history, ledger
from klaviyo.client import KlaviyoClient
from workers import clients, delivery, sync, tasks
from workers.app import app  # noqa: F401  (the app the worker runs: ksync's, unchanged)
from workers.ratelimit import RedisRateLimiter

PROBE_KEY = "bench:pipeline:probe"
PROFILE_DUMP_EVERY = 100

#: (step, owner, attribute): what is wrapped.
STEPS = (
    ("body", delivery, "send_event"),
    ("body", delivery, "send_event_batch"),
    ("body", delivery, "send_profile_batch"),
    ("claim", delivery, "_claim"),
    ("already_sent", delivery, "_already_sent"),
    ("load_event", delivery, "load_event"),
    ("client", KlaviyoClient, "track_event"),
    ("client", KlaviyoClient, "bulk_create_events"),
    ("limiter", RedisRateLimiter, "acquire"),
    ("http", requests.Session, "request"),
    ("set_markers", delivery, "_set_markers"),
    ("finish_if_done", delivery, "finish_if_done"),
    ("wait_import_job", KlaviyoClient, "wait_for_bulk_import"),
    ("read_window", sync, "read_window"),
    ("record_plan", sync, "record_plan"),
    ("known_state", sync, "known_state"),
    ("plan_window", sync, "plan_window"),
    ("upsert_orders", ledger, "upsert_orders"),
    ("insert_items", history, "insert_items"),
    ("dispatch", tasks, "dispatch"),
    ("finish_import_job", delivery, "_finish_import_job"),
    ("succeed_items", history, "succeed_items"),
    ("mark_delivered", ledger, "mark_delivered"),
    ("record_profiles", ledger, "record_profiles"),
)

_wall: dict = defaultdict(float)
_cpu: dict = defaultdict(float)
_counts: dict = defaultdict(int)
_state: dict = {}


def _timed(step: str, func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return func(*args, **kwargs)
        finally:
            _wall[step] += time.perf_counter() - wall
            _cpu[step] += time.thread_time() - cpu
            _counts[step] += 1
    wrapper.__bench_probe__ = True
    return wrapper


def install() -> None:
    for step, owner, name in STEPS:
        current = getattr(owner, name)
        if not getattr(current, "__bench_probe__", False):
            setattr(owner, name, _timed(step, current))


install()


@signals.worker_process_init.connect
def _child_start(**kwargs) -> None:
    _wall.clear()
    _cpu.clear()
    _counts.clear()
    _state.clear()
    directory = os.environ.get("KSYNC_BENCH_PROFILE_DIR")
    if directory:
        _state["profile_path"] = Path(directory) / f"prof-{os.getpid()}.pstats"
        _state["profiler"] = cProfile.Profile()
        _state["profiler"].enable()


@signals.task_prerun.connect
def _task_start(task=None, **kwargs) -> None:
    _state["task"] = (getattr(task, "name", "?"), time.perf_counter(), time.thread_time())


@signals.task_postrun.connect
def _task_end(**kwargs) -> None:
    name, wall, cpu = _state.pop("task", ("?", None, None))
    if wall is not None:
        _wall["task"] += time.perf_counter() - wall
        _cpu["task"] += time.thread_time() - cpu
        _counts["task"] += 1
    _state["tasks"] = _state.get("tasks", 0) + 1
    profiler = _state.get("profiler")
    if profiler is not None and _state["tasks"] % PROFILE_DUMP_EVERY == 0:
        profiler.disable()
        profiler.dump_stats(_state["profile_path"])
        profiler.enable()
    flush_started = time.perf_counter()
    try:
        pipe = clients.redis_client().pipeline(transaction=False)
        for step, seconds in _wall.items():
            pipe.hincrbyfloat(PROBE_KEY, f"{name}|{step}|wall", seconds)
            pipe.hincrbyfloat(PROBE_KEY, f"{name}|{step}|cpu", _cpu[step])
            pipe.hincrby(PROBE_KEY, f"{name}|{step}|n", _counts[step])
        pipe.hincrbyfloat(PROBE_KEY, f"{name}|probe.flush|wall", time.perf_counter() - flush_started)
        pipe.hincrby(PROBE_KEY, f"{name}|probe.flush|n", 1)
        pipe.execute()
    finally:
        _wall.clear()
        _cpu.clear()
        _counts.clear()
