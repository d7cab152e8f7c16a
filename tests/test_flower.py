"""Flower against real workers: basic auth on the API, our tasks visible, Prometheus metrics, no secrets."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests

from sandbox.redis import free_port
from sandbox.stack import ROOT, CeleryProcess
from tests.support import wait_for_run
from workers.api import enqueue_sync

AUTH = ("ops", "flower-pass-123")


def wait_until(check, timeout=60, every=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError("condition not met in time")


@pytest.fixture
def flower(make_stack, tmp_path):
    stack = make_stack(orders=30, workers=1, extra_env={"KSYNC_BULK_THRESHOLD": "100000"})
    port = free_port()
    env = dict(stack.env, FLOWER_BASIC_AUTH=f"{AUTH[0]}:{AUTH[1]}", FLOWER_PORT=str(port))
    process = CeleryProcess(["flower"], env, tmp_path / "flower.log", ready_marker="Visit me at").start()
    try:
        process.wait_ready(60)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{base}/healthcheck", timeout=2).text == "OK")
        yield stack, base
    finally:
        process.stop()


def test_flower_api_needs_auth_and_shows_our_workers_and_tasks(flower):
    stack, base = flower
    assert requests.get(f"{base}/api/workers", timeout=5).status_code == 401
    assert requests.get(f"{base}/api/tasks", timeout=5).status_code == 401
    assert requests.get(f"{base}/api/workers", auth=("ops", "wrong"), timeout=5).status_code == 401

    workers = wait_until(lambda: requests.get(f"{base}/api/workers?refresh=1", auth=AUTH, timeout=10).json())
    assert any(name.startswith("w1@") for name in workers)

    run = wait_for_run(enqueue_sync(days_back=31))
    assert run.status in ("succeeded", "partial")
    tasks = wait_until(lambda: {t["name"] for t in requests.get(f"{base}/api/tasks?limit=1000", auth=AUTH,
                                                                   timeout=10).json().values()}
                       >= {"ksync.sync_shop", "ksync.track_event", "ksync.upsert_profile"} and
                       requests.get(f"{base}/api/tasks?limit=1000", auth=AUTH, timeout=10).json())
    shown = str(tasks)
    for secret in (stack.env["KLAVIYO_API_KEY"], stack.env["TIKTOK_APP_SECRET"], stack.env["TIKTOK_ACCESS_TOKEN"],
                   stack.env["TIKTOK_REFRESH_TOKEN"]):
        assert secret not in shown


def test_flower_serves_prometheus_metrics(flower):
    _, base = flower
    body = wait_until(lambda: (r := requests.get(f"{base}/metrics", timeout=5)).status_code == 200 and
                      "flower_worker_online" in r.text and r.text)
    assert "flower_events_total" in body or "flower_worker_online" in body


def test_flower_refuses_to_start_without_auth(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWER_BASIC_AUTH", "KSYNC_FLOWER_UNAUTHENTICATED")}
    env["FLOWER_PORT"] = str(free_port())
    result = subprocess.run([sys.executable, "-m", "celery", "-A", "workers.app", "flower"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stdout + result.stderr
