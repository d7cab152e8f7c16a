"""``ksync doctor``: every check ``checks.py`` knows, one line each, OK or what to do, then a
Klaviyo and a TikTok line for each connection (``workers/connection_checks.py``, the checks of
``ksync connections test``).

Checks that need something an earlier one found broken (the workers and the beat need
Redis; the database's migrations need the database; the connections live in the database)
are reported as skipped, with the reason, rather than as a second error about the same cause.
With several connections each line names its connection. Exit status 0 when every line is OK,
1 otherwise.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from settings import ConfigError

from . import checks


def diagnose() -> list[checks.Check]:
    config = checks.settings()
    if not config.ok and " must " in config.detail:  # a malformed value: no other setting can be read
        return [config]
    database = checks.database()
    ids, unreadable = connection_ids() if database.ok else ([], None)
    results = [checks.settings(len(ids)) if ids else config, database, checks.redis()]
    redis_ok = results[-1].ok
    if redis_ok:
        results += [checks.workers(), checks.beat(checks.redis_client())]
    else:
        results += [checks.Check(name, False, "skipped: Redis must answer first") for name in ("workers", "beat")]
    if unreadable is not None:
        return results + [checks.Check(api, False, unreadable) for api in ("klaviyo", "tiktok")]
    return results + connection_checks(database.ok, ids, checks.redis_client() if redis_ok else None)


def connection_ids() -> tuple[list[str], str | None]:
    """Every connection's id (the environment's brought in step first), or why they cannot be read."""
    from db import connections as store
    from db.engine import session_scope
    from db.secrets import SecretKeyError
    from workers.connections import ensure_env_connections

    try:
        ensure_env_connections()
        with session_scope() as session:
            return [c.id for c in store.all_connections(session)], None
    except (SecretKeyError, ConfigError) as exc:
        return [], str(exc)


def connection_checks(database_ok: bool, ids: list[str], redis_client) -> list[checks.Check]:
    """A Klaviyo and a TikTok line per connection, each naming its connection when there are several."""
    from workers.connection_checks import check_connection

    if not database_ok:
        return [_unchecked("klaviyo", ["KLAVIYO_API_KEY"], "skipped: the database must answer first"),
                _unchecked("tiktok", ["TIKTOK_APP_KEY", "TIKTOK_APP_SECRET", "TIKTOK_ACCESS_TOKEN", "TIKTOK_SHOP_CIPHER"],
                           "skipped: the database must answer first")]
    if not ids:
        return [checks.Check(api, False, "no connection: set KLAVIYO_API_KEY and TIKTOK_* (see .env.example), or add "
                                         "one with `ksync connections add`") for api in ("klaviyo", "tiktok")]
    named = len(ids) > 1
    return [checks.Check(found.api, found.ok, f"{found.connection}: {found.detail}" if named else found.detail)
            for connection_id in ids for found in check_connection(connection_id, redis_client)]


def _unchecked(api: str, names: list[str], otherwise: str) -> checks.Check:
    from settings import get_settings

    field = {env: name for name, env in checks.ENV_NAMES.items()}
    missing = [name for name in names if not getattr(get_settings(), field[name])]
    return checks.Check(api, False, f"{checks.listed(missing)} {'is' if len(missing) == 1 else 'are'} not set"
                        if missing else otherwise)


def run_doctor(console: Console) -> int:
    results = diagnose()
    width = max(len(c.name) for c in results)
    for check in results:
        mark = "[green]OK  [/]" if check.ok else "[red]FAIL[/]"
        console.print(f"{check.name:<{width}}  {mark}  {escape(check.detail)}", soft_wrap=True, highlight=False)
    return 0 if all(c.ok for c in results) else 1
