"""What every ``ksync`` command module shares: the consoles, the one-line ``Failure``, and the
checks a command runs before it starts (each failed check becomes its one-line error)."""

from __future__ import annotations

import os
import sys

from rich.console import Console

from settings import get_settings

from . import checks

#: Piped output (no terminal) is not cut at rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class Failure(Exception):
    """An expected failure, shown as one line."""


def require(check: checks.Check) -> None:
    if not check.ok:
        raise Failure(check.detail)


def check_redis() -> None:
    require(checks.redis())


def check_database(migrated: bool = True) -> None:
    require(checks.database(migrated=migrated))


def check_credentials(dry_run: bool = False, shop: str | None = None) -> None:
    """Refuse to queue a run that cannot succeed: it would only fail on a worker, later."""
    missing = checks.missing_settings(get_settings(), klaviyo=not dry_run, shop=not shop)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise Failure(f"not queued: {checks.listed(missing)} {verb} not set, and the run would fail without "
                      f"{'it' if len(missing) == 1 else 'them'}; put {'it' if len(missing) == 1 else 'them'} "
                      "in the environment or in .env (see .env.example)")


def connection(connection_id: str | None = None, shop: str | None = None) -> str:
    """The connection a command acts on (named, by shop, or the only one), or a one-line error that
    lists them; with none at all, which variables the environment's connection is missing."""
    from db.connections import ConnectionError_
    from workers.sync import resolve_connection

    try:
        return resolve_connection(connection_id, shop)
    except ConnectionError_ as exc:
        if not connection_id and not shop and "no connection yet" in str(exc):
            check_credentials(False, shop)  # a dry run too: it plans against its Klaviyo account's ledger
        raise Failure(str(exc)) from None
