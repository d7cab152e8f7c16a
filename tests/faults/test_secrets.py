"""Secrets never leave: not in logs, exceptions, sync history, Celery task messages or any repr.

The connections' paths too: the connections and authorizations tables hold ciphertext only, and
the output of ``ksync connections`` (list, show, test, authorize), the sync task's arguments and
the reprs of rows, contexts and check targets hold no secret, with every logger at DEBUG.

The API key, the app secret and the TikTok tokens (the first pair and every pair a refresh hands out)
are searched for, after a sync forced through as many error paths as a test can fit: token expiry
and refresh (twice), Klaviyo 429 / 5xx / 400 on one buyer, malformed orders, a retry of the failures,
all at DEBUG level. Buyer e-mails and phones must be masked in logs (the sync history may hold them:
it stores what is sent). Covered elsewhere, with one cheap check each here: Flower's auth
(``tests/test_flower.py``) and webhook signatures (``tests/tiktok/test_signing.py``).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import runpy
import time
import traceback

import pytest
from sqlalchemy import MetaData, create_engine, select

import logs
from db import history
from db.engine import session_scope
from klaviyo import KlaviyoAuthError, KlaviyoClient, NoRateLimit
from klaviyo import RetryPolicy as KlaviyoRetryPolicy
from sandbox.stack import ROOT, worker
from settings import SECRET_NAMES, Settings, reset_settings_cache
from tests.support import wait_for_run
from tiktok import (
    InvalidOrder,
    RedisTokenStore,
    TikTokShopClient,
    TikTokSignatureError,
    TokenPair,
    WebhookSignatureError,
    parse_order,
    webhook_signature,
)
from workers.api import enqueue_sync, retry_failed
from workers.clients import klaviyo_from_settings, tiktok_from_settings
from workers.mapping import is_placed
from workers.ratelimit import RedisRateLimiter

SECRET_ENV = ("KLAVIYO_API_KEY", "TIKTOK_APP_SECRET", "TIKTOK_ACCESS_TOKEN", "TIKTOK_REFRESH_TOKEN")
ITEM_QUEUES = ("profiles", "events", "bulk")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
#: What an item task may carry: its run id and item id(s). A sync task: connection id, window, flags.
SYNC_KWARGS = {"connection", "shop", "trigger", "sync_type", "days_back", "since", "until", "dry_run", "run_id"}


def leaks(text: str, needles: dict[str, str]) -> list[str]:
    """Names of the ``needles`` found in ``text``, with the line they were found on."""
    found = []
    for name, value in needles.items():
        if value and value in text:
            line = next(line for line in text.splitlines() if value in line)
            found.append(f"{name} in: {line[:300]}")
    return found


# Celery task messages ------------------------------------------------------------------------------


def queued_messages(redis_client, queue: str) -> list[tuple[str, dict, list]]:
    """Every message waiting in ``queue``: (raw envelope text, headers, decoded body).

    kombu's Redis transport keeps a queue as a list (one per priority step: ``name``,
    ``name\\x06\\x16<n>``) of JSON envelopes whose ``body`` is base64 of the JSON-serialised
    ``[args, kwargs, embed]``.
    """
    found = []
    for key in redis_client.scan_iter(match=f"{queue}*"):
        if key.split(b"\x06\x16")[0] != queue.encode() or redis_client.type(key) != b"list":
            continue
        for raw in redis_client.lrange(key, 0, -1):
            envelope = json.loads(raw)
            body = envelope["body"]
            if envelope["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            found.append((raw.decode(), envelope["headers"], json.loads(body)))
    return found


def assert_carries_references_only(messages, needles: dict[str, str], run_id: str) -> None:
    for raw, headers, (args, kwargs, _) in messages:
        shown = raw + json.dumps([args, kwargs], ensure_ascii=False)
        assert not leaks(shown, needles), (headers["task"], leaks(shown, needles))
        if headers["task"] == "ksync.sync_shop":
            assert args == [] and set(kwargs) <= SYNC_KWARGS and kwargs["run_id"] == run_id, kwargs
        else:
            assert kwargs == {} and args[0] == run_id and len(args) == 2, (headers["task"], args)
            ids = args[1] if isinstance(args[1], list) else [args[1]]
            assert ids and all(isinstance(i, int) for i in ids), args


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def start_worker(stack, name: str, queues: str):
    """A worker on some queues only (``LocalStack.add_worker`` takes them all); stopped with the stack."""
    process = worker(stack.env, name, stack.log_dir, concurrency=2, queues=queues).start()
    stack.workers.append(process)
    process.wait_ready()
    return process


# Sync history --------------------------------------------------------------------------------------


def database_dump(url: str) -> str:
    """Every row of every table, as text (reflection: tables added later are searched too)."""
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        lines = []
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(select(table)):
                    lines.append(f"{table.name}: {json.dumps([str(v) for v in row], ensure_ascii=False)}")
        return "\n".join(lines)
    finally:
        engine.dispose()


def test_no_secret_or_buyer_contact_leaks_from_a_sync_through_every_error_path(fault_stack, redis_client, caplog,
                                                                              capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)
    # Orders of the last 0.9 days, read with days_back=1: the sync lane (a longer window is a backfill,
    # whose item tasks share the backfill queue with the sync task).
    stack = fault_stack(orders=60, workers=0, malformed_ratio=0.05, days=0.9,
                        extra_env={"KSYNC_LOG_LEVEL": "DEBUG", "KSYNC_BULK_THRESHOLD": "100000",
                                   "KSYNC_BACKFILL_AFTER_SECONDS": "100000000",  # one lane: sync, then items
                                   "KSYNC_MAX_ATTEMPTS": "3"})
    secrets = {name: stack.env[name] for name in SECRET_ENV}
    raw_orders = stack.tiktok.orders()
    emails = {f"e-mail {o['buyer_email']}": o["buyer_email"] for o in raw_orders if o.get("buyer_email")}
    phones = {f"phone {p}": p for o in raw_orders
              if E164.match(p := (o.get("recipient_address") or {}).get("phone_number") or "")}
    assert emails and phones and stack.tiktok.malformed_ids()
    placed = [o for o in map(parse_order, raw_orders) if not isinstance(o, InvalidOrder) and is_placed(o)]
    victim = placed[0].buyer_email
    # Every request naming one buyer: first a 429, then 5xx half the time, else refused (400).
    stack.klaviyo.set_faults(force_429=1, error_rate=0.5, error_statuses=[500, 503], reject_rate=1.0, match=victim,
                             seed=5)

    # 1. Nobody consumes yet: the sync task's message waits in Redis as Celery wrote it.
    run_id = enqueue_sync(days_back=1)
    sync_messages = wait_for(lambda: queued_messages(redis_client, "sync"), 10, "sync task message")
    assert_carries_references_only(sync_messages, secrets | emails | phones, run_id)

    # 2. The access token expires before the read: the sync worker refreshes it (new pair #1), plans the
    # window and dispatches item tasks that nobody consumes yet.
    stack.tiktok.expire_access_token()
    start_worker(stack, "sync-only", "sync")

    def dispatched():
        with session_scope() as session:
            run = history.get_run(session, run_id)
            if run.phase != "dispatched":
                return None
            expected = run.items_total - run.orders_invalid
        messages = [m for q in ("profiles", "events") for m in queued_messages(redis_client, q)]
        return messages if len(messages) == expected else None

    item_messages = wait_for(dispatched, 60, "item task messages")
    refreshed = {"refreshed TIKTOK_ACCESS_TOKEN #1": stack.tiktok.access_token,
                 "refreshed TIKTOK_REFRESH_TOKEN #1": stack.tiktok.refresh_token}
    assert set(refreshed.values()).isdisjoint(secrets.values())  # a refresh really happened
    assert_carries_references_only(item_messages, secrets | refreshed | emails | phones, run_id)
    assert {h["task"] for _, h, _ in item_messages} == {"ksync.upsert_profile", "ksync.track_event"}

    # The same items sent the bulk way (the product's dispatch, with the threshold at 0), read, then dropped.
    from workers.tasks import dispatch

    monkeypatch.setenv("KSYNC_BULK_THRESHOLD", "0")
    reset_settings_cache()
    with session_scope() as session:  # as a sync task redelivered between planning and dispatch finds it
        history.get_run(session, run_id).phase = "planned"
    dispatch(run_id)
    monkeypatch.setenv("KSYNC_BULK_THRESHOLD", "100000")
    reset_settings_cache()
    bulk_messages = queued_messages(redis_client, "bulk")
    assert {h["task"] for _, h, _ in bulk_messages} == {"ksync.bulk_import_profiles", "ksync.bulk_create_events"}
    assert_carries_references_only(bulk_messages, secrets | refreshed | emails | phones, run_id)
    for key in redis_client.scan_iter(match="bulk*"):
        redis_client.delete(key)

    # 3. Item workers send, through the Klaviyo faults; then the token expires again and a retry of the
    # failures re-reads the malformed orders from TikTok (refresh with the rotated refresh token: pair #2).
    start_worker(stack, "items", "profiles,events,bulk")
    run = wait_for_run(run_id, timeout=120)
    # the victim's records fail (400), or stay unsent when 5xx outlasts their attempts (the run then fails)
    assert run.status in ("partial", "failed") and run.failed_count > len(stack.tiktok.malformed_ids())
    stack.tiktok.expire_access_token()
    replay = wait_for_run(retry_failed(run_id), timeout=90)
    assert replay.status in ("partial", "failed") and replay.failed_count + replay.unsent_count == run.failed_count
    refreshed |= {"refreshed TIKTOK_ACCESS_TOKEN #2": stack.tiktok.access_token,
                  "refreshed TIKTOK_REFRESH_TOKEN #2": stack.tiktok.refresh_token}
    assert len(set(refreshed.values())) == 4 and stack.tiktok.counters()["token_refreshes"] == 2
    summary = stack.klaviyo.summary()
    injected = summary["faults_injected"]["by_kind"]
    assert injected.get("force_429") == 1 and injected.get("error", 0) >= 1 and injected.get("reject", 0) >= 1, injected
    every_secret = secrets | refreshed

    # 4. Worker logs: no secret; no full buyer e-mail, no unmasked phone.
    log_files = sorted(stack.log_dir.glob("*.log"))
    assert {p.stem for p in log_files} >= {"sync-only", "items"}
    text = {p.name: p.read_text(errors="replace") for p in log_files}
    everything = "\n".join(text.values())
    # The error paths really ran and were logged, at DEBUG level.
    assert everything.count("tiktok access token refreshed") == 2
    assert "level=debug" in everything
    assert "retry: Retry in" in everything  # a 429 or 5xx became a task retry
    assert re.search(r"item\(s\) \[\d+\] failed: Klaviyo \w+ answered 400", everything)
    # Today no product path logs a buyer's e-mail or phone at all (the 400 names no value, our own validation
    # names fields, not values), so the PII half is a guard; at DEBUG, Celery logs every task message it runs
    # ("TaskPool: Apply ..."), so buyer data put into task arguments would show up here.
    for name, content in text.items():
        assert not leaks(content, every_secret), (name, leaks(content, every_secret))
        assert not leaks(content, emails | phones), (name, leaks(content, emails | phones))

    # 5. Sync history: every row of every table. No secret. (Buyer e-mails and phones may be there: the
    # ledger keeps each order as TikTok sent it and items keep the payload they send, by design.)
    dump = database_dump(stack.database_url)
    assert {"sync_runs", "sync_items"} <= {line.split(":", 1)[0] for line in dump.splitlines()}
    assert any(email in dump for email in emails.values())  # the dump is searched where the data is
    assert not leaks(dump, every_secret), leaks(dump, every_secret)

    # 6. This process: what it logged and printed while driving the run.
    captured = capsys.readouterr()
    own = "\n".join([caplog.text, *(r.getMessage() for r in caplog.records), captured.out, captured.err])
    assert not leaks(own, every_secret), leaks(own, every_secret)



# Connections: commands, tables, task arguments, reprs, at DEBUG --------------------------------


APP_SECRET = "app-secret-for-leak-tests-0123456789"
GLOW_KEY, CORNER_KEY = "pk_glow_leak_0123456789abcdef", "pk_corner_leak_0123456789abcdef"


def every_token(tiktok, seen: dict) -> dict:
    """Every token the stand-in's sellers issued so far (first pairs, refreshes, code grants), added to ``seen``."""
    for seller in tiktok.sellers.values():
        for token in [*seller.tokens._access, *seller.tokens._refresh]:
            seen.setdefault(f"token of {seller.key} #{len(seen)}", token)
    return seen


