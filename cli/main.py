"""``ksync``: run the demo, start and follow syncs, read sync history, see the shared limiter.

Exit status of ``sync --wait`` and ``retry-failed --wait``: 0 succeeded, 3 partial
(some records failed, see ``ksync show RUN``), 4 failed. Any expected problem
(bad setting, Redis or database unreachable or unmigrated, a missing credential,
unknown run) is one line on stderr and exit status 1; usage errors are 2. The
checks behind those lines live in ``checks.py``; ``ksync doctor`` runs them all.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from settings import ConfigError, get_settings, redact_url

from . import checks
from .common import Failure, check_database, check_redis, connection, console, errors

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_FAILED = 0, 1, 2, 3, 4
EXIT_FOR_STATUS = {"succeeded": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED, "skipped": EXIT_OK}

def _warn_without_workers() -> None:
    """Say at once when nobody will pick the run up, rather than follow a run that never moves."""
    check = checks.workers()
    if not check.ok:
        errors.print(f"ksync: {check.detail}; the run waits until one does", markup=False, highlight=False,
                     soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ksync", prog_name="ksync")
def cli() -> None:
    """ksync: keep a merchant's Klaviyo account in step with their TikTok Shop."""
    _log_to_stderr()


def _log_to_stderr() -> None:
    """What the libraries log reaches stderr through the workers' line format and scrub filter
    (secrets redacted, buyers masked), never Python's bare last-resort handler: warnings and
    errors, or everything with KSYNC_LOG_LEVEL=DEBUG. A malformed setting is left to the command
    (``doctor`` reports it as its config line)."""
    import logs

    try:
        settings = get_settings()
    except ConfigError:
        return
    logs.configure("DEBUG" if settings.log_level.upper() == "DEBUG" else "WARNING", settings.log_format)


@cli.command()
@click.option("--orders", default=3000, show_default=True, help="orders the TikTok stand-in generates")
@click.option("--workers", default=2, show_default=True, help="worker processes to start")
@click.option("--days", default=30, show_default=True, help="days of order history to generate")
def demo(orders: int, workers: int, days: int) -> None:
    """Run a full sync on this machine: embedded Redis, SQLite, both stand-ins, real workers."""
    from .demo import run_demo

    sys.exit(run_demo(console, orders=orders, workers=workers, days=days))


@cli.command()
@click.option("--days-back", type=float, help="read orders updated in the last N days")
@click.option("--since", help="window start (ISO-8601, e.g. 2026-11-01T00:00:00Z)")
@click.option("--until", help="window end (ISO-8601); default now minus the lag")
@click.option("--dry-run", is_flag=True, help="record what would be sent; send nothing")
@click.option("--connection", "connection_id", help="connection id (default: the only one)")
@click.option("--shop", help="shop cipher or id, instead of --connection")
@click.option("--wait", is_flag=True, help="follow the run with progress bars; the exit status tells the outcome")
@click.option("--timeout", type=float, default=None, help="with --wait: give up waiting after N seconds")
def sync(days_back, since, until, dry_run, connection_id, shop, wait, timeout) -> None:
    """Queue a sync now (workers do the work) and print its run id."""
    from workers.api import WindowError, enqueue_sync
    from workers.sync import window_options

    try:
        window_options(days_back, since, until, settings=get_settings())
    except WindowError as exc:
        raise click.UsageError(str(exc)) from None
    check_database()
    check_redis()
    connection_id = connection(connection_id, shop)
    try:
        run_id = enqueue_sync(days_back=days_back, since=since, until=until, dry_run=dry_run, connection=connection_id,
                              trigger="cli")
    except WindowError as exc:
        raise click.UsageError(str(exc)) from None
    console.print(f"queued run [bold]{run_id}[/]")
    if wait:
        sys.exit(_wait(run_id, timeout))


