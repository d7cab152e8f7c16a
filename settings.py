"""The one settings module: every knob ksync has, read from the environment.

Values come from the process environment first, then from an optional
``.env`` file in the working directory (python-dotenv; the environment wins).
The names below are a public contract: deployments set them, so they do not
change.

``Settings`` is frozen and its secret fields are left out of ``repr`` so that
logging a settings object can never print a key or a token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values

KLAVIYO_DEFAULT_BASE_URL = "https://a.klaviyo.com/api"
#: Klaviyo API revision the client is written against (matches the checked-in spec).
KLAVIYO_DEFAULT_REVISION = "2026-07-15"
TIKTOK_DEFAULT_API_BASE_URL = "https://open-api.tiktokglobalshop.com"
TIKTOK_DEFAULT_AUTH_BASE_URL = "https://auth.tiktok-shops.com"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The embedded default: a SQLite file under .ksync/ in the working directory.
DEFAULT_DATABASE_URL = "sqlite:///.ksync/ksync.sqlite3"


class ConfigError(ValueError):
    """A setting is missing or malformed. The message names the variable."""


def _secret():
    return field(default="", repr=False)


@dataclass(frozen=True)
class Settings:
    # Klaviyo
    klaviyo_api_key: str = _secret()
    klaviyo_api_base_url: str = KLAVIYO_DEFAULT_BASE_URL
    klaviyo_revision: str = KLAVIYO_DEFAULT_REVISION
    # TikTok Shop
    tiktok_app_key: str = ""
    tiktok_app_secret: str = _secret()
    tiktok_access_token: str = _secret()
    tiktok_refresh_token: str = _secret()
    #: One or more shop ciphers, comma-separated: each is a shop ksync syncs.
    tiktok_shop_cipher: str = ""
    tiktok_api_base_url: str = TIKTOK_DEFAULT_API_BASE_URL
    tiktok_auth_base_url: str = TIKTOK_DEFAULT_AUTH_BASE_URL
    # Infrastructure
    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    # Sync behaviour
    sync_interval_seconds: int = 600
    reconcile_hour_utc: int = 3
    reconcile_lookback_days: int = 7
    lookback_seconds: int = 1800
    lag_seconds: int = 60
    first_run_days: int = 30
    bulk_threshold: int = 1000
    customer_list_name: str = ""
    max_attempts: int = 5
    limiter_max_block_seconds: float = 5.0
    #: Share of Klaviyo's limits ksync may use (e.g. 0.8 leaves room for another integration).
    rate_limit_scale: float = 1.0
    visibility_timeout_seconds: int = 3600
    #: A claim lasts this long unless its task renews it (a live task renews every third of it):
    #: short, so that work held by a dead worker is sent again within about a minute.
    item_lease_seconds: int = 30
    #: A lost task message (never taken up, its run not moving) or a stuck read is sent again after
    #: this long; each lost item at most once per period.
    stale_item_seconds: int = 60
    #: How often beat runs the sweeper (finishes runs, re-sends lost work).
    sweep_interval_seconds: int = 15
    #: A window longer than this (s) is a backfill: it runs in the ``backfill`` lane (fairness).
    backfill_after_seconds: int = 86400
    # Catalog and back in stock
    #: How often a connection's stock is polled (Inventory Search, 100 products a call). TikTok
    #: sends no webhook on a restock (type 27 fires on drops only) and a stock edit does not move a
    #: product's ``update_time``, so polling is the only way to see a restock; 60 s keeps a restock
    #: within about a minute of Klaviyo's back-in-stock flow for one call per 100 products a minute.
    stock_poll_seconds: int = 60
    #: The catalog item's page URL; ``{product_id}`` and ``{region}`` are filled in (no Product API
    #: returns a product page URL: commerce-apis.md §2.4).
    product_url_template: str = "https://shop.tiktok.com/view/product/{product_id}?region={region}"
    # Real time (ksync serve)
    web_bind: str = "127.0.0.1:8080"
    web_workers: int = 2
    web_timeout_seconds: int = 30
    #: A webhook stamped further from now than this is refused as a replay. TikTok retries for about
    #: 15 hours (2 min, 30 min, 3 h, 12 h), so a genuine retry is always younger; repeats inside it
    #: are dropped by their notification id.
    webhook_max_age_seconds: int = 86400
    #: Notifications for one connection gathered into one TikTok fetch (ms).
    realtime_coalesce_ms: int = 250
    # Connections
    #: Fernet key(s), comma-separated, first encrypts: secrets at rest (see db/secrets.py).
    secret_key: str = _secret()
    #: Partner Center's service id of the TikTok app: the seller consent link (``ksync connections authorize``).
    tiktok_service_id: str = ""
    #: Where the seller consent page is; empty: TikTok's, for the seller's region (a stand-in's address in tests).
    tiktok_consent_base_url: str = ""
    # Operations
    flower_basic_auth: str = _secret()
    log_level: str = "INFO"
    log_format: str = "logfmt"

    @property
    def shop_ciphers(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.tiktok_shop_cipher.split(",") if c.strip())

    @property
    def secret_keys(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.secret_key.split(",") if k.strip())

    @property
    def redis_url_redacted(self) -> str:
        return redact_url(self.redis_url)

    @property
    def database_url_redacted(self) -> str:
        return redact_url(self.database_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike | None = ".env") -> "Settings":
        """Build settings from ``env`` (default: ``os.environ``) over an optional ``.env`` file."""
        values: dict[str, str] = {}
        if dotenv_path and Path(dotenv_path).is_file():
            values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        values.update(os.environ if env is None else env)
        kwargs = {}
        for f in fields(cls):
            name = ENV_NAMES[f.name]
            if name not in values or values[name] == "":
                continue
            kwargs[f.name] = _parse(name, values[name], type(f.default))
        return cls(**kwargs)

    def require(self, *names: str) -> None:
        """Raise ConfigError naming the first of ``names`` (env var names) that is unset."""
        by_env = {v: k for k, v in ENV_NAMES.items()}
        for name in names:
            if not getattr(self, by_env[name]):
                raise ConfigError(f"{name} is not set; put it in the environment or in .env (see .env.example)")


#: Field name -> environment variable. The first twelve are the public contract.
ENV_NAMES = {
    "klaviyo_api_key": "KLAVIYO_API_KEY",
    "klaviyo_api_base_url": "KLAVIYO_API_BASE_URL",
    "klaviyo_revision": "KLAVIYO_REVISION",
    "tiktok_app_key": "TIKTOK_APP_KEY",
    "tiktok_app_secret": "TIKTOK_APP_SECRET",
    "tiktok_access_token": "TIKTOK_ACCESS_TOKEN",
    "tiktok_refresh_token": "TIKTOK_REFRESH_TOKEN",
    "tiktok_shop_cipher": "TIKTOK_SHOP_CIPHER",
    "tiktok_api_base_url": "TIKTOK_API_BASE_URL",
    "tiktok_auth_base_url": "TIKTOK_AUTH_BASE_URL",
    "redis_url": "REDIS_URL",
    "database_url": "DATABASE_URL",
    "sync_interval_seconds": "KSYNC_SYNC_INTERVAL_SECONDS",
    "reconcile_hour_utc": "KSYNC_RECONCILE_HOUR_UTC",
    "reconcile_lookback_days": "KSYNC_RECONCILE_LOOKBACK_DAYS",
    "lookback_seconds": "KSYNC_LOOKBACK_SECONDS",
    "lag_seconds": "KSYNC_LAG_SECONDS",
    "first_run_days": "KSYNC_FIRST_RUN_DAYS",
    "bulk_threshold": "KSYNC_BULK_THRESHOLD",
    "customer_list_name": "KSYNC_CUSTOMER_LIST",
    "max_attempts": "KSYNC_MAX_ATTEMPTS",
    "limiter_max_block_seconds": "KSYNC_LIMITER_MAX_BLOCK_SECONDS",
    "rate_limit_scale": "KSYNC_RATE_LIMIT_SCALE",
    "visibility_timeout_seconds": "KSYNC_VISIBILITY_TIMEOUT",
    "item_lease_seconds": "KSYNC_ITEM_LEASE_SECONDS",
    "stale_item_seconds": "KSYNC_STALE_ITEM_SECONDS",
    "sweep_interval_seconds": "KSYNC_SWEEP_SECONDS",
    "backfill_after_seconds": "KSYNC_BACKFILL_AFTER_SECONDS",
    "stock_poll_seconds": "KSYNC_STOCK_POLL_SECONDS",
    "product_url_template": "KSYNC_PRODUCT_URL_TEMPLATE",
    "web_bind": "KSYNC_WEB_BIND",
    "web_workers": "KSYNC_WEB_WORKERS",
    "web_timeout_seconds": "KSYNC_WEB_TIMEOUT",
    "webhook_max_age_seconds": "KSYNC_WEBHOOK_MAX_AGE_SECONDS",
    "realtime_coalesce_ms": "KSYNC_REALTIME_COALESCE_MS",
    "secret_key": "KSYNC_SECRET_KEY",
    "tiktok_service_id": "TIKTOK_SERVICE_ID",
    "tiktok_consent_base_url": "TIKTOK_CONSENT_BASE_URL",
    "flower_basic_auth": "FLOWER_BASIC_AUTH",
    "log_level": "KSYNC_LOG_LEVEL",
    "log_format": "KSYNC_LOG_FORMAT",
}

#: Secret settings, by environment variable name. Their values are redacted from logs.
SECRET_NAMES = ("KLAVIYO_API_KEY", "TIKTOK_APP_SECRET", "TIKTOK_ACCESS_TOKEN", "TIKTOK_REFRESH_TOKEN", "FLOWER_BASIC_AUTH",
                "KSYNC_SECRET_KEY")


def _parse(name: str, raw: str, kind: type):
    raw = raw.strip()
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    if kind in (int, float):
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a{'n integer' if kind is int else ' number'}, got {raw!r}") from None
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {raw!r}")
        return value
    return raw


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def get_settings() -> Settings:
    """Settings for this process, read once."""
    global _cached
    if _cached is None:
        _cached = Settings.from_env()
    return _cached


def reset_settings_cache() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    global _cached
    _cached = None


_cached: Settings | None = None
