"""Sandbox controls under ``/_sandbox/``: no TikTok auth, never under an API path.

Each route calls the same ``TikTokStandIn`` method the Python API exposes, so
a test in another process (``make demo``, a benchmark) can drive the stand-in
exactly as an in-process test does. Answers are plain JSON, not envelopes.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request


def admin_blueprint(standin) -> Blueprint:
    bp = Blueprint("sandbox_admin", __name__, url_prefix="/_sandbox")

    def body() -> dict:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

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

    @bp.post("/tokens/expire")
    def expire():
        standin.expire_access_token()
        return jsonify(expired=True, access_token=standin.access_token)

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

    @bp.get("/orders")
    def orders():
        wanted = {i for i in request.args.get("ids", "").split(",") if i}
        found = standin.orders()
        if wanted:
            found = [o for o in found if o.get("id") in wanted]
        return jsonify(orders=found, malformed_ids=sorted(standin.malformed_ids()))

    @bp.post("/reset")
    def reset():
        standin.reset()
        return jsonify(reset=True, access_token=standin.access_token, refresh_token=standin.refresh_token)

    @bp.get("/settings")
    def settings():
        return jsonify(standin.client_settings())

    return bp
