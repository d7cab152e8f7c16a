"""A local stand-in for the TikTok Shop Open API (order API 202309).

``TikTokStandIn`` serves signed, rate-limited order search and detail over a
deterministic generated shop; ``generate_orders`` gives the same orders
without a server; ``sign_request`` / ``sign_webhook`` are the stand-in's own
signature implementation (independent of the project's ``tiktok`` client).
"""

from .orders import generate_orders
from .signing import sign_request, sign_webhook
from .standin import TikTokStandIn

__all__ = ["TikTokStandIn", "generate_orders", "sign_request", "sign_webhook"]
