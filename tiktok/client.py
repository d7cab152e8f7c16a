"""TikTokShopClient: signed requests to the TikTok Shop Open API (order API 202309).

Each attempt is stamped and signed afresh (TikTok rejects timestamps older than
five minutes, so a retry must never reuse the first signature). The JSON body is
serialised once and those bytes are both signed and sent. The envelope's
``code`` decides success, not the HTTP status alone.

An expired access token (105002) is refreshed once through the token host, the
new pair is saved in the token store (so every worker picks it up), and the call
is repeated.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Iterable, Iterator
from urllib.parse import urlencode

import requests
import tenacity
from requests.adapters import HTTPAdapter

from .exceptions import (
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
from logs import register_secret

from .models import InvalidOrder, Order, Shop
from .schemas import SHOP_SCHEMA, parse_order
from .signing import encode_body, sign
from .tokens import MemoryTokenStore, TokenPair, TokenStore
from .webhooks import verify_webhook

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://open-api.tiktokglobalshop.com"
DEFAULT_AUTH_BASE_URL = "https://auth.tiktok-shops.com"
ORDER_SEARCH_PATH = "/order/202309/orders/search"
ORDER_DETAIL_PATH = "/order/202309/orders"
SHOPS_PATH = "/authorization/202309/shops"
MAX_PAGE_SIZE = 100
MAX_DETAIL_IDS = 50

RATE_LIMITED = 36009002
SERVER_CODES = {36009003, 36009007, 10002014, 10002015, 10037002, 10037003, 10037004, 10006402}
EXPIRED_TOKEN = 105002
BAD_SIGNATURE = 106001
NOT_FOUND_CODES = {36009009, 21008111}
AUTH_CODES = {36009004, 105001, 105005, 101000, 36004004, 36009033, 106013}


@dataclass(frozen=True)
class RetryPolicy:
    """TikTok's published protocol: wait max(Retry-After, min(base*2^n + jitter, cap)), re-signing each try."""

    max_rate_limited: int = 5
    max_server: int = 3
    max_network: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    jitter: float = 0.5
    #: Longest single wait the client sleeps through. A longer one (a ``Retry-After: 120``)
    #: is raised to the caller instead, with ``retry_after`` set, so that a worker can
    #: retry later rather than sleep in its slot. None: no cap (scripts).
    max_wait: float | None = None

    def wait_for(self, exc: BaseException, attempt: int, jitter: float) -> float:
        """Seconds before retry number ``attempt`` (1-based): max(Retry-After, capped backoff + jitter)."""
        backoff = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)) + jitter
        return max(getattr(exc, "retry_after", None) or 0, backoff)

    def budget(self, exc: BaseException) -> int:
        if isinstance(exc, TikTokRateLimitError):
            return self.max_rate_limited
        if isinstance(exc, TikTokServerError):
            return self.max_server
        if isinstance(exc, TikTokNetworkError):
            return self.max_network
        return 0


