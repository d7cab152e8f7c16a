"""Access and refresh tokens: issue, check, rotate.

Mirrors TikTok's flow: an auth code (``AuthCodes``) is exchanged once for a pair; a refresh
returns a new access token AND a new refresh token, with ``*_expire_in`` as
absolute unix timestamps. The old access token keeps working until its own
expiry. The old refresh token has a 60 s grace period in which a retry (or a
second worker racing the first) gets the same new pair back; after that it
is refused with 36004004 "Invalid auth code." (TikTok's code for a grant it
does not accept). An expired refresh token answers 105002. A revoked one
(``revoke_refresh``, or the seller deauthorizing the app) is unknown: 36004004.
One ``TokenBook`` holds one seller's tokens; auth codes name the seller they are for.
"""

from __future__ import annotations

import base64
import random
import secrets
import threading
import time
from dataclasses import dataclass

from . import errors

REFRESH_GRACE_SECONDS = 60
REFRESH_TTL_SECONDS = 365 * 86400
AUTH_CODE_TTL_SECONDS = 30 * 60          #: TikTok: an auth code is valid 30 minutes, single use
SCOPES = ["seller.order.info", "seller.authorization.info", "seller.shop.info", "seller.return_refund.basic",
          "seller.product.basic", "seller.product.inventory"]


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    access_token_expire_in: int
    refresh_token: str
    refresh_token_expire_in: int


@dataclass
class _Refresh:
    expires: int
    successor: TokenPair | None = None
    rotated_at: int | None = None


def _token(rng, prefix: str) -> str:
    raw = bytes(rng.getrandbits(8) for _ in range(30)) if rng else secrets.token_bytes(30)
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


class TokenBook:
    """Tokens of one app/seller. The first pair is derived from ``seed`` so a restart hands out the same one."""

    def __init__(self, ttl_seconds: int, seed: int, app_key: str, clock=time.time):
        self.ttl = int(ttl_seconds)
        self.clock = clock
        self.lock = threading.Lock()
        self._access: dict[str, float] = {}   # token -> precise expiry (the wire shows whole seconds)
        self._refresh: dict[str, _Refresh] = {}
        self.current = self._issue(random.Random(f"{seed}:{app_key}:tokens"))

    def _now(self) -> float:
        return self.clock()

    def _issue(self, rng=None) -> TokenPair:
        now = self._now()
        pair = TokenPair(_token(rng, "ROW_"), int(now + self.ttl), _token(rng, "ROW_"),
                         int(now + REFRESH_TTL_SECONDS))
        self._access[pair.access_token] = now + self.ttl
        self._refresh[pair.refresh_token] = _Refresh(pair.refresh_token_expire_in)
        self.current = pair
        return pair

    def check_access(self, token: str | None) -> str:
        """``"ok"``, ``"invalid"`` (missing or unknown) or ``"expired"``."""
        with self.lock:
            expires = self._access.get(token or "")
        if expires is None:
            return "invalid"
        return "ok" if self._now() < expires else "expired"

    def grant(self) -> TokenPair:
        """A fresh pair for an exchanged auth code (the seller authorized the app again)."""
        with self.lock:
            return self._issue()

    def owns(self, access_token: str | None) -> bool:
        with self.lock:
            return (access_token or "") in self._access

    def owns_refresh(self, refresh_token: str | None) -> bool:
        with self.lock:
            return (refresh_token or "") in self._refresh

    def revoke_refresh(self) -> None:
        """Every refresh token of this seller is refused from now on (36004004); access tokens live on."""
        with self.lock:
            self._refresh.clear()

    def expire_refresh(self) -> None:
        """Every refresh token of this seller has expired (105002)."""
        with self.lock:
            for entry in self._refresh.values():
                entry.expires = int(self._now()) - 1

    def revoke_all(self) -> None:
        """The seller removed the app: every token is unknown from now on."""
        with self.lock:
            self._access.clear()
            self._refresh.clear()

    def refresh(self, refresh_token: str) -> TokenPair:
        with self.lock:
            entry = self._refresh.get(refresh_token or "")
            now = self._now()
            if entry is None or (entry.rotated_at is not None and now > entry.rotated_at + REFRESH_GRACE_SECONDS):
                raise errors.ApiError(200, errors.INVALID_AUTH_CODE, errors.MESSAGES["bad_auth_code"])
            if now >= entry.expires:
                raise errors.ApiError(200, errors.EXPIRED_TOKEN, errors.MESSAGES["expired_token"])
            if entry.successor is None:
                entry.successor, entry.rotated_at = self._issue(), now
            return entry.successor

    def expire_current(self) -> None:
        """The most recently issued access token answers 105002 from now on."""
        with self.lock:
            self._access[self.current.access_token] = self._now() - 1


class AuthCodes:
    """Auth codes minted on request (the seller "consenting"), each for one seller, exchanged once.

    A code that is unknown, already exchanged or older than 30 minutes is refused with 36004004.
    """

    def __init__(self, clock=time.time):
        self.clock = clock
        self.lock = threading.Lock()
        self._codes: dict[str, tuple[str, float]] = {}

    def issue(self, seller_key: str) -> str:
        code = "ROW_" + secrets.token_urlsafe(24)
        with self.lock:
            self._codes[code] = (seller_key, self.clock() + AUTH_CODE_TTL_SECONDS)
        return code

    def redeem(self, code: str) -> str:
        """The seller the code was issued for; the code is spent whether or not it was still valid."""
        with self.lock:
            entry = self._codes.pop(code or "", None)
        if entry is None or self.clock() >= entry[1]:
            raise errors.ApiError(200, errors.INVALID_AUTH_CODE, errors.MESSAGES["bad_auth_code"])
        return entry[0]
