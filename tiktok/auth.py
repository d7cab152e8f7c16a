"""Seller authorization: the consent page URL and what the token host grants.

The flow (``tiktok-shop-api.md`` §2): the seller opens ``authorization_url(...)``,
consents, and TikTok redirects to the app's fixed redirect URL with ``code`` and
``state``. ``TikTokShopClient.exchange_auth_code(code)`` trades the code (valid
30 minutes, single use) for a ``TokenGrant``; ``get_authorized_shops()`` then
lists the shops that grant covers, each with the ``cipher`` every shop-scoped
call needs. ``*_expire_in`` are absolute unix seconds, not durations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from marshmallow import ValidationError, fields, post_load, validate

from .exceptions import TikTokServerError
from .schemas import _Schema

#: Seller consent pages by region (``tiktok-shop-api.md`` §0); US sellers have their own host.
CONSENT_HOSTS = {"ROW": "https://services.tiktokshop.com", "US": "https://services.us.tiktokshop.com"}
#: Before service ids, apps sent sellers to the token host with their app key.
LEGACY_CONSENT_URL = "https://auth.tiktok-shops.com/oauth/authorize"


def authorization_url(service_id: str | None = None, state: str = "", region: str = "ROW", *,
                      app_key: str | None = None, base_url: str | None = None) -> str:
    """Where to send a seller to authorize the app.

    With ``service_id`` (Partner Center's service id): ``{host}/open/authorize?service_id=..&state=..``
    on the ROW or US consent host (``base_url`` overrides the host, e.g. for the stand-in). Without
    one, the legacy ``/oauth/authorize?app_key=..&state=..`` page. ``state`` comes back unchanged
    on the redirect: make it an unguessable value tied to the session (CSRF).
    """
    region = region.upper()
    if region not in CONSENT_HOSTS:
        raise ValueError(f"region must be one of {sorted(CONSENT_HOSTS)}, got {region!r}")
    if service_id:
        host = (base_url or CONSENT_HOSTS[region]).rstrip("/")
        return f"{host}/open/authorize?{urlencode({'service_id': service_id, 'state': state})}"
    if app_key:
        url = f"{base_url.rstrip('/')}/oauth/authorize" if base_url else LEGACY_CONSENT_URL
        return f"{url}?{urlencode({'app_key': app_key, 'state': state})}"
    raise ValueError("authorization_url needs a service_id (or, for the legacy page, an app_key)")


@dataclass(frozen=True)
class TokenGrant:
    """What ``/api/v2/token/get`` (and ``/refresh``) answers. The tokens never appear in ``repr``."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    #: Absolute unix seconds.
    access_token_expires_at: int
    refresh_token_expires_at: int
    open_id: str
    seller_name: str = ""
    seller_base_region: str = ""
    #: 0 seller, 1 creator.
    user_type: int = 0
    granted_scopes: tuple[str, ...] = ()


class TokenGrantSchema(_Schema):
    access_token = fields.String(required=True, validate=validate.Length(min=1))
    refresh_token = fields.String(required=True, validate=validate.Length(min=1))
    access_token_expire_in = fields.Integer(required=True, strict=True)
    refresh_token_expire_in = fields.Integer(required=True, strict=True)
    open_id = fields.String(load_default="")
    seller_name = fields.String(load_default="")
    seller_base_region = fields.String(load_default="")
    user_type = fields.Integer(load_default=0, strict=True)
    granted_scopes = fields.List(fields.String(), load_default=list)

    @post_load
    def _make(self, data, **kwargs):
        return TokenGrant(access_token=data["access_token"], refresh_token=data["refresh_token"],
                          access_token_expires_at=data["access_token_expire_in"],
                          refresh_token_expires_at=data["refresh_token_expire_in"], open_id=data["open_id"],
                          seller_name=data["seller_name"], seller_base_region=data["seller_base_region"],
                          user_type=data["user_type"], granted_scopes=tuple(data["granted_scopes"]))


TOKEN_GRANT_SCHEMA = TokenGrantSchema()


def load_grant(data: dict, path: str) -> TokenGrant:
    """A ``TokenGrant`` from the token host's ``data``; a malformed answer is a server error that
    names the fields, never their values (they are tokens)."""
    try:
        return TOKEN_GRANT_SCHEMA.load(data)
    except ValidationError as exc:
        raise TikTokServerError(f"TikTok {path} answered an unreadable grant (fields: "
                                f"{', '.join(sorted(exc.messages))})") from None
