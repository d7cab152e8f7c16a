"""Prism (``@stoplight/prism-cli``) in proxy mode in front of the Klaviyo stand-in.

``prism proxy --errors`` validates every request against Klaviyo's spec (422 when it does
not conform, and the request is not forwarded) and every response (500 ``#VIOLATIONS``
when it does not conform). Installed with npm into ``.cache/prism`` on first use.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from sandbox.redis import free_port

ROOT = Path(__file__).resolve().parents[2]
SPEC = Path(__file__).resolve().parent / "klaviyo-subset.prism.json"
CACHE = ROOT / ".cache" / "prism"
PRISM = CACHE / "node_modules" / ".bin" / "prism"
PRISM_VERSION = "5.14.2"


def ensure_prism() -> Path:
    """The Prism binary, installing it on first use. Skip only where npm is absent (never under CI)."""
    if PRISM.exists():
        return PRISM
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but npm is not installed: the Prism contract test must run in CI")
        pytest.skip("npm is not installed, so Prism (the contract checker) cannot be installed")
    CACHE.mkdir(parents=True, exist_ok=True)
    if not (CACHE / "package.json").exists():
        subprocess.run([npm, "init", "-y"], cwd=CACHE, check=True, capture_output=True, timeout=120)
    result = subprocess.run([npm, "install", f"@stoplight/prism-cli@{PRISM_VERSION}", "--no-audit", "--no-fund"],
                            cwd=CACHE, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not PRISM.exists():
        pytest.fail(f"npm could not install Prism: {result.stderr[-2000:]}")
    return PRISM


@contextlib.contextmanager
def prism_proxy(upstream_root: str, log_path: Path | None = None):
    """``http://127.0.0.1:<port>`` of a Prism proxy validating traffic to ``upstream_root``."""
    binary = ensure_prism()
    port = free_port()
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen([str(binary), "proxy", str(SPEC), upstream_root, "--errors", "-h", "127.0.0.1",
                                "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/api/lists", timeout=1)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Prism did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        if log_path:
            log.close()
