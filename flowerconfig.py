"""Flower settings, read by ``ksync flower`` and by ``celery -A workers.app flower`` from the project root.

Flower must not run without authentication: its API can revoke tasks and shut
workers down. Basic auth comes from ``FLOWER_BASIC_AUTH`` (``user:password``,
comma-separate several), read like every ksync setting: the environment first,
then ``.env`` in the working directory (the README tells people to put it there).
Without it Flower refuses to start unless ``KSYNC_FLOWER_UNAUTHENTICATED=1`` says
this is a trusted, local run. ``/metrics`` (Prometheus) and ``/healthcheck`` stay
open, as Flower designs them.
"""

import os
import sys

from dotenv import dotenv_values

from settings import get_settings

_dotenv = dotenv_values(".env") if os.path.isfile(".env") else {}


def _setting(name: str, default: str = "") -> str:
    """A Flower-only variable, looked up as settings.py looks up the others: environment, then .env."""
    return (os.environ.get(name) or _dotenv.get(name) or default).strip()


_auth = get_settings().flower_basic_auth.strip()
if _auth:
    basic_auth = [pair.strip() for pair in _auth.split(",") if pair.strip()]
elif _setting("KSYNC_FLOWER_UNAUTHENTICATED") != "1":
    sys.exit("ksync: FLOWER_BASIC_AUTH is not set (user:password); refusing to start Flower without auth. "
             "Put it in .env or the environment, or set KSYNC_FLOWER_UNAUTHENTICATED=1 on a trusted machine.")

address = _setting("FLOWER_ADDRESS", "127.0.0.1")
port = int(_setting("FLOWER_PORT", "5555"))
purge_offline_workers = 300
max_tasks = 50000
