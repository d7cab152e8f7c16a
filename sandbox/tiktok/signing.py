"""The stand-in's own TikTok Shop signatures: API requests and webhooks.

Written independently of the project's ``tiktok`` client on purpose: the two
implementations check each other, and both are pinned to the published test
vectors. The server always verifies over the query values it decoded and the
raw body bytes it received, never over a re-serialisation, because that is
what TikTok does and what catches a client that signs one JSON text and sends
another.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

#: Query parameters that never take part in the signature.
UNSIGNED_PARAMS = frozenset({"sign", "access_token"})


def _hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signing_base(path: str, query: Mapping[str, object], body: bytes | str | None = None,
                 content_type: str = "application/json") -> bytes:
    """The string TikTok signs: path, then sorted ``key+value`` pairs, then the body.

    ``query`` holds decoded values; lists are comma-joined the way the official
    SDK sends them. The body is appended unless it is empty or multipart.
    """
    pairs = []
    for key in sorted(k for k in query if k not in UNSIGNED_PARAMS):
        value = query[key]
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        pairs.append(f"{key}{value}")
    base = (path + "".join(pairs)).encode("utf-8")
    if body and not content_type.lower().startswith("multipart/form-data"):
        base += body.encode("utf-8") if isinstance(body, str) else bytes(body)
    return base


def sign_request(app_secret: str, path: str, query: Mapping[str, object], body: bytes | str | None = None,
                 content_type: str = "application/json") -> str:
    """Lower-case hex HMAC-SHA256 of ``secret + base + secret`` keyed with the app secret.

    >>> sign_request("e59af819cc", "/authorization/202309/shops", {"app_key": "29a39d", "timestamp": 1623812664})
    'b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8'
    """
    secret = app_secret.encode("utf-8")
    return _hmac_hex(app_secret, secret + signing_base(path, query, body, content_type) + secret)


def sign_webhook(app_key: str, app_secret: str, raw_body: bytes | str) -> str:
    """The ``Authorization`` header of a webhook: hex HMAC-SHA256(app_secret, app_key + raw body)."""
    body = raw_body.encode("utf-8") if isinstance(raw_body, str) else bytes(raw_body)
    return _hmac_hex(app_secret, app_key.encode("utf-8") + body)


def signatures_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison; exact (lower-case hex) match only."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))
