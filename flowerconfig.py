"""Flower settings, read by ``celery -A workers.app flower`` when started from the project root.

Flower must not run without authentication: its API can revoke tasks and shut
workers down. Basic auth comes from ``FLOWER_BASIC_AUTH`` (``user:password``,
comma-separate several); without it Flower refuses to start unless
``KSYNC_FLOWER_UNAUTHENTICATED=1`` says this is a trusted, local run. ``/metrics``
(Prometheus) and ``/healthcheck`` stay open, as Flower designs them.
"""

import os
import sys

_auth = os.environ.get("FLOWER_BASIC_AUTH", "").strip()
if _auth:
    basic_auth = [pair.strip() for pair in _auth.split(",") if pair.strip()]
elif os.environ.get("KSYNC_FLOWER_UNAUTHENTICATED") != "1":
    sys.exit("ksync: FLOWER_BASIC_AUTH is not set (user:password); refusing to start Flower without auth. "
             "Set KSYNC_FLOWER_UNAUTHENTICATED=1 to allow it on a trusted machine.")

address = os.environ.get("FLOWER_ADDRESS", "127.0.0.1")
port = int(os.environ.get("FLOWER_PORT", "5555"))
purge_offline_workers = 300
max_tasks = 50000
