"""What ``ksync connections add`` and ``authorize`` read: secrets, a shop choice, sync options.

Secrets never come from argv (``ps`` and shell history show it to everyone on the machine), and
are never echoed. Each is read, in this order, from its ``--...-file`` (``-`` for stdin), from
its ``KSYNC_NEW_*`` variable (not ``KLAVIYO_API_KEY`` / ``TIKTOK_*``: those describe the
environment's own connection), or from a hidden prompt when stdin is a terminal. Only an
authorization code, single-use and dead after 30 minutes, is taken as an option.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.markup import escape

from .common import Failure, console

KLAVIYO_KEY_ENV = "KSYNC_NEW_KLAVIYO_API_KEY"
ACCESS_TOKEN_ENV = "KSYNC_NEW_TIKTOK_ACCESS_TOKEN"
REFRESH_TOKEN_ENV = "KSYNC_NEW_TIKTOK_REFRESH_TOKEN"


def read_secret(what: str, env_var: str, path: str | None, option: str, required: bool = True) -> str | None:
    """A secret from ``path`` (``-``: the first line of stdin), ``env_var``, or a hidden prompt."""
    if path:
        try:
            value = (sys.stdin.readline() if path == "-" else Path(path).read_text()).strip()
        except OSError as exc:
            raise Failure(f"cannot read {option} {path}: {exc.strerror}") from None
        if not value:
            raise Failure(f"{option} {path} holds no {what}")
        return value
    value = os.environ.get(env_var, "").strip()
    if value:
        return value
    if sys.stdin.isatty():
        return click.prompt(what, hide_input=True).strip()
    if required:
        raise Failure(f"no {what}: set {env_var} or give {option} (a file, or - for stdin); secrets are "
                      "never taken as arguments")
    return None


def no_two_from_stdin(*paths: str | None) -> None:
    if sum(p == "-" for p in paths) > 1:
        raise click.UsageError("only one secret can come from stdin (-)")


def pick_shop(shops):
    """Ask which shop, on a terminal; elsewhere the caller's error lists them."""
    if not sys.stdin.isatty():
        return None
    for n, shop in enumerate(shops, start=1):
        console.print(f"  {n}. {escape(shop.name)} ({shop.cipher}, {shop.region})", highlight=False)
    return shops[click.prompt("which shop", type=click.IntRange(1, len(shops))) - 1]


def option_flags(command):
    """The options a connection can change about its syncs (see ``workers.connections.Options``)."""
    for decorator in reversed([
        click.option("--shop", help="shop cipher or id (default: the seller's only shop without a connection)"),
        click.option("--klaviyo-key-file", metavar="PATH", help=f"file holding the Klaviyo private key, - for stdin "
                                                                f"(else ${KLAVIYO_KEY_ENV}, else asked)"),
        click.option("--sync-interval", type=click.IntRange(60), help="seconds between incremental syncs"),
        click.option("--customer-list", help="Klaviyo list every buyer is added to"),
        click.option("--rate-limit-share", type=click.FloatRange(0, 1, min_open=True),
                     help="share of the Klaviyo account's limits this connection may use"),
        click.option("--relay-email", type=click.Choice(["identity", "property", "skip"]),
                     help="TikTok's relay e-mail as the profile's e-mail, as a property only, or not at all"),
    ]):
        command = decorator(command)
    return command


def sync_options(sync_interval, customer_list, rate_limit_share, relay_email) -> dict:
    return {"sync_interval_seconds": sync_interval, "customer_list": customer_list,
            "rate_limit_share": rate_limit_share, "relay_email": relay_email}
