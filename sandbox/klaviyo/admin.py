"""The sandbox's own controls and introspection, under ``/_sandbox/`` (never under ``/api``, no auth).

* ``GET /_sandbox/state``: everything stored (profiles, events, metrics, lists, segments, jobs,
  catalog) plus counters.
* ``GET /_sandbox/summary``: counts only, cheap enough to poll.
* ``GET /_sandbox/requests?op=<operationId>&since=<epoch>``: the arrival log (op, t, status).
* ``POST /_sandbox/reset`` (``{"reset_config": true}`` also clears faults and limit overrides).
* ``GET|POST|DELETE /_sandbox/faults``; ``GET|POST /_sandbox/limits``.
* ``POST /_sandbox/keys`` with ``{"revoke": [...], "restore": [...]}``: keys answered 401 meanwhile.
* ``GET /_sandbox/accounts``: each account's id, key count and summary.

``state``, ``summary`` and ``requests`` take ``?account=<id or key>`` (default: the
default account), and ``reset`` ``{"account": ...}`` to forget one account only;
an unknown account is a 404.

The same functions back ``KlaviyoStandIn.state()`` / ``summary()`` / ``reset()``
and ``KlaviyoStandIn.account(...)``.
"""

from __future__ import annotations

import time
from collections import Counter

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import NotFound

from . import catalog_jobs, catalog_resources, jobs, segments
from .accounts import Account
from .consent import can_receive_email, can_receive_sms
from .limits import as_limit
from .model import ImportJob
from .times import iso
from .web import Sandbox, sandbox

blueprint = Blueprint("sandbox_admin", __name__, url_prefix="/_sandbox")


def reset(box: Sandbox, reset_config: bool = False, account: Account | None = None) -> None:
    """Forget all data and counters (of every account, or of ``account``); keep faults and
    limit overrides unless ``reset_config``."""
    for each in [account] if account is not None else box.accounts:
        each.clear()
    box.limiter.reset(account.id if account is not None else None)
    if reset_config:
        box.faults.clear()
        box.limiter.set_overrides({})


def set_limits(box: Sandbox, limits: dict, replace: bool = False) -> dict:
    """Override limits per operationId (``None`` removes an override); returns the overrides in force."""
    merged = {} if replace else dict(box.limiter.overrides)
    for op, value in limits.items():
        if value is None:
            merged.pop(op, None)
        else:
            merged[op] = as_limit(value)
    box.limiter.set_overrides(merged)
    return limits_info(box)


def limits_info(box: Sandbox) -> dict:
    return {"rate_limit_scale": box.limiter.scale,
            "overrides": {op: [l.burst, l.steady, l.daily] for op, l in sorted(box.limiter.overrides.items())}}


def summary(box: Sandbox, account: Account | None = None) -> dict:
    account = account or box.accounts.default
    store, catalog = account.store, account.catalog
    with store.lock:
        jobs.settle(store, time.time())
        catalog_jobs.settle(catalog, time.time())
        by_metric = Counter(store.metrics[e.metric_id].name for e in store.events.values())
        counts = {"account": account.id, "profiles": len(store.profiles), "events": len(store.events),
                  "events_by_metric": dict(by_metric), "metrics": len(store.metrics), "lists": len(store.lists),
                  "segments": len(store.segments), "jobs": len(store.jobs),
                  "catalog": {"items": len(catalog.items), "variants": len(catalog.variants),
                              "categories": len(catalog.categories), "jobs": len(catalog.jobs),
                              "jobs_in_progress": len(catalog.pending), "restocks": len(catalog.restocks),
                              "back_in_stock_waiting": sum(s.released is None for s in catalog.subscriptions)}}
    faults = box.faults.current()
    return {**counts, **account.counters.snapshot(), "faults": faults.public() if faults else None}


def state(box: Sandbox, account: Account | None = None) -> dict:
    account = account or box.accounts.default
    store, now = account.store, time.time()
    with store.lock:
        jobs.settle(store, now)
        catalog_jobs.settle(account.catalog, now)
        memberships: dict[str, list] = {}
        for klist in store.lists.values():
            for pid in klist.members:
                memberships.setdefault(pid, []).append(klist.id)
        return {
            "profiles": [_profile(p, memberships.get(p.id, [])) for p in store.profiles.values()],
            "events": [_event(e, store) for e in sorted(store.events.values(), key=lambda e: e.seq)],
            "metrics": [{"id": m.id, "name": m.name, "created": iso(m.created)} for m in store.metrics.values()],
            "lists": [{"id": k.id, "name": k.name, "opt_in_process": k.opt_in_process, "created": iso(k.created),
                       "members": list(k.members)} for k in store.lists.values()],
            "segments": [{"id": s.id, "name": s.name, "definition": s.definition,
                          "members": [p.id for p in segments.members(store, s, now)],
                          "not_evaluated": segments.unsupported(s.definition)} for s in store.segments.values()],
            "jobs": [_job(j, now) for j in store.jobs.values()],
            "catalog": _catalog(account.catalog, now),
            "account": {"id": account.id, **account.resource_attributes()},
            "counters": account.counters.snapshot(),
        }


