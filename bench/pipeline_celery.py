"""A throwaway Celery app for ``bench/pipeline.py``: the two baseline tasks.

- ``bench.pipeline.noop`` does nothing but record its completion: one Redis
  round trip (a script that appends Redis ``TIME`` to a list, whose length is
  the completion count).
- ``bench.pipeline.post_event`` makes only the Klaviyo call of
  ``ksync.track_event``: the same planned payload (passed in the message), the
  same ``load_event``, ksync's per-process Klaviyo client with the shared Redis
  limiter, and nothing else (no claim, no "sent" markers, no database).

The app reads ksync's own ``celeryconfig`` (prefork, prefetch 1, ``acks_late``,
``reject_on_worker_lost``, events on, results off, the same broker) and imports
``workers.app`` so the same signal handlers run around every task (ksync's log
format, task/run context in ``task_prerun``/``task_postrun``, fresh clients in
every pool child). Only the task bodies differ from ksync's ``track_event``.

The bench starts it exactly like a ksync worker (``sandbox.stack.worker``'s
arguments) with ``-A bench.pipeline_celery -Q bench_pipeline``. Nothing here is
part of ksync's own workers.
"""

from __future__ import annotations

from celery import Celery

import workers.app  # noqa: F401  (ksync's signal handlers: identical per-task hooks and per-child set-up)
from workers import clients
from workers.payloads import load_event

NOOP_TASK = "bench.pipeline.noop"
POST_TASK = "bench.pipeline.post_event"
BENCH_QUEUE = "bench_pipeline"
#: One entry per completed no-op: Redis TIME as "<s>.<µs>".
DONE_KEY = "bench:pipeline:noop:done"
_STAMP = """
local t = redis.call('TIME')
return redis.call('RPUSH', KEYS[1], t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
"""

app = Celery("ksync_bench_pipeline")
app.config_from_object("celeryconfig")
app.conf.update(task_routes={NOOP_TASK: {"queue": BENCH_QUEUE}, POST_TASK: {"queue": BENCH_QUEUE}},
                beat_schedule={})

_scripts: dict = {}


def _stamp_script():
    client = clients.redis_client()  # per process; reset after fork by workers.app
    script = _scripts.get(id(client))
    if script is None:
        _scripts.clear()
        script = _scripts[id(client)] = client.register_script(_STAMP)
    return script


@app.task(name=NOOP_TASK, bind=True, max_retries=None)
def noop(self, n: int) -> None:
    """Nothing but one Redis round trip that records the completion time."""
    _stamp_script()(keys=[DONE_KEY])


@app.task(name=POST_TASK, bind=True, max_retries=None)
def post_event(self, payload: dict) -> None:
    """Only the Klaviyo call of ``ksync.track_event``: load the planned payload, POST it through ksync's client."""
    clients.klaviyo().track_event(load_event(payload))
