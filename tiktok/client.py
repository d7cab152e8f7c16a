"""TikTokShopClient: the TikTok Shop Open API (202309 versions), one method per operation ksync uses.

Signing, retries and the token host's wire live in ``transport.py``; the
envelope's ``code`` decides success, not the HTTP status alone (``envelope.py``).

An expired access token (105002) is refreshed once through the token host, the
new pair is saved in the token store (so every worker picks it up), and the call
is repeated. A refresh token the token host rejects raises
``TikTokReauthorizationRequired``: only the seller can mend that.

The library imports nothing from the app. Secrets it holds or learns (app
secret, tokens, auth codes) are handed to ``on_secret`` so the app can redact
them from its logs; the client itself never logs a URL, a token or a body.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from datetime import datetime
from typing import Callable, Iterable, Iterator, Mapping

from . import redact
from .aftersales import Cancellation, Return, parse_cancellation, parse_return
from .auth import TokenGrant, load_grant
from .catalog import InventoryRecord, Product, ProductSummary, parse_inventory, parse_product, parse_product_summary
from .exceptions import TikTokAuthError, TikTokPagingError, TikTokServerError, TikTokTokenExpiredError
from .models import InvalidOrder, InvalidRecord, Order, Shop
from .retry import TikTokRetryPolicy
from .schemas import SHOP_SCHEMA, parse_order
from .tokens import MemoryTokenStore, TokenPair, TokenStore
from .transport import Transport
from .webhooks import verify_webhook

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://open-api.tiktokglobalshop.com"
DEFAULT_AUTH_BASE_URL = "https://auth.tiktok-shops.com"
ORDER_SEARCH_PATH = "/order/202309/orders/search"
ORDER_DETAIL_PATH = "/order/202309/orders"
SHOPS_PATH = "/authorization/202309/shops"
RETURN_SEARCH_PATH = "/return_refund/202309/returns/search"
CANCELLATION_SEARCH_PATH = "/return_refund/202309/cancellations/search"
PRODUCT_SEARCH_PATH = "/product/202309/products/search"
PRODUCT_DETAIL_PATH = "/product/202309/products/{product_id}"
INVENTORY_SEARCH_PATH = "/product/202309/inventory/search"
TOKEN_GET_PATH = "/api/v2/token/get"
TOKEN_REFRESH_PATH = "/api/v2/token/refresh"
MAX_PAGE_SIZE = 100
MAX_DETAIL_IDS = 50
#: Return search pages hold 10 to 50 records (returns have a minimum of 10); cancellations 1 to 50.
RETURN_PAGE_SIZES = range(10, 51)
CANCELLATION_PAGE_SIZES = range(1, 51)
#: Product search pages hold 1 to 100 products; inventory search takes at most 100 product ids a call.
PRODUCT_PAGE_SIZES = range(1, 101)
MAX_INVENTORY_PRODUCT_IDS = 100
_PRODUCT_ID = re.compile(r"^[0-9]{1,32}\Z")

#: Where ``from_env`` looks; the public names of the deployment contract.
ENV_NAMES = ("TIKTOK_APP_KEY", "TIKTOK_APP_SECRET", "TIKTOK_ACCESS_TOKEN", "TIKTOK_REFRESH_TOKEN",
             "TIKTOK_SHOP_CIPHER", "TIKTOK_API_BASE_URL", "TIKTOK_AUTH_BASE_URL")


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
    """One TikTok Shop seller's authorization, aimed at one shop (``shop_cipher``).

    Parameters:
        app_key(str), app_secret(str): the app's credentials (Partner Center).
        access_token(str | None): the seller's token; None until ``exchange_auth_code``.
        shop_cipher(str | None): the shop shop-scoped calls address; ``with_shop`` for another.
        token_store(TokenStore): where the newest pair lives, shared by every worker.
        retry(TikTokRetryPolicy): retry budgets. timeout(float): seconds per HTTP request.
        on_secret(callable): called with every secret the client holds or learns (app
            secret, tokens, refreshed tokens, auth codes), e.g. the app's log-redaction registry.
    """

    def __init__(self, app_key: str, app_secret: str, access_token: str | None = None,
                 shop_cipher: str | None = None, base_url: str = DEFAULT_API_BASE_URL,
                 auth_base_url: str = DEFAULT_AUTH_BASE_URL, refresh_token: str | None = None,
                 token_store: TokenStore | None = None, timeout: float = 30, retry: TikTokRetryPolicy | None = None,
                 sleep=time.sleep, clock=time.time, on_secret: Callable[[str], None] | None = None,
                 rate_limiter=None, limiter_timeout: float | None = None):
        if not app_key or not app_secret:
            raise TikTokAuthError("TikTok app key and secret are required (TIKTOK_APP_KEY, TIKTOK_APP_SECRET)")
        self.app_key = app_key
        self._app_secret = app_secret
        self.shop_cipher = shop_cipher
        self.transport = Transport(app_key, app_secret, base_url, auth_base_url, timeout,
                                   retry or TikTokRetryPolicy(), sleep, clock, rate_limiter, limiter_timeout)
        self.base_url, self.auth_base_url = self.transport.base_url, self.transport.auth_base_url
        self.timeout, self.retry = timeout, self.transport.retry
        self._sleep = sleep
        self._clock = clock
        self._on_secret = on_secret
        self.token_store = token_store or MemoryTokenStore()
        stored = self.token_store.load()
        self._tokens = stored if stored and stored.access_token else TokenPair(access_token or "", refresh_token)
        self._secret(app_secret, self._tokens.access_token, self._tokens.refresh_token)
        redact.install()
        self.session = self.transport.session

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **kwargs) -> "TikTokShopClient":
        """A client from the public ``TIKTOK_*`` variables (``ENV_NAMES``); keyword arguments win.

        ``TIKTOK_SHOP_CIPHER`` may list several ciphers separated by commas; the first is used
        (pass ``shop_cipher=`` for another). Unset base URLs fall back to TikTok's hosts.
        """
        def env(name: str) -> str | None:
            value = (environ.get(name) or "").strip()
            return value or None

        ciphers = [c.strip() for c in (env("TIKTOK_SHOP_CIPHER") or "").split(",") if c.strip()]
        values = {"app_key": env("TIKTOK_APP_KEY"), "app_secret": env("TIKTOK_APP_SECRET"),
                  "access_token": env("TIKTOK_ACCESS_TOKEN"), "refresh_token": env("TIKTOK_REFRESH_TOKEN"),
                  "shop_cipher": ciphers[0] if ciphers else None,
                  "base_url": env("TIKTOK_API_BASE_URL") or DEFAULT_API_BASE_URL,
                  "auth_base_url": env("TIKTOK_AUTH_BASE_URL") or DEFAULT_AUTH_BASE_URL}
        values.update(kwargs)
        return cls(**values)

    def with_shop(self, shop_cipher: str) -> "TikTokShopClient":
        """Another client for ``shop_cipher`` under the same authorization (same token store),
        for sellers whose grant covers several shops."""
        return TikTokShopClient(self.app_key, self._app_secret, self._tokens.access_token, shop_cipher,
                                base_url=self.base_url, auth_base_url=self.auth_base_url,
                                refresh_token=self._tokens.refresh_token, token_store=self.token_store,
                                timeout=self.timeout, retry=self.retry, sleep=self._sleep, clock=self._clock,
                                on_secret=self._on_secret)

    def __repr__(self) -> str:
        return f"TikTokShopClient(app_key={self.app_key!r}, shop_cipher={self.shop_cipher!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "TikTokShopClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _secret(self, *values: str | None) -> None:
        if self._on_secret is not None:
            for value in values:
                if value:
                    self._on_secret(value)

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
        filters = _half_open(update_time_ge, update_time_lt)
        if order_status:
            filters["order_status"] = order_status
        query = {"page_size": page_size, "sort_field": "update_time", "sort_order": "ASC"}
        for raw in self._pages(ORDER_SEARCH_PATH, query, filters, "orders"):
            yield parse_order(raw)

    def get_orders(self, ids: Iterable[str]) -> list[Order | InvalidOrder]:
        """Order detail for ``ids``, asked in batches of at most 50. Unknown ids are simply absent."""
        ids = list(dict.fromkeys(str(i) for i in ids))
        results: list[Order | InvalidOrder] = []
        for start in range(0, len(ids), MAX_DETAIL_IDS):
            batch = ids[start:start + MAX_DETAIL_IDS]
            data = self._call("GET", ORDER_DETAIL_PATH, query={"ids": ",".join(batch)})
            results.extend(parse_order(raw) for raw in data.get("orders") or [])
        return results

    # Returns and cancellations -----------------------------------------------------------------

    def search_returns(self, update_time_ge: datetime | int, update_time_lt: datetime | int, *,
                       return_ids: Iterable[str] | None = None, order_ids: Iterable[str] | None = None,
                       return_status: Iterable[str] | None = None,
                       page_size: int = 50) -> Iterator[Return | InvalidRecord]:
        """Every return updated in ``[update_time_ge, update_time_lt)``, oldest update first.

        ``page_size`` must be 10..50 (TikTok's bounds for this endpoint). Yields ``Return``
        values and an ``InvalidRecord`` for each record that fails validation. Filters narrow
        the search, e.g. ``return_ids=[id]`` to re-read the return a webhook named.
        """
        if page_size not in RETURN_PAGE_SIZES:
            raise ValueError(f"page_size must be 10..50 for returns, got {page_size}")
        body = _half_open(update_time_ge, update_time_lt) | _lists(return_ids=return_ids, order_ids=order_ids,
                                                                   return_status=return_status)
        query = {"page_size": page_size, "sort_field": "update_time", "sort_order": "ASC"}
        for raw in self._pages(RETURN_SEARCH_PATH, query, body, "return_orders"):
            yield parse_return(raw)

    def search_cancellations(self, update_time_ge: datetime | int, update_time_lt: datetime | int, *,
                             cancel_ids: Iterable[str] | None = None, order_ids: Iterable[str] | None = None,
                             page_size: int = 50) -> Iterator[Cancellation | InvalidRecord]:
        """Every cancellation updated in ``[update_time_ge, update_time_lt)``, oldest update first (pages of 1..50)."""
        if page_size not in CANCELLATION_PAGE_SIZES:
            raise ValueError(f"page_size must be 1..50 for cancellations, got {page_size}")
        body = _half_open(update_time_ge, update_time_lt) | _lists(cancel_ids=cancel_ids, order_ids=order_ids)
        query = {"page_size": page_size, "sort_field": "update_time", "sort_order": "ASC"}
        for raw in self._pages(CANCELLATION_SEARCH_PATH, query, body, "cancellations"):
            yield parse_cancellation(raw)

    # Products and inventory --------------------------------------------------------------------

    def search_products(self, update_time_ge: datetime | int, update_time_lt: datetime | int, *,
                        status: str | None = None, page_size: int = MAX_PAGE_SIZE
                        ) -> Iterator[ProductSummary | InvalidRecord]:
        """Every product updated in ``[update_time_ge, update_time_lt)``, as search summaries.

        Product search takes *inclusive* bounds (``update_time_ge`` / ``update_time_le``), unlike
        orders and returns, so the exclusive upper bound is sent as ``le = lt - 1`` (whole
        seconds, rounded up first). ``status`` filters (``ACTIVATE``, ``DELETED``, ...; TikTok's
        default is ``ALL``): deleted and frozen products are only found this way, since
        ``get_product`` refuses them.
        """
        if page_size not in PRODUCT_PAGE_SIZES:
            raise ValueError(f"page_size must be 1..100 for products, got {page_size}")
        body = {"update_time_ge": unix_seconds(update_time_ge),
                "update_time_le": unix_seconds(update_time_lt, round_up=True) - 1}
        if status:
            body["status"] = status
        for raw in self._pages(PRODUCT_SEARCH_PATH, {"page_size": page_size}, body, "products"):
            yield parse_product_summary(raw)

    def get_product(self, product_id: str) -> Product | InvalidRecord:
        """The full product (description, images, category chain, SKUs with stock per warehouse).

        TikTok refuses products that are ``DELETED`` or ``FREEZE`` (and unknown ids): that is a
        ``TikTokNotFoundError``.
        """
        product_id = str(product_id)
        if not _PRODUCT_ID.match(product_id):
            raise ValueError("product_id must be a numeric string")
        data = self._call("GET", PRODUCT_DETAIL_PATH.format(product_id=product_id))
        return parse_product(data)

    def search_inventory(self, product_ids: Iterable[str]) -> list[InventoryRecord | InvalidRecord]:
        """Stock of every SKU of ``product_ids``, per warehouse; asked 100 products per call.

        Unknown (and deleted) products are absent from the answer.
        """
        ids = list(dict.fromkeys(str(i) for i in product_ids))
        results: list[InventoryRecord | InvalidRecord] = []
        for start in range(0, len(ids), MAX_INVENTORY_PRODUCT_IDS):
            batch = ids[start:start + MAX_INVENTORY_PRODUCT_IDS]
            data = self._call("POST", INVENTORY_SEARCH_PATH, body={"product_ids": batch})
            results.extend(parse_inventory(raw) for raw in data.get("inventory") or [])
        return results

    # Shops and webhooks ------------------------------------------------------------------------

    def get_authorized_shops(self) -> list[Shop]:
        """Shops the access token covers; each ``cipher`` addresses one shop (``with_shop``)."""
        data = self._call("GET", SHOPS_PATH, shop_scoped=False)
        return [SHOP_SCHEMA.load(s) for s in data.get("shops") or []]

    def verify_webhook(self, authorization_header: str | None, raw_body: bytes) -> None:
        """Raise ``WebhookSignatureError`` unless TikTok signed ``raw_body`` with our app secret."""
        verify_webhook(self.app_key, self._app_secret, authorization_header, raw_body)

    # Tokens ------------------------------------------------------------------------------------

    def exchange_auth_code(self, auth_code: str) -> TokenGrant:
        """Trade the consent redirect's ``code`` for a ``TokenGrant`` and start using its tokens.

        ``GET {auth_base}/api/v2/token/get`` with ``grant_type=authorized_code`` (TikTok's
        spelling), unsigned, the app secret in the query. A code TikTok refuses (unknown, used,
        older than 30 minutes) raises ``TikTokReauthorizationRequired``: the seller must start
        over. No message ever holds the secret or the code.
        """
        if not auth_code:
            raise ValueError("auth_code is empty")
        self._secret(auth_code)
        data = self.transport.token_host(TOKEN_GET_PATH, {"auth_code": auth_code, "grant_type": "authorized_code"})
        grant = load_grant(data, TOKEN_GET_PATH)
        self._adopt(grant)
        return grant

    def refresh_access_token(self, expired_token: str | None = None) -> TokenPair:
        """Refresh through ``/api/v2/token/refresh`` and save the new pair in the token store.

        Under the store's lock: if another worker already replaced ``expired_token``,
        its pair is adopted instead of refreshing twice (TikTok rotates the refresh
        token, so a second refresh with the old one could fail). A refresh token TikTok
        rejects raises ``TikTokReauthorizationRequired``; a network failure stays retriable.
        """
        with self.token_store.lock():
            stored = self.token_store.load()
            if stored and stored.access_token != (expired_token or self._tokens.access_token) and not stored.expired(self._clock()):
                self._tokens = stored
                self._secret(stored.access_token, stored.refresh_token)
                return stored
            refresh_token = (stored or self._tokens).refresh_token or self._tokens.refresh_token
            if not refresh_token:
                raise TikTokAuthError("the TikTok access token expired and no refresh token is configured (TIKTOK_REFRESH_TOKEN)")
            data = self.transport.token_host(TOKEN_REFRESH_PATH, {"refresh_token": refresh_token, "grant_type": "refresh_token"})
            grant = load_grant(data, TOKEN_REFRESH_PATH)
            pair = self._adopt(grant)
            log.info("tiktok access token refreshed", extra={"fields": {"expires_at": pair.access_expires_at}})
            return pair

    def _adopt(self, grant: TokenGrant) -> TokenPair:
        pair = TokenPair(access_token=grant.access_token, refresh_token=grant.refresh_token,
                         access_expires_at=grant.access_token_expires_at,
                         refresh_expires_at=grant.refresh_token_expires_at)
        self._secret(pair.access_token, pair.refresh_token)
        self.token_store.save(pair)
        self._tokens = pair
        return pair

    # Paging and calls --------------------------------------------------------------------------------

    def _pages(self, path: str, query: dict, body: dict, list_key: str) -> Iterator[dict]:
        """Raw records of a paged POST search, following ``next_page_token`` to the end.

        An empty or missing token (or an empty page) ends the search; a token seen twice
        raises ``TikTokPagingError`` instead of looping.
        """
        seen_tokens: set[str] = set()
        while True:
            data = self._call("POST", path, query=query, body=body)
            records = data.get(list_key) or []
            if not isinstance(records, list):
                raise TikTokServerError(f"TikTok answered {path} without a {list_key} list")
            yield from records
            token = data.get("next_page_token") or ""
            if not token or not records:
                return
            if token in seen_tokens:
                raise TikTokPagingError(f"TikTok repeated page token after {len(seen_tokens)} pages; stopping")
            seen_tokens.add(token)
            query = query | {"page_token": token}

    def _call(self, method: str, path: str, query: dict | None = None, body: dict | None = None,
              shop_scoped: bool = True) -> dict:
        """One API call with retries; an expired token is refreshed once and the call repeated."""
        try:
            return self.transport.call(method, path, query or {}, body, self._tokens.access_token,
                                       self.shop_cipher, shop_scoped)
        except TikTokTokenExpiredError:
            self.refresh_access_token(expired_token=self._tokens.access_token)
            return self.transport.call(method, path, query or {}, body, self._tokens.access_token,
                                       self.shop_cipher, shop_scoped)


def _half_open(ge: datetime | int, lt: datetime | int) -> dict:
    """``update_time_ge`` / ``update_time_lt`` body filters, the upper bound rounded up to a whole second."""
    return {"update_time_ge": unix_seconds(ge), "update_time_lt": unix_seconds(lt, round_up=True)}


def _lists(**filters: Iterable[str] | None) -> dict:
    """List-valued body filters, leaving out those not given."""
    return {name: [str(v) for v in values] for name, values in filters.items() if values is not None}
