"""TikTok Shop Open API client: ``from tiktok import TikTokShopClient``.

A standalone library: it imports nothing from the ksync app. Configuration comes
in as arguments (or ``TikTokShopClient.from_env``), and every secret the client
holds is handed to ``on_secret`` for the caller's log redaction.
"""

from .aftersales import (REFUNDED_RETURN_STATUSES, AfterSalesLine, Cancellation, CancelStatus, CancelType,
                         PartialRefund, RefundAmount, Return, ReturnedSku, ReturnStatus, ReturnType,
                         parse_cancellation, parse_return)
from .auth import TokenGrant, authorization_url
from .catalog import (Category, Image, InventoryRecord, Price, Product, ProductSku, ProductStatus, ProductSummary,
                      SalesAttribute, SkuInventory, WarehouseInventory, WarehouseStock, parse_inventory, parse_product,
                      parse_product_summary)
from .client import DEFAULT_API_BASE_URL, DEFAULT_AUTH_BASE_URL, TikTokShopClient, unix_seconds
from .exceptions import (
    OrderValidationError,
    RecordValidationError,
    TikTokAPIError,
    TikTokAuthError,
    TikTokNetworkError,
    TikTokNotFoundError,
    TikTokPagingError,
    TikTokRateLimitError,
    TikTokReauthorizationRequired,
    TikTokServerError,
    TikTokSignatureError,
    TikTokTokenExpiredError,
)
from .models import (InvalidOrder, InvalidRecord, LineItem, Order, OrderStatus, Payment, RecipientAddress, Shop,
                     SkuGroup, is_masked, is_relay_email)
from .retry import TikTokRetryPolicy
from .schemas import load_order, parse_order
from .signing import sign, webhook_signature
from .tokens import MemoryTokenStore, RedisTokenStore, TokenPair, TokenStore
from .webhooks import (NOTIFICATION_TYPES, Notification, NotificationDeduplicator, WebhookSignatureError,
                       parse_notification, parse_order_status_notification, verify_webhook)

__all__ = [
    "DEFAULT_API_BASE_URL", "DEFAULT_AUTH_BASE_URL", "TikTokRetryPolicy", "TikTokShopClient", "unix_seconds",
    "TokenGrant", "authorization_url",
    "OrderValidationError", "RecordValidationError", "TikTokAPIError", "TikTokAuthError", "TikTokNetworkError",
    "TikTokNotFoundError", "TikTokPagingError", "TikTokRateLimitError", "TikTokReauthorizationRequired",
    "TikTokServerError", "TikTokSignatureError", "TikTokTokenExpiredError",
    "InvalidOrder", "InvalidRecord", "LineItem", "Order", "OrderStatus", "Payment", "RecipientAddress", "Shop",
    "SkuGroup", "is_masked", "is_relay_email", "load_order", "parse_order", "sign", "webhook_signature",
    "REFUNDED_RETURN_STATUSES", "AfterSalesLine", "Cancellation", "CancelStatus", "CancelType", "PartialRefund",
    "RefundAmount", "Return", "ReturnedSku", "ReturnStatus", "ReturnType", "parse_cancellation", "parse_return",
    "Category", "Image", "InventoryRecord", "Price", "Product", "ProductSku", "ProductStatus", "ProductSummary",
    "SalesAttribute", "SkuInventory", "WarehouseInventory", "WarehouseStock", "parse_inventory", "parse_product",
    "parse_product_summary",
    "MemoryTokenStore", "RedisTokenStore", "TokenPair", "TokenStore",
    "NOTIFICATION_TYPES", "Notification", "NotificationDeduplicator", "WebhookSignatureError", "parse_notification",
    "parse_order_status_notification", "verify_webhook",
]
