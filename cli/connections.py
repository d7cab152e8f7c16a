"""``ksync connections``: add, list, inspect, pause, test and authorize connections; rotate the key.

A connection is a TikTok shop joined to a Klaviyo account (``db/connections.py``). The work is
done in ``workers/connection_setup.py``, ``workers/authorize.py`` and
``workers/connection_checks.py`` (a web OAuth callback calls the same functions); this module
reads input (``connection_input.py``: secrets never from argv) and prints.
"""

from __future__ import annotations

import json
import os
import secrets as random_tokens
import sys
from datetime import datetime, timezone

import click
from rich.markup import escape
from rich.table import Table

from settings import get_settings

from .common import Failure, check_database, check_redis, connection, console
from .connection_input import (ACCESS_TOKEN_ENV, KLAVIYO_KEY_ENV, REFRESH_TOKEN_ENV, no_two_from_stdin, option_flags,
                               pick_shop, read_secret, sync_options)


@click.group()
def connections() -> None:
    """Connections: each a TikTok shop joined to a Klaviyo account."""


# add / authorize ---------------------------------------------------------------------------------


@connections.command()
@click.argument("connection_id", metavar="ID")
@option_flags
@click.option("--auth-code", metavar="CODE", help="exchange the seller's authorization code instead of giving tokens")
@click.option("--access-token-file", metavar="PATH", help=f"the seller's access token (else ${ACCESS_TOKEN_ENV})")
@click.option("--refresh-token-file", metavar="PATH", help=f"the seller's refresh token (else ${REFRESH_TOKEN_ENV})")
def add(connection_id, shop, klaviyo_key_file, sync_interval, customer_list, rate_limit_share, relay_email,
        auth_code, access_token_file, refresh_token_file) -> None:
    """Add a connection: a TikTok shop, the seller's tokens (or --auth-code), a Klaviyo key.

    Both APIs are asked before anything is saved: Klaviyo for the key's account, TikTok for the
    shops the tokens cover. Without tokens or a code, the tokens ksync already keeps for the
    seller of --shop are used (another shop of a seller already connected)."""
    from tiktok import TokenPair
    from workers.authorize import authorize_with_code
    from workers.connection_setup import add_connection, check_new_id

    no_two_from_stdin(klaviyo_key_file, access_token_file, refresh_token_file)
    check_database()
    check_redis()
    settings = get_settings()
    _require_key(settings)
    key = read_secret("Klaviyo private key", KLAVIYO_KEY_ENV, klaviyo_key_file, "--klaviyo-key-file")
    options = sync_options(sync_interval, customer_list, rate_limit_share, relay_email)
    if auth_code:
        check_new_id(connection_id)  # add creates; `authorize --code` re-authorizes an existing one
        result = authorize_with_code(auth_code, connection_id, key, shop=shop, options=options, pick=pick_shop)
        _print_authorized(result)
        return
    tokens = None  # none given: the tokens ksync keeps for the seller of --shop
    if (access_token_file or refresh_token_file or os.environ.get(ACCESS_TOKEN_ENV)
            or (sys.stdin.isatty() and not _known_sellers())):
        tokens = TokenPair(read_secret("TikTok access token", ACCESS_TOKEN_ENV, access_token_file, "--access-token-file"),
                           read_secret("TikTok refresh token", REFRESH_TOKEN_ENV, refresh_token_file,
                                       "--refresh-token-file"))
    added = add_connection(connection_id, klaviyo_api_key=key, shop=shop, tokens=tokens, options=options,
                           pick=pick_shop)
    console.print(f"added connection [bold]{added.connection_id}[/]: {escape(added.shop.name)} ({added.shop.cipher}) "
                  f"→ Klaviyo account {added.account_id}; it syncs at the beat's next dispatch", highlight=False)


def _require_key(settings) -> None:
    from workers.connection_setup import require_secret_key

    require_secret_key(settings)


def _known_sellers() -> bool:
    from sqlalchemy import select

    from db.engine import session_scope
    from db.models import TikTokAuthorization

    with session_scope() as session:
        return session.scalar(select(TikTokAuthorization.id).limit(1)) is not None


@connections.command()
@click.argument("connection_id", metavar="[ID]", required=False)
@click.option("--code", metavar="CODE", help="the code from the consent redirect: exchange it and put it to use")
@click.option("--region", type=click.Choice(["ROW", "US"], case_sensitive=False), default="ROW", show_default=True,
              help="the seller's consent page (US shops have their own)")
