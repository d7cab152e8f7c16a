"""The whole thing on one machine: Redis, a database, both stand-ins and real Celery workers.

``make demo``, the end-to-end tests, the fault suite and the benchmarks all use
this, so they run the same processes a deployment runs. Every child process is
started in its own process group and stopped (SIGTERM, then SIGKILL) on exit,
Ctrl-C included: nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from .connection_specs import ConnectionSpec, account_labels, add_connections, check, klaviyo_accounts, klaviyo_key
from .redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
ALL_QUEUES = "realtime,sync,profiles,events,bulk,backfill"
DEMO_KLAVIYO_KEY = "pk_demo_ksync_0123456789"
#: The environment's single connection: what a stack with ``connections`` leaves out of ``env``.
ENV_CONNECTION_VARIABLES = ("KLAVIYO_API_KEY", "TIKTOK_ACCESS_TOKEN", "TIKTOK_REFRESH_TOKEN", "TIKTOK_SHOP_CIPHER")


class CeleryProcess:
    """One ``celery -A workers.app <command>`` process group, logging to a file."""

    def __init__(self, args: list[str], env: dict, log_path: Path, ready_marker: str | None = None, nice: int = 0):
        self.args = args
        self.env = env
        self.log_path = log_path
        self.ready_marker = ready_marker
        self.nice = nice
        self.process: subprocess.Popen | None = None

    def start(self) -> "CeleryProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        niced = ["nice", "-n", str(self.nice)] if self.nice else []
        self.process = subprocess.Popen([*niced, sys.executable, "-m", "celery", "-A", "workers.app", *self.args],
                                        env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery {self.args[0]} exited with {self.process.returncode}:\n{self.tail()}")
            if self.ready_marker is None or self.ready_marker in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"celery {self.args[0]} not ready after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pool_children(self) -> list[int]:
        if not self.alive:
            return []
        try:
            return [c.pid for c in psutil.Process(self.process.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker and its pool children, no goodbye."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def kill_child(self) -> int | None:
        """SIGKILL one pool child (as the OOM killer would); returns its pid."""
        children = self.pool_children()
        if not children:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(children[0], signal.SIGKILL)
        return children[0]

    def stop(self, timeout: float = 20) -> None:
        if not self.alive:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def worker(env: dict, name: str, log_dir: Path, concurrency: int = 2, queues: str = ALL_QUEUES,
           nice: int = 0) -> CeleryProcess:
    """A worker on ``queues``; ``nice`` > 0 starts it under ``nice -n`` (as the README's backfill workers)."""
    args = ["worker", "-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h", "-E", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle"]
    return CeleryProcess(args, env, log_dir / f"{name}.log", ready_marker=" ready.", nice=nice)


def beat(env: dict, log_dir: Path, name: str = "beat") -> CeleryProcess:
    schedule = log_dir / f"{name}-schedule"
    return CeleryProcess(["beat", "--loglevel", "INFO", "-s", str(schedule)], env, log_dir / f"{name}.log",
                         ready_marker="beat: Starting")


def _secret_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class LocalStack:
    """Redis (yours, or an embedded one), a database (yours, or SQLite), both stand-ins, K workers.

    ``env`` holds the settings every process uses; ``activate()`` applies them to
    the calling process too, so ``workers.api.enqueue_sync`` and the database
    helpers talk to the same stack.

    By default the environment describes one connection (``default``: the stand-in's one shop
    and one Klaviyo key). With ``connections`` (``ConnectionSpec``s), each spec gets its own
    shop and the Klaviyo account it names, and ``start()`` adds them with ``ksync connections
    add``; the environment then describes none (``ENV_CONNECTION_VARIABLES`` are left out).
    ``shared_buyers`` is the share of each shop's orders placed by buyers the shops share.
    """

    def __init__(self, orders: int = 2000, workers: int = 2, concurrency: int = 2, days: float = 30,
                 seed: int = 7, redis_url: str | None = None, database_url: str | None = None,
                 klaviyo_limits: dict | None = None, klaviyo_scale: float = 1.0, malformed_ratio: float = 0.0,
                 extra_env: dict | None = None, work_dir: str | os.PathLike | None = None,
                 redis_appendonly: bool = False, tiktok_kwargs: dict | None = None,
                 connections: list[ConnectionSpec] | None = None, shared_buyers: float = 0.0):
        from sandbox.klaviyo import KlaviyoStandIn
        from sandbox.tiktok import TikTokStandIn

        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="ksync-stack-"))
        self.redis_url = redis_url
        self.database_url = database_url or f"sqlite:///{self.work_dir / 'ksync.sqlite3'}"
        self.embedded_redis = None if redis_url else EmbeddedRedis(data_dir=self.work_dir / "redis",
                                                                    appendonly=redis_appendonly)
        self.connections = tuple(connections or ())
        check(self.connections)
        tiktok_kwargs = dict(tiktok_kwargs or {})
        if self.connections:
            accounts = {"accounts": klaviyo_accounts(self.connections)}
            tiktok_kwargs["shops"] = [{"name": spec.shop, "orders": spec.orders} for spec in self.connections]
        else:
            accounts = {"api_keys": (DEMO_KLAVIYO_KEY,)}
        if shared_buyers:
            tiktok_kwargs["shared_buyers"] = shared_buyers
        self.klaviyo = KlaviyoStandIn(limits=klaviyo_limits, rate_limit_scale=klaviyo_scale, **accounts)
        self.tiktok = TikTokStandIn(orders=orders, days=days, seed=seed, malformed_ratio=malformed_ratio,
                                    **tiktok_kwargs)
        self.worker_count = workers
        self.concurrency = concurrency
        self.extra_env = extra_env or {}
        self.workers: list[CeleryProcess] = []
        self.beats: list[CeleryProcess] = []
        self.env: dict = {}

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    def start(self, start_workers: bool = True) -> "LocalStack":
        from db.migrate import upgrade

        try:
            if self.embedded_redis:
                self.embedded_redis.start()
                self.redis_url = self.embedded_redis.url
            self.klaviyo.start()
            self.tiktok.start()
            self.env = self._environment()
            upgrade(self.database_url)
            add_connections(self.connections, self.tiktok, self.env, ROOT)
            if start_workers:
                for i in range(self.worker_count):
                    self.add_worker(f"w{i + 1}")
        except BaseException:
            self.stop()
            raise
        return self

    def _environment(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KLAVIYO_", "TIKTOK_", "KSYNC_"))}
        env.update(self.tiktok.client_settings())
        env.update({
            "KLAVIYO_API_KEY": DEMO_KLAVIYO_KEY, "KLAVIYO_API_BASE_URL": self.klaviyo.url,
            "REDIS_URL": self.redis_url, "DATABASE_URL": self.database_url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        })
        env.update({k: str(v) for k, v in self.extra_env.items()})
        if self.connections:
            for name in ENV_CONNECTION_VARIABLES:
                env.pop(name, None)
            env.setdefault("KSYNC_SECRET_KEY", _secret_key())
        return env

    # -- several connections ------------------------------------------------------------------------

    def connection(self, connection_id: str) -> ConnectionSpec:
        found = next((spec for spec in self.connections if spec.id == connection_id), None)
        if found is None:
            raise KeyError(f"no connection {connection_id!r} in this stack")
        return found

    def shop_of(self, connection_id: str):
        """The stand-in shop of a connection (``StandInShop``)."""
        return self.tiktok.shop(self.connections.index(self.connection(connection_id)))

    def account(self, label: str):
        """The Klaviyo stand-in's account labelled ``label`` in the specs (``AccountView``)."""
        if label not in account_labels(self.connections):
            raise KeyError(f"no Klaviyo account {label!r} in this stack")
        return self.klaviyo.account(klaviyo_key(label))

    def shops_of_account(self, label: str) -> list:
        """The shops of every connection writing to the account labelled ``label``."""
        return [self.shop_of(spec.id) for spec in self.connections if spec.account == label]

    def add_worker(self, name: str, concurrency: int | None = None, wait: bool = True) -> CeleryProcess:
        process = worker(self.env, name, self.log_dir, concurrency or self.concurrency).start()
        self.workers.append(process)
        if wait:
            process.wait_ready()
        return process

    def add_beat(self, name: str = "beat") -> CeleryProcess:
        process = beat(self.env, self.log_dir, name).start()
        self.beats.append(process)
        process.wait_ready()
        return process

    def activate(self) -> None:
        """Point this process's settings, database engine and clients at the stack."""
        from db.engine import dispose_engines
        from settings import reset_settings_cache
        from workers import clients

        for key in [k for k in os.environ if k.startswith(("KLAVIYO_", "TIKTOK_", "KSYNC_"))]:
            del os.environ[key]
        os.environ.update({k: v for k, v in self.env.items() if k != "PYTHONPATH"})
        reset_settings_cache()
        dispose_engines()
        clients.reset()
        from workers.app import app

        # Drop pooled broker connections to a previous stack: close() resets the connection pool,
        # but the producer pool on app.amqp outlives it and would keep publishing to the old Redis.
        app.close()
        app.amqp._producer_pool = None
        app.conf.broker_url = self.redis_url

    def stop(self) -> None:
        for process in [*self.beats, *self.workers]:
            with contextlib.suppress(Exception):
                process.stop()
        for service in (self.tiktok, self.klaviyo):
            with contextlib.suppress(Exception):
                service.stop()
        if self.embedded_redis:
            with contextlib.suppress(Exception):
                self.embedded_redis.stop()
        if self._own_dir and os.environ.get("KSYNC_KEEP_STACK") != "1":
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