def _wait(run_id: str, timeout: float | None) -> int:
    from .progress import follow

    _warn_without_workers()
    snap = follow(run_id, console, timeout=timeout)
    run = snap.run
    if run.status not in EXIT_FOR_STATUS:
        console.print(f"run {run_id} is still {run.status}; follow it with `ksync show {run_id[:8]}`")
        return EXIT_ERROR
    console.print(f"run {run.id[:8]} {run.status}: {run.success_count} records synced, {run.failed_count} failed"
                  + (f", {run.unsent_count} not sent" if run.unsent_count else "")
                  + (f" (see `ksync show {run.id[:8]}`)" if run.failed_count or run.unsent_count else ""),
                  markup=False, highlight=False)
    if run.error:
        errors.print(f"ksync: run {run.id[:8]} failed: {run.error}", markup=False, highlight=False)
    return EXIT_FOR_STATUS[run.status]


@cli.command("history")
@click.option("--limit", default=20, show_default=True)
@click.option("--connection", "connection_id", help="only this connection's runs")
@click.option("--shop", help="only this shop's runs (cipher)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def history_cmd(limit: int, connection_id: str | None, shop: str | None, as_json: bool) -> None:
    """Recent sync runs, newest first (every connection's, unless one is named)."""
    from db import history
    from db.engine import session_scope

    from .progress import run_dict, runs_table

    check_database()
    with session_scope() as session:
        runs = history.list_runs(session, limit=limit, shop=shop, connection_id=connection_id)
    if as_json:
        click.echo(json.dumps([run_dict(r) for r in runs], indent=1))
    else:
        console.print(runs_table(runs))


@cli.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "show_all", is_flag=True, help="list every failed item, not only the first 50")
def show(run_id: str, as_json: bool, show_all: bool) -> None:
    """One run: counts, window, and failed items with their errors."""
    from db import history
    from db.engine import session_scope

    from .progress import run_dict

    check_database()
    with session_scope() as session:
        run = history.get_run(session, run_id)
        if run is None:
            raise Failure(f"no run {run_id} (use a full id or an unambiguous prefix from `ksync history`)")
        counts = history.item_counts(session, run.id)
        failed = history.failed_items(session, run.id)
    if as_json:
        click.echo(json.dumps(run_dict(run) | {"items": {f"{k}:{s}": n for (k, s), n in counts.items()},
                                               "failed_items": [{"kind": i.kind, "key": i.key, "attempts": i.attempts,
                                                                 "error": i.error} for i in failed]}, indent=1))
        return
    console.print(f"[bold]run {run.id}[/]  {run.status}  ({run.sync_type}, {run.trigger}, connection "
                  f"{run.connection_id or '-'}, shop {run.shop}" + (f", Klaviyo account {run.account}" if run.account
                                                                    else "") + ")")
    if run.error:
        console.print(f"[red]why it failed:[/] {escape(run.error)}")
    if run.window_start:
        console.print(f"window  {run.window_start:%Y-%m-%d %H:%M:%S} → {run.window_end:%Y-%m-%d %H:%M:%S} UTC")
    console.print(f"orders read {run.orders_read}, invalid {run.orders_invalid}; records {run.items_total}; "
                  f"synced {run.success_count}, failed {run.failed_count}"
                  + (f", not sent {run.unsent_count} (sent by the next sync)" if run.unsent_count else "")
                  + (f"; {run.duration_seconds:.1f}s" if run.duration_seconds else "") + (" (dry run)" if run.dry_run else ""))
    table = Table("kind", "status", "records")
    for (kind, status), n in sorted(counts.items()):
        table.add_row(kind, status, str(n))
    console.print(table)
    if failed:
        shown = failed if show_all else failed[:50]
        errors_table = Table("kind", "key", "attempts", "error", title=f"failed items ({len(failed)})")
        for item in shown:
            errors_table.add_row(item.kind, item.key, str(item.attempts), item.error or "")
        console.print(errors_table)
        console.print(f"replay them with `ksync retry-failed {run.id[:8]}`")
    failing = (run.options or {}).get("already_failing")
    if failing:
        console.print(f"{failing} record(s) failed in an earlier run exactly as they are now and were not tried "
                      "again: see `ksync failures`")


