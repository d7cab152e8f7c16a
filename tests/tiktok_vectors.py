"""TikTok Shop's published signing vectors, shared by the client's tests and the stand-in's.

The client (``tiktok.signing``) and the stand-in (``sandbox.tiktok.signing``) sign with
separate implementations on purpose, so a mistake in one is not mirrored in the other;
both are held to these same outside vectors.
"""

import pytest

DOC_TOKEN = "6AsPQsUMvH3RkchNUPPh22NROHkE0D8pmq/N5M1kHYcZmtRyv9aVrNv65W7Q6tFA+7D1ud64MPNz5OaT"
_WEBHOOK_QUERY = {"app_key": "68xu9ks5p4i8", "shop_cipher": "ROW_xkMbgAAAeVAQra0eZWebFQq5aIK", "timestamp": "1696909648"}

#: (app secret, path, query, body, expected sign)
REQUEST_VECTORS = [
    pytest.param("e59af819cc", "/authorization/202309/shops", {"app_key": "29a39d", "timestamp": "1623812664"}, None,
                 "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8",
                 id="doc-shops"),  # the official doc example (sign-your-api-request)
    pytest.param("app_secret", "/test-api", {"foo": "bar"}, None,
                 "d3cb7fe11ecae942802ceeca67e7cf10120cc12f1517d45fbc1c8cfe5413c80f",
                 id="ecomphp"),  # EcomPHP's ClientTest::testPrepareSignature
    pytest.param("e59af819cc", "/event/202309/webhooks", _WEBHOOK_QUERY, None,
                 "ed58e1b5e59865c22a7b828c1cab65007441f43cc91a6cb2f2cdc638e0995a37",
                 id="dotnet-get"),  # SKIT .NET GET webhooks
    pytest.param("e59af819cc", "/event/202309/webhooks", _WEBHOOK_QUERY,
                 b'{"event_type":"PACKAGE_UPDATE","address":"https://partner.tiktokshop.com"}',
                 "701dd6deb2389fe4c469b89bd37fc56f96a6da6afeb4d01c9077a65169752fa7",
                 id="dotnet-put"),  # SKIT .NET PUT webhooks, with a body
    # The doc's body-bearing base string, reproduced exactly as printed (note the extra "t" in the cipher).
    pytest.param("e59af819cc", "/event/202309/webhooks",
                 {**_WEBHOOK_QUERY, "shop_cipher": "ROW_xkMbgAAAeVAQra0eZWebFQq5aIKt"},
                 b'{"address":"https://partner.tiktokshop.com","event_type":"PACKAGE_UPDATE"}',
                 "a75b9c8cd57140cab6dc95bf31c37bd6ffface74210768b6517c0ff81659b0ba",
                 id="doc-printed-base"),
    # Order search with a page token containing + and /.
    pytest.param("e59af819cc", "/order/202309/orders/search",
                 {"app_key": "29a39d", "timestamp": "1623812664", "shop_cipher": "GCP_XF90igAAAABh00qsWgtvOiGFNqyubMt3",
                  "page_size": "100", "page_token": DOC_TOKEN}, b'{"order_status":"UNPAID"}',
                 "6b55918cfea8c0a45c2e533b88a5d8c2c379f23ded442d71d9be1fa86d28f73e",
                 id="order-search"),
]

OFFICIAL_WEBHOOK = (b'{"type":1,"tts_notification_id":"7380066284010030890","shop_id":"7495540735365777507",'
                    b'"timestamp":1718305585,"data":{"is_on_hold_order":true,"order_id":"576653688135258178",'
                    b'"order_status":"UNPAID","update_time":1718305585}}')
OFFICIAL_WEBHOOK_SIGNATURE = "5dec0f11ec2f6783b8deee53c9ffbf8d024302f7c7e7fa55a35d17629031ac05"

#: (app key, app secret, body, expected Authorization header)
WEBHOOK_VECTORS = [
    pytest.param("abcdef", "123", OFFICIAL_WEBHOOK, OFFICIAL_WEBHOOK_SIGNATURE, id="official"),
    pytest.param("fake_app_key", "fake_app_secret",
                 b'{"type":1,"shop_id":"7494726673780148744","timestamp":1664095733,"data":{"order_id":"576684019603311365",'
                 b'"order_status":"AWAITING_SHIPMENT","update_time":1664095610}}',
                 "21109834de72ec53c9959716d8514ae388ce1f123e5ffdcafc46713fcdf62b27",
                 id="ecomphp"),
]
