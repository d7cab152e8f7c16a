"""The Flask app: TikTok's routes, with TikTok's checks in TikTok's order.

1. path known (404 / 36009009)      2. method (405 / 36009010)
3. ``app_key`` (400 / 36009004)     -  rate limit per (app_key, path) (429 / 36009002, ``Retry-After: 1``)
4. ``sign`` present (400 / 36009004) 5. ``timestamp`` within [now − 300 s, now + 30 s] (400 / 36009004)
6. signature over decoded query values and the raw body bytes (401 / 106001)
7. ``x-tts-access-token`` known (401 / 36009004) and unexpired (401 / 105002); it names the seller
8. ``shop_cipher``: required on shop paths (400 / 106013), refused on /authorization (400 / 36009004),
   must be a shop of the token's seller (400 / 36009004): another seller's cipher is answered
   exactly like an unknown one, so a token cannot probe which ciphers exist
9. injected server errors (500 / 36009003), then endpoint params (400 / 36009004 "invalid param error")

The token host's two paths are unsigned and check ``app_secret`` instead (steps 1–3, then the grant).
Sandbox controls live under ``/_sandbox/`` (see ``admin``), never under an API path.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode
from typing import TYPE_CHECKING

from flask import Flask, Response, request

from . import errors
from .admin import admin_blueprint
from .errors import MESSAGES, ApiError
from .commerce import COMMERCE_ROUTES, commerce_endpoint, route_for
from .signing import sign_request, signatures_match
from .store import SORT_FIELDS, SORT_ORDERS, Filters, PageTokenError
from .tokens import SCOPES

if TYPE_CHECKING:  # pragma: no cover
    from .standin import TikTokStandIn

SEARCH, DETAIL, SHOPS = "/order/202309/orders/search", "/order/202309/orders", "/authorization/202309/shops"
TOKEN_GET, TOKEN_REFRESH = "/api/v2/token/get", "/api/v2/token/refresh"
ROUTES = {SEARCH: "POST", DETAIL: "GET", SHOPS: "GET", TOKEN_GET: "GET", TOKEN_REFRESH: "GET", **COMMERCE_ROUTES}
SHOP_SCOPED = frozenset({SEARCH, DETAIL, *COMMERCE_ROUTES})
TOKEN_PATHS = frozenset({TOKEN_GET, TOKEN_REFRESH})
MAX_DETAIL_IDS = 50
PAST_WINDOW, FUTURE_WINDOW = 300, 30
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def create_app(standin: "TikTokStandIn") -> Flask:
    app = Flask("sandbox.tiktok")
    app.register_blueprint(admin_blueprint(standin))

    def consent():
        """The seller consent page, consenting at once: a fresh auth code for ``seller`` (a stand-in
        extension; default the first shop's seller), sent to the redirect URL with ``state``."""
        try:
            code = standin.issue_auth_code(request.args.get("seller"))
        except KeyError:
            return Response(json.dumps({"error": "no such seller"}), status=404, mimetype="application/json")
        query = {"code": code, "state": request.args.get("state", "")}
        if standin.redirect_url:
            sep = "&" if "?" in standin.redirect_url else "?"
            return Response(status=302, headers={"Location": f"{standin.redirect_url}{sep}{urlencode(query)}"})
        return Response(json.dumps(query), mimetype="application/json")

    app.add_url_rule("/open/authorize", "consent", consent, methods=["GET"])
    app.add_url_rule("/oauth/authorize", "consent_legacy", consent, methods=["GET"])

    def tiktok(path: str = ""):
        return _handle(standin, request.path)

    app.add_url_rule("/", "tiktok_root", tiktok, methods=ALL_METHODS, provide_automatic_options=False)
    app.add_url_rule("/<path:path>", "tiktok", tiktok, methods=ALL_METHODS, provide_automatic_options=False)
    return app


def _respond(standin, path: str, status: int, code: int, message: str, data, headers=None) -> Response:
    standin.stats.request(route_for(path), code, status)   # product ids fold into one route
    return Response(errors.envelope(code, message, data), status=status, headers=headers or {},
                    mimetype="application/json")


def _handle(standin, path: str) -> Response:
    try:
        method = ROUTES.get(route_for(path))
        if method is None:
            raise ApiError(404, errors.INVALID_PATH, MESSAGES["bad_path"])
        if request.method != method:
            raise ApiError(405, errors.INVALID_METHOD, MESSAGES["bad_method"])
        if path in TOKEN_PATHS:
            return _respond(standin, path, 200, errors.OK, "success", _token_endpoint(standin, path))
        standin.faults.delay()
        return _respond(standin, path, 200, errors.OK, MESSAGES["success"], _api_endpoint(standin, path))
    except ApiError as exc:
        return _respond(standin, path, exc.status, exc.code, exc.message, None, exc.headers)


def _check_app_key(standin, args) -> None:
    if args.get("app_key") != standin.app_key:
        raise ApiError(400, errors.INVALID_REQUEST, MESSAGES["bad_app_key"])


def _check_timestamp(args) -> None:
    try:
        timestamp = int(args.get("timestamp", ""))
    except ValueError:
        timestamp = -1
    now = int(time.time())
    if timestamp < 0:
        raise ApiError(400, errors.INVALID_REQUEST, MESSAGES["timestamp_negative"])
    if timestamp < now - PAST_WINDOW:
        raise ApiError(400, errors.INVALID_REQUEST, MESSAGES["timestamp_stale"])
    if timestamp > now + FUTURE_WINDOW:
        raise ApiError(400, errors.INVALID_REQUEST, MESSAGES["timestamp_future"])


def _check_signature(standin, path: str, args) -> None:
    body = request.get_data(cache=True)
    multipart = (request.mimetype or "").startswith("multipart/form-data")
    signed_body = body if request.method != "GET" and not multipart else None
    given = args.get("sign")
    if signatures_match(sign_request(standin.app_secret, path, args, signed_body), given):
        return
    # Leniency the reference suggests: the Node SDK does not sign an empty {} body.
    if signed_body is not None and signed_body.strip() == b"{}" and \
            signatures_match(sign_request(standin.app_secret, path, args, None), given):
        return
    standin.stats.add("signature_failures")
    raise ApiError(401, errors.BAD_SIGNATURE, MESSAGES["bad_sign"])


def _check_token(standin):
    """The seller the access token belongs to."""
    token = request.headers.get("x-tts-access-token")
    seller = standin.seller_of_token(token)
    state = seller.tokens.check_access(token) if seller else "invalid"
    if state == "invalid":
        raise ApiError(401, errors.INVALID_REQUEST, MESSAGES["bad_token"])
    if state == "expired":
        raise ApiError(401, errors.EXPIRED_TOKEN, MESSAGES["expired_token"])
    return seller


def _check_cipher(seller, path: str, args):
    """The shop a shop-scoped call addresses: one of the token's seller's shops."""
    if route_for(path) in SHOP_SCOPED:
        if not args.get("shop_cipher"):
            raise ApiError(400, errors.MISSING_SHOP_CIPHER, MESSAGES["missing_cipher"])
        shop = next((s for s in seller.shops if s.cipher == args["shop_cipher"]), None)
        if shop is None:
            raise ApiError(400, errors.INVALID_REQUEST, MESSAGES["bad_cipher"])
        return shop
    if "shop_cipher" in args:
        raise ApiError(400, errors.INVALID_REQUEST, MESSAGES["unexpected_cipher"])
    return None


def _api_endpoint(standin, path: str):
    args = request.args.to_dict()
    _check_app_key(standin, args)
    if standin.faults.throttled(args["app_key"], route_for(path)):     # one bucket per API, not per id
        raise ApiError(429, errors.RATE_LIMITED, MESSAGES["rate_limited"],
                       {"Retry-After": str(standin.faults.settings.retry_after)})
    if not args.get("sign"):
        raise ApiError(400, errors.INVALID_REQUEST, MESSAGES["missing_sign"])
    _check_timestamp(args)
    _check_signature(standin, path, args)
    seller = _check_token(standin)
    shop = _check_cipher(seller, path, args)
    if standin.faults.server_error():
        raise ApiError(500, errors.INTERNAL_ERROR, MESSAGES["internal"])
    if path == SEARCH:
        return _search(shop, args)
    if path == DETAIL:
        return _detail(shop, args)
    if path == SHOPS:
        return {"shops": [s.info() for s in seller.shops]}
    return commerce_endpoint(shop, path, args, request.get_data(cache=True))


def _search(shop, args) -> dict:
    raw_size = args.get("page_size", "")
    if not raw_size.isdigit() or not 1 <= int(raw_size) <= 100:
        raise errors.invalid_param("page_size must be 1..100")
    sort_field = args.get("sort_field") or "create_time"
    sort_order = (args.get("sort_order") or "DESC").upper()
    if sort_field not in SORT_FIELDS or sort_order not in SORT_ORDERS:
        raise errors.invalid_param("sort_field / sort_order")
    body = request.get_data(cache=True)
    try:
        filters = Filters.parse(json.loads(body) if body.strip() else {})
        orders, token, total = shop.store.search(filters, sort_field, sort_order, int(raw_size),
                                                    args.get("page_token") or None)
    except (ValueError, PageTokenError) as exc:   # JSONDecodeError is a ValueError
        raise errors.invalid_param(str(exc)) from exc
    return {"next_page_token": token, "total_count": total, "orders": orders}


def _detail(shop, args) -> dict:
    ids = [i.strip() for i in args.get("ids", "").split(",")]
    if not ids or "" in ids or len(ids) > MAX_DETAIL_IDS:
        raise errors.invalid_param("ids must hold 1..50 order ids")
    return {"orders": shop.store.get(ids)}


def _token_endpoint(standin, path: str) -> dict:
    args = request.args.to_dict()
    _check_app_key(standin, args)
    if args.get("app_secret") != standin.app_secret:
        raise ApiError(400, errors.INVALID_REQUEST, MESSAGES["bad_app_secret"])
    if path == TOKEN_GET:
        if args.get("grant_type") != "authorized_code":
            raise errors.invalid_param("grant_type must be authorized_code")
        seller = standin.seller(standin.auth_codes.redeem(args.get("auth_code", "")))
        seller.deauthorized = False
        pair = seller.tokens.grant()
    else:
        if args.get("grant_type") != "refresh_token":
            raise errors.invalid_param("grant_type must be refresh_token")
        token = args.get("refresh_token", "")
        seller = next((s for s in standin.sellers.values() if s.tokens.owns_refresh(token)), standin.seller())
        pair = seller.tokens.refresh(token)
        standin.stats.add("token_refreshes")
    return {"access_token": pair.access_token, "access_token_expire_in": pair.access_token_expire_in,
            "refresh_token": pair.refresh_token, "refresh_token_expire_in": pair.refresh_token_expire_in,
            "open_id": seller.open_id, "seller_name": seller.name,
            "seller_base_region": seller.base_region, "user_type": 0,
            "granted_scopes": list(SCOPES)}
