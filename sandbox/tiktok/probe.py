"""A bare signed HTTP call against a stand-in, for the stand-in's own tests and quick pokes.

Deliberately minimal and separate from the project's ``tiktok`` client: it
signs with this package's ``sign_request`` and lets a test break any part of
the request (secret, timestamp, token, body bytes) on purpose.
"""

from __future__ import annotations

import contextlib
import json
import time

import requests

from .signing import sign_request

_DEFAULT = object()


def call(standin, method: str, path: str, query: dict | None = None, body=None, *, token=_DEFAULT,
         secret: str | None = None, timestamp: int | None = None, sign: bool = True, app_key: str | None = None,
         send_body: bytes | None = None, session=None, timeout: float = 10.0) -> requests.Response:
    """Sign and send one API request.

    ``body`` is a dict (serialised once, compactly) or raw bytes; ``send_body`` replaces the bytes actually
    sent after signing (to simulate a client that re-serialises). ``token=None`` sends no access token.
    """
    q = {"app_key": standin.app_key if app_key is None else app_key,
         "timestamp": str(int(time.time()) if timestamp is None else timestamp)}
    q.update({k: str(v) for k, v in (query or {}).items()})
    raw = json.dumps(body, separators=(",", ":")).encode("utf-8") if isinstance(body, (dict, list)) else body
    if sign:
        q["sign"] = sign_request(standin.app_secret if secret is None else secret, path, q,
                                 raw if method.upper() != "GET" else None)
    headers = {"Content-Type": "application/json"}
    access = standin.access_token if token is _DEFAULT else token
    if access is not None:
        headers["x-tts-access-token"] = access
    sender = session or requests
    return sender.request(method, standin.url + path, params=q, data=raw if send_body is None else send_body,
                          headers=headers, timeout=timeout)


def search_all(standin, body: dict | None = None, page_size: int = 100, session=None, **query) -> list[dict]:
    """Every order a search returns, following ``next_page_token`` to the end."""
    orders, token, pages = [], "", 0
    with requests.Session() if session is None else contextlib.nullcontext(session) as s:
        while True:
            q = {"shop_cipher": standin.shop_cipher, "page_size": page_size, **query}
            if token:
                q["page_token"] = token
            answer = call(standin, "POST", "/order/202309/orders/search", q, body or {}, session=s).json()
            if answer["code"] != 0:
                raise AssertionError(answer)
            orders.extend(answer["data"]["orders"])
            token, pages = answer["data"]["next_page_token"], pages + 1
            if not token:
                return orders
            if pages > 10_000:
                raise AssertionError("paging does not end")
