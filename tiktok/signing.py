"""TikTok Shop request signing, exactly as published (``docv2/page/sign-your-api-request``).

    base    = path + concat(key + value for query params sorted by key, except sign and access_token)
            + raw body (non-GET, non-multipart)
    sign    = lowercase hex HMAC-SHA256(key=app_secret, msg=app_secret + base + app_secret)

Values are signed decoded and sent percent-encoded; the body is serialised once
and those very bytes are both signed and sent (a re-serialised body is the
classic cause of code 106001).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Mapping

UNSIGNED_PARAMS = frozenset({"sign", "access_token"})


def string_to_sign(path: str, query: Mapping[str, object], body: bytes | None = None,
                   content_type: str = "application/json") -> str:
    """The base string before wrapping: path, sorted key+value pairs, then the raw body."""
    pairs = sorted((k, str(v)) for k, v in query.items() if k not in UNSIGNED_PARAMS)
    base = path + "".join(k + v for k, v in pairs)
    if body and not content_type.lower().startswith("multipart/form-data"):
        base += body.decode("utf-8")
    return base


def sign(app_secret: str, path: str, query: Mapping[str, object], body: bytes | None = None,
         content_type: str = "application/json") -> str:
    wrapped = app_secret + string_to_sign(path, query, body, content_type) + app_secret
    return hmac.new(app_secret.encode(), wrapped.encode(), hashlib.sha256).hexdigest()


def encode_body(payload: Mapping | None) -> bytes | None:
    """Serialise a JSON body once, compactly. An empty filter set sends (and signs) no body."""
    if not payload:
        return None
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def webhook_signature(app_key: str, app_secret: str, raw_body: bytes) -> str:
    """``Authorization`` of a TikTok webhook: hex HMAC-SHA256(key=app_secret, msg=app_key + raw body)."""
    return hmac.new(app_secret.encode(), app_key.encode() + raw_body, hashlib.sha256).hexdigest()
