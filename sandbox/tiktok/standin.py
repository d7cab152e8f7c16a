"""``TikTokStandIn``: the whole fake TikTok Shop behind one context manager.

It owns the shops (each with its orders, returns, cancellations and products),
the sellers and their tokens, auth codes, the fault switches, the counters and
the webhook sender; the Flask app and the ``/_sandbox/`` routes call back into
it. Tests use it in-process; ``python -m sandbox.tiktok`` serves the same thing
for ``make demo``.

One shop by default, and then every single-shop attribute (``shop_cipher``,
``orders()``, ``set_status()``, ``access_token``, ...) means that shop and its
seller. With ``shops=``, the same attributes mean the first shop; ``shop(cipher)``
gives any shop's handle and ``seller(key)`` any seller.
"""

from __future__ import annotations

import logging
import random
import time

from ..server import LoopbackServer
from . import people
from .app import create_app
from .churn import Churn
from .counters import Counters
from .faults import Faults
from .orders import SharedBuyers
from .sellers import Seller
from .shops import ShopSpec, StandInShop
from .tokens import AuthCodes
from .webhooks import (DEFAULT_RETRY_SCHEDULE, EVENT_TYPES, ORDER_STATUS_CHANGE, SELLER_DEAUTHORIZATION,
                       UPCOMING_AUTHORIZATION_EXPIRATION, WebhookSender, event_types)

log = logging.getLogger(__name__)
#: People in the pool that several shops share (when ``shared_buyers`` > 0).
SHARED_POOL_SIZE = 40