@cli.command()
@click.option("--limit", default=50, show_default=True)
@click.option("--connection", "connection_id", help="only this connection's records")
@click.option("--json", "as_json", is_flag=True)
def failures(limit: int, connection_id: str | None, as_json: bool) -> None:
    """Records that need attention: failed for their own data and not delivered since.

    A record that fails again unchanged is listed once, in the run that first failed it, rather
    than in every later run; replay it with `ksync retry-failed RUN` once its cause is fixed."""
    from db import history
    from db.engine import session_scope

    check_database()
    if connection_id:
        connection_id = connection(connection_id)
    with session_scope() as session:
        items, total = history.outstanding_failures(session, limit, connection_id)
        owners = {run_id: history.get_run(session, run_id).connection_id for run_id in {i.run_id for i in items}}
    if as_json:
        click.echo(json.dumps({"total": total, "failures": [
            {"kind": i.kind, "key": i.key, "run_id": i.run_id, "connection": owners[i.run_id],
             "failed_at": i.updated_at.isoformat(), "error": i.error} for i in items]}, indent=1))
        return
    if not items:
        console.print("no record needs attention")
        return
    table = Table("kind", "key", "run", "connection", "failed at (UTC)", "error",
                  title=f"records that need attention ({total})")
    for item in items:
        table.add_row(item.kind, item.key, item.run_id[:8], owners[item.run_id] or "", f"{item.updated_at:%Y-%m-%d %H:%M}",
                      item.error or "")
    console.print(table)


@cli.command("retry-failed")
@click.argument("run_id")
@click.option("--wait", is_flag=True)
@click.option("--timeout", type=float, default=None)
def retry_failed_cmd(run_id: str, wait: bool, timeout: float | None) -> None:
    """Replay a run's failed items as a new run, for the run's connection."""
    from db import history
    from db.engine import session_scope
    from workers.api import retry_failed

    check_database()
    check_redis()
    with session_scope() as session:
        run = history.get_run(session, run_id)
        if run is None:
            raise Failure(f"no run {run_id} (use a full id or an unambiguous prefix from `ksync history`)")
        if not history.failed_items(session, run.id):
            console.print(f"nothing to retry: run {run_id} has no failed records")
            return
        owner, shop = run.connection_id, run.shop
    try:  # the run's own connection (a run from before connections: the one of its shop)
        owner = connection(owner) if owner else connection(shop=shop)
    except Failure as exc:
        raise Failure(f"run {run_id} cannot be replayed: its connection is gone ({exc})") from None
    try:
        new_id = retry_failed(run_id, connection=owner)
    except LookupError as exc:
        raise Failure(str(exc)) from None
    console.print(f"queued run [bold]{new_id}[/] replaying the failures of {run_id}")
    if wait:
        sys.exit(_wait(new_id, timeout))


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--prometheus", is_flag=True, help="print Prometheus text exposition")
@click.option("--all", "show_all", is_flag=True, help="include buckets that were never used")
@click.option("--connection", "connection_id", help="the connection whose Klaviyo account to show (default: the only one)")
def limits(as_json: bool, prometheus: bool, show_all: bool, connection_id: str | None) -> None:
    """The shared rate limiter's live state per Klaviyo operation, for one connection's account."""
    from workers import connections

    check_database()
    check_redis()
    limiter = connections.context(connection(connection_id)).klaviyo.rate_limiter
    if prometheus:
        from prometheus_client import CollectorRegistry, generate_latest

        from workers.ratelimit_metrics import LimiterCollector

        registry = CollectorRegistry()
        registry.register(LimiterCollector(limiter))
        click.echo(generate_latest(registry).decode(), nl=False)
        return
    stats = {b: s for b, s in limiter.stats().items() if show_all or s.grants or s.denials or s.cooldowns}
    if as_json:
        click.echo(json.dumps({b: asdict(s) for b, s in stats.items()}, indent=1, default=str))
        return
    table = Table("operation", "burst/s", "steady/min", "daily", "last 1s", "last 60s", "grants", "denials",
                  "waited s", "cool-downs", "paused s", title="Klaviyo rate limits (shared by every worker)")
    for bucket, s in sorted(stats.items()):
        table.add_row(bucket, str(s.burst), str(s.steady), str(s.daily or ""), str(s.in_last_second),
                      str(s.in_last_minute), str(s.grants), str(s.denials), f"{s.seconds_waited:.1f}",
                      str(s.cooldowns), f"{s.cooldown_remaining:.1f}" if s.cooldown_remaining else "")
    console.print(table if stats else "no Klaviyo calls recorded yet (try `ksync limits --all`)")


