"""A throwaway Celery app for ``bench/ratelimit.py``: Celery's own ``rate_limit`` as the only limiter.

One task, ``bench.ratelimit.post_event``, posts one event to the Klaviyo
stand-in. Its ``rate_limit`` is Celery's per-worker token bucket (capacity 1),
set to the same steady rate the stand-in enforces, so K workers offer about
K x that rate. The client itself does not limit (``NoRateLimit``) and does not
retry a 429 (``max_429=0``): every 429 is served and counted by the stand-in.

The bench starts the workers as::

    python -m celery -A bench.ratelimit_celery worker -c 1 --prefetch-multiplier 1 ...

and configures them through the environment (read at import):
``KSYNC_BENCH_BROKER_URL``, ``KSYNC_BENCH_RATE_LIMIT`` (e.g. ``"300/m"``),
``KSYNC_BENCH_KLAVIYO_URL`` and ``KSYNC_BENCH_API_KEY``. Nothing here is part
of ksync's own workers.
"""

from __future__ import annotations

import os
from functools import lru_cache

from celery import Celery

from klaviyo.client import KlaviyoClient, RetryPolicy
from klaviyo.exceptions import KlaviyoRateLimitError
from klaviyo.limits import NoRateLimit
from klaviyo.models import KlaviyoEvent, KlaviyoProfile

TASK_NAME = "bench.ratelimit.post_event"
#: The queue the backlog waits in; workers start on IDLE_QUEUE and are told to consume it all at once.
WORK_QUEUE = "bench_ratelimit"
IDLE_QUEUE = "bench_ratelimit_idle"
#: No 429, 5xx or network retry in the client: one task, one request.
NO_RETRY = RetryPolicy(max_429=0, max_5xx=0, max_network=0)


def bench_event(n: int) -> KlaviyoEvent:
    """The n-th benchmark event (one profile per event, so nothing is deduplicated)."""
    return KlaviyoEvent(metric_name="Bench Event", profile=KlaviyoProfile(email=f"bench+{n}@example.com"),
                        properties={"n": n}, unique_id=f"bench-{n}")


def make_app(broker_url: str, rate_limit: str | None) -> Celery:
    """The Celery app with its one task; ``rate_limit`` is Celery's per-worker limit, e.g. ``"300/m"``."""
    app = Celery("ksync_bench_ratelimit", broker=broker_url)
    app.conf.update(
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=WORK_QUEUE,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )

    @app.task(name=TASK_NAME, rate_limit=rate_limit, ignore_result=True)
    def post_event(n: int) -> None:
        try:
            _client().track_event(bench_event(n))
        except KlaviyoRateLimitError:
            pass  # served and counted by the stand-in; a 429 is a result here, not a failure

    return app


@lru_cache(maxsize=1)
def _client() -> KlaviyoClient:
    return KlaviyoClient(os.environ["KSYNC_BENCH_API_KEY"], base_url=os.environ["KSYNC_BENCH_KLAVIYO_URL"],
                         rate_limiter=NoRateLimit(), retry=NO_RETRY, timeout=10)


app = make_app(os.environ.get("KSYNC_BENCH_BROKER_URL", "memory://"), os.environ.get("KSYNC_BENCH_RATE_LIMIT"))
