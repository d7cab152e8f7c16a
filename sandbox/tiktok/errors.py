"""TikTok Shop error codes and messages, and the response envelope.

Messages follow ``docv2/page/common-errors`` word for word, except that the
parameter names are quoted with single quotes (``'app_key'``) as the live API
was observed to do, where the docs render them as code. HTTP statuses are the
observed ones where known (400 app_key, 404 path, 429 rate limit) and our own
choice elsewhere (see ``docs`` in the module constants below).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

OK = 0
RATE_LIMITED = 36009002
INTERNAL_ERROR = 36009003
INVALID_REQUEST = 36009004  # overloaded: branch on the message
INVALID_PATH = 36009009
INVALID_METHOD = 36009010
INVALID_AUTH_CODE = 36004004
BAD_SIGNATURE = 106001
MISSING_SHOP_CIPHER = 106013
EXPIRED_TOKEN = 105002
#: [INF] Our own code: the references name none for "product deleted, frozen or unknown" on Get
#: Product. Clients should branch on the HTTP 404 (a not-found error), not on this number.
PRODUCT_NOT_FOUND = 12052700

MESSAGES = {
    "success": "Success",
    "rate_limited": "Too many requests. You've made too many requests in a short period of time.",
    "internal": "Internal error. Please try again. If the issue persists after multiple attempts, "
                "please contact platform support.",
    "bad_app_key": "Invalid credentials. Invalid 'app_key' query parameter.",
    "bad_app_secret": "Invalid credentials. Invalid 'app_secret' query parameter.",
    "missing_sign": "Missing credentials. The request does not include a required signature in the query.",
    "timestamp_negative": "Invalid timestamp. The value of the 'timestamp' query parameter must not be lesser than 0.",
    "timestamp_stale": "Invalid timestamp. The value of the 'timestamp' query parameter must not be earlier "
                       "than 5 minutes before the current time.",
    "timestamp_future": "Invalid timestamp. The value of the 'timestamp' query parameter must not exceed "
                        "the current time by more than 30 seconds.",
    "bad_sign": "Invalid credentials. The 'sign' query parameter is invalid.",
    "bad_token": "Invalid credentials. The 'x-tts-access-token' header is invalid.",
    "expired_token": "Expired credentials. The 'access_token' or 'x-tts-access-token' header has expired.",
    "missing_cipher": "Missing identifier. The 'shop_cipher' query parameter is required to identify the target shop.",
    "unexpected_cipher": "Unexpected identifier. The 'shop_cipher' query parameter is not required for this request.",
    "bad_cipher": "Invalid identifier. The 'shop_cipher' query parameter is invalid.",
    "invalid_param": "invalid param error",
    "bad_path": "Invalid path. The specified path does not match any available endpoint.",
    "bad_method": "Invalid method. The HTTP method used is not supported by this endpoint.",
    "bad_auth_code": "Invalid auth code.",
    "product_not_found": "The product does not exist, or it is deleted or frozen.",
}


@dataclass
class ApiError(Exception):
    """A TikTok error answer: HTTP status, business code, message, extra headers."""

    status: int
    code: int
    message: str
    headers: dict = field(default_factory=dict)


def invalid_param(detail: str = "") -> ApiError:
    """400 / 36009004 "invalid param error" (``detail`` only goes to the sandbox log, like TikTok's)."""
    return ApiError(400, INVALID_REQUEST, MESSAGES["invalid_param"])


def request_id() -> str:
    """``yyyymmddHHMMSS`` (UTC) plus 20 upper-case hex digits, like ``202203070749000101890810281E8C70B7``."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + os.urandom(10).hex().upper()


def envelope(code: int, message: str, data) -> bytes:
    """The JSON body every answer carries: ``{code, message, request_id, data}``."""
    return json.dumps({"code": code, "message": message, "request_id": request_id(), "data": data},
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")
