"""The beat's heartbeat in Redis, so that any host can tell whether exactly one beat runs.

Celery beat keeps its state in a local schedule file no other host can read, and it
sends no events. So each beat process writes ``ksync:beat:<host>:<pid>`` (JSON: host,
pid, seen) when it starts and every time it sends a task, which is at least once a
minute (the sweep); the key expires ``TTL_SECONDS`` after the last write. ``ksync
doctor`` counts the keys: none means no beat, two or more means a beat too many.

Only the beat process writes: ``beat_init`` marks it. Writing is best effort, never in
the way of sending a task.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import time

from celery import signals

log = logging.getLogger(__name__)

KEY_PREFIX = "ksync:beat:"
#: The beat sends the sweep every 60 s: three missed minutes mean it is gone.
TTL_SECONDS = 180

_client = None


def key() -> str:
    return f"{KEY_PREFIX}{socket.gethostname()}:{os.getpid()}"


def beat() -> None:
    """Record that this beat process is alive now."""
    try:
        _client.set(key(), json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "seen": time.time()}),
                    ex=TTL_SECONDS)
    except Exception:
        log.debug("beat heartbeat not written", exc_info=True)


def _forget() -> None:
    try:
        _client.delete(key())
    except Exception:
        pass


@signals.beat_init.connect
def _beat_started(**kwargs) -> None:
    global _client
    import redis

    from settings import get_settings

    _client = redis.Redis.from_url(get_settings().redis_url, socket_connect_timeout=2, socket_timeout=2)
    beat()
    atexit.register(_forget)  # a beat stopped cleanly is not counted for the rest of the TTL


@signals.before_task_publish.connect
def _beat_sends(**kwargs) -> None:
    if _client is not None:
        beat()
