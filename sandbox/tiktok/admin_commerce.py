"""``/_sandbox/`` controls for returns, cancellations, products and stock (see ``admin``)."""

from __future__ import annotations

from flask import request


def commerce_routes(bp, standin) -> None:
    from .admin import answer, body

    def shop():
        return standin.shop(request.args.get("shop"))

    @bp.get("/returns")
    def returns():
        return answer(lambda: {"returns": shop().returns()})

    @bp.get("/cancellations")
    def cancellations():
        return answer(lambda: {"cancellations": shop().cancellations()})

    @bp.post("/orders/<order_id>/returns")
    def create_return(order_id):
        data = body()
        return answer(lambda: standin.shop_of_order(order_id).create_return(
            order_id, data.get("return_type", "RETURN_AND_REFUND"), data.get("sku_ids"), data.get("reason")))

    @bp.post("/returns/<return_id>/status")
    def return_status(return_id):
        data = body()
        return answer(lambda: standin.shop_of_return(return_id).set_return_status(
            return_id, data.get("status", ""), data.get("partial_refund_share")))

    @bp.post("/returns/<return_id>/complete")
    def complete_refund(return_id):
        return answer(lambda: standin.shop_of_return(return_id).complete_refund(return_id))

    @bp.post("/orders/<order_id>/cancellations")
    def request_cancellation(order_id):
        return answer(lambda: standin.shop_of_order(order_id).request_cancellation(order_id))

    @bp.post("/cancellations/<cancel_id>/status")
    def cancellation_status(cancel_id):
        status = body().get("status", "")
        return answer(lambda: standin.shop_of_cancellation(cancel_id).set_cancellation_status(cancel_id, status))

    @bp.get("/products")
    def products():
        return answer(lambda: {"products": shop().products(), "warehouses": list(shop().catalog.warehouses)})

    @bp.post("/products")
    def add_products():
        data = body()
        return answer(lambda: {"products": shop().add_products(int(data.get("count", 1)), int(data.get("variants", 2)),
                                                               data.get("status", "ACTIVATE"))})

    @bp.delete("/skus/<sku_id>")
    def remove_sku(sku_id):
        return answer(lambda: standin.shop_of_sku(sku_id).remove_sku(sku_id))

    @bp.post("/skus/<sku_id>/price")
    def set_price(sku_id):
        price = body().get("price", "")
        return answer(lambda: standin.shop_of_sku(sku_id).set_price(sku_id, price))

    @bp.post("/products/<product_id>/status")
    def product_status(product_id):
        status = body().get("status", "")
        return answer(lambda: standin.shop_of_product(product_id).set_product_status(product_id, status))

    @bp.post("/skus/<sku_id>/inventory")
    def set_inventory(sku_id):
        data = body()
        return answer(lambda: standin.shop_of_sku(sku_id).set_inventory(sku_id, data.get("quantity"),
                                                                         data.get("warehouse_id")))
