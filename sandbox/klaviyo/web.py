"""What every route handler needs from the current request: the sandbox, the account, the body, answers.

The app stores one ``Sandbox`` (accounts, limiter, faults, settings) in
``app.extensions``; handlers reach it through ``sandbox()``, and the data of
the account whose key the request carries through ``store()``, ``catalog()``
and ``counters()`` (the gate in app.py sets ``g.account``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

from flask import Response, current_app, g, request

from .accounts import Account, Accounts
from .catalog import Catalog
from .counters import Counters
from .errors import invalid
from .faults import Faults
from .limits import FixedWindowLimiter
from .paging import collection_links, page_size, paginate
from .store import Store

EXTENSION = "ksync_klaviyo"
JSON_API = "application/vnd.api+json"


@dataclass
class Sandbox:
    """Everything one stand-in owns. ``api_keys``, ``store`` and ``counters`` are the default account's."""

    accounts: Accounts
    limiter: FixedWindowLimiter
    faults: Faults
    job_stage_seconds: float = 0.2
    #: Keys answered 401 as if the merchant had revoked them (``revoke_key`` / ``restore_key``).
    revoked: set = field(default_factory=set)
    #: Catalog bulk jobs an account may have in progress (catalog_jobs.MAX_OPEN_JOBS unless a test lowers it).
    max_open_catalog_jobs: int = 500

    @property
    def api_keys(self) -> tuple:
        return self.accounts.default.api_keys

    @property
    def store(self) -> Store:
        return self.accounts.default.store

    @property
    def counters(self) -> Counters:
        return self.accounts.default.counters


def sandbox() -> Sandbox:
    return current_app.extensions[EXTENSION]


def account() -> Account:
    """The account of the request's private key."""
    return g.account


def store() -> Store:
    """The request's account's data (profiles, events, lists...)."""
    return g.account.store


def catalog() -> Catalog:
    """The request's account's catalog; guarded by ``store().lock`` like the rest of its data."""
    return g.account.catalog


def counters() -> Counters:
    return g.account.counters


def root() -> str:
    """Root URL as the client addressed us (``http://127.0.0.1:8025``), for absolute links."""
    return request.host_url.rstrip("/")


def now() -> float:
    """The request's arrival time (epoch seconds), fixed for the whole request."""
    return g.now


def body():
    """The parsed JSON body (checked and parsed by the app's gate), or None."""
    return g.get("body")


def csv_param(name: str) -> list[str]:
    """A comma-separated query parameter (``include``, ``additional-fields[profile]``...)."""
    raw = request.args.get(name)
    return [item.strip() for item in raw.split(",") if item.strip()] if raw else []


def sparse_fields() -> dict[str, list[str]]:
    """``fields[<type>]=a,b`` parameters, by resource type."""
    return {key[7:-1]: csv_param(key) for key in request.args if key.startswith("fields[") and key.endswith("]")}


def respond(document: dict, status: int = 200) -> Response:
    return Response(json.dumps(document, separators=(",", ":")), status=status, mimetype=JSON_API)


def empty(status: int = 202) -> Response:
    """202/204 with no body, as Klaviyo answers the asynchronous writes."""
    return Response(b"", status=status)


def self_link() -> dict:
    """``links.self`` of a single-resource answer: the request URL, query percent-encoded (a valid URI)."""
    query = urlencode([(k, v) for k, vs in request.args.lists() for v in vs])
    return {"self": request.base_url + ("?" + query if query else "")}


def paged(items: list, key, default_size: int, max_size: int, render) -> dict:
    """One page of ``items`` (in presentation order, ``key`` increasing) as a collection document."""
    size = page_size(request.args, default_size, max_size)
    page, next_cursor, prev_cursor = paginate(items, key, size, request.args.get("page[cursor]"),
                                              request.args.get("sort", ""))
    return {"data": [render(item) for item in page],
            "links": collection_links(request.base_url, request.args, next_cursor, prev_cursor)}


def sort_param(allowed: set[str], default: str) -> str:
    """``sort`` from the query, one of ``allowed`` (each also with a leading ``-``)."""
    value = request.args.get("sort") or default
    if value.lstrip("-") not in allowed:
        raise invalid(f"'{value}' is not a valid sort option.", parameter="sort")
    return value


def check_include(allowed: set[str]) -> list[str]:
    values = csv_param("include")
    for value in values:
        if value not in allowed:
            raise invalid(f"'{value}' is not an allowed include parameter for this resource.", parameter="include")
    return values
