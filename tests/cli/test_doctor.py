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
    # Every queue the app routes to, the lanes included, has a consumer.
    assert report["workers"][1] == ("sync: 1, realtime: 1, profiles: 1, events: 1, bulk: 1, backfill: 1 "
                                    "(1 worker)"), report["workers"]
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
    assert report["workers"] == ("FAIL", "no worker is consuming any of the sync, realtime, profiles, events, bulk, backfill "
                                         "queues; start one: celery -A workers.app worker -Q realtime,sync,profiles,events,bulk,backfill -E")
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


def test_doctor_checks_every_connection_and_names_each_line(make_stack):
    from cryptography.fernet import Fernet

    stack = make_stack(orders=10, workers=1, tiktok_kwargs={"shops": 2},
                       extra_env={"KSYNC_SECRET_KEY": Fernet.generate_key().decode()})
    stack.add_beat()
    second = stack.tiktok.shop(1)
    pair = stack.tiktok.seller(second.seller_key).tokens.current
    added = ksync("connections", "add", "second", "--shop", second.cipher,
                  env=stack.env | {"KSYNC_NEW_KLAVIYO_API_KEY": stack.env["KLAVIYO_API_KEY"],
                                   "KSYNC_NEW_TIKTOK_ACCESS_TOKEN": pair.access_token,
                                   "KSYNC_NEW_TIKTOK_REFRESH_TOKEN": pair.refresh_token})
    assert added.returncode == 0, added.stderr
    stack.tiktok.revoke_refresh_token(second.seller_key)
    stack.tiktok.expire_access_token(second.seller_key)

    result = ksync("doctor", env=stack.env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    report = lines(result)
    assert report["config"][0] == "OK" and "2 connection(s) in the database" in report["config"][1]
    assert all(report[name][0] == "OK" for name in ("database", "redis", "workers", "beat")), result.stdout
    found = re.findall(r"^(klaviyo|tiktok)\s+(OK|FAIL)\s+([\w-]+): (.*)$", result.stdout, re.M)
    assert [row[:3] for row in found] == [("klaviyo", "OK", "default"), ("tiktok", "OK", "default"),
                                         ("klaviyo", "OK", "second"), ("tiktok", "FAIL", "second")], result.stdout
    assert "the refresh failed" in found[3][3] and "`ksync connections authorize second`" in found[3][3]
    assert stack.env["KLAVIYO_API_KEY"] not in result.stdout and pair.refresh_token not in result.stdout

    broken = ksync("doctor", env=stack.env | {"KSYNC_SECRET_KEY": "not-a-key"})
    assert lines(broken)["config"][0] == "FAIL" and "not a Fernet key" in lines(broken)["config"][1]
    assert "Traceback" not in broken.stderr
