"""``ksync doctor`` against real stacks: one line per check, OK or what to do, and its exit status."""

from __future__ import annotations

import os
import re

from sandbox.redis import free_port
from tests.cli.support import ksync


def lines(result) -> dict[str, tuple[str, str]]:
    """``{check: (OK|FAIL, detail)}`` from the doctor's output."""
    found = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(\w+)\s+(OK|FAIL)\s+(.*)$", line)
        if match:
            found[match.group(1)] = (match.group(2), match.group(3))
    return found


def test_doctor_says_ok_for_each_part_of_a_healthy_stack(make_stack):
    stack = make_stack(orders=10, workers=1)
    stack.add_beat()
    result = ksync("doctor", env=stack.env)
    report = lines(result)
    assert list(report) == ["config", "database", "redis", "workers", "beat", "klaviyo", "tiktok"], result.stdout
    assert all(status == "OK" for status, _ in report.values()), result.stdout
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert report["workers"][1].startswith("sync: 1, profiles: 1, events: 1, bulk: 1")
    assert re.match(r"one beat \(\S+:\d+\), seen \d+ s ago", report["beat"][1])
    assert stack.tiktok.shop_cipher in report["tiktok"][1]
    assert stack.env["KLAVIYO_API_KEY"] not in result.stdout and stack.env["TIKTOK_APP_SECRET"] not in result.stdout


def test_doctor_says_what_to_do_when_workers_beat_and_klaviyo_are_wrong(make_stack):
    stack = make_stack(orders=10, workers=0)
    stack.klaviyo.revoke_key()
    stack.add_beat("beat1")
    stack.add_beat("beat2")
    result = ksync("doctor", env=stack.env)
    report = lines(result)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert report["config"][0] == report["database"][0] == report["redis"][0] == report["tiktok"][0] == "OK"
    assert report["workers"] == ("FAIL", "no worker is consuming any of the sync, profiles, events, bulk, backfill queues; "
                                         "start one: celery -A workers.app worker -Q sync,profiles,events,bulk,backfill -E")
    assert report["beat"][0] == "FAIL" and report["beat"][1].startswith("2 beats are running")
    assert report["klaviyo"] == ("FAIL", "Klaviyo refused the key (401): check KLAVIYO_API_KEY and its scopes")


def test_doctor_on_an_unmigrated_database_and_an_unreachable_redis(fresh_database):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLAVIYO_", "TIKTOK_", "KSYNC_"))}
    env.update(DATABASE_URL=fresh_database, REDIS_URL=f"redis://:pw-doctor@127.0.0.1:{free_port()}/0")
    result = ksync("doctor", env=env)
    report = lines(result)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert report["config"][0] == "FAIL" and "KLAVIYO_API_KEY" in report["config"][1]
    assert report["database"][1].endswith("has no ksync tables yet: run `ksync db upgrade`")
    assert report["redis"][0] == "FAIL" and "cannot reach Redis" in report["redis"][1]
    assert report["workers"] == report["beat"] == ("FAIL", "skipped: Redis must answer first")
    assert report["klaviyo"] == ("FAIL", "KLAVIYO_API_KEY is not set")
    assert "pw-doctor" not in result.stdout


def test_doctor_with_a_malformed_setting_says_only_that(fresh_database):
    env = dict(os.environ, DATABASE_URL=fresh_database, KSYNC_BULK_THRESHOLD="lots")
    result = ksync("doctor", env=env)
    assert result.returncode == 1
    assert lines(result) == {"config": ("FAIL", "KSYNC_BULK_THRESHOLD must be an integer, got 'lots'")}
