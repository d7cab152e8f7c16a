"""``TikTokStandIn``: the whole fake TikTok Shop behind one context manager.

It owns the generated orders (``store``), the tokens, the fault switches,
the counters and, when ``webhook_url`` is set, the webhook sender; the Flask
app and the ``/_sandbox/`` routes call back into it. Tests use it in-process;
``python -m sandbox.tiktok`` serves the same thing for ``make demo``.
"""

from __future__ import annotations

import logging
import random
import string
import time

from ..server import LoopbackServer
from .app import create_app
from .counters import Counters
from .faults import Faults
from .lifecycle import ON_HOLD, UNPAID
from .orders import generate
from .people import region_for
from .store import OrderStore
from .tokens import TokenBook
from .webhooks import DEFAULT_RETRY_SCHEDULE, WebhookSender

log = logging.getLogger(__name__)


class TikTokStandIn:
    """A local TikTok Shop Open API (order API 202309) for one app and one shop.

    Parameters:
        orders(int): how many orders to generate; days(float): over how many days before now.
        seed(int): makes orders, shop identity and the first token pair reproducible.
        port(int): 0 picks a free port. rate_limit_qps(float): token bucket per (app_key, path); 0 = off.
        token_ttl_seconds(int): access token lifetime. webhook_url(str): where status changes are POSTed.
        now(int): pin the generation clock (defaults to the real clock) for byte-identical data.
    """

    def __init__(self, app_key: str = "ksync-app", app_secret: str = "ksync-secret", orders: int = 2000,
                 days: float = 30, seed: int = 7, port: int = 0, currency: str = "USD",
                 malformed_ratio: float = 0.0, rate_limit_qps: float | None = 50,
                 token_ttl_seconds: int = 7 * 86400, webhook_url: str | None = None, host: str = "127.0.0.1",
                 now: int | None = None, webhook_retry_schedule=DEFAULT_RETRY_SCHEDULE):
        self.app_key, self.app_secret = app_key, app_secret
        self.order_count, self.days, self.seed = orders, days, seed
        self.currency, self.malformed_ratio = currency.upper(), malformed_ratio
        self.token_ttl_seconds = token_ttl_seconds
        self.generated_at = int(time.time()) if now is None else int(now)
        rng = random.Random(f"{seed}:shop")
        self.shop_id = str(7_495_000_000_000_000_000 + rng.randrange(10**15))
        self.shop_cipher = "ROW_" + "".join(rng.choices(string.ascii_letters + string.digits, k=27))
        self.open_id = "".join(rng.choices(string.ascii_letters + string.digits + "-_", k=43))
        self.region_code = region_for(self.currency).code
        self.shop_name = "Ksync Demo Shop"
        self.shop_code = self.region_code + "LC" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
        self.stats = Counters()
        self.faults = Faults(rate_limit_qps, seed)
        self.webhooks = WebhookSender(webhook_url, app_key, app_secret, self.shop_id, self.stats,
                                      webhook_retry_schedule) if webhook_url else None
        self._build()
        self.app = create_app(self)
        self.server = LoopbackServer(self.app, host=host, port=port)

    def _build(self) -> None:
        started = time.perf_counter()
        records = generate(self.order_count, self.days, self.seed, self.generated_at, self.currency,
                           self.malformed_ratio)
        self.generation_seconds = time.perf_counter() - started
        self.store = OrderStore(records, self.generated_at)
        self._malformed = {r.plan.id for r in records if r.malformation}
        self.tokens = TokenBook(self.token_ttl_seconds, self.seed, self.app_key)

    # -- server ------------------------------------------------------------------------------------------
    def start(self) -> "TikTokStandIn":
        self.server.start()
        if self.webhooks:
            self.webhooks.start()
        return self

    def stop(self) -> None:
        if self.webhooks:
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

    @property
    def access_token(self) -> str:
        return self.tokens.current.access_token

    @property
    def refresh_token(self) -> str:
        return self.tokens.current.refresh_token

    def shop(self) -> dict:
        return {"id": self.shop_id, "name": self.shop_name, "region": self.region_code, "seller_type": "LOCAL",
                "cipher": self.shop_cipher, "code": self.shop_code}

    def client_settings(self) -> dict:
        """The environment a ksync client needs to talk to this stand-in."""
        return {"TIKTOK_API_BASE_URL": self.url, "TIKTOK_AUTH_BASE_URL": self.auth_url,
                "TIKTOK_APP_KEY": self.app_key, "TIKTOK_APP_SECRET": self.app_secret,
                "TIKTOK_ACCESS_TOKEN": self.access_token, "TIKTOK_REFRESH_TOKEN": self.refresh_token,
                "TIKTOK_SHOP_CIPHER": self.shop_cipher}

    # -- ground truth and control ------------------------------------------------------------------------
    def orders(self) -> list[dict]:
        """Every order exactly as the API serves it now (treat as read-only)."""
        return self.store.all()

    def malformed_ids(self) -> set[str]:
        return set(self._malformed)

    def _announce(self, record, step) -> None:
        if self.webhooks:
            self.webhooks.order_status_changed(record.plan.id, step.status, step.status in (UNPAID, ON_HOLD),
                                               step.at)

    def advance(self, seconds: float) -> list[str]:
        """Let ``seconds`` of lifecycle pass; due transitions happen now. Returns the ids that moved."""
        moved = self.store.advance(seconds, int(time.time()))
        for record, step in moved:
            self._announce(record, step)
        return list(dict.fromkeys(record.plan.id for record, _ in moved))

    def set_status(self, order_id: str, status: str, cancel_reason: str | None = None,
                   cancellation_initiator: str = "SELLER") -> dict:
        """Force a transition (``update_time`` = now); ``KeyError`` for an unknown id."""
        record, step = self.store.set_status(order_id, status, int(time.time()), cancel_reason,
                                             cancellation_initiator)
        self._announce(record, step)
        return record.data

    def expire_access_token(self) -> None:
        self.tokens.expire_current()

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

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook is acknowledged or dropped; True if that happened in time."""
        return self.webhooks.wait_idle(timeout) if self.webhooks else True

    def reset(self) -> None:
        """Back to the state at construction: same orders, first token pair, no faults, zero counters."""
        if self.webhooks:
            self.webhooks.clear()
        self._build()
        self.faults.clear()
        self.stats.reset()
