"""The web service (``ksync serve``): TikTok webhooks in, work queued; the OAuth callback; health.

    POST /webhooks/tiktok        verify, drop repeats, note the orders, answer 200 (work is queued)
    GET  /oauth/tiktok/callback  a seller authorized the app: exchange the code, save the connection
    GET  /healthz                the process answers
    GET  /readyz                 Redis and the database answer (503 naming the one that does not)
    GET  /metrics                Prometheus: webhooks by type and outcome, latency, runs, limiter

A webhook is answered within milliseconds: the handler verifies the signature over the raw body
before reading anything, checks the notification's age, drops a repeated ``tts_notification_id``
(Redis ``SET NX``), finds the connection by ``shop_id``, notes what changed and queues the work;
it never calls TikTok or Klaviyo itself. What each answer means to TikTok:

- 401: the signature does not match (no detail given); TikTok will retry, a forger learns nothing;
- 400: not a notification, or stamped further from now than ``KSYNC_WEBHOOK_MAX_AGE_SECONDS``
  (a replayed body): a genuine retry always falls inside it (TikTok gives up after about 15 h);
- 200: everything else, including a repeat, an unknown shop and a type ksync does not use (all
  logged and counted), so TikTok stops retrying what ksync will never act on.
"""

from __future__ import annotations

import html
import logging
import time

from flask import Flask, Response, request

from settings import get_settings
from tiktok.webhooks import NotificationDeduplicator, WebhookSignatureError, parse_notification, verify_webhook

from . import clients, realtime

log = logging.getLogger(__name__)

ORDER_STATUS_CHANGE, SELLER_DEAUTHORIZATION, UPCOMING_AUTHORIZATION_EXPIRATION = 1, 6, 7
CANCELLATION_STATUS_CHANGE, RETURN_STATUS_CHANGE = 11, 12
#: A notification stamped this far in the future is refused (clocks drift, not by minutes).
FUTURE_SKEW_SECONDS = 300
#: How long the shop id -> connection ids lookup is reused in a web process.
SHOP_CACHE_SECONDS = 30


def create_app() -> Flask:
    app = Flask("ksync")
    app.add_url_rule("/webhooks/tiktok", view_func=tiktok_webhook, methods=["POST"])
    app.add_url_rule("/oauth/tiktok/callback", view_func=oauth_callback, methods=["GET"])
    app.add_url_rule("/healthz", view_func=lambda: Response("ok\n", mimetype="text/plain"))
    app.add_url_rule("/readyz", view_func=readyz)
    app.add_url_rule("/metrics", view_func=metrics)
    return app


def _count(name: str) -> None:
    realtime.count(clients.redis_client(), name)


def tiktok_webhook():
    settings = get_settings()
    raw = request.get_data(cache=False)
    try:
        verify_webhook(settings.tiktok_app_key, settings.tiktok_app_secret, request.headers.get("Authorization"), raw)
    except WebhookSignatureError:
        _count("webhooks_rejected:signature")
        log.warning("webhook refused: signature does not match")
        return Response(status=401)
    try:
        notification = parse_notification(raw)
    except ValueError as exc:
        _count("webhooks_rejected:malformed")
        log.warning("webhook refused: %s", exc)
        return Response("not a TikTok notification\n", status=400, mimetype="text/plain")
    age = notification.age(time.time())
    if age > settings.webhook_max_age_seconds or age < -FUTURE_SKEW_SECONDS:
        _count("webhooks_rejected:stale")
        log.warning("webhook refused: stamped %.0f s from now (type %s)", age, notification.type)
        return Response("stale notification\n", status=400, mimetype="text/plain")
    redis_client = clients.redis_client()
    if not NotificationDeduplicator(redis_client, ttl=settings.webhook_max_age_seconds + 3600).first_time(
            notification.dedupe_key()):
        _count(f"webhooks:{notification.type}:duplicate")
        return Response(status=200)
    connection_ids = connections_of_shop(notification.shop_id)
    if not connection_ids:
        _count(f"webhooks:{notification.type}:unknown_shop")
        log.warning("webhook for shop %s, which no connection syncs (type %s)", notification.shop_id,
                    notification.type)
        return Response(status=200)
    outcome = handle(notification, connection_ids, redis_client, settings)
    _count(f"webhooks:{notification.type}:{outcome}")
    return Response(status=200)