def test_no_secret_leaks_from_connection_commands_tables_tasks_or_reprs_with_every_logger_at_debug(
        migrated_database, redis_url, monkeypatch, caplog, capsys):
    """TikTok's code exchange and token refresh are GETs with ``app_secret``, ``auth_code`` and
    ``refresh_token`` in the query string, and urllib3 logs each request line at DEBUG: with every
    logger at DEBUG those lines must show the values as ``***`` (``tiktok/redact.py``)."""
    import subprocess
    import sys

    import requests
    from cryptography.fernet import Fernet

    from db.models import Connection, TikTokAuthorization
    from db.secrets import SecretKeyError
    from sandbox.klaviyo import KlaviyoStandIn
    from sandbox.tiktok import ShopSpec, TikTokStandIn
    from tiktok import TokenPair
    from workers import clients
    from workers import connections as engine
    from db.connections import SetupError
    from workers.authorize import authorize_with_code
    from workers.connection_setup import add_connection
    from workers.connection_checks import check_connection, load

    for name in ["", *logging.root.manager.loggerDict]:  # every logger: urllib3's request lines, SQLAlchemy's rows
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    logging.getLogger().manager._clear_cache()
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(logs.ScrubFilter())  # as on every handler ksync installs (logs.configure)
    request_lines = []  # urllib3's own lines before any handler's scrub: what tiktok/redact.py leaves

    class Lines(logging.Handler):
        def emit(self, record):
            request_lines.append(record.getMessage())

    monkeypatch.setattr(logging.getLogger("urllib3.connectionpool"), "handlers", [Lines()])
    fernet_key = Fernet.generate_key().decode()
    specs = [ShopSpec(name="Glow US", seller="glow"), ShopSpec(name="Glow UK", seller="glow", currency="GBP"),
             ShopSpec(name="Corner Shop", seller="corner")]
    with TikTokStandIn(shops=specs, orders=10, app_secret=APP_SECRET) as tiktok, \
            KlaviyoStandIn(accounts={"AbC123": (GLOW_KEY,), "XyZ789": (CORNER_KEY,)}) as klaviyo:
        env = {"REDIS_URL": redis_url, "DATABASE_URL": migrated_database, "KLAVIYO_API_BASE_URL": klaviyo.url,
               "TIKTOK_API_BASE_URL": tiktok.url, "TIKTOK_AUTH_BASE_URL": tiktok.auth_url,
               "TIKTOK_APP_KEY": tiktok.app_key, "TIKTOK_APP_SECRET": APP_SECRET, "KSYNC_SECRET_KEY": fernet_key,
               "TIKTOK_SERVICE_ID": "svc-7", "TIKTOK_CONSENT_BASE_URL": tiktok.url, "KSYNC_LOG_LEVEL": "DEBUG"}
        for name in [k for k in __import__("os").environ if k.startswith(("KLAVIYO_", "TIKTOK_", "KSYNC_"))]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_settings_cache()
        clients.reset()
        needles = {"Klaviyo key (glow)": GLOW_KEY, "Klaviyo key (corner)": CORNER_KEY, "app secret": APP_SECRET,
                   "KSYNC_SECRET_KEY": fernet_key}
        every_token(tiktok, needles)
        shown_things, outputs = [], []

        def code_for(seller: str) -> str:
            code = tiktok.issue_auth_code(seller)
            needles[f"auth code #{len(needles)}"] = code
            return code

        # 1. In process: add with pasted tokens whose access token has expired (a refresh), a code
        # exchange, a check that refreshes through the database, one whose refresh fails; and failures.
        glow = tiktok.seller("glow").tokens.current
        tiktok.expire_access_token("glow")
        shown_things.append(add_connection("glow-us", klaviyo_api_key=GLOW_KEY, shop=tiktok.shop(0).cipher,
                                           tokens=TokenPair(glow.access_token, glow.refresh_token)))
        shown_things.append(authorize_with_code(code_for("corner"), "corner", CORNER_KEY))
        tiktok.expire_access_token("glow")
        shown_things += check_connection("glow-us", clients.redis_client())
        every_token(tiktok, needles)
        tiktok.revoke_refresh_token("corner")
        tiktok.expire_access_token("corner")
        shown_things += check_connection("corner", clients.redis_client())
        needles["the wrong key"] = wrong = "pk_wrong_leak_0123456789"
        with pytest.raises(SetupError) as wrong_key:  # (the traceback shows this line: no literal secret in it)
            add_connection("glow-uk", klaviyo_api_key=wrong, shop=tiktok.shop(1).cipher)
        with pytest.raises(SetupError) as spent_code:
            authorize_with_code(needles[next(k for k in needles if k.startswith("auth code"))])
        shown_things += [wrong_key.value, spent_code.value]

        # 2. The commands, as subprocesses at KSYNC_LOG_LEVEL=DEBUG.
        def ksync(*args) -> subprocess.CompletedProcess:
            result = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, input="", text=True,
                                    env=dict(__import__("os").environ), capture_output=True, timeout=120)
            outputs.append(f"$ ksync {' '.join(args[:2])} ...\n{result.stdout}\n{result.stderr}")  # argv: not output
            return result

        assert ksync("connections", "list").returncode == 0
        assert ksync("connections", "show", "glow-us", "--json").returncode == 0
        assert ksync("connections", "test", "glow-us").returncode == 0
        printed = ksync("connections", "authorize", "corner")
        consent = re.search(r"(http://\S+/open/authorize\?\S+)", printed.stdout).group(1)
        code = requests.get(consent, params={"seller": "corner"}, timeout=10).json()["code"]
        needles[f"auth code #{len(needles)}"] = code
        assert ksync("connections", "authorize", "--code", code).returncode == 0  # corner active again
        assert ksync("connections", "test", "corner").returncode == 0
        assert ksync("connections", "rotate-key").returncode == 0
        every_token(tiktok, needles)
        assert "level=debug" in "".join(outputs)  # the commands really logged at DEBUG

        # 3. A sync's task message carries the connection id, never its secrets.
        run_id = enqueue_sync(connection="glow-us", days_back=1)
        messages = wait_for(lambda: queued_messages(clients.redis_client(), "sync")
                            + queued_messages(clients.redis_client(), "backfill"), 10, "sync task message")
        assert_carries_references_only(messages, needles, run_id)
        assert messages[0][2][1]["connection"] == "glow-us"

        # 4. Reprs: the rows, the authorization, a connection's context and its clients.
        with session_scope() as session:
            shown_things += [*session.scalars(select(Connection)), *session.scalars(select(TikTokAuthorization))]
        ctx = engine.context("glow-us", fresh=True)
        shown_things += [ctx, ctx.klaviyo, ctx.tiktok, ctx.tiktok.token_store, ctx.tiktok.token_store.load(),
                         load("glow-us")]
        monkeypatch.setenv("KSYNC_SECRET_KEY", Fernet.generate_key().decode())  # the key rotated away
        reset_settings_cache()
        with pytest.raises(SecretKeyError) as unreadable:
            load("glow-us")
        shown_things.append(unreadable.value)
        monkeypatch.setenv("KSYNC_SECRET_KEY", fernet_key)
        reset_settings_cache()
        ctx.close()
        engine.forget()

        # 5. Every row of every table.
        dump = database_dump(migrated_database)
        assert "connections:" in dump and "tiktok_authorizations:" in dump

    for thing in shown_things:
        assert not leaks(shown(thing), needles), (type(thing).__name__, leaks(shown(thing), needles))
    for output in outputs:
        assert not leaks(output, needles), leaks(output, needles)
    assert not leaks(dump, needles), leaks(dump, needles)
    records = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    captured = capsys.readouterr()
    assert not leaks("\n".join([caplog.text, records, captured.out, captured.err]), needles)
    # urllib3 wrote the token host's request lines, and with the credentials blanked.
    assert not leaks("\n".join(request_lines), needles), leaks("\n".join(request_lines), needles)
    token_lines = [line for line in request_lines if "/api/v2/token/" in line]
    assert any("/api/v2/token/get?" in line and "auth_code=***" in line for line in token_lines), token_lines
    assert any("/api/v2/token/refresh?" in line and "refresh_token=***" in line for line in token_lines), token_lines
    assert all("app_secret=***" in line for line in token_lines), token_lines
    clients.reset()
    reset_settings_cache()


