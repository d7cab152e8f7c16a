"""Several connections on one local stack: what each is, and making them as an operator would.

A ``ConnectionSpec`` names one connection: its own shop in the TikTok stand-in joined to an
account of the Klaviyo stand-in. Specs that name the same ``account`` feed one Klaviyo account,
as an agency's shops of one brand do. The stack builds the shops and the accounts from the specs
and then runs ``ksync connections add`` once per spec (a real process, the seller's tokens and
the Klaviyo key passed through ``KSYNC_NEW_*`` as the README says), so the connections go
through the same checks and the same table a deployment's do, never through the environment's
``default`` shortcut.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sandbox.klaviyo.accounts import account_id_for


@dataclass(frozen=True)
class ConnectionSpec:
    """One connection of a stack: ``id`` (a connection id, ``glow-us``), the Klaviyo account it
    writes to (a label: specs with the same label share the account), and its shop's name and
    order count (``None``: the stack's ``orders``)."""

    id: str
    account: str
    shop: str | None = None
    orders: int | None = None


def klaviyo_key(account: str) -> str:
    """The private key of the stand-in account labelled ``account`` (stable, so reruns match)."""
    return "pk_demo_" + re.sub(r"[^a-z0-9]+", "_", account.lower()) + "_0123456789"


def account_labels(specs: Sequence[ConnectionSpec]) -> list[str]:
    """The accounts the specs name, in order of first mention (the first is the stand-in's default)."""
    return list(dict.fromkeys(spec.account for spec in specs))


def klaviyo_accounts(specs: Sequence[ConnectionSpec]) -> dict:
    """``KlaviyoStandIn(accounts=...)`` for the specs: one account per label, one key each."""
    return {account_id_for(klaviyo_key(label)): (klaviyo_key(label),) for label in account_labels(specs)}


def check(specs: Sequence[ConnectionSpec]) -> None:
    ids = [spec.id for spec in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"connection ids repeat: {', '.join(ids)}")


class ConnectionAddFailed(RuntimeError):
    """``ksync connections add`` refused a spec; the message is its output."""


def add_connections(specs: Sequence[ConnectionSpec], tiktok, env: dict, cwd: Path, timeout: float = 60) -> None:
    """``ksync connections add ID --shop CIPHER`` for each spec, in order (spec ``i`` owns the
    stand-in's shop ``i``), with its seller's tokens and its account's key in ``KSYNC_NEW_*``."""
    for index, spec in enumerate(specs):
        shop = tiktok.shop(index)
        tokens = tiktok.seller(shop.seller_key).tokens.current
        secrets = {"KSYNC_NEW_KLAVIYO_API_KEY": klaviyo_key(spec.account),
                   "KSYNC_NEW_TIKTOK_ACCESS_TOKEN": tokens.access_token,
                   "KSYNC_NEW_TIKTOK_REFRESH_TOKEN": tokens.refresh_token}
        done = subprocess.run([sys.executable, "-m", "cli.main", "connections", "add", spec.id, "--shop", shop.cipher],
                              env={**env, **secrets}, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise ConnectionAddFailed(f"ksync connections add {spec.id} exited with {done.returncode}: "
                                      f"{(done.stderr or done.stdout).strip()}")
