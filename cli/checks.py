"""What a command needs before it starts, checked one thing at a time, each answer one line.

A command turns a failed ``Check`` into its one-line error (exit 1); ``ksync doctor`` runs
them all and prints every line. A check never raises for the thing it checks: the
failure *is* its answer, worded as what to do next. Secrets never appear: URLs are shown
with their password hidden, credentials only by variable name.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from settings import ENV_NAMES, ConfigError, Settings, get_settings, redact_url

#: What DATABASE_URL may name: the psycopg2 driver (installed) and SQLite (built in).
DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2", "sqlite")
DATABASE_FORMS = "postgresql://user:password@host:5432/dbname or sqlite:///path/to/ksync.sqlite3"
REDIS_SCHEMES = ("redis", "rediss", "unix")
REDIS_FORMS = "redis://host:6379/0 (rediss:// with TLS, unix:///path/to/redis.sock)"
WORKER_COMMAND = "celery -A workers.app worker -Q realtime,sync,profiles,events,bulk,backfill -E"
#: How long to wait for workers to answer a ping of their queues: they answer in milliseconds.
WORKER_REPLY_SECONDS = 1.5
#: Names the beat writes (see workers/heartbeat.py).
BEAT_KEYS = "ksync:beat:*"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    #: What was found (ok), or what to do about it (not ok).
    detail: str


def shown(url: str) -> str:
    """``url`` for a message: a password hidden, whether or not the URL has a scheme."""
    return re.sub(r":[^:@/]*@", ":***@", redact_url(url))


#: What the environment's own connection needs besides the app's credentials.
ENV_CONNECTION_NAMES = ("KLAVIYO_API_KEY", "TIKTOK_ACCESS_TOKEN", "TIKTOK_SHOP_CIPHER")


def settings(stored_connections: int = 0) -> Check:
    """Every setting readable; the TikTok app's credentials set; and either the environment's
    connection complete or (``stored_connections``) connections in the database, with none of
    the environment's half set."""
    from db.secrets import SecretKeyError, configure

    try:
        s = get_settings()
    except ConfigError as exc:
        return Check("config", False, str(exc))
    missing = missing_settings(s)
    if stored_connections and set(ENV_CONNECTION_NAMES) <= set(missing):
        missing = [name for name in missing if name not in ENV_CONNECTION_NAMES]
    if missing:
        return Check("config", False, f"{listed(missing)} {'is' if len(missing) == 1 else 'are'} not set: "
                                      "put them in the environment or in .env (see .env.example)")
    if s.secret_keys:
        try:
            configure(s.secret_keys, s.tiktok_app_secret)
        except SecretKeyError as exc:
            return Check("config", False, str(exc))
    found = [f"credentials set for Klaviyo and TikTok shop(s) {', '.join(s.shop_ciphers)}"] if s.shop_ciphers else []
    found += [f"{stored_connections} connection(s) in the database"] if stored_connections else []
    keys = (f"secrets encrypted with KSYNC_SECRET_KEY ({len(s.secret_keys)} key(s))" if s.secret_keys else
            "secrets encrypted with a key derived from TIKTOK_APP_SECRET (set KSYNC_SECRET_KEY to add connections)")
    return Check("config", True, "; ".join([*found, keys]))


def missing_settings(s: Settings, klaviyo: bool = True, shop: bool = True) -> list[str]:
    """The variables a sync needs that are unset. A dry run sends nothing to Klaviyo (``klaviyo=False``);
    an explicit ``--shop`` stands for ``TIKTOK_SHOP_CIPHER`` (``shop=False``)."""
    needed = ["KLAVIYO_API_KEY"] if klaviyo else []
    needed += ["TIKTOK_APP_KEY", "TIKTOK_APP_SECRET", "TIKTOK_ACCESS_TOKEN"]
    needed += ["TIKTOK_SHOP_CIPHER"] if shop else []
    field = {env: name for name, env in ENV_NAMES.items()}
    return [name for name in needed if not getattr(s, field[name])]


