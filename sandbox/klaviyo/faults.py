"""Injected faults: the failures a client must survive, on demand.

Configure with ``KlaviyoStandIn(faults={...})``, ``set_faults(**kw)`` or
``POST /_sandbox/faults``. Keys (all optional):

* ``error_rate``: fraction answered 500 or 503 (``error_statuses``) with Klaviyo's error body.
* ``latency_ms``: added to every matching request (``latency_jitter_ms`` adds up to that much more).
* ``drop_rate``: fraction whose connection is closed without an answer; with
  ``drop_after_commit: true`` the request is processed first (a lost response).
* ``force_429``: the next N requests are answered 429; ``force_429_rate``: a
  fraction is; both with ``Retry-After: retry_after`` (integer seconds, default 1).
* ``malformed_rate`` with ``malformed_kind``: ``html`` (502 HTML page, nothing done),
  ``truncated`` (the request *is* processed and its answer keeps its status, but the
  body is cut short, as when a connection breaks mid-body) or ``unexpected`` (200
  with JSON of the wrong shape, nothing done: a proxy or portal answering instead).
* ``reject_rate``: fraction answered 400 ``invalid`` (pointer ``/data/attributes``), the
  way Klaviyo refuses a record; with ``match`` it poisons exactly one record.
* ``error_after_commit``: with ``error_rate``, the request is processed first and its answer
  replaced by the 5xx (the work was done; the client cannot tell).
* ``job_outcome``: how the profile bulk import jobs (and catalog bulk jobs) created while it
  is set end: ``cancelled`` (nothing applied), ``short`` (only the first half of the rows
  applied and counted: the counts do not add up to the rows), or ``orphan_error`` (the first
  row fails with an import error that names no row and whose payload matches none of the rows
  sent); ``job_outcome_jobs``: only the next N jobs get it (0, the default: every job while the
  faults are set).
* ``fail_rows``: in catalog bulk jobs, each row whose JSON contains this text fails inside the
  job (an ``errors`` entry pointing at the row, left out of the relationships), the way
  Klaviyo refuses one row of a job that it accepted.
* ``match``: only requests whose body or query contains this text (an order id, an
  e-mail) are faulted, so a single record can be made to fail.
* ``ops``: operationIds the faults apply to (default all); ``accounts``: account ids
  they apply to (default all); ``duration``: seconds after which the faults clear
  themselves; ``seed``: for repeatable runs.

Faults are decided after the authentication and revision checks, before the
rate limiter and before any state change: a faulted request changes nothing
(except with ``drop_after_commit`` and ``truncated``, which model answers lost or
damaged after the work was done) and does not count against the limits.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import asdict, dataclass, field

MALFORMED_KINDS = ("html", "truncated", "unexpected")
JOB_OUTCOMES = ("cancelled", "short", "orphan_error")


@dataclass
class FaultConfig:
    error_rate: float = 0.0
    error_statuses: tuple = (500, 503)
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    drop_rate: float = 0.0
    drop_after_commit: bool = False
    force_429: int = 0
    force_429_rate: float = 0.0
    retry_after: int = 1
    malformed_rate: float = 0.0
    malformed_kind: str = "html"
    ops: list | None = None
    duration: float | None = None
    seed: int | None = None
    reject_rate: float = 0.0
    error_after_commit: bool = False
    job_outcome: str | None = None
    job_outcome_jobs: int = 0
    match: str | None = None
    accounts: list | None = None
    fail_rows: str | None = None
    started: float = field(default_factory=time.time)

    def __post_init__(self):
        if self.malformed_kind not in MALFORMED_KINDS:
            raise ValueError(f"malformed_kind must be one of {MALFORMED_KINDS}")
        if self.job_outcome is not None and self.job_outcome not in JOB_OUTCOMES:
            raise ValueError(f"job_outcome must be one of {JOB_OUTCOMES}")
        self.error_statuses = tuple(int(s) for s in self.error_statuses)
        self.retry_after = max(1, int(self.retry_after))
        self.force_429 = int(self.force_429)

    def applies(self, op: str, account: str | None) -> bool:
        """The faults cover this operation and account."""
        return (self.ops is None or op in self.ops) and (self.accounts is None or account in self.accounts)

    def public(self) -> dict:
        out = asdict(self)
        out["error_statuses"] = list(self.error_statuses)
        out["expires_at"] = None if self.duration is None else self.started + self.duration
        return out


@dataclass(frozen=True)
class Plan:
    """What to do with one request: sleep ``latency`` seconds, then ``action`` (None = serve normally)."""

    latency: float = 0.0
    action: str | None = None     # error | drop | drop_after_commit | force_429 | malformed
    status: int = 0
    kind: str = ""


class Faults:
    def __init__(self, config: dict | None = None):
        self._lock = threading.Lock()
        self.config: FaultConfig | None = None
        self._rng = random.Random()
        if config:
            self.configure(**config)

    def configure(self, **settings) -> FaultConfig:
        """Replace the fault configuration (unknown keys raise TypeError, bad values ValueError)."""
        config = FaultConfig(**settings)
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
        return config

    def clear(self) -> None:
        with self._lock:
            self.config = None

    def current(self, now: float | None = None) -> FaultConfig | None:
        now = time.time() if now is None else now
        with self._lock:
            config = self.config
            if config is not None and config.duration is not None and now >= config.started + config.duration:
                self.config = config = None
            return config

    def job_outcome(self, now: float, text: str = "", op: str = "bulk_import_profiles",
                    account: str | None = None) -> str | None:
        """The outcome a bulk job created now by ``op`` is given (see ``job_outcome``)."""
        config = self.current(now)
        if config is None or not config.applies(op, account):
            return None
        if config.match and config.match not in text:
            return None
        with self._lock:
            outcome = config.job_outcome
            if outcome is not None and config.job_outcome_jobs:
                config.job_outcome_jobs -= 1
                if config.job_outcome_jobs == 0:
                    config.job_outcome = None
            return outcome

    def failing_rows(self, now: float, rows: list, op: str, account: str | None = None) -> frozenset:
        """Positions of the catalog job rows (parsed JSON) that ``fail_rows`` makes fail."""
        config = self.current(now)
        if config is None or not config.fail_rows or not config.applies(op, account):
            return frozenset()
        return frozenset(i for i, row in enumerate(rows) if config.fail_rows in json.dumps(row))

    def plan(self, op: str, now: float, text: str = "", account: str | None = None) -> Plan:
        config = self.current(now)
        if config is None or not config.applies(op, account):
            return Plan()
        if config.match and config.match not in text:
            return Plan()
        with self._lock:
            rng = self._rng
            latency = (config.latency_ms + rng.random() * config.latency_jitter_ms) / 1000.0
            if config.drop_rate and rng.random() < config.drop_rate:
                return Plan(latency, "drop_after_commit" if config.drop_after_commit else "drop", 0, "drop")
            if config.force_429 > 0 or (config.force_429_rate and rng.random() < config.force_429_rate):
                config.force_429 = max(0, config.force_429 - 1)
                return Plan(latency, "force_429", 429, "force_429")
            if config.error_rate and rng.random() < config.error_rate:
                action = "error_after_commit" if config.error_after_commit else "error"
                return Plan(latency, action, rng.choice(config.error_statuses), "error")
            if config.reject_rate and rng.random() < config.reject_rate:
                return Plan(latency, "reject", 400, "reject")
            if config.malformed_rate and rng.random() < config.malformed_rate:
                return Plan(latency, "malformed", 0, f"malformed_{config.malformed_kind}")
            return Plan(latency)


HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
            b"</center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n")


def malformed_body(kind: str, op: str) -> tuple[int, str, bytes]:
    """(status, content type, body) for a malformed answer of ``kind``; status 0 = the op's usual one."""
    if kind == "malformed_html":
        return 502, "text/html", HTML_502
    if kind == "malformed_truncated":
        return 0, "application/vnd.api+json", b'{"data":{"type":"profile","id":"01J9Z8Q6T4M2XW3B5C7D9E1F0G","attri'
    return 200, "application/vnd.api+json", f'{{"result": "ok", "operation": "{op}", "items": []}}'.encode()