def _catalog(catalog, now: float) -> dict:
    """The catalog as the API renders it (without links), plus its jobs, restocks and subscriptions."""
    def plain(resource):
        return {"id": resource["id"], **resource["attributes"]}

    return {
        "items": [plain(catalog_resources.item(i, "")) | {"categories": list(i.category_ids),
                                                          "variants": list(catalog.item_variants.get(i.id, {}))}
                  for i in catalog.items.values()],
        "variants": [plain(catalog_resources.variant(v, "")) | {"item": v.item_id} for v in catalog.variants.values()],
        "categories": [plain(catalog_resources.category(c, "")) | {"items": list(catalog.category_items.get(c.id, {}))}
                       for c in catalog.categories.values()],
        "jobs": [plain(catalog_resources.job(j, "", now)) | {"type": j.job_type.name} for j in catalog.jobs.values()],
        "restocks": [{"variant": r.variant_id, "item": r.item_id, "before": r.before, "after": r.after,
                      "at": iso(r.at), "released_profiles": list(r.released_profiles)} for r in catalog.restocks],
        "back_in_stock_subscriptions": [{"profile": s.profile_id, "variant": s.variant_id, "channels": s.channels,
                                         "created": iso(s.created), "released": iso(s.released)}
                                        for s in catalog.subscriptions],
    }


def _profile(p, lists: list) -> dict:
    return {"id": p.id, **p.fields, "location": dict(p.location), "properties": dict(p.properties),
            "created": iso(p.created), "updated": iso(p.updated), "last_event_date": iso(p.last_event_date),
            "email_marketing": {"consent": p.email_marketing.status, "timestamp": iso(p.email_marketing.timestamp),
                                "can_receive": can_receive_email(p)},
            "sms_marketing": {"consent": p.sms_marketing.status, "timestamp": iso(p.sms_marketing.timestamp),
                              "can_receive": can_receive_sms(p)},
            "suppressions": [s["reason"] for s in p.suppressions],
            "list_suppressions": [s["list_id"] for s in p.list_suppressions], "lists": lists}


def _event(e, store) -> dict:
    return {"id": e.id, "metric_id": e.metric_id, "metric": store.metrics[e.metric_id].name,
            "profile_id": e.profile_id, "unique_id": e.unique_id, "value": e.value,
            "value_currency": e.value_currency, "time": iso(e.time), "timestamp": int(e.time),
            "properties": e.properties, "backfill": e.backfill, "received": e.received}


def _job(j, now: float) -> dict:
    if isinstance(j, ImportJob):
        return {"id": j.id, "type": "profile-bulk-import-job", "status": jobs.status(j, now),
                "total_count": len(j.rows), "completed_count": j.completed_count, "failed_count": j.failed_count,
                "list_ids": j.list_ids, "profile_ids": j.profile_ids,
                "errors": [{"pointer": e.pointer, "detail": e.detail} for e in j.errors]}
    return {"id": j.id, "type": j.kind, "status": "complete", "total_count": j.total_count,
            "completed_count": j.completed_count, "skipped_count": j.skipped_count}


def _account(id_or_key: str | None) -> Account | None:
    """The account an admin request names (None: the default one); 404 for an unknown one."""
    try:
        return sandbox().accounts.find(id_or_key)
    except KeyError:
        raise NotFound("no such account") from None


@blueprint.get("/state")
def get_state():
    return jsonify(state(sandbox(), _account(request.args.get("account"))))


@blueprint.get("/summary")
def get_summary():
    return jsonify(summary(sandbox(), _account(request.args.get("account"))))


@blueprint.get("/accounts")
def get_accounts():
    box = sandbox()
    return jsonify({"accounts": [{"id": a.id, "keys": len(a.api_keys), "default": a is box.accounts.default,
                                  "summary": summary(box, a)} for a in box.accounts]})


@blueprint.get("/requests")
def get_requests():
    since = request.args.get("since", type=float)
    entries = _account(request.args.get("account")).counters.requests_for(request.args.get("op"), since)
    return jsonify({"count": len(entries), "requests": entries})


@blueprint.post("/reset")
def post_reset():
    payload = request.get_json(silent=True) or {}
    account = _account(payload["account"]) if payload.get("account") else None
    reset(sandbox(), bool(payload.get("reset_config")), account)
    return jsonify(summary(sandbox(), account))


@blueprint.route("/faults", methods=["GET", "POST", "DELETE"])
def faults():
    box = sandbox()
    if request.method == "POST":
        try:
            box.faults.configure(**(request.get_json(silent=True) or {}))
        except (TypeError, ValueError) as error:
            return jsonify({"error": str(error)}), 400
    elif request.method == "DELETE":
        box.faults.clear()
    current = box.faults.current()
    return jsonify({"faults": current.public() if current else None})


@blueprint.route("/keys", methods=["GET", "POST"])
def keys():
    """``{"revoke": [key...], "restore": [key...]}``: revoked keys are answered 401 until restored."""
    box = sandbox()
    if request.method == "POST":
        payload = request.get_json(silent=True) or {}
        box.revoked.update(payload.get("revoke") or [])
        box.revoked.difference_update(payload.get("restore") or [])
    return jsonify({"revoked": len(box.revoked)})


@blueprint.route("/limits", methods=["GET", "POST"])
def limits():
    box = sandbox()
    if request.method == "POST":
        payload = request.get_json(silent=True) or {}
        try:
            if "rate_limit_scale" in payload:
                box.limiter.scale = float(payload["rate_limit_scale"])
            set_limits(box, payload.get("limits") or {}, replace=bool(payload.get("replace")))
        except (TypeError, ValueError, KeyError) as error:
            return jsonify({"error": str(error)}), 400
    return jsonify(limits_info(box))