@cli.command()
@click.option("--bind", metavar="HOST:PORT", help="serve /metrics here (e.g. 0.0.0.0:9745) instead of printing once")
def metrics(bind: str | None) -> None:
    """Run and record outcomes, watermarks and the shared limiter, as Prometheus metrics."""
    from . import metrics as exporter

    check_database()
    if get_settings().klaviyo_api_key:
        check_redis()
    if not bind:
        click.echo(exporter.exposition(), nl=False)
        return
    try:
        exporter.parse_bind(bind)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bind") from None
    exporter.serve(bind, console)


@cli.command()
@click.option("--bind", metavar="HOST:PORT", help="where to listen (default KSYNC_WEB_BIND, 127.0.0.1:8080)")
@click.option("--workers", type=int, help="web worker processes (default KSYNC_WEB_WORKERS)")
def serve(bind: str | None, workers: int | None) -> None:
    """The web service: TikTok webhooks, the OAuth callback, health and metrics (gunicorn)."""
    from .serve import serve as run

    settings = get_settings()
    check_database()
    check_redis()
    if not (settings.tiktok_app_key and settings.tiktok_app_secret):
        raise Failure("TIKTOK_APP_KEY and TIKTOK_APP_SECRET must be set: webhooks are verified with the app secret")
    run(bind or settings.web_bind, workers or settings.web_workers, settings.web_timeout_seconds)


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from db.migrate import upgrade

    check_database(migrated=False)
    revision = upgrade(get_settings().database_url)
    console.print(f"database at {redact_url(get_settings().database_url)} is at revision {revision}")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--unauthenticated", is_flag=True, help="allow starting without FLOWER_BASIC_AUTH (local use only)")
@click.pass_context
def flower(ctx: click.Context, unauthenticated: bool) -> None:
    """Start Flower with basic auth from FLOWER_BASIC_AUTH (extra args go to Flower)."""
    auth = get_settings().flower_basic_auth
    if not auth and not unauthenticated:
        raise Failure("FLOWER_BASIC_AUTH is not set (user:password); refusing to start Flower without auth "
                      "(pass --unauthenticated to allow it on a trusted machine)")
    args = [sys.executable, "-m", "celery", "-A", "workers.app", "flower", *ctx.args]
    config = Path(__file__).resolve().parent.parent / "flowerconfig.py"
    if config.is_file() and not any(a.startswith("--conf") for a in ctx.args):
        args.append(f"--conf={config}")  # Flower looks for ./flowerconfig.py only: run from anywhere
    env = dict(os.environ)
    if unauthenticated and not auth:
        env["KSYNC_FLOWER_UNAUTHENTICATED"] = "1"
    os.execvpe(args[0], args, env)


@cli.command()
def doctor() -> None:
    """Check the configuration, database, Redis, workers, beat, Klaviyo and TikTok: one line each."""
    from .doctor import run_doctor

    sys.exit(run_doctor(console))


from .connections import connections  # noqa: E402  (after cli: the group registers on it)

cli.add_command(connections)


def main() -> None:
    import redis
    from sqlalchemy.exc import SQLAlchemyError

    from db.connections import ConnectionError_, SetupError
    from db.secrets import SecretKeyError

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        errors.print("aborted")
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except (Failure, ConfigError, SecretKeyError, SetupError, ConnectionError_) as exc:
        errors.print(f"ksync: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_ERROR)
    except SQLAlchemyError as exc:  # past the checks (the database went away mid-command): still one line
        if isinstance(getattr(exc, "orig", None), SecretKeyError):  # a secret written or read mid-statement
            errors.print(f"ksync: {exc.orig}", markup=False, highlight=False, soft_wrap=True)
            sys.exit(EXIT_ERROR)
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        errors.print(f"ksync: database error at {checks.shown(get_settings().database_url)}: {reason}",
                     markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_ERROR)
    except redis.RedisError as exc:
        errors.print(f"ksync: Redis error at {checks.shown(get_settings().redis_url)}: {type(exc).__name__}: {exc}",
                     markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
