"""A local stand-in for the TikTok Shop Open API (202309: orders, returns, products, authorization).

``TikTokStandIn`` serves signed, rate-limited order, return, cancellation,
product and inventory searches over deterministic generated shops; ``generate_orders`` gives the same orders
without a server; ``sign_request`` / ``sign_webhook`` are the stand-in's own
signature implementation (independent of the project's ``tiktok`` client).
"""

from .orders import generate_orders
from .shops import ShopSpec, StandInShop
from .signing import sign_request, sign_webhook
from .standin import TikTokStandIn
from .webhooks import DEFAULT_RETRY_SCHEDULE, TIKTOK_RETRY_SCHEDULE

__all__ = ["TikTokStandIn", "ShopSpec", "StandInShop", "generate_orders", "sign_request", "sign_webhook",
           "DEFAULT_RETRY_SCHEDULE", "TIKTOK_RETRY_SCHEDULE"]