@option_flags
def authorize(connection_id, code, region, shop, klaviyo_key_file, sync_interval, customer_list, rate_limit_share,
              relay_email) -> None:
    """Print the seller's consent link; with --code, exchange the code and (re-)authorize.

    With --code every connection on one of the seller's shops gets the new tokens, and one that
    needed re-authorization is active again. A new ID (or, with a Klaviyo key and no ID, each
    shop still without one) is created."""
    from workers.authorize import authorize_with_code, consent_url

    settings = get_settings()
    if not code:
        if connection_id:
            check_database()
            connection(connection_id)
        state = random_tokens.token_urlsafe(12)
        console.print(f"Send the seller to:\n  {consent_url(state, region.upper(), settings)}", soft_wrap=True,
                      highlight=False)
        then = " ".join(filter(None, ["ksync connections authorize", connection_id, "--code CODE"]))
        console.print(f"After consenting, TikTok redirects to the app's redirect URL with code=... and state={state}; "
                      f"within 30 minutes run: {then}", soft_wrap=True, highlight=False)
        return
    check_database()
    check_redis()
    _require_key(settings)
    key = None
    if klaviyo_key_file or os.environ.get(KLAVIYO_KEY_ENV) or (connection_id and not _exists(connection_id)):
        key = read_secret("Klaviyo private key", KLAVIYO_KEY_ENV, klaviyo_key_file, "--klaviyo-key-file")
    result = authorize_with_code(code, connection_id, key, shop=shop, pick=pick_shop,
                                 options=sync_options(sync_interval, customer_list, rate_limit_share, relay_email))
    _print_authorized(result)


def _exists(connection_id: str) -> bool:
    from db import connections as store
    from db.engine import session_scope
    from workers.connections import ensure_env_connections

    ensure_env_connections()
    with session_scope() as session:
        return store.get(session, connection_id) is not None


def _print_authorized(result) -> None:
    seller = escape(result.seller_name or "the seller")
    console.print(f"{seller} authorized shops: " + ", ".join(f"{escape(s.name)} ({s.cipher})" for s in result.shops),
                  highlight=False, soft_wrap=True)
    for connection_id in result.created:
        console.print(f"added connection [bold]{connection_id}[/]", highlight=False)
    for connection_id in result.reauthorized:
        again = " (active again)" if connection_id in result.reactivated else ""
        console.print(f"re-authorized connection [bold]{connection_id}[/]{again}", highlight=False)
    if result.unconnected:
        console.print("without a connection yet: " + ", ".join(f"{escape(s.name)} ({s.cipher})" for s in
                                                                result.unconnected)
                      + "; add one with `ksync connections add ID --shop CIPHER` (the tokens are kept)",
                      highlight=False, soft_wrap=True)


# list / show -------------------------------------------------------------------------------------


@connections.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(as_json: bool) -> None:
    """Every connection: status, shop, Klaviyo account, last run, watermark, next run."""
    from .connection_views import summaries

    check_database()
    rows = summaries()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        console.print("no connection yet: set KLAVIYO_API_KEY and TIKTOK_* in the environment, or "
                      "`ksync connections add ID`")
        return
    table = Table("id", "status", "shop", "Klaviyo account", "last run (UTC)", "watermark (UTC)", "next run (UTC)",
                  title="Connections")
    for row in rows:
        status = row["status"] + (f": {row['status_reason']}" if row["status_reason"] else "")
        last = row["last_run"]
        table.add_row(row["id"], escape(status), escape(f"{row['shop']['name'] or ''} ({row['shop']['cipher']})"),
                      row["klaviyo_account"] or "(not asked yet)",
                      f"{_short_time(last['created_at'])} {last['status']}" if last else "never",
                      _short_time(row["watermark"]), _short_time(row["next_sync_at"]))
    console.print(table)


def _short_time(iso: str | None) -> str:
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if iso else ""


@connections.command()
@click.argument("connection_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True)
def show(connection_id: str, as_json: bool) -> None:
    """One connection, everything but its secrets."""
    from .connection_views import detail

    check_database()
    data = detail(connection(connection_id))
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    for name, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, "", [], {}))
        console.print(f"{name:<18} {escape(str(value if value is not None else ''))}", highlight=False,
                      soft_wrap=True)


# status ------------------------------------------------------------------------------------------


@connections.command()
@click.argument("connection_id", metavar="ID")
@click.option("--reason", help="why, shown by list and show")
def pause(connection_id: str, reason: str | None) -> None:
    """Stop scheduling syncs of a connection (its history stays; `resume` starts again)."""
    _set_status(connection_id, "paused", reason or "paused with `ksync connections pause`")


