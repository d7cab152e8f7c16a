"""The Celery app: ``celery -A workers.app worker -Q realtime,sync,profiles,events,bulk,backfill``.

Configuration comes from ``celeryconfig`` (built from the settings module).
Signals give every log line our format, run id and task id, and give each
prefork child its own database engine and clients.
"""

from __future__ import annotations

import logging

from celery import Celery, signals

import logs
from settings import get_settings

def _survive_broker_restarts() -> None:
    """Keep a worker alive when Redis goes away while it holds an unacknowledged message.

    With Celery 5.7 / kombu 5.7, losing the broker mid-task makes the consumer close
    the broken connection; closing the channel tries to restore unacked messages
    through a transport whose client is already gone, ``_connparams`` raises
    ``AttributeError`` (``'NoneType' object has no attribute 'hostname'``), which
    Celery treats as unrecoverable: the worker exits (reproduced by
    ``tests/faults/test_outages.py::test_redis_restarted_mid_run``). Raising a Redis
    ``ConnectionError`` instead lets Celery ignore it, as it ignores every
    connection error at that point, and reconnect. Nothing is lost: the message
    stays in Redis's unacked index and comes back after the visibility timeout.
    """
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.Channel._connparams
    if getattr(original, "_ksync_guard", False):
        return

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise kombu_redis.redis.exceptions.ConnectionError("broker connection already closed")
        return original(self, asynchronous=asynchronous)

    _connparams._ksync_guard = True
    kombu_redis.Channel._connparams = _connparams


_survive_broker_restarts()

app = Celery("ksync", include=["workers.tasks"])
app.config_from_object("celeryconfig")


@signals.setup_logging.connect
def _setup_logging(**kwargs) -> None:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)


@signals.after_setup_task_logger.connect
@signals.after_setup_logger.connect
def _our_format(logger=None, **kwargs) -> None:
    if logger is not None:
        logs.install_on(logger, get_settings().log_format)


@signals.worker_process_init.connect
def _fresh_process(**kwargs) -> None:
    """A forked pool child must not share its parent's sockets (database, Redis, HTTP)."""
    from db.engine import dispose_engines
    from workers import clients

    dispose_engines()
    clients.reset()


@signals.task_prerun.connect
def _log_context(task_id=None, task=None, args=None, kwargs=None, **extra) -> None:
    logs.task_id_var.set(task_id)
    run_id = (kwargs or {}).get("run_id") or (args[0] if args and isinstance(args[0], str) and len(args[0]) == 36 else None)
    logs.run_id_var.set(run_id)


@signals.task_postrun.connect
def _clear_log_context(**kwargs) -> None:
    logs.task_id_var.set(None)
    logs.run_id_var.set(None)


from . import heartbeat  # noqa: E402,F401  (the beat's heartbeat in Redis, for `ksync doctor`)

log = logging.getLogger("workers")
