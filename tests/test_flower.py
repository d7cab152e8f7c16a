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


def test_flowerconfig_reads_basic_auth_from_dotenv_like_the_rest_of_ksync(tmp_path):
    (tmp_path / ".env").write_text("FLOWER_BASIC_AUTH=ops:from-dotenv\nFLOWER_PORT=5999\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "KSYNC_FLOWER"))}
    env["PYTHONPATH"] = str(ROOT)
    script = f"import runpy; c = runpy.run_path({str(ROOT / 'flowerconfig.py')!r}); print(c['basic_auth'], c['port'])"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "['ops:from-dotenv'] 5999"


def test_ksync_flower_starts_with_its_auth_only_in_dotenv(tmp_path, redis_url):
    port = free_port()
    (tmp_path / ".env").write_text(f"FLOWER_BASIC_AUTH={AUTH[0]}:{AUTH[1]}\nREDIS_URL={redis_url}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "KSYNC_FLOWER", "REDIS_URL"))}
    env["PYTHONPATH"] = str(ROOT)
    log = open(tmp_path / "flower.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "flower", f"--port={port}"], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return requests.get(f"{base}/healthcheck", timeout=2).ok
            except requests.RequestException:
                return False

        wait_until(lambda: process.poll() is not None or answers(), 60)
        assert process.poll() is None, (tmp_path / "flower.log").read_text()
        assert requests.get(f"{base}/api/workers", timeout=5).status_code == 401
        assert requests.get(f"{base}/api/workers", auth=AUTH, timeout=10).status_code == 200
    finally:
        process.terminate()
        process.wait(20)
        log.close()
