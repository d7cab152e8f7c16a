"""Errors at the CLI boundary: one line a person can act on, the right exit status, never a traceback.

Each test is a mistake an operator makes (a database never migrated, a URL without its
scheme, a missing credential, no worker running, a retry of a run that had no failures)
and pins the one line ksync answers with.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time

import pytest

from sandbox.stack import ROOT
from tests.cli.support import assert_one_line_error, ksync

CREDENTIALS = {"KLAVIYO_API_KEY": "pk_test_cli_0123456789", "TIKTOK_APP_KEY": "app", "TIKTOK_APP_SECRET": "secret",
               "TIKTOK_ACCESS_TOKEN": "token", "TIKTOK_SHOP_CIPHER": "ROW_shop"}


def env_with(**values) -> dict:
    """This environment without any ksync setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLAVIYO_", "TIKTOK_", "KSYNC_", "FLOWER_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return env | values


def runs_in(database_url: str) -> list[str]:
    from db import history
    from db.engine import session_scope

    with session_scope(database_url) as session:
        return [run.id for run in history.list_runs(session)]


# -- the database ----------------------------------------------------------------------------------


def test_a_database_without_migrations_says_run_ksync_db_upgrade(fresh_database):
    for command in (["history"], ["show", "abcd"], ["sync", "--days-back", "1"]):
        result = ksync(*command, env=env_with(DATABASE_URL=fresh_database, **CREDENTIALS))
        assert_one_line_error(result, "no ksync tables", "run `ksync db upgrade`")


def test_a_database_migrated_by_a_newer_ksync_says_so(migrated_database):
    from sqlalchemy import text

    from db.engine import get_engine

    with get_engine(migrated_database).begin() as conn:
        conn.execute(text("update alembic_version set version_num = '0099_from_the_future'"))
    result = ksync("history", env=env_with(DATABASE_URL=migrated_database))
    assert_one_line_error(result, "revision 0099_from_the_future", "newer than this ksync")


@pytest.mark.parametrize("url", ["mysql://ksync:pw-mysql@127.0.0.1/ksync", "ksync.sqlite3", "oracle://u:pw-ora@h/x"])
def test_a_database_url_ksync_does_not_support_says_what_is_accepted(url):
    line = assert_one_line_error(ksync("history", env=env_with(DATABASE_URL=url)), "DATABASE_URL",
                                 "postgresql://", "sqlite:///")
    assert "pw-" not in line


# -- Redis -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["127.0.0.1:6379", "localhost", "ops:pw-redis@127.0.0.1:6379/0", "http://127.0.0.1:6379"])
def test_a_redis_url_without_its_scheme_says_what_is_accepted(migrated_database, url):
    env = env_with(DATABASE_URL=migrated_database, REDIS_URL=url, **CREDENTIALS)
    for command in (["sync", "--days-back", "1"], ["limits"]):
        line = assert_one_line_error(ksync(*command, env=env), "REDIS_URL", "redis://")
        assert "pw-redis" not in line
    assert runs_in(migrated_database) == []


# -- ksync sync refuses a run that cannot succeed --------------------------------------------------


@pytest.mark.parametrize("missing", [["KLAVIYO_API_KEY"], ["TIKTOK_APP_SECRET", "TIKTOK_ACCESS_TOKEN"],
                                     ["TIKTOK_APP_KEY"]])
def test_sync_refuses_to_queue_a_run_without_its_credentials_and_names_them(migrated_database, redis_url, missing):
    given = {k: v for k, v in CREDENTIALS.items() if k not in missing}
    result = ksync("sync", "--days-back", "1", env=env_with(DATABASE_URL=migrated_database, REDIS_URL=redis_url,
                                                            **given))
    line = assert_one_line_error(result, *missing, "not set")
    assert all(name not in line for name in set(CREDENTIALS) - set(missing) - {"TIKTOK_SHOP_CIPHER"})
    assert runs_in(migrated_database) == []


def test_a_dry_run_still_needs_the_klaviyo_key_that_names_its_account(migrated_database, redis_url):
    # A connection is a shop joined to a Klaviyo account: even a dry run plans against that account's
    # ledger (what it already holds), so the key that names the account is needed.
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    given = {k: v for k, v in CREDENTIALS.items() if k != "KLAVIYO_API_KEY"}
    result = ksync("sync", "--days-back", "1", "--dry-run",
                   env=env_with(DATABASE_URL=migrated_database, REDIS_URL=redis_url, **given))
    assert result.returncode == 1 and "KLAVIYO_API_KEY" in result.stderr, result.stdout + result.stderr
    assert len(runs_in(migrated_database)) == 0


def test_sync_wait_says_within_seconds_that_no_worker_consumes_the_queues(migrated_database, redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # no worker of this session is left on it
    env = env_with(DATABASE_URL=migrated_database, REDIS_URL=redis_url, **CREDENTIALS)
    lines: queue.Queue = queue.Queue()
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "sync", "--days-back", "1", "--wait"], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    try:
        line = lines.get(timeout=20)  # without a warning, --wait would wait in silence
        elapsed = time.monotonic() - started
    except queue.Empty:
        line, elapsed = "", None
    finally:
        process.kill()
        process.wait(10)
    assert "no worker is consuming any of the sync, realtime, profiles, events, bulk, backfill queues" in line, line
    assert "celery -A workers.app worker" in line
    assert elapsed < 15, elapsed  # start-up, queueing and a 1.5 s ask of the workers


# -- retry-failed ----------------------------------------------------------------------------------


def test_retry_failed_on_a_run_with_nothing_failed_says_so_and_queues_nothing(migrated_database, redis_url):
    from db import history
    from db.engine import session_scope

    with session_scope(migrated_database) as session:
        run = history.create_run(session, shop="ROW_shop", sync_type="manual", trigger="cli")
        history.insert_items(session, run.id, [{"kind": "event", "key": "Placed Order|1", "status": "succeeded"}])
        run.status, run.phase = "succeeded", "finished"
        run_id = run.id
    result = ksync("retry-failed", run_id[:8], env=env_with(DATABASE_URL=migrated_database, REDIS_URL=redis_url,
                                                            **CREDENTIALS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"nothing to retry: run {run_id[:8]} has no failed records"
    assert runs_in(migrated_database) == [run_id]


# -- the command itself ----------------------------------------------------------------------------


def test_version():
    result = ksync("--version", env=env_with())
    assert result.returncode == 0 and re.fullmatch(r"ksync, version \d+\.\d+\.\d+\n", result.stdout), result.stdout
