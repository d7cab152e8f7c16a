"""Secrets at rest: Klaviyo keys and TikTok tokens are stored encrypted (Fernet, via ``cryptography``).

The keyring is a ``MultiFernet``: the first key encrypts, every key decrypts, so a key can be
rotated without downtime (Airflow's pattern): put the new key first in ``KSYNC_SECRET_KEY``
(comma-separated), run ``ksync connections rotate-key`` (re-encrypts every secret under it), then
drop the old one.

Without ``KSYNC_SECRET_KEY`` the keyring is a key derived (HKDF-SHA256) from the TikTok app
secret, which every worker of a deployment already holds: a single-shop install that configures
only the environment keeps working and still never stores a token in plain text. That derived
key is always kept last in the ring, so moving to ``KSYNC_SECRET_KEY`` later only needs a
``rotate-key``. Production should set ``KSYNC_SECRET_KEY`` (``ksync connections generate-key``).

The key is read when first used (never at import), from values the caller passes in: this
module does not read the settings itself.
"""

from __future__ import annotations

import base64
from typing import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

from logs import register_secret

__all__ = ["EncryptedText", "InvalidToken", "SecretKeyError", "configure", "derived_key", "generate_key", "is_current",
           "keyring"]

#: HKDF "info": keys derived for another purpose from the same app secret never coincide with this one.
DERIVATION_LABEL = b"ksync secrets at rest v1"


class SecretKeyError(ValueError):
    """No usable key, or a stored secret that none of the keys decrypts. The message says what to do."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def derived_key(app_secret: str) -> str:
    """A Fernet key derived from the TikTok app secret (HKDF-SHA256, no salt: it must be the same
    on every worker)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVATION_LABEL).derive(app_secret.encode())
    return base64.urlsafe_b64encode(raw).decode()


_ring: MultiFernet | None = None
_primary: Fernet | None = None
_sources: tuple = ()


def configure(secret_keys: Iterable[str] = (), app_secret: str = "") -> MultiFernet:
    """Build the keyring from ``KSYNC_SECRET_KEY``'s keys (first encrypts) and the TikTok app secret."""
    global _ring, _primary, _sources
    keys = [k.strip() for k in secret_keys if k and k.strip()]
    if app_secret:
        keys.append(derived_key(app_secret))
    if not keys:
        raise SecretKeyError("no key to encrypt secrets with: set KSYNC_SECRET_KEY (make one with "
                             "`ksync connections generate-key`) or TIKTOK_APP_SECRET")
    try:
        fernets = [Fernet(k.encode()) for k in keys]
        _ring, _primary = MultiFernet(fernets), fernets[0]
    except ValueError:
        raise SecretKeyError("KSYNC_SECRET_KEY holds a key that is not a Fernet key (32 url-safe base64 bytes); "
                             "make one with `ksync connections generate-key`") from None
    _sources = (tuple(k for k in secret_keys), app_secret)
    return _ring


def keyring() -> MultiFernet:
    """The keyring for the current settings (rebuilt when KSYNC_SECRET_KEY or the app secret change)."""
    from settings import get_settings

    settings = get_settings()
    if _ring is None or _sources != (tuple(settings.secret_keys), settings.tiktok_app_secret):
        configure(settings.secret_keys, settings.tiktok_app_secret)
    return _ring


def reset() -> None:
    """Forget the keyring (tests and ``rotate-key`` change the keys)."""
    global _ring
    _ring = None


def encrypt(value: str) -> str:
    return keyring().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return keyring().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretKeyError("a stored secret cannot be decrypted with KSYNC_SECRET_KEY's keys (or the key derived "
                             "from TIKTOK_APP_SECRET): was a key removed before `ksync connections rotate-key`?") from None


def rotate(token: str) -> str:
    """The same secret encrypted under the first key (its timestamp kept)."""
    try:
        return keyring().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretKeyError("a stored secret cannot be decrypted with any of KSYNC_SECRET_KEY's keys") from None


def is_current(token: str) -> bool:
    """Whether ``token`` is already encrypted under the first key, so ``rotate-key`` can leave it
    alone and a second run changes nothing."""
    keyring()
    try:
        _primary.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


class EncryptedText(TypeDecorator):
    """A text column stored as a Fernet token. Not indexable or comparable: tokens are random.

    Every value that passes through (written or read) is registered for log redaction
    (``logs.register_secret``) before SQLAlchemy can log it: with its loggers at DEBUG,
    SQLAlchemy logs each row it loads, after this type has decrypted it."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or value == "":
            return None
        register_secret(value)
        return encrypt(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        plain = decrypt(value)
        register_secret(plain)
        return plain
