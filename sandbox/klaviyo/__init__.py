"""A faithful local stand-in for Klaviyo's REST API, for tests, benchmarks and ``make demo``.

    from sandbox.klaviyo import KlaviyoStandIn
    with KlaviyoStandIn(api_keys=("pk_test_ksync",), rate_limit_scale=1.0) as k:
        client = KlaviyoClient(k.api_key, base_url=k.url)      # k.url == "http://127.0.0.1:<port>/api"
        ...
        k.summary()["events_by_metric"], k.state()["profiles"]

Several Klaviyo accounts, each with its keys, data and rate-limit windows (accounts.py)::

    with KlaviyoStandIn(accounts={"AbC123": ("pk_a", "pk_a2"), "XyZ789": ("pk_b",)}) as k:
        k.account("pk_b").summary()            # k.summary() etc. address the first (default) account

Or from a shell: ``python -m sandbox.klaviyo --port 8025``.

Simulated (JSON:API bodies and error bodies as the 2026-07-15 spec and the live
API have them; checked against the official SDK and through ``prism proxy``):

* auth (401), ``revision`` header (400), Content-Type (415), JSON (400), the
  prose size limits (400), validation errors as 400 ``invalid`` with a pointer;
* profiles: create (409 ``duplicate_profile`` + ``meta.duplicate_profile_id``),
  patch, upsert (201/200), get, list with filters, sorts, sparse fields and
  ``additional-fields[profile]=subscriptions``;
* events: create (202, empty), bulk create (all or nothing; in-request
  unique_id repeats are 400), get and list with filters, sorts and includes;
  dedupe on (profile, metric, unique_id or time to the second), drops counted;
* lists and members, segments with live membership (segments.py says which
  conditions are evaluated), bulk profile import jobs with a timed lifecycle and
  import errors, consent and suppression jobs, data-privacy deletion;
* accounts: several per stand-in, each key seeing only its own account's data;
  ``GET /api/accounts`` (and ``/{id}``) answers the key's account;
* the catalog (catalog.py): items, variants and categories with compound ids,
  filters, paging and sorts; the nine bulk job types with a timed lifecycle,
  100 rows and 500 jobs in progress at most, and per-row errors; back-in-stock
  subscriptions, and restocks (a variant's stock going from ≤ 0 to > 0);
* keyset cursor pagination with full ``links.next`` URLs;
* per-account, per-operation fixed-window rate limits from ``klaviyo/ratelimits.json``
  (all keys of an account share them; 429 + integer ``Retry-After``; ``RateLimit-*``
  on every other answer);
* injected faults (faults.py) and admin endpoints under ``/_sandbox/`` (admin.py).

Not simulated: OAuth, scopes (403), other endpoints (404, among them the
catalog's relationship endpoints and the client-side back-in-stock call), what
a restock triggers (flows: the restock is only recorded), the extra
rate-limit buckets for ``predictive_analytics``/``include=lists`` queries,
includes other than an event's metric/profile, an import job's lists, an item's
variants and a catalog job's rows,
predictive analytics, push/WhatsApp consent, double opt-in confirmation, flows
(``backfill`` is stored, nothing is triggered), and persistence (all state is
in memory and gone when the process ends).
"""

from .app import create_app
from .standin import KlaviyoStandIn

__all__ = ["KlaviyoStandIn", "create_app"]
