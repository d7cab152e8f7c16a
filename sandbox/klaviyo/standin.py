"""``KlaviyoStandIn``: the app on a loopback port, as a context manager with in-process controls.

    >>> with KlaviyoStandIn(rate_limit_scale=0.1) as k:          # doctest: +SKIP
    ...     requests.post(k.url + "/events", json=..., headers={"Authorization": f"Klaviyo-API-Key {k.api_key}",
    ...                                                        "revision": "2026-07-15"})
    ...     k.summary()["events"]

Several accounts (accounts.py): each key reads and writes its own account's data,
and all keys of an account share its rate-limit windows::

    >>> with KlaviyoStandIn(accounts={"AbC123": ("pk_a", "pk_a2"), "XyZ789": ("pk_b",)}) as k:  # doctest: +SKIP
    ...     k.api_key                       # "pk_a": the default (first) account's first key
    ...     k.account("pk_b").summary()     # or k.account("XyZ789")
"""

from __future__ import annotations

from sandbox.server import LoopbackServer

from . import admin, catalog_jobs
from .accounts import Account
from .app import create_app
from .web import EXTENSION, Sandbox


class AccountView:
    """One account of a running stand-in: its keys, data and counters (``KlaviyoStandIn.account``)."""

    def __init__(self, sandbox: Sandbox, account: Account):
        self._sandbox = sandbox
        self._account = account

    def __repr__(self) -> str:
        return f"AccountView(id={self.id!r}, keys={len(self.api_keys)})"

    @property
    def id(self) -> str:
        return self._account.id

    @property
    def api_keys(self) -> tuple:
        return self._account.api_keys

    @property
    def api_key(self) -> str:
        return self._account.api_keys[0]

    @property
    def store(self):
        return self._account.store

    @property
    def catalog(self):
        return self._account.catalog

    def state(self) -> dict:
        return admin.state(self._sandbox, self._account)

    def summary(self) -> dict:
        return admin.summary(self._sandbox, self._account)

    def requests(self, op: str | None = None, since: float | None = None) -> list[dict]:
        return self._account.counters.requests_for(op, since)

    def reset(self) -> None:
        """Forget this account's data, counters and rate-limit windows; the others keep theirs."""
        admin.reset(self._sandbox, account=self._account)


class KlaviyoStandIn:
    """A local Klaviyo REST API on ``127.0.0.1:<port>`` (0 = any free port).

    Parameters:
        api_keys(tuple[str]): private keys of the one account, accepted in ``Authorization: Klaviyo-API-Key <key>``
            (default ``("pk_test_ksync",)``).
        accounts(dict): instead of ``api_keys``, several accounts: ``{account_id: keys}`` or
            ``{account_id: {"api_keys": keys, "timezone": ..., ...}}``, the first being the default (accounts.py).
        rate_limit_scale(float): multiplies every limit of ``klaviyo/ratelimits.json`` (at least 1 per window).
        limits(dict): operationId -> (burst per s, steady per min, daily or None); absolute, not scaled.
        faults(dict): initial fault settings, as for ``set_faults``.
        job_stage_seconds(float): how long a bulk import or catalog job stays queued, then processing.
        max_open_catalog_jobs(int): catalog bulk jobs an account may have in progress (Klaviyo: 500).
    """

    def __init__(self, api_keys=None, port: int = 0, rate_limit_scale: float = 1.0,
                 limits: dict | None = None, faults: dict | None = None, job_stage_seconds: float = 0.2,
                 host: str = "127.0.0.1", accounts: dict | None = None,
                 max_open_catalog_jobs: int = catalog_jobs.MAX_OPEN_JOBS):
        self.app = create_app(api_keys=api_keys, rate_limit_scale=rate_limit_scale, limits=limits, faults=faults,
                              job_stage_seconds=job_stage_seconds, accounts=accounts,
                              max_open_catalog_jobs=max_open_catalog_jobs)
        self.sandbox: Sandbox = self.app.extensions[EXTENSION]
        self.server = LoopbackServer(self.app, host=host, port=port)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> "KlaviyoStandIn":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def __enter__(self) -> "KlaviyoStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return self.server.root_url

    @property
    def url(self) -> str:
        """Base URL a client uses: ``http://127.0.0.1:<port>/api``."""
        return self.root_url + "/api"

    @property
    def api_key(self) -> str:
        return self.sandbox.api_keys[0]

    @property
    def store(self):
        return self.sandbox.store

    def account(self, id_or_key: str | None = None) -> AccountView:
        """An account by id or by one of its private keys (default: the default account); KeyError if unknown."""
        return AccountView(self.sandbox, self.sandbox.accounts.find(id_or_key))

    def accounts(self) -> list[AccountView]:
        """Every account, the default first."""
        return [AccountView(self.sandbox, a) for a in self.sandbox.accounts]

    # -- controls (the default account's data and counters; faults and limits apply to all) ---------

    def state(self) -> dict:
        return admin.state(self.sandbox)

    def summary(self) -> dict:
        return admin.summary(self.sandbox)

    def requests(self, op: str | None = None, since: float | None = None) -> list[dict]:
        """The arrival log: ``{"op", "t", "status"}`` per request, oldest first."""
        return self.sandbox.counters.requests_for(op, since)

    def reset(self, reset_config: bool = False) -> None:
        """Forget every account's data, counters and windows (and faults and overrides with ``reset_config``)."""
        admin.reset(self.sandbox, reset_config)

    def set_faults(self, **settings) -> None:
        """Replace the fault settings (see sandbox/klaviyo/faults.py for the keys)."""
        self.sandbox.faults.configure(**settings)

    def clear_faults(self) -> None:
        self.sandbox.faults.clear()

    def revoke_key(self, key: str | None = None) -> None:
        """Answer 401 to ``key`` (default: the first) until ``restore_key``, as a revoked private key is."""
        self.sandbox.revoked.add(key or self.api_key)

    def restore_key(self, key: str | None = None) -> None:
        self.sandbox.revoked.discard(key or self.api_key)

    def set_limits(self, limits: dict, replace: bool = False) -> dict:
        """Override limits per operationId, e.g. ``{"create_event": (20, 300, None)}``; None removes one."""
        return admin.set_limits(self.sandbox, limits, replace)