# Reprs and exceptions ------------------------------------------------------------------------------


def shown(value) -> str:
    """Everything a log line or an error report could print of ``value``."""
    parts = [repr(value), str(value)]
    if isinstance(value, BaseException):
        parts.append("".join(traceback.format_exception(value)))
        parts.append(repr(vars(value)))
    return "\n".join(parts)


def test_settings_clients_limiter_token_store_and_auth_errors_show_no_secret(make_stack, redis_client):
    stack = make_stack(orders=5, workers=0)
    secrets = {name: stack.env[name] for name in SECRET_ENV} | {"FLOWER_BASIC_AUTH": "ops:flower-pass-123"}
    settings = Settings.from_env(dict(stack.env, FLOWER_BASIC_AUTH=secrets["FLOWER_BASIC_AUTH"]))
    assert settings.klaviyo_api_key == secrets["KLAVIYO_API_KEY"] and set(SECRET_ENV) < set(SECRET_NAMES)

    wrong_key, wrong_secret = "pk_wrong_key_0123456789", "wrong-app-secret-0123"
    needles = secrets | {"the wrong API key": wrong_key, "the wrong app secret": wrong_secret,
                         "the Flower password": "flower-pass-123"}
    klaviyo = klaviyo_from_settings(settings, rate_limiter=NoRateLimit())
    tiktok = tiktok_from_settings(settings)
    store = RedisTokenStore(redis_client, settings.tiktok_app_key)
    store.save(TokenPair(settings.tiktok_access_token, settings.tiktok_refresh_token, 1, 2))
    limiter = RedisRateLimiter.for_klaviyo(redis_client, settings.klaviyo_api_key)

    with pytest.raises(KlaviyoAuthError) as klaviyo_refused:
        KlaviyoClient(wrong_key, base_url=stack.klaviyo.url, rate_limiter=NoRateLimit(),
                      retry=KlaviyoRetryPolicy(max_5xx=0)).get_profile("01NOSUCHPROFILE0000000000A")
    with pytest.raises(TikTokSignatureError) as tiktok_refused:
        next(TikTokShopClient(settings.tiktok_app_key, wrong_secret, settings.tiktok_access_token,
                              settings.shop_ciphers[0], base_url=stack.tiktok.url).search_orders(0, time.time()))
    assert klaviyo_refused.value.status == 401 and tiktok_refused.value.code == 106001

    for thing in (settings, klaviyo, tiktok, store, store.load(), limiter, klaviyo_refused.value, tiktok_refused.value):
        assert not leaks(shown(thing), needles), (type(thing).__name__, leaks(shown(thing), needles))
    klaviyo.close()
    tiktok.close()


