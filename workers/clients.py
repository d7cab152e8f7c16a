"""Client policies for tasks, and the Redis client a worker process uses (made once per process,
and again after a fork). Each connection's Klaviyo and TikTok clients are built from these in
``workers/connections.py``.

The Klaviyo client inside a task is tuned for a fleet: its rate limiter is the
shared Redis one, it waits for a token at most ``KSYNC_LIMITER_MAX_BLOCK_SECONDS``,
and it retries nothing itself: a 429 cools the bucket down for every worker, and a
429, a 5xx or a timeout becomes a task retry with a countdown, so no worker slot
sits sleeping and a send stays inside its time budget (``send_budget_seconds``).
"""

from __future__ import annotations

import redis

import logs
from klaviyo import KlaviyoClient, RetryPolicy
from settings import Settings, get_settings
from tiktok import TikTokRetryPolicy, TikTokShopClient

#: Inside tasks: no in-client retries at all; the task retries with a countdown (see above).
TASK_RETRY_POLICY = RetryPolicy(max_429=0, max_5xx=0, max_network=0, backoff_base=0.5, backoff_max=5)
#: Seconds per HTTP request from a task (see ``send_budget_seconds``).
TASK_HTTP_TIMEOUT = 15
#: The most Klaviyo requests one record's send makes: an upsert whose identifiers conflict (the
#: upsert, again without the phone, a read of the other profile, the upsert onto it) and a list add.
MAX_REQUESTS_PER_SEND = 5
#: TikTok waits inside a task stay short (about 7 s at most); a longer throttle becomes a task retry.
TASK_TIKTOK_RETRY = TikTokRetryPolicy(max_rate_limited=3, max_server=2, max_network=2, backoff_base=0.5,
                                      backoff_max=4, jitter=0.3, max_wait=7)


def send_budget_seconds(settings=None) -> float:
    """The longest one record's send can take: each request waits at most the limiter's block, then
    its timeout. Kept under the task's soft time limit, so the soft limit is rare (when it fires
    anyway, the send is released and retried, never failed)."""
    settings = settings or get_settings()
    return MAX_REQUESTS_PER_SEND * (settings.limiter_max_block_seconds + TASK_HTTP_TIMEOUT)


_cache: dict = {}


def reset() -> None:
    from . import connections

    connections.forget()
    for client in _cache.values():
        close = getattr(client, "close", None)
        if close:
            try:
                close()
            except Exception:
                pass
    _cache.clear()


def redis_client() -> redis.Redis:
    if "redis" not in _cache:
        _cache["redis"] = redis.Redis.from_url(get_settings().redis_url, socket_timeout=10, socket_connect_timeout=5,
                                               health_check_interval=30, retry_on_timeout=True)
    return _cache["redis"]


def klaviyo_from_settings(settings: Settings, **kwargs) -> KlaviyoClient:
    """A Klaviyo client from ksync's settings (``.env`` included), its key registered for redaction."""
    settings.require("KLAVIYO_API_KEY")
    logs.register_secret(settings.klaviyo_api_key)
    return KlaviyoClient(settings.klaviyo_api_key, base_url=settings.klaviyo_api_base_url,
                         revision=settings.klaviyo_revision, **kwargs)


def tiktok_from_settings(settings: Settings, shop_cipher: str | None = None, **kwargs) -> TikTokShopClient:
    """A TikTok client from ksync's settings; its secrets are registered for log redaction."""
    settings.require("TIKTOK_APP_KEY", "TIKTOK_APP_SECRET", "TIKTOK_ACCESS_TOKEN")
    cipher = shop_cipher or (settings.shop_ciphers[0] if settings.shop_ciphers else None)
    return TikTokShopClient(settings.tiktok_app_key, settings.tiktok_app_secret, settings.tiktok_access_token, cipher,
                            base_url=settings.tiktok_api_base_url, auth_base_url=settings.tiktok_auth_base_url,
                            refresh_token=settings.tiktok_refresh_token or None, on_secret=logs.register_secret,
                            **kwargs)
