"""Read TikTok's answer envelope ``{code, message, request_id, data}`` into data or an exception.

The envelope's ``code`` decides, not the HTTP status alone: TikTok answers some
business errors with HTTP 200 and a non-zero code. The token host's grant
errors are read separately (``grant_error``) because there the same codes mean
"ask the seller to authorize again".
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import requests

from .exceptions import (
    TikTokAPIError,
    TikTokAuthError,
    TikTokNotFoundError,
    TikTokRateLimitError,
    TikTokReauthorizationRequired,
    TikTokServerError,
    TikTokSignatureError,
    TikTokTokenExpiredError,
)

RATE_LIMITED = 36009002
SERVER_CODES = {36009003, 36009007, 10002014, 10002015, 10037002, 10037003, 10037004, 10006402}
EXPIRED_TOKEN = 105002
BAD_SIGNATURE = 106001
INVALID_GRANT = 36004004
NOT_FOUND_CODES = {36009009, 21008111}
AUTH_CODES = {36009004, 105001, 105005, 101000, 36004004, 36009033, 106013}
#: On the token host, these codes say the grant itself (auth code or refresh token) is no good:
#: invalid, used, revoked (36004004) or expired (105002). Only the seller can mend that.
GRANT_REJECTED_CODES = {INVALID_GRANT, EXPIRED_TOKEN, 105001}


def read_envelope(response: requests.Response, path: str, *, token_host: bool = False) -> dict:
    """The ``data`` of a code-0 envelope, or the matching exception (never holding a secret)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "code" not in body:
        if response.status_code == 429:
            raise TikTokRateLimitError(f"TikTok {path} answered 429", status=429, retry_after=retry_after(response))
        if response.status_code >= 500 or response.status_code < 300:
            raise TikTokServerError(f"TikTok {path} answered {response.status_code} without an envelope",
                                    status=response.status_code)
        raise TikTokAPIError(f"TikTok {path} answered {response.status_code} without an envelope",
                             status=response.status_code)
    code = body.get("code")
    if code == 0 and response.status_code < 300:
        data = body.get("data")
        return data if isinstance(data, dict) else {}
    message = f"TikTok {path} answered code {code}: {body.get('message') or 'no message'}"
    common = dict(code=code, request_id=body.get("request_id"), status=response.status_code)
    if code == RATE_LIMITED or response.status_code == 429:
        raise TikTokRateLimitError(message, retry_after=retry_after(response), **common)
    if token_host and code in GRANT_REJECTED_CODES:
        raise TikTokReauthorizationRequired(message, **common)
    if code == EXPIRED_TOKEN:
        raise TikTokTokenExpiredError(message, **common)
    if code == BAD_SIGNATURE:
        raise TikTokSignatureError(message, **common)
    if code in NOT_FOUND_CODES or response.status_code == 404:
        raise TikTokNotFoundError(message, **common)
    if code in SERVER_CODES or response.status_code >= 500:
        raise TikTokServerError(message, **common)
    if code in AUTH_CODES or response.status_code in (401, 403):
        raise TikTokAuthError(message, **common)
    raise TikTokAPIError(message, **common)


def retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds, given as seconds or as an HTTP date (RFC 9110 allows both)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
