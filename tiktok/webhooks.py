"""Verify TikTok Shop webhooks and drop repeated deliveries.

TikTok signs each delivery: ``Authorization`` = hex HMAC-SHA256(key=app_secret,
msg=app_key + raw body). Verify the raw bytes as received (never a
re-serialisation) in constant time. Unacknowledged deliveries are retried
(2 min, 30 min, 3 h, 12 h), so the same ``tts_notification_id`` can arrive
several times: ``NotificationDeduplicator`` remembers ids for two days.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from .signing import webhook_signature

#: TikTok retries an unacknowledged webhook for about 15 hours; keep ids longer than that.
DEDUPE_TTL_SECONDS = 2 * 24 * 3600


class WebhookSignatureError(ValueError):
    """The Authorization header does not match the body (or is missing)."""


@dataclass(frozen=True)
class OrderStatusNotification:
    notification_id: str
    shop_id: str
    order_id: str
    order_status: str
    update_time: int
    timestamp: int


def verify_webhook(app_key: str, app_secret: str, authorization_header: str | None, raw_body: bytes) -> None:
    """Raise ``WebhookSignatureError`` unless the header is the body's signature."""
    if not authorization_header:
        raise WebhookSignatureError("webhook has no Authorization header")
    expected = webhook_signature(app_key, app_secret, raw_body)
    if not hmac.compare_digest(expected, authorization_header.strip().lower()):
        raise WebhookSignatureError("webhook signature does not match its body")


def parse_order_status_notification(raw_body: bytes) -> OrderStatusNotification:
    """Read a type-1 (ORDER_STATUS_CHANGE) notification; ``CANCEL`` is read as ``CANCELLED``."""
    payload = json.loads(raw_body)
    data = payload.get("data") or {}
    if payload.get("type") != 1:
        raise ValueError(f"not an order status notification (type {payload.get('type')!r})")
    status = data.get("order_status")
    return OrderStatusNotification(
        notification_id=str(payload["tts_notification_id"]), shop_id=str(payload.get("shop_id", "")),
        order_id=str(data["order_id"]), order_status="CANCELLED" if status == "CANCEL" else status,
        update_time=int(data.get("update_time") or payload.get("timestamp") or 0),
        timestamp=int(payload.get("timestamp") or 0))


class NotificationDeduplicator:
    """``first_time(id)`` is True once per notification id (Redis SET NX with a TTL)."""

    def __init__(self, redis_client, namespace: str = "ksync:tiktok:webhooks", ttl: int = DEDUPE_TTL_SECONDS):
        self.redis = redis_client
        self.namespace = namespace
        self.ttl = ttl

    def first_time(self, notification_id: str) -> bool:
        return bool(self.redis.set(f"{self.namespace}:{notification_id}", 1, nx=True, ex=self.ttl))
