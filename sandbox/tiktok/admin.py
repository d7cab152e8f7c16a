"""Sandbox controls under ``/_sandbox/``: no TikTok auth, never under an API path.

Each route calls the same ``TikTokStandIn`` (or shop) method the Python API exposes,
so a test in another process (``make demo``, a benchmark) can drive the stand-in
exactly as an in-process test does. Answers are plain JSON, not envelopes: 404 for
an unknown id, 400 for a bad value. ``shop`` parameters take a cipher or a shop id
(default: the first shop); ``seller`` a seller key (default: the first shop's).
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from .admin_commerce import commerce_routes
from .webhooks import EVENT_NAMES


def body() -> dict:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def answer(fn, *args, **kwargs):
    """``fn(...)`` as JSON; KeyError / StopIteration → 404, ValueError / TypeError → 400."""
    try:
        return jsonify(fn(*args, **kwargs))
    except (KeyError, StopIteration) as exc:
        return jsonify(error=f"not found: {exc}"), 404
    except (ValueError, TypeError) as exc:
        return jsonify(error=str(exc)), 400


def admin_blueprint(standin) -> Blueprint:
    bp = Blueprint("sandbox_admin", __name__, url_prefix="/_sandbox")

    @bp.post("/advance")
    def advance():
        try:
            seconds = float(body().get("seconds", 0))
        except (TypeError, ValueError):
            return jsonify(error="seconds must be a number"), 400
        moved = standin.advance(seconds)
        return jsonify(moved=len(moved), order_ids=moved)

    @bp.post("/orders/<order_id>/status")
    def set_status(order_id):
        data = body()
        try:
            order = standin.set_status(order_id, data.get("status", ""), cancel_reason=data.get("cancel_reason"),
                                       cancellation_initiator=data.get("cancellation_initiator", "SELLER"))
        except KeyError:
            return jsonify(error=f"no order {order_id}"), 404
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(order=order)

    @bp.get("/orders")
    def orders():
        wanted = {i for i in request.args.get("ids", "").split(",") if i}
        try:
            shop = standin.shop(request.args.get("shop"))
        except KeyError:
            return jsonify(error="no such shop"), 404
        found = shop.orders()
        if wanted:
            found = [o for o in found if o.get("id") in wanted]
        return jsonify(orders=found, malformed_ids=sorted(shop.malformed_ids()))

    # -- shops, sellers, authorization -------------------------------------------------------------------
    @bp.get("/shops")
    def shops():
        return jsonify(shops=[s.info() | {"seller": s.seller_key} for s in standin.shops])

    @bp.get("/sellers")
    def sellers():
        return jsonify(sellers=[s.summary() for s in standin.sellers.values()])

    @bp.post("/auth_codes")
    def auth_code():
        return answer(lambda: {"code": standin.issue_auth_code(body().get("seller"))})

    @bp.post("/tokens/expire")
    def expire():
        seller = body().get("seller")
        return answer(lambda: (standin.expire_access_token(seller), {"expired": True, "access_token":
                                                                     standin.seller(seller).tokens.current.access_token})[1])

    @bp.post("/sellers/<key>/refresh_token/revoke")
    def revoke_refresh(key):
        return answer(lambda: (standin.revoke_refresh_token(key), {"revoked": True})[1])

    @bp.post("/sellers/<key>/refresh_token/expire")
    def expire_refresh(key):
        return answer(lambda: (standin.expire_refresh_token(key), {"expired": True})[1])

    @bp.post("/sellers/<key>/deauthorize")
    def deauthorize(key):
        return answer(lambda: {"notification_ids": standin.deauthorize(key)})

    @bp.post("/sellers/<key>/expiry_warning")
    def expiry_warning(key):
        return answer(lambda: {"notification_ids": standin.warn_authorization_expiry(key, int(body().get("days", 30)))})

    # -- webhooks and churn ------------------------------------------------------------------------------
    @bp.post("/webhooks/url")
    def webhook_url():
        data = body()
        events = data.get("events") or list(EVENT_NAMES)
        return answer(lambda: (standin.set_webhook_url(data.get("url"), data.get("shop"), events), {"ok": True})[1])

    @bp.route("/webhooks/faults", methods=["GET", "POST"])
    def webhook_faults():
        return answer(lambda: standin.set_webhook_faults(**body()))

    @bp.post("/webhooks/flush")
    def webhook_flush():
        return jsonify(released=standin.webhooks.flush_held())

    @bp.get("/webhooks/log")
    def webhook_log():
        return jsonify(log=standin.webhook_log(), pending=standin.webhooks.pending())

    @bp.route("/churn", methods=["GET", "POST", "DELETE"])
    def churn():
        if request.method == "POST":
            data = body()
            return answer(lambda: standin.start_churn(float(data.get("changes_per_second", 0)),
                                                      float(data.get("duration", 0)), data.get("shop")).stats.snapshot())
        if request.method == "DELETE":
            return jsonify(standin.stop_churn())
        return jsonify(standin.churn_stats())

    # -- faults, counters, reset, settings ---------------------------------------------------------------
    @bp.route("/faults", methods=["GET", "POST", "DELETE"])
    def faults():
        if request.method == "DELETE":
            return jsonify(standin.clear_faults())
        if request.method == "POST":
            try:
                return jsonify(standin.faults.configure(**body()))
            except TypeError as exc:
                return jsonify(error=str(exc)), 400
        return jsonify(standin.faults.snapshot())

    @bp.get("/counters")
    def counters():
        return jsonify(standin.counters())

    @bp.post("/reset")
    def reset():
        standin.reset()
        return jsonify(reset=True, access_token=standin.access_token, refresh_token=standin.refresh_token)

    @bp.get("/settings")
    def settings():
        return answer(standin.client_settings, request.args.get("shop"))

    commerce_routes(bp, standin)
    return bp
