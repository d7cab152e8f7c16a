"""What the demo checks and prints once its runs are final: one row per connection, and for each
Klaviyo account whether it holds exactly what its connections' runs report sent.

Two sources are compared, neither trusted alone: sync history (the events each run planned and
had accepted) and the Klaviyo stand-in's store (what actually landed, per account). Profiles are
expected for every buyer with a placed order in a connection's shop, read from the TikTok
stand-in: a buyer of two shops feeding one account is one profile there.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from .progress import STATUS_STYLE


@dataclass(frozen=True)
class ConnectionOutcome:
    """One connection's run and what of it is in its Klaviyo account."""

    id: str
    shop: str
    account: str
    run: object
    events_planned: frozenset[str]
    events_sent: frozenset[str]
    events_landed: int
    buyers: frozenset[str]
    profiles_landed: int


@dataclass(frozen=True)
class AccountCheck:
    """An account's store against its connections' history: events reported sent but missing,
    events stored but never reported sent, buyers without a profile, profiles of no buyer."""

    account: str
    events: int
    profiles: int
    missing: int
    unexpected: int
    missing_profiles: int
    unexpected_profiles: int

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.missing_profiles or self.unexpected_profiles)


def placed_buyers(raw_orders) -> frozenset[str]:
    """External ids of the buyers with a placed order among these raw stand-in orders."""
    from tiktok import InvalidOrder, parse_order
    from workers.mapping import external_id, is_placed

    orders = (parse_order(raw) for raw in raw_orders)
    return frozenset(external_id(o.user_id) for o in orders if not isinstance(o, InvalidOrder) and is_placed(o))


def outcomes(stack, runs: dict) -> list[ConnectionOutcome]:
    from db.engine import session_scope
    from db.models import SyncItem

    found = []
    for spec in stack.connections:
        account = stack.account(spec.account)
        state = account.state()
        stored_events = {f"{e['metric']}|{e['unique_id']}" for e in state["events"]}
        stored_profiles = {p.get("external_id") for p in state["profiles"]}
        with session_scope() as session:
            items = [(i.key, i.status) for i in session.query(SyncItem).filter_by(run_id=runs[spec.id].id, kind="event")]
        planned = frozenset(key for key, status in items if status != "skipped")
        sent = frozenset(key for key, status in items if status == "succeeded")
        shop = stack.shop_of(spec.id)
        buyers = placed_buyers(shop.orders())
        found.append(ConnectionOutcome(spec.id, shop.name, f"{spec.account} ({account.id})", runs[spec.id], planned,
                                       sent, len(planned & stored_events), buyers, len(buyers & stored_profiles)))
    return found


def account_checks(stack, found: list[ConnectionOutcome]) -> list[AccountCheck]:
    checks = []
    for label in dict.fromkeys(spec.account for spec in stack.connections):
        state = stack.account(label).state()
        stored_events = {f"{e['metric']}|{e['unique_id']}" for e in state["events"]}
        stored_profiles = {p.get("external_id") for p in state["profiles"]}
        mine = [o for o in found if o.account.startswith(f"{label} (")]
        sent = frozenset().union(*(o.events_sent for o in mine))
        buyers = frozenset().union(*(o.buyers for o in mine))
        checks.append(AccountCheck(label, len(stored_events), len(stored_profiles), len(sent - stored_events),
                                   len(stored_events - sent), len(buyers - stored_profiles),
                                   len(stored_profiles - buyers)))
    return checks


def connections_table(found: list[ConnectionOutcome]) -> Table:
    table = Table(title="connections", show_header=True)
    for column in ("connection", "shop", "Klaviyo account", "status", "orders read", "events landed / planned",
                   "profiles landed / expected", "failed records", "seconds"):
        table.add_column(column, justify="right" if column[0].isdigit() or "/" in column or column in (
            "orders read", "failed records", "seconds") else "left")
    for o in found:
        style = STATUS_STYLE.get(o.run.status, "")
        duration = o.run.duration_seconds
        table.add_row(o.id, o.shop, o.account, f"[{style}]{o.run.status}[/]" if style else o.run.status,
                      str(o.run.orders_read), f"{o.events_landed} / {len(o.events_planned)}",
                      f"{o.profiles_landed} / {len(o.buyers)}", str(o.run.failed_count),
                      f"{duration:.1f}" if duration is not None else "-")
    return table


def print_summary(console: Console, stack, runs: dict, catalog_runs: dict | None = None) -> int:
    """The per-connection table, the failed records, one line per account (its Refunded Orders and
    catalog too); 0 when every run finished and every account holds exactly what its connections
    report sent."""
    from db import history
    from db.engine import session_scope

    found = outcomes(stack, runs)
    console.print(connections_table(found))
    for o in found:
        if o.run.error:
            console.print(f"  [red]{o.id}[/]: {o.run.error}", highlight=False)
        with session_scope() as session:
            failed = history.failed_items(session, o.run.id)
        for item in failed[:3]:
            console.print(f"  [yellow]failed[/] {o.id} {item.kind} {item.key}: {item.error}", highlight=False)
        if len(failed) > 3:
            console.print(f"  … and {len(failed) - 3} more for {o.id} (`ksync failures --connection {o.id}`)")
    summaries = [a.summary() for a in stack.klaviyo.accounts()]
    console.print(f"429s from Klaviyo: {sum(s['http_429']['total'] for s in summaries)}; duplicates Klaviyo dropped: "
                  f"{sum(s['duplicates_dropped']['total'] for s in summaries)}")
    status = 0 if all(o.run.status in ("succeeded", "partial") for o in found) else 1
    for connection_id, run in (catalog_runs or {}).items():
        if run is None or run.status not in ("succeeded", "partial"):
            status = 1
            console.print(f"  [red]{connection_id}[/]: catalog run {run.status if run else 'unfinished'}"
                          + (f": {run.error}" if run is not None and run.error else ""), highlight=False)
    for label in dict.fromkeys(spec.account for spec in stack.connections):
        account = stack.account(label)
        catalog = account.summary()["catalog"]
        refunds = sum(1 for e in account.state()["events"] if e["metric"] == "Refunded Order")
        console.print(f"Klaviyo account {label}: {refunds} Refunded Orders, catalog of {catalog['items']} items / "
                      f"{catalog['variants']} variants", highlight=False)
    for check in account_checks(stack, found):
        if check.exact:
            console.print(f"[green]✓[/] Klaviyo account {check.account} holds exactly the {check.events} events its "
                          f"connections report sent, and a profile for each of its shops' {check.profiles} buyers")
            continue
        status = 1
        console.print(f"[red]✗[/] Klaviyo account {check.account}: {check.missing} events reported sent are missing, "
                      f"{check.unexpected} events were never reported sent, {check.missing_profiles} buyers have no "
                      f"profile, {check.unexpected_profiles} profiles belong to no buyer of its shops")
    return status