def unix_seconds(value: datetime | int | float, round_up: bool = False) -> int:
    """Aware datetime or unix seconds -> int seconds. Naive datetimes are refused (whose clock?).

    ``round_up`` is for exclusive upper bounds: TikTok stamps whole seconds, so a window
    ending at 12:00:00.7 must ask for ``< 12:00:01`` or it misses changes made at 12:00:00.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (e.g. with tzinfo=timezone.utc)")
        value = value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a datetime or unix seconds, got {type(value).__name__}")
    return math.ceil(value) if round_up else int(value)


class TikTokShopClient:
    """A TikTok Shop seller's orders, for one shop (``shop_cipher``)."""

    def __init__(self, app_key: str, app_secret: str, access_token: str, shop_cipher: str | None,
                 base_url: str = DEFAULT_API_BASE_URL, auth_base_url: str = DEFAULT_AUTH_BASE_URL,
                 refresh_token: str | None = None, token_store: TokenStore | None = None, timeout: float = 30,
                 retry: RetryPolicy | None = None, sleep=time.sleep, clock=time.time):
        if not app_key or not app_secret:
            raise TikTokAuthError("TikTok app key and secret are required (TIKTOK_APP_KEY, TIKTOK_APP_SECRET)")
        self.app_key = app_key
        self._app_secret = app_secret
        self.shop_cipher = shop_cipher
        self.base_url = base_url.rstrip("/")
        self.auth_base_url = auth_base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self.token_store = token_store or MemoryTokenStore()
        stored = self.token_store.load()
        self._tokens = stored if stored and stored.access_token else TokenPair(access_token, refresh_token)
        for secret in (app_secret, self._tokens.access_token, self._tokens.refresh_token):
            register_secret(secret)  # whoever logs a line, these never appear in it
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Content-Type": "application/json", "User-Agent": "ksync/0.1"})

    @classmethod
    def from_settings(cls, settings=None, token_store: TokenStore | None = None,
                      shop_cipher: str | None = None, **kwargs) -> "TikTokShopClient":
        from settings import get_settings

        s = settings or get_settings()
        s.require("TIKTOK_APP_KEY", "TIKTOK_APP_SECRET", "TIKTOK_ACCESS_TOKEN")
        cipher = shop_cipher or (s.shop_ciphers[0] if s.shop_ciphers else None)
        return cls(s.tiktok_app_key, s.tiktok_app_secret, s.tiktok_access_token, cipher,
                   base_url=s.tiktok_api_base_url, auth_base_url=s.tiktok_auth_base_url,
                   refresh_token=s.tiktok_refresh_token or None, token_store=token_store, **kwargs)

    def __repr__(self) -> str:
        return f"TikTokShopClient(app_key={self.app_key!r}, shop_cipher={self.shop_cipher!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "TikTokShopClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Orders ------------------------------------------------------------------------------------

    def search_orders(self, update_time_ge: datetime | int, update_time_lt: datetime | int,
                      order_status: str | None = None, page_size: int = MAX_PAGE_SIZE) -> Iterator[Order | InvalidOrder]:
        """Every order updated in ``[update_time_ge, update_time_lt)``, oldest update first, page by page.

        Yields ``Order`` values, and an ``InvalidOrder`` (naming the order id and
        field) for each order that fails validation, so one bad order never stops a page.
        A page token seen twice raises ``TikTokPagingError`` instead of looping.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        filters = {"update_time_ge": unix_seconds(update_time_ge),
                   "update_time_lt": unix_seconds(update_time_lt, round_up=True)}
        if order_status:
            filters["order_status"] = order_status
        query = {"page_size": page_size, "sort_field": "update_time", "sort_order": "ASC"}
        seen_tokens: set[str] = set()
        while True:
            data = self._call("POST", ORDER_SEARCH_PATH, query=query, body=filters)
            orders = data.get("orders") or []
            if not isinstance(orders, list):
                raise TikTokServerError("TikTok answered an order search without an orders list")
            for raw in orders:
                yield parse_order(raw)
            token = data.get("next_page_token") or ""
            if not token or not orders:
                return
            if token in seen_tokens:
                raise TikTokPagingError(f"TikTok repeated page token after {len(seen_tokens)} pages; stopping")
            seen_tokens.add(token)
            query = query | {"page_token": token}

    def get_orders(self, ids: Iterable[str]) -> list[Order | InvalidOrder]:
        """Order detail for ``ids``, asked in batches of at most 50. Unknown ids are simply absent."""
        ids = list(dict.fromkeys(str(i) for i in ids))
        results: list[Order | InvalidOrder] = []
        for start in range(0, len(ids), MAX_DETAIL_IDS):
            batch = ids[start:start + MAX_DETAIL_IDS]
            data = self._call("GET", ORDER_DETAIL_PATH, query={"ids": ",".join(batch)})
            results.extend(parse_order(raw) for raw in data.get("orders") or [])
        return results

    def get_authorized_shops(self) -> list[Shop]:
        """Shops the access token covers; each ``cipher`` is a ``TIKTOK_SHOP_CIPHER`` value."""
        data = self._call("GET", SHOPS_PATH, shop_scoped=False)
        return [SHOP_SCHEMA.load(s) for s in data.get("shops") or []]

    def verify_webhook(self, authorization_header: str | None, raw_body: bytes) -> None:
        """Raise ``WebhookSignatureError`` unless TikTok signed ``raw_body`` with our app secret."""
        verify_webhook(self.app_key, self._app_secret, authorization_header, raw_body)

    # Tokens ------------------------------------------------------------------------------------

    def refresh_access_token(self, expired_token: str | None = None) -> TokenPair:
        """Refresh through ``/api/v2/token/refresh`` and save the new pair in the token store.

        Under the store's lock: if another worker already replaced ``expired_token``,
        its pair is adopted instead of refreshing twice (TikTok rotates the refresh
        token, so a second refresh with the old one could fail).
        """
        with self.token_store.lock():
            stored = self.token_store.load()
            if stored and stored.access_token != (expired_token or self._tokens.access_token) and not stored.expired(self._clock()):
                self._tokens = stored
                register_secret(stored.access_token)
                register_secret(stored.refresh_token)
                return stored
            refresh_token = (stored or self._tokens).refresh_token or self._tokens.refresh_token
            if not refresh_token:
                raise TikTokAuthError("the TikTok access token expired and no refresh token is configured (TIKTOK_REFRESH_TOKEN)")
            query = {"app_key": self.app_key, "app_secret": self._app_secret,
                     "refresh_token": refresh_token, "grant_type": "refresh_token"}
            try:
                response = self.session.get(f"{self.auth_base_url}/api/v2/token/refresh?{urlencode(query)}", timeout=self.timeout)
            except requests.RequestException as exc:
                raise TikTokNetworkError(f"TikTok token refresh failed: {type(exc).__name__}") from None
            data = self._envelope(response, "/api/v2/token/refresh")
            pair = TokenPair(access_token=data["access_token"], refresh_token=data.get("refresh_token") or refresh_token,
                             access_expires_at=data.get("access_token_expire_in"),
                             refresh_expires_at=data.get("refresh_token_expire_in"))
            self.token_store.save(pair)
            self._tokens = pair
            register_secret(pair.access_token)
            register_secret(pair.refresh_token)
            log.info("tiktok access token refreshed", extra={"fields": {"expires_at": pair.access_expires_at}})
            return pair

    # Transport ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, query: dict | None = None, body: dict | None = None,
              shop_scoped: bool = True) -> dict:
        """One API call with retries; an expired token is refreshed once and the call repeated."""
        try:
            return self._with_retries(method, path, query or {}, body, shop_scoped)
        except TikTokTokenExpiredError:
            self.refresh_access_token(expired_token=self._tokens.access_token)
            return self._with_retries(method, path, query or {}, body, shop_scoped)

    def _with_retries(self, method, path, query, body, shop_scoped) -> dict:
        counts: Counter = Counter()

        waits: dict[int, float] = {}

        def planned_wait(state: tenacity.RetryCallState) -> float:
            if state.attempt_number not in waits:
                waits[state.attempt_number] = self.retry.wait_for(state.outcome.exception(), state.attempt_number,
                                                                  random.uniform(0, self.retry.jitter))
            return waits[state.attempt_number]

        def stop(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception()
            counts[type(exc)] += 1
            if counts[type(exc)] > self.retry.budget(exc):
                return True
            return self.retry.max_wait is not None and planned_wait(state) > self.retry.max_wait

        def wait(state: tenacity.RetryCallState) -> float:
            return planned_wait(state)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception()
            log.warning("tiktok %s retry %d after %s", path, state.attempt_number, exc.message,
                        extra={"fields": {"code": exc.code}})

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, TikTokAPIError) and e.retriable),
            stop=stop, wait=wait, sleep=self._sleep, before_sleep=before_sleep, reraise=True)
        return retrying(self._send_once, method, path, query, body, shop_scoped)

    def _send_once(self, method: str, path: str, query: dict, body: dict | None, shop_scoped: bool) -> dict:
        params = {k: v for k, v in query.items() if v is not None and v != ""}
        params["app_key"] = self.app_key
        params["timestamp"] = int(self._clock())
        if shop_scoped:
            if not self.shop_cipher:
                raise TikTokAuthError("no shop cipher: set TIKTOK_SHOP_CIPHER")
            params["shop_cipher"] = self.shop_cipher
        data = encode_body(body) if method != "GET" else None
        params["sign"] = sign(self._app_secret, path, params, data)
        url = f"{self.base_url}{path}?{urlencode(params)}"
        try:
            response = self.session.request(method, url, data=data, timeout=self.timeout,
                                            headers={"x-tts-access-token": self._tokens.access_token})
        except requests.Timeout:
            raise TikTokNetworkError(f"TikTok {path} timed out after {self.timeout}s") from None
        except requests.RequestException as exc:
            raise TikTokNetworkError(f"TikTok {path} failed: {type(exc).__name__}") from None
        return self._envelope(response, path)

    @staticmethod
    def _envelope(response: requests.Response, path: str) -> dict:
        """The ``data`` of a code-0 envelope, or the matching exception."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "code" not in body:
            if response.status_code == 429:
                raise TikTokRateLimitError(f"TikTok {path} answered 429", status=429, retry_after=_retry_after(response))
            if response.status_code >= 500 or response.status_code < 300:
                raise TikTokServerError(f"TikTok {path} answered {response.status_code} without an envelope",
                                        status=response.status_code)
            raise TikTokAPIError(f"TikTok {path} answered {response.status_code} without an envelope", status=response.status_code)
        code = body.get("code")
        if code == 0 and response.status_code < 300:
            data = body.get("data")
            return data if isinstance(data, dict) else {}
        message = f"TikTok {path} answered code {code}: {body.get('message') or 'no message'}"
        common = dict(code=code, request_id=body.get("request_id"), status=response.status_code)
        if code == RATE_LIMITED or response.status_code == 429:
            raise TikTokRateLimitError(message, retry_after=_retry_after(response), **common)
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


def _retry_after(response: requests.Response) -> float | None:
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
