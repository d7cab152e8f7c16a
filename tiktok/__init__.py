"""TikTok Shop Open API client: ``from tiktok import TikTokShopClient``."""

from .client import DEFAULT_API_BASE_URL, DEFAULT_AUTH_BASE_URL, RetryPolicy, TikTokShopClient, unix_seconds
from .exceptions import (
    OrderValidationError,
    TikTokAPIError,
    TikTokAuthError,
    TikTokNetworkError,
    TikTokNotFoundError,
    TikTokPagingError,
    TikTokRateLimitError,
    TikTokServerError,
    TikTokSignatureError,
    TikTokTokenExpiredError,
)
from .models import InvalidOrder, LineItem, Order, OrderStatus, Payment, RecipientAddress, Shop, SkuGroup, is_masked, is_relay_email
from .schemas import load_order, parse_order
from .signing import sign, webhook_signature
from .tokens import MemoryTokenStore, RedisTokenStore, TokenPair, TokenStore
from .webhooks import NotificationDeduplicator, WebhookSignatureError, parse_order_status_notification, verify_webhook

__all__ = [
    "DEFAULT_API_BASE_URL", "DEFAULT_AUTH_BASE_URL", "RetryPolicy", "TikTokShopClient", "unix_seconds",
    "OrderValidationError", "TikTokAPIError", "TikTokAuthError", "TikTokNetworkError", "TikTokNotFoundError",
    "TikTokPagingError", "TikTokRateLimitError", "TikTokServerError", "TikTokSignatureError", "TikTokTokenExpiredError",
    "InvalidOrder", "LineItem", "Order", "OrderStatus", "Payment", "RecipientAddress", "Shop", "SkuGroup",
    "is_masked", "is_relay_email", "load_order", "parse_order", "sign", "webhook_signature",
    "MemoryTokenStore", "RedisTokenStore", "TokenPair", "TokenStore",
    "NotificationDeduplicator", "WebhookSignatureError", "parse_order_status_notification", "verify_webhook",
]