# Cheap checks of what other files test in depth ----------------------------------------------------


def test_a_webhook_signed_with_another_secret_is_rejected_without_echoing_either_signature():
    body = b'{"type":1,"tts_notification_id":"1","data":{"order_id":"576461413038785752","order_status":"UNPAID"}}'
    forged = webhook_signature("ksync-app", "not-the-app-secret", body)
    client = TikTokShopClient("ksync-app", "ksync-secret", "token", "ROW_cipher", base_url="http://127.0.0.1:9")
    with pytest.raises(WebhookSignatureError) as caught:
        client.verify_webhook(forged, body)
    assert forged not in str(caught.value) and webhook_signature("ksync-app", "ksync-secret", body) not in str(caught.value)
    client.verify_webhook(webhook_signature("ksync-app", "ksync-secret", body), body)  # the genuine one passes


def test_flower_refuses_to_start_without_basic_auth_and_its_password_is_a_registered_secret(monkeypatch):
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    monkeypatch.delenv("KSYNC_FLOWER_UNAUTHENTICATED", raising=False)
    with pytest.raises(SystemExit) as refused:
        runpy.run_path(str(ROOT / "flowerconfig.py"))
    assert "FLOWER_BASIC_AUTH" in str(refused.value.code)
    assert "FLOWER_BASIC_AUTH" in SECRET_NAMES


