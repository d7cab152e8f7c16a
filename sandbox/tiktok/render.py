"""Render an order record into the exact JSON object the 202309 API serves.

Everything time-dependent is derived from the record's history, so a
transition only has to append a step and re-render: ``paid_time`` appears on
leaving UNPAID, ``rts_time`` / ``collection_time`` / ``delivery_time`` when
the order reaches those stages, the cancel fields once it is CANCELLED, and
``recipient_address`` only after the UNPAID / ON_HOLD privacy window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lifecycle import (AWAITING_COLLECTION, CANCELLED, COMPLETED, DELIVERED, HOLD_SECONDS, IN_TRANSIT, ON_HOLD,
                        PARTIALLY_SHIPPING, SHIPPED, UNPAID, UNPAID_TIMEOUT, first_at, paid_at)
from .people import recipient_address

if TYPE_CHECKING:  # pragma: no cover
    from .orders import OrderRecord

DAY = 86400
#: Line ``display_status`` for an order status (ON_HOLD lines already read AWAITING_SHIPMENT).
LINE_STATUS = {UNPAID: "UNPAID", ON_HOLD: "AWAITING_SHIPMENT", PARTIALLY_SHIPPING: "AWAITING_SHIPMENT"}
PACKAGE_STATUS = {ON_HOLD: "TO_FULFILL", "AWAITING_SHIPMENT": "TO_FULFILL", PARTIALLY_SHIPPING: "TO_FULFILL",
                  AWAITING_COLLECTION: "PROCESSING", IN_TRANSIT: "FULFILLING", DELIVERED: "COMPLETED",
                  COMPLETED: "COMPLETED", CANCELLED: "CANCELLED"}


def render(record: "OrderRecord") -> dict:
    plan, history = record.plan, record.history
    status = history[-1].status
    paid = paid_at(history)
    shipped = first_at(history, *SHIPPED)
    collected = first_at(history, IN_TRANSIT, DELIVERED, COMPLETED)
    delivered = first_at(history, DELIVERED, COMPLETED)
    cancel = record.cancel if status == CANCELLED else None
    order: dict = {"id": plan.id, "status": status, "create_time": plan.create_time, "update_time": history[-1].at}
    if paid is not None:
        order.update(paid_time=paid, rts_sla_time=paid + HOLD_SECONDS + 2 * DAY,
                     tts_sla_time=paid + HOLD_SECONDS + 3 * DAY, shipping_due_time=paid + HOLD_SECONDS + 2 * DAY,
                     collection_due_time=paid + HOLD_SECONDS + 3 * DAY, delivery_due_time=paid + 10 * DAY)
    else:
        order["cancel_order_sla_time"] = plan.create_time + UNPAID_TIMEOUT
    if shipped is not None:
        order["rts_time"] = shipped
    if collected is not None:
        order["collection_time"] = collected
    if delivered is not None:
        order["delivery_time"] = delivered
    if cancel is not None:
        order.update(cancel_time=history[-1].at, cancel_reason=cancel.reason,
                     cancellation_initiator=cancel.initiator)
    order["user_id"] = plan.buyer.user_id
    if plan.buyer.email:
        order["buyer_email"] = plan.buyer.email
    order.update(buyer_message=plan.buyer_message, seller_note="", payment=dict(plan.payment),
                 payment_method_name=plan.payment_method)
    if status not in (UNPAID, ON_HOLD):
        order["recipient_address"] = recipient_address(plan.region, plan.buyer, plan.masked)
    order["line_items"] = [_line(plan, u, status, paid, shipped, cancel) for u in plan.units]
    order["packages"] = [{"id": p} for p in plan.package_ids] if paid is not None else []
    if shipped is not None and status != CANCELLED:
        order.update(tracking_number=plan.tracking[0], shipping_provider=plan.provider[1],
                     shipping_provider_id=plan.provider[0])
    order.update(
        shipping_type=plan.shipping_type, delivery_option_id="7091146663229654785",
        delivery_option_name="Standard shipping", delivery_type="HOME_DELIVERY",
        fulfillment_type="FULFILLMENT_BY_SELLER", warehouse_id="7068517275539719941", order_type="",
        commerce_platform="TIKTOK_SHOP", handling_duration={"days": "3", "type": "BUSINESS_DAY"},
        is_on_hold_order=status in (UNPAID, ON_HOLD), is_cod=False, is_sample_order=False,
        is_replacement_order=False, is_exchange_order=False, has_updated_recipient_address=False,
        is_buyer_request_cancel=bool(cancel and cancel.by_buyer_request),
    )
    return order


def _line(plan, unit, status: str, paid, shipped, cancel) -> dict:
    sku = unit.sku
    line = {
        "id": unit.id, "product_id": sku.product_id, "product_name": sku.product_name, "sku_id": sku.sku_id,
        "sku_name": sku.sku_name, "seller_sku": sku.seller_sku, "sku_image": sku.sku_image, "sku_type": "NORMAL",
        **unit.prices, "currency": plan.currency, "is_gift": False,
    }
    line_status = status
    if status == PARTIALLY_SHIPPING and unit.package == 0:
        line_status = IN_TRANSIT          # the first package has left, the second has not
    line["display_status"] = LINE_STATUS.get(line_status, line_status)
    if paid is not None:
        line["package_id"] = plan.package_ids[unit.package]
        line["package_status"] = PACKAGE_STATUS.get(line_status, "TO_FULFILL")
    if shipped is not None and status != CANCELLED and line["display_status"] != "AWAITING_SHIPMENT":
        line.update(tracking_number=plan.tracking[unit.package], shipping_provider_id=plan.provider[0],
                    shipping_provider_name=plan.provider[1], rts_time=shipped)
    if cancel is not None:
        line.update(cancel_user=cancel.initiator, cancel_reason=cancel.reason)
    return line
