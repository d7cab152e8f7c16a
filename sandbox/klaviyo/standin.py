"""``KlaviyoStandIn``: the app on a loopback port, as a context manager with in-process controls.

    >>> with KlaviyoStandIn(rate_limit_scale=0.1) as k:          # doctest: +SKIP
    ...     requests.post(k.url + "/events", json=..., headers={"Authorization": f"Klaviyo-API-Key {k.api_key}",
    ...                                                        "revision": "2026-07-15"})
    ...     k.summary()["events"]
"""

from __future__ import annotations

from sandbox.server import LoopbackServer

from . import admin
from .app import create_app
from .web import EXTENSION, Sandbox


class KlaviyoStandIn:
    """A local Klaviyo REST API on ``127.0.0.1:<port>`` (0 = any free port).

    Parameters:
        api_keys(tuple[str]): private keys accepted in ``Authorization: Klaviyo-API-Key <key>``.
        rate_limit_scale(float): multiplies every limit of ``klaviyo/ratelimits.json`` (at least 1 per window).
        limits(dict): operationId -> (burst per s, steady per min, daily or None); absolute, not scaled.
        faults(dict): initial fault settings, as for ``set_faults``.
        job_stage_seconds(float): how long a bulk import job stays queued, then processing.
    """

    def __init__(self, api_keys=("pk_test_ksync",), port: int = 0, rate_limit_scale: float = 1.0,
                 limits: dict | None = None, faults: dict | None = None, job_stage_seconds: float = 0.2,
                 host: str = "127.0.0.1"):
        self.app = create_app(api_keys=api_keys, rate_limit_scale=rate_limit_scale, limits=limits, faults=faults,
                              job_stage_seconds=job_stage_seconds)
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

    # -- controls ---------------------------------------------------------------------------------

    def state(self) -> dict:
        return admin.state(self.sandbox)

    def summary(self) -> dict:
        return admin.summary(self.sandbox)

    def requests(self, op: str | None = None, since: float | None = None) -> list[dict]:
        """The arrival log: ``{"op", "t", "status"}`` per request, oldest first."""
        return self.sandbox.counters.requests_for(op, since)

    def reset(self, reset_config: bool = False) -> None:
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
