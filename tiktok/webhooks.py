"""Verify TikTok Shop webhooks, read them, and drop repeated deliveries.

TikTok signs each delivery: ``Authorization`` = hex HMAC-SHA256(key=app_secret,
msg=app_key + raw body). Verify the raw bytes as received (never a
re-serialisation) in constant time. Unacknowledged deliveries are retried
(2 min, 30 min, 3 h, 12 h), so the same ``tts_notification_id`` can arrive
several times: ``NotificationDeduplicator`` remembers ids for two days.
Deliveries may also arrive out of order: treat a notification as a hint and
re-read the record it names (order, return, cancellation) rather than trusting
its status.

``parse_notification`` reads any type into a ``Notification`` whose ``subject``
is the id it is about. Ids arrive as JSON strings in some topics and integers in
others, so they are read as ``str`` and never through a float.
"""

from __future__ import annotations

import hashlib
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


#: The types ksync reads, by number (``tiktok-shop-api.md`` §5, ``commerce-apis.md`` §3).
NOTIFICATION_TYPES = {1: "ORDER_STATUS_CHANGE", 6: "SELLER_DEAUTHORIZATION", 7: "UPCOMING_AUTHORIZATION_EXPIRATION",
                      11: "CANCELLATION_STATUS_CHANGE", 12: "RETURN_STATUS_CHANGE"}
#: What each type is about: the ``data`` key naming its record (6 and 7 are about the shop itself).
_SUBJECT_KEYS = {1: "order_id", 11: "cancel_id", 12: "return_id"}


@dataclass(frozen=True)
class Notification:
    """Any TikTok notification: the envelope plus ``data`` as sent. ``type_name`` is None for types
    not in ``NOTIFICATION_TYPES`` (they are read, not refused, so an unknown topic never fails a hook)."""

    type: int
    notification_id: str | None
    shop_id: str
    timestamp: int
    data: dict
    type_name: str | None
    #: The order, cancellation or return id (None for 6 and 7: the shop is the subject).
    subject: str | None
    order_id: str | None

    def age(self, now: float) -> float:
        """Seconds since TikTok stamped it; a caller may refuse very old ones (a replayed body)."""
        return now - self.timestamp

    def dedupe_key(self) -> str:
        """``tts_notification_id``, or, where a topic omits it, a hash of the type and data."""
        if self.notification_id:
            return self.notification_id
        digest = hashlib.sha256(json.dumps([self.type, self.data], sort_keys=True).encode()).hexdigest()
        return f"h:{digest[:32]}"


def _id_text(value) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, str)) and str(value).strip():
        return str(value).strip()
    raise ValueError(f"an id must be a string or an integer, got {type(value).__name__}")


def parse_notification(raw_body: bytes) -> Notification:
    """Read any notification; ``ValueError`` for a body that is not a TikTok envelope."""
    try:
        payload = json.loads(raw_body)
    except ValueError:
        raise ValueError("webhook body is not JSON") from None
    if not isinstance(payload, dict) or isinstance(payload.get("type"), bool) or not isinstance(payload.get("type"), int):
        raise ValueError("webhook body has no integer type")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    type_ = payload["type"]
    key = _SUBJECT_KEYS.get(type_)
    timestamp = payload.get("timestamp")
    return Notification(type=type_, notification_id=_id_text(payload.get("tts_notification_id")),
                        shop_id=_id_text(payload.get("shop_id")) or "",
                        timestamp=timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else 0,
                        data=data, type_name=NOTIFICATION_TYPES.get(type_),
                        subject=_id_text(data.get(key)) if key else None, order_id=_id_text(data.get("order_id")))


class NotificationDeduplicator:
    """``first_time(id)`` is True once per notification id (Redis SET NX with a TTL)."""

    def __init__(self, redis_client, namespace: str = "ksync:tiktok:webhooks", ttl: int = DEDUPE_TTL_SECONDS):
        self.redis = redis_client
        self.namespace = namespace
        self.ttl = ttl

    def first_time(self, notification_id: str) -> bool:
        return bool(self.redis.set(f"{self.namespace}:{notification_id}", 1, nx=True, ex=self.ttl))