def listed(names: list[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``: variable names in a sentence."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def database(migrated: bool = True) -> Check:
    """Reachable, a driver ksync has, and (``migrated``) at the revision this ksync expects."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from db.engine import get_engine

    url = get_settings().database_url
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in DATABASE_SCHEMES:
        return Check("database", False, f"DATABASE_URL {shown(url)!r} is not a database ksync supports: "
                                        f"use {DATABASE_FORMS}")
    try:
        with get_engine().connect() as conn:
            conn.execute(text("select 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return Check("database", False, f"cannot reach the database at {shown(url)} ({reason}); "
                                        "is DATABASE_URL right and the server running?")
    if not migrated:
        return Check("database", True, f"{shown(url)} answers")
    return _migration_state(url)


def _migration_state(url: str) -> Check:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from db.migrate import alembic_config, current_revision, head_revision

    current, head = current_revision(url), head_revision()
    if current is None:
        return Check("database", False, f"the database at {shown(url)} has no ksync tables yet: run `ksync db upgrade`")
    if current == head:
        return Check("database", True, f"{shown(url)} at revision {head}")
    try:
        known = ScriptDirectory.from_config(alembic_config(url)).get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        return Check("database", False, f"the database at {shown(url)} is at revision {current}, newer than this "
                                        f"ksync knows ({head}): upgrade ksync, or point DATABASE_URL elsewhere")
    return Check("database", False, f"the database at {shown(url)} is at revision {current}; this ksync needs "
                                    f"{head}: run `ksync db upgrade`")


def redis_client():
    """A Redis client for REDIS_URL, or a failed Check saying what a Redis URL looks like."""
    import redis

    url = get_settings().redis_url
    if url.split("://", 1)[0].lower() not in REDIS_SCHEMES or "://" not in url:
        return Check("redis", False, f"REDIS_URL {shown(url)!r} is not a Redis URL: use {REDIS_FORMS}")
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    except ValueError as exc:
        return Check("redis", False, f"REDIS_URL {shown(url)!r} is not a Redis URL ({exc}): use {REDIS_FORMS}")


def redis() -> Check:
    import redis as redis_lib

    client = redis_client()
    if isinstance(client, Check):
        return client
    url = get_settings().redis_url
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        return Check("redis", False, f"cannot reach Redis at {shown(url)} ({type(exc).__name__}: {exc}); "
                                     "is REDIS_URL right and the server running?")
    return Check("redis", True, f"{shown(url)} answers")


def queues() -> list[str]:
    """Every queue a task is routed to, in route order (sync, profiles, events, bulk)."""
    import celeryconfig

    routed = [route["queue"] for route in celeryconfig.task_routes.values()]
    return list(dict.fromkeys([celeryconfig.task_default_queue, *routed, *celeryconfig.LANE_QUEUES]))


def workers(timeout: float = WORKER_REPLY_SECONDS) -> Check:
    """Whether at least one worker consumes each queue (workers answer a broadcast on the broker)."""
    from workers.app import app

    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:  # the broker itself failed: the redis check says why
        return Check("workers", False, f"could not ask the workers ({type(exc).__name__}); check Redis first")
    consumers = {q: sorted(w for w, listened in replies.items() if q in {x.get("name") for x in listened})
                 for q in queues()}
    idle = [q for q, names in consumers.items() if not names]
    if idle:
        which = "any of the" if len(idle) == len(consumers) else "the"
        return Check("workers", False, f"no worker is consuming {which} {', '.join(idle)} queue"
                                       f"{'s' if len(idle) > 1 else ''}; start one: {WORKER_COMMAND}")
    return Check("workers", True, ", ".join(f"{q}: {len(names)}" for q, names in consumers.items())
                 + f" ({len(replies)} worker{'s' if len(replies) != 1 else ''})")


def beat(client) -> Check:
    """Exactly one beat: each beat process keeps a heartbeat key in Redis (workers/heartbeat.py)."""
    from workers.heartbeat import TTL_SECONDS

    try:
        beats = [json.loads(client.get(key) or b"{}") for key in client.scan_iter(BEAT_KEYS)]
    except Exception as exc:
        return Check("beat", False, f"could not read the beat's heartbeat ({type(exc).__name__}); check Redis first")
    beats = [b for b in beats if b]
    if not beats:
        return Check("beat", False, f"no beat has run in the last {TTL_SECONDS // 60} minutes: start exactly one, "
                                    "`celery -A workers.app beat`")
    names = ", ".join(sorted(f"{b.get('host')}:{b.get('pid')}" for b in beats))
    if len(beats) > 1:
        return Check("beat", False, f"{len(beats)} beats are running ({names}): stop all but one (a beat restarted "
                                    f"in the last {TTL_SECONDS // 60} minutes is counted until its entry expires)")
    age = max(0.0, time.time() - float(beats[0].get("seen", 0)))
    return Check("beat", True, f"one beat ({names}), seen {age:.0f} s ago")