def handle(notification, connection_ids: list[str], redis_client, settings) -> str:
    """Queue what the notification asks for; returns the outcome counted."""
    from . import connections
    from .tasks import refresh_authorization, sync_orders

    kind = notification.type
    if kind in (ORDER_STATUS_CHANGE, CANCELLATION_STATUS_CHANGE) and notification.order_id:
        update_time = notification.data.get("update_time") or notification.timestamp
        for connection_id in connection_ids:
            if realtime.note_orders(redis_client, connection_id, [(notification.order_id, int(update_time))],
                                    time.time()):
                sync_orders.apply_async((connection_id,), countdown=settings.realtime_coalesce_ms / 1000,
                                        queue="realtime")
        return "queued"
    if kind == RETURN_STATUS_CHANGE:
        for connection_id in connection_ids:
            if realtime.note_returns(redis_client, connection_id, notification.subject, notification.order_id):
                sync_orders.apply_async((connection_id,), countdown=settings.realtime_coalesce_ms / 1000,
                                        queue="realtime")
        return "queued"
    if kind == SELLER_DEAUTHORIZATION:
        reason = notification.data.get("message") or "the seller deauthorized the app"
        connections.needs_reauth(connection_ids[0], f"TikTok: {reason} (webhook); authorize again with "
                                                    f"`ksync connections authorize {connection_ids[0]}`")
        return "deauthorized"
    if kind == UPCOMING_AUTHORIZATION_EXPIRATION:
        log.warning("TikTok says the authorization of connection(s) %s expires at %s: refreshing now; the seller "
                    "must authorize again before then", ", ".join(connection_ids),
                    notification.data.get("expiration_time"))
        refresh_authorization.apply_async((connection_ids[0],))
        return "refresh_queued"
    log.info("webhook type %s not used by ksync; acknowledged", kind)
    return "ignored"


_shops: dict[str, tuple[float, list[str]]] = {}


def connections_of_shop(shop_id: str) -> list[str]:
    cached = _shops.get(shop_id)
    if cached and time.monotonic() - cached[0] < SHOP_CACHE_SECONDS:
        return cached[1]
    from db import connections as store
    from db.engine import session_scope

    from .connections import ensure_env_connections

    with session_scope() as session:
        ids = [c.id for c in store.by_shop(session, shop_id)]
    if not ids and ensure_env_connections():  # an environment connection that has not learned its shop id yet
        with session_scope() as session:
            ids = [c.id for c in store.by_shop(session, shop_id)]
    _shops[shop_id] = (time.monotonic(), ids)
    return ids


def oauth_callback():
    """TikTok sends the seller here after consent, with ``code``. The code re-authorizes every
    connection on the seller's shops (a ``needs_reauth`` one is active again); a shop without a
    connection is named with the command that creates one, since creating needs a Klaviyo key
    that never travels in a URL."""
    code = request.args.get("code", "")
    if not code:
        return _page("Authorization not completed", "TikTok sent no authorization code: start again from "
                     "`ksync connections authorize`.", 400)
    try:
        from .authorize import authorize_with_code

        result = authorize_with_code(code)
    except Exception as exc:  # shown to a person: one line, never a secret (exceptions carry none)
        log.warning("authorization callback failed: %s", exc)
        from db.connections import SetupError

        said = str(exc) if isinstance(exc, SetupError) else f"{type(exc).__name__}: {exc}"  # ours read as they are
        return _page("Authorization failed", said, 400)
    said = []
    if result.reauthorized:
        said.append("ksync can now sync: " + ", ".join(result.reauthorized) + ".")
    if result.unconnected:
        said.append("Shops without a connection yet: " + ", ".join(f"{s.name} ({s.cipher})" for s in result.unconnected)
                    + "; the authorization is saved: create one with `ksync connections add` and its Klaviyo key.")
    return _page("Shop authorized", " ".join(said) + " You can close this page.", 200)


def _page(title: str, text: str, status: int) -> Response:
    body = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>")
    return Response(body, status=status, mimetype="text/html")


def readyz():
    from sqlalchemy import text

    from db.engine import get_engine

    problems = []
    try:
        clients.redis_client().ping()
    except Exception as exc:
        problems.append(f"redis: {type(exc).__name__}")
    try:
        with get_engine().connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:
        problems.append(f"database: {type(exc).__name__}")
    if problems:
        return Response("not ready: " + "; ".join(problems) + "\n", status=503, mimetype="text/plain")
    return Response("ready\n", mimetype="text/plain")


def metrics():
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from .metrics import registry

    return Response(generate_latest(registry()), mimetype=CONTENT_TYPE_LATEST)