# logs.scrub and ScrubFilter ------------------------------------------------------------------------


@pytest.fixture
def registered(monkeypatch):
    """A clean set of registered secrets for the test (the module keeps them process-wide)."""
    monkeypatch.setattr(logs, "_secrets", set())
    return logs.register_secret


def scrubbed_line(logger_call, fmt: str = "logfmt") -> str:
    """What one log call writes through ksync's handler setup (formatter + scrub filter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.LineFormatter(fmt))
    handler.addFilter(logs.ScrubFilter())
    logger = logging.getLogger(f"ksync.test.scrub.{fmt}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger_call(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize("text, kept", [
    ("buyer v2b2V5@scs.tiktokw.us refused", "v***@scs.tiktokw.us"),
    ("to: jane.doe+orders@example.co.uk.", "j***@example.co.uk"),
    ("<JANE@EXAMPLE.COM>", "J***@EXAMPLE.COM"),
    ('{"email": "012fruxcc17ewwudi22b3t@scs.tiktokw.us"}', "0***@scs.tiktokw.us"),
    ("mailto:jane@example.com", "j***@example.com"),
    ("a@example.com and b@example.org", "b***@example.org"),
])
def test_emails_are_masked_to_first_letter_and_domain(text, kept):
    out = logs.scrub(text)
    assert kept in out
    assert not re.search(r"[\w.+-]{2,}@", out), out


@pytest.mark.parametrize("text", [
    "phone +14155550123 refused",
    '{"phone_number": "+14155550123"}',
    "phone_number=+14155550123 status=400",
    "(+14155550123)",
    "refused '+14155550123'.",
    "the buyer's phone is +14155550123.",
    "phone:+14155550123",
    "tel:+14155550123",
    "+14155550123",
])
def test_e164_phones_are_masked_wherever_they_sit_in_a_line(text):
    out = logs.scrub(text)
    assert "+14155550123" not in out and "4155550123" not in out, out
    assert "0123" in out  # the last four digits stay, to tell buyers apart


@pytest.mark.parametrize("text", ["(+1)213-***-1234", "phone (+44)7911-***-456 shipped"])
def test_tiktok_masked_phones_stay_masked(text):
    out = logs.scrub(text)
    assert "*" in out and not re.search(r"\d{5,}", out), out


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_registered_secrets_are_redacted_from_messages_arguments_fields_and_tracebacks(registered, fmt):
    api_key, token = "pk_live_0123456789abcdef", "ROW_refreshed_token_abcdef0123"
    registered(api_key)
    registered(token)
    registered("short")  # too short to redact safely: ignored

    def log_everything(logger):
        logger.info("key %s for buyer jane@example.com", api_key, extra={"fields": {"token": token, "n": 1}})
        try:
            try:
                raise ValueError(f"upstream said {token} is invalid for +14155550123")
            except ValueError as inner:
                raise RuntimeError(f"call with {api_key} failed") from inner
        except RuntimeError:
            logger.exception("sync failed")
        logger.debug("%(key)s", {"key": api_key})

    out = scrubbed_line(log_everything, fmt)
    assert api_key not in out and token not in out and "jane@" not in out and "+14155550123" not in out, out
    assert out.count("***") >= 5 and "short" not in logs._secrets
    assert "ValueError" in out and "RuntimeError" in out  # the traceback is there, scrubbed, not dropped
    assert len(out.strip().splitlines()) == 3  # one line per record, tracebacks included


def test_a_secret_inside_a_celery_style_task_failure_is_redacted(registered):
    secret = "ksync-secret-value-42"
    registered(secret)

    def fail(logger):
        try:
            raise KlaviyoAuthError(f"bad key {secret}")
        except KlaviyoAuthError:
            logger.error("Task %s[%s] raised unexpected: %r", "ksync.track_event", "abc", KlaviyoAuthError(secret),
                         exc_info=True)

    out = scrubbed_line(fail)
    assert secret not in out and "KlaviyoAuthError" in out