@connections.command()
@click.argument("connection_id", metavar="ID")
def resume(connection_id: str) -> None:
    """Schedule a paused connection's syncs again (its next sync comes at the next dispatch)."""
    _set_status(connection_id, "active", None)


def _set_status(connection_id: str, status: str, reason: str | None) -> None:
    from db import connections as store
    from db.engine import session_scope
    from workers.connections import CONTEXT_TTL_SECONDS

    check_database()
    connection_id = connection(connection_id)
    with session_scope() as session:
        row = store.get(session, connection_id)
        if status == "active" and row.status == "needs_reauth":
            raise Failure(f"connection {connection_id} needs the seller to authorize again ({row.status_reason}): "
                          f"`ksync connections authorize {connection_id}`")
        store.set_status(session, connection_id, status, reason)
    console.print(f"connection {connection_id} is {status} (workers see it within {CONTEXT_TTL_SECONDS} s)",
                  highlight=False)


@connections.command()
@click.argument("connection_id", metavar="ID")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def remove(connection_id: str, yes: bool) -> None:
    """Delete a connection and its secrets. Its runs, ledger and watermark stay as history:
    adding the same ID again resumes from its watermark."""
    from db import connections as store
    from db.engine import session_scope
    from workers.connections import env_describes

    check_database()
    connection_id = connection(connection_id)
    if connection_id in env_describes(get_settings()):  # it would be made again at once
        raise Failure(f"connection {connection_id} comes from the environment (TIKTOK_SHOP_CIPHER, KLAVIYO_API_KEY): "
                      "take its cipher out of TIKTOK_SHOP_CIPHER, or unset those variables, or pause it instead")
    with session_scope() as session:
        row = store.get(session, connection_id)
        shop = f"{row.shop_name or ''} ({row.shop_cipher})"
    if not yes:
        if not sys.stdin.isatty():
            raise Failure(f"removing connection {connection_id} needs confirmation: run it in a terminal or add --yes")
        click.confirm(f"Remove connection {connection_id}, shop {shop}? Its history stays", abort=True)
    with session_scope() as session:
        store.remove(session, connection_id)
    console.print(f"removed connection {connection_id}; its runs, ledger and watermark stay", highlight=False)


# test --------------------------------------------------------------------------------------------


@connections.command()
@click.argument("connection_id", metavar="[ID]", required=False)
def test(connection_id: str | None) -> None:
    """One cheap read against Klaviyo and TikTok with the connection's credentials: a line each."""
    from workers.clients import redis_client
    from workers.connection_checks import check_connection

    check_database()
    check_redis()
    try:
        connection_id = connection(connection_id)
    except Failure as exc:  # among several: this command takes the id as its argument
        raise Failure(str(exc).replace("with --connection ID", "with `ksync connections test ID`")) from None
    results = check_connection(connection_id, redis_client())
    for check in results:
        mark = "[green]OK  [/]" if check.ok else "[red]FAIL[/]"
        console.print(f"{check.api:<7}  {mark}  {escape(check.detail)}", soft_wrap=True, highlight=False)
    sys.exit(0 if all(c.ok for c in results) else 1)


# keys --------------------------------------------------------------------------------------------


@connections.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every stored secret under the first key of KSYNC_SECRET_KEY (idempotent).

    Put the new key first (`new,old`) everywhere, run this, then drop the old key."""
    from db import connections as store
    from db.engine import session_scope

    check_database()
    settings = get_settings()
    if not settings.secret_keys:
        raise Failure("KSYNC_SECRET_KEY is not set: nothing to rotate to; make a key with "
                      "`ksync connections generate-key` and set it first")
    _require_key(settings)
    with session_scope() as session:
        done = store.rotate_secrets(session)
    if done.unreadable:
        raise Failure(f"{len(done.unreadable)} stored secret(s) cannot be decrypted with any key of KSYNC_SECRET_KEY "
                      f"({', '.join(done.unreadable)}): put back the key they were encrypted with (after the new one) "
                      "and run again; nothing was changed")
    console.print(f"re-encrypted {done.rotated} secret(s) under the first key of KSYNC_SECRET_KEY; {done.current} "
                  "already were. Once every worker has the new key first, the old one can go.", highlight=False)


@connections.command("generate-key")
def generate_key() -> None:
    """Print a new key for KSYNC_SECRET_KEY."""
    from db.secrets import generate_key as new_key

    click.echo(new_key())