class TikTokStandIn:
    """A local TikTok Shop Open API (202309) for one app, one or several shops and sellers.

    Parameters:
        orders(int): orders per shop; days(float): over how many days before now.
        seed(int): makes orders, shop identities and the first token pairs reproducible.
        shops(int | list[ShopSpec | dict] | None): None = one shop; N = N shops, each its own seller;
            specs to choose names, currencies, order counts and which shops share a seller.
        shared_buyers(float): the share of each shop's orders placed by buyers several shops share
            (same ``user_id`` and relay e-mail).
        port(int): 0 picks a free port. rate_limit_qps(float): token bucket per (app_key, path); 0 = off.
        token_ttl_seconds(int): access token lifetime. webhook_url(str): where notifications of every
            shop are POSTed (``set_webhook_url`` per shop). webhook_events: the event types that URL
            subscribes to (TikTok subscribes per type); default ORDER_STATUS_CHANGE only, as before.
        redirect_url(str): the app's redirect URL; ``/open/authorize`` (the consent page) sends the
            seller there with ``code`` and ``state``, as TikTok does after consent.
        now(int): pin the generation clock.
    """

    def __init__(self, app_key: str = "ksync-app", app_secret: str = "ksync-secret", orders: int = 2000,
                 days: float = 30, seed: int = 7, port: int = 0, currency: str = "USD",
                 malformed_ratio: float = 0.0, rate_limit_qps: float | None = 50,
                 token_ttl_seconds: int = 7 * 86400, webhook_url: str | None = None, host: str = "127.0.0.1",
                 now: int | None = None, webhook_retry_schedule=DEFAULT_RETRY_SCHEDULE,
                 shops: int | list | None = None, shared_buyers: float = 0.0,
                 webhook_events=(ORDER_STATUS_CHANGE,), redirect_url: str | None = None):
        self.app_key, self.app_secret = app_key, app_secret
        self.order_count, self.days, self.seed = orders, days, seed
        self.currency, self.malformed_ratio = currency.upper(), malformed_ratio
        self.token_ttl_seconds = token_ttl_seconds
        self.generated_at = int(time.time()) if now is None else int(now)
        self.shop_specs = _specs(shops)
        self.shared_buyers = shared_buyers
        self.redirect_url = redirect_url
        #: Subscriptions: shop id (None = every shop) -> (url, event types).
        self._subscriptions: dict[str | None, tuple[str, frozenset[int]]] = {}
        if webhook_url:
            self._subscriptions[None] = (webhook_url, event_types(webhook_events))
        self.stats = Counters()
        self.faults = Faults(rate_limit_qps, seed)
        self.webhooks = WebhookSender(app_key, app_secret, self.stats, webhook_retry_schedule)
        self.churn: Churn | None = None
        self._build()
        self.app = create_app(self)
        self.server = LoopbackServer(self.app, host=host, port=port)

    def _build(self) -> None:
        started = time.perf_counter()
        shared = None
        if self.shared_buyers > 0:
            rng, region = random.Random(f"{self.seed}:shared-buyers"), people.region_for(self.currency)
            pool = tuple(people.make_buyer(rng, region, 10_000_000 + k, with_email=True) for k in range(SHARED_POOL_SIZE))
            shared = SharedBuyers(pool, self.shared_buyers, str(self.seed))
        used_ids: set = set()
        self.shops: list[StandInShop] = []
        self.sellers: dict[str, Seller] = {}
        for index, spec in enumerate(self.shop_specs):
            key = spec.seller or f"seller-{index}"
            shop = StandInShop(self, index, spec, key, shared, used_ids)
            if key not in self.sellers:
                self.sellers[key] = Seller.build(key, len(self.sellers), shop, self.seed, self.app_key,
                                                 self.token_ttl_seconds)
            self.sellers[key].shops.append(shop)
            self.shops.append(shop)
        for seller in self.sellers.values():
            seller.finish()
        self.auth_codes = AuthCodes()
        self.generation_seconds = time.perf_counter() - started

    # -- server ------------------------------------------------------------------------------------------
    def start(self) -> "TikTokStandIn":
        self.server.start()
        self.webhooks.start()
        return self

    def stop(self) -> None:
        self.stop_churn()
        self.webhooks.stop()
        self.server.stop()

    def __enter__(self) -> "TikTokStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """API base URL (``TIKTOK_API_BASE_URL``)."""
        return self.server.root_url

    @property
    def auth_url(self) -> str:
        """Token host base URL (``TIKTOK_AUTH_BASE_URL``); the same server."""
        return self.server.root_url

    # -- the first shop and its seller (the single-shop API) -------------------------------------------
    @property
    def first(self) -> StandInShop:
        return self.shops[0]

    shop_id = property(lambda self: self.first.id)
    shop_cipher = property(lambda self: self.first.cipher)
    shop_name = property(lambda self: self.first.name)
    shop_code = property(lambda self: self.first.code)
    region_code = property(lambda self: self.first.region)
    store = property(lambda self: self.first.store)
    open_id = property(lambda self: self.seller().open_id)
    tokens = property(lambda self: self.seller().tokens)

    @property
    def access_token(self) -> str:
        return self.tokens.current.access_token

    @property
    def refresh_token(self) -> str:
        return self.tokens.current.refresh_token

    def shop(self, ref: str | int | None = None) -> StandInShop:
        """A shop by cipher, id or index (default: the first); ``KeyError`` if there is none."""
        if ref is None:
            return self.first
        if isinstance(ref, int):
            return self.shops[ref]
        for shop in self.shops:
            if ref in (shop.cipher, shop.id):
                return shop
        raise KeyError(f"no shop {ref!r}")

    def seller(self, key: str | None = None) -> Seller:
        """A seller by key (``ShopSpec.seller``, default ``seller-<index>``); default: the first shop's."""
        return self.sellers[key or self.first.seller_key]

    def seller_of_token(self, access_token: str | None) -> Seller | None:
        return next((s for s in self.sellers.values() if s.tokens.owns(access_token)), None)

    def client_settings(self, shop: str | None = None) -> dict:
        """The environment a ksync client needs to talk to this stand-in (for ``shop``, default the first)."""
        target = self.shop(shop)
        tokens = self.sellers[target.seller_key].tokens.current
        return {"TIKTOK_API_BASE_URL": self.url, "TIKTOK_AUTH_BASE_URL": self.auth_url,
                "TIKTOK_APP_KEY": self.app_key, "TIKTOK_APP_SECRET": self.app_secret,
                "TIKTOK_ACCESS_TOKEN": tokens.access_token, "TIKTOK_REFRESH_TOKEN": tokens.refresh_token,
                "TIKTOK_SHOP_CIPHER": target.cipher}

    # -- ground truth and control (first shop; ``shop(cipher).…`` for another) --------------------------
    def orders(self) -> list[dict]:
        """Every order of the first shop exactly as the API serves it now (treat as read-only)."""
        return self.first.orders()

    def malformed_ids(self) -> set[str]:
        return self.first.malformed_ids()

    def advance(self, seconds: float) -> list[str]:
        """Let ``seconds`` of lifecycle pass in every shop; due transitions happen now. Returns the ids that moved."""
        moved = []
        for shop in self.shops:
            moved.extend(shop.advance(seconds))
        return moved

    def set_status(self, order_id: str, status: str, cancel_reason: str | None = None,
                   cancellation_initiator: str = "SELLER") -> dict:
        """Force a transition of an order of any shop (``update_time`` = now); ``KeyError`` for an unknown id."""
        return self.shop_of_order(order_id).set_status(order_id, status, cancel_reason, cancellation_initiator)

    def shop_of_order(self, order_id: str) -> StandInShop:
        for shop in self.shops:
            if order_id in shop.store.records:
                return shop
        raise KeyError(order_id)

    def shop_of_return(self, return_id: str) -> StandInShop:
        return next(s for s in self.shops if return_id in s.aftersales.returns)

    def shop_of_cancellation(self, cancel_id: str) -> StandInShop:
        return next(s for s in self.shops if cancel_id in s.aftersales.cancellations)

    def shop_of_product(self, product_id: str) -> StandInShop:
        return next(s for s in self.shops if product_id in s.catalog.products)

    def shop_of_sku(self, sku_id: str) -> StandInShop:
        return next(s for s in self.shops if sku_id in s.catalog.sku_index)

    # -- authorization -----------------------------------------------------------------------------------
    def issue_auth_code(self, seller: str | None = None) -> str:
        """The ``code`` TikTok would put on the consent redirect for ``seller``: valid 30 minutes, once."""
        return self.auth_codes.issue(self.seller(seller).key)

    def expire_access_token(self, seller: str | None = None) -> None:
        self.seller(seller).tokens.expire_current()

    def revoke_refresh_token(self, seller: str | None = None) -> None:
        """The seller's refresh tokens are refused from now on (36004004): the app must ask again."""
        self.seller(seller).tokens.revoke_refresh()

    def expire_refresh_token(self, seller: str | None = None) -> None:
        """The seller's refresh tokens have expired (105002)."""
        self.seller(seller).tokens.expire_refresh()

    def deauthorize(self, seller: str | None = None) -> list[str]:
        """The seller removes the app: every token dies and each shop gets a type 6 notice. Returns notice ids."""
        target = self.seller(seller)
        target.tokens.revoke_all()
        target.deauthorized = True
        return [self.notify(shop, SELLER_DEAUTHORIZATION,
                            {"message": f"Shop_id {shop.id} is deauthorized from your APP by merchant."},
                            subject=target.key) for shop in target.shops]

    def warn_authorization_expiry(self, seller: str | None = None, days: int = 30) -> list[str]:
        """A type 7 notice per shop: the authorization ends in ``days`` (``expiration_time`` a string)."""
        target = self.seller(seller)
        expires = int(time.time()) + days * 86400
        return [self.notify(shop, UPCOMING_AUTHORIZATION_EXPIRATION,
                            {"message": f"The authorization of shop {shop.id} will expire in {days} days.",
                             "expiration_time": str(expires)}, subject=target.key) for shop in target.shops]

    # -- webhooks ----------------------------------------------------------------------------------------
    @property
    def webhook_url(self) -> str | None:
        return self._subscriptions.get(None, (None,))[0]

    def set_webhook_url(self, url: str | None, shop: str | None = None, events=EVENT_TYPES) -> None:
        """Subscribe ``url`` to ``events`` (names or type numbers; default every type the stand-in
        sends) for every shop (``shop=None``) or one shop (cipher or id); ``url=None`` unsubscribes.
        A shop's own subscription replaces the app-wide one for that shop."""
        key = None if shop is None else self.shop(shop).id
        if url is None:
            self._subscriptions.pop(key, None)
        else:
            self._subscriptions[key] = (url, event_types(events))

    def webhook_url_for(self, shop: StandInShop, type_: int = ORDER_STATUS_CHANGE) -> str | None:
        url, events = self._subscriptions.get(shop.id) or self._subscriptions.get(None) or (None, frozenset())
        return url if type_ in events else None

    def notify(self, shop: StandInShop, type_: int, data: dict, subject: str = "") -> str | None:
        """Queue a signed notification for ``shop`` (nothing unless a URL subscribes to ``type_``)."""
        return self.webhooks.notify(self.webhook_url_for(shop, type_), type_, shop.id, data, subject=subject)

    def set_webhook_faults(self, **faults) -> dict:
        """``duplicate``, ``reorder``, ``forge``, ``stale`` (counts of coming notifications), ``stale_seconds``."""
        return self.webhooks.set_faults(**faults)

    def webhook_log(self) -> list[dict]:
        """One entry per notification: ids, type, shop, change time, first attempt, acknowledgement, outcome."""
        return self.webhooks.log()

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook is acknowledged or dropped; True if that happened in time."""
        return self.webhooks.wait_idle(timeout)

    # -- churn (benchmarks) ------------------------------------------------------------------------------
    def start_churn(self, changes_per_second: float, duration: float, shop: str | None = None) -> Churn:
        """Move orders through their statuses at a steady rate (every shop, or one), notifying each change."""
        self.stop_churn()
        shops = [self.shop(shop)] if shop is not None else list(self.shops)
        self.churn = Churn(shops, changes_per_second, duration).start()
        return self.churn

    def stop_churn(self) -> dict | None:
        if self.churn is None:
            return None
        self.churn.stop()
        return self.churn.stats.snapshot()

    def churn_stats(self) -> dict | None:
        return self.churn.stats.snapshot() if self.churn else None

    # -- faults, counters, reset -------------------------------------------------------------------------
    def set_faults(self, error_rate: float = 0.0, force_429: int = 0, rate_limit_qps: float | None = None,
                   latency_ms: int = 0, retry_after: int | str = 1) -> dict:
        """Replace all fault settings (``rate_limit_qps=None`` = the configured QPS; ``retry_after``
        is the 429s' Retry-After header, in seconds or as an HTTP date)."""
        return self.faults.configure(error_rate=error_rate, force_429=force_429, rate_limit_qps=rate_limit_qps,
                                     latency_ms=latency_ms, retry_after=str(retry_after))

    def clear_faults(self) -> dict:
        return self.faults.clear()

    def counters(self) -> dict:
        """``requests[path][str(code)]``, ``http_429``, ``signature_failures``, ``token_refreshes``,
        ``webhooks_sent`` (acknowledged), ``webhooks_failed`` (dropped after the last retry), ``webhook_attempts``."""
        return self.stats.snapshot()

    def reset(self) -> None:
        """Back to the state at construction: same shops and orders, first token pairs, no faults, zero counters."""
        self.stop_churn()
        self.churn = None
        self.webhooks.clear()
        self._build()
        self.faults.clear()
        self.stats.reset()


def _specs(shops) -> list[ShopSpec]:
    if shops is None:
        return [ShopSpec()]
    if isinstance(shops, int):
        if shops < 1:
            raise ValueError("shops must be at least 1")
        return [ShopSpec() for _ in range(shops)]
    specs = [s if isinstance(s, ShopSpec) else ShopSpec(**s) for s in shops]
    if not specs:
        raise ValueError("shops must name at least one shop")
    return specs
