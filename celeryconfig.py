"""Celery configuration for ksync, built from the one settings module.

At-least-once delivery on Redis: late acks, requeue when a worker dies, one
message reserved per process, a visibility timeout above the longest task and
the longest countdown (tasks are cut off at ``task_time_limit``; retries wait at
most ``MAX_RETRY_COUNTDOWN`` seconds). ``python -m celeryconfig`` prints it.
"""

from settings import get_settings

_s = get_settings()

#: Longest a send task may run: 110 s, or less when the visibility timeout is short (a task must end,
#: and its retry countdown run out, well before the broker hands its message to another worker).
#: A live task keeps its claims for as long as it runs: workers/leases.py renews them.
TASK_TIME_LIMIT_SECONDS = max(10, min(110, _s.visibility_timeout_seconds - 20))
TASK_SOFT_TIME_LIMIT_SECONDS = TASK_TIME_LIMIT_SECONDS - 5

#: Reading and planning a large window takes longer than sending one record; it claims no
#: records (only the shop's lock, extended every page), so it may use half the visibility timeout.
SYNC_TIME_LIMIT_SECONDS = max(TASK_TIME_LIMIT_SECONDS, _s.visibility_timeout_seconds // 2)

if _s.visibility_timeout_seconds < TASK_TIME_LIMIT_SECONDS + 3 * 5:
    raise ValueError(f"KSYNC_VISIBILITY_TIMEOUT ({_s.visibility_timeout_seconds}s) must exceed the task time limit "
                     f"({TASK_TIME_LIMIT_SECONDS}s) with room for retry countdowns")

broker_url = _s.redis_url
broker_connection_retry_on_startup = True
broker_transport_options = {
    "visibility_timeout": _s.visibility_timeout_seconds,
    "unacked_restore_interval": 10,
    # A free worker process takes the first queue in its -Q list that has a message (kombu's
    # "priority" order; the default takes them in turn): realtime, sync, profiles, events, bulk,
    # backfill. A backfill gets the processes nothing else wants, so another connection's
    # incremental sync is not sent at half speed while it runs (bench/pipeline.py --parts fairness).
    "queue_order_strategy": "priority",
}
result_backend = None
task_ignore_result = True

task_serializer = "json"
accept_content = ["json"]
event_serializer = "json"
timezone = "UTC"
enable_utc = True

task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure = True
task_acks_on_timeout = True
worker_prefetch_multiplier = 1
worker_soft_shutdown_timeout = 8
task_time_limit = TASK_TIME_LIMIT_SECONDS
task_soft_time_limit = TASK_SOFT_TIME_LIMIT_SECONDS
worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False
worker_redirect_stdouts = False

task_annotations = {
    "ksync.sync_shop": {"time_limit": SYNC_TIME_LIMIT_SECONDS, "soft_time_limit": SYNC_TIME_LIMIT_SECONDS - 10},
    "ksync.retry_failed": {"time_limit": SYNC_TIME_LIMIT_SECONDS, "soft_time_limit": SYNC_TIME_LIMIT_SECONDS - 10},
}

task_default_queue = "sync"
#: Queues a task reaches by its run's lane rather than by its route (workers/tasks.py: fairness).
LANE_QUEUES = ("backfill", "realtime")
task_routes = {
    "ksync.sync_shop": {"queue": "sync"},
    "ksync.retry_failed": {"queue": "sync"},
    "ksync.finish_run": {"queue": "sync"},
    "ksync.sweep": {"queue": "sync"},
    "ksync.dispatch_due": {"queue": "sync"},
    "ksync.sync_orders": {"queue": "realtime"},
    "ksync.refresh_authorization": {"queue": "sync"},
    "ksync.upsert_profile": {"queue": "profiles"},
    "ksync.track_event": {"queue": "events"},
    "ksync.bulk_import_profiles": {"queue": "bulk"},
    "ksync.bulk_create_events": {"queue": "bulk"},
    "ksync.dispatch_catalog": {"queue": "sync"},
    "ksync.sync_catalog": {"queue": "sync"},
    "ksync.replay_catalog": {"queue": "sync"},
    "ksync.poll_stock": {"queue": "sync"},
}

#: Beat runs three light tasks. ``dispatch_due`` enqueues the connections whose sync is due (so new,
#: paused and resumed connections take effect without restarting beat); ``sweep`` finishes runs
#: and re-sends lost work; ``dispatch_catalog`` enqueues catalog syncs and stock polls. All three every
#: KSYNC_SWEEP_SECONDS.
beat_schedule = {
    "ksync.sweep": {"task": "ksync.sweep", "schedule": float(_s.sweep_interval_seconds),
                    "options": {"expires": max(5, _s.sweep_interval_seconds - 1)}},
    "ksync.dispatch_due": {"task": "ksync.dispatch_due", "schedule": float(_s.sweep_interval_seconds),
                           "options": {"expires": max(5, _s.sweep_interval_seconds - 1)}},
    # catalog syncs (each connection's sync_interval_seconds) and stock polls (KSYNC_STOCK_POLL_SECONDS)
    "ksync.dispatch_catalog": {"task": "ksync.dispatch_catalog", "schedule": float(_s.sweep_interval_seconds),
                               "options": {"expires": max(5, _s.sweep_interval_seconds - 1)}},
}

if __name__ == "__main__":
    import pprint

    pprint.pprint({k: v for k, v in globals().items() if k.islower() and not k.startswith("_")})
