"""Request and webhook signing against TikTok's published vectors."""

import pytest

from tiktok.signing import encode_body, sign, string_to_sign, webhook_signature
from tiktok.webhooks import WebhookSignatureError, verify_webhook

DOC_TOKEN = "6AsPQsUMvH3RkchNUPPh22NROHkE0D8pmq/N5M1kHYcZmtRyv9aVrNv65W7Q6tFA+7D1ud64MPNz5OaT"


@pytest.mark.parametrize("secret, path, query, body, expected", [
    # 1. the official doc example (sign-your-api-request)
    ("e59af819cc", "/authorization/202309/shops", {"app_key": "29a39d", "timestamp": "1623812664"}, None,
     "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8"),
    # 2. EcomPHP's ClientTest::testPrepareSignature
    ("app_secret", "/test-api", {"foo": "bar"}, None,
     "d3cb7fe11ecae942802ceeca67e7cf10120cc12f1517d45fbc1c8cfe5413c80f"),
    # 3. SKIT .NET GET webhooks
    ("e59af819cc", "/event/202309/webhooks",
     {"app_key": "68xu9ks5p4i8", "shop_cipher": "ROW_xkMbgAAAeVAQra0eZWebFQq5aIK", "timestamp": "1696909648"}, None,
     "ed58e1b5e59865c22a7b828c1cab65007441f43cc91a6cb2f2cdc638e0995a37"),
    # 4. SKIT .NET PUT webhooks, with a body
    ("e59af819cc", "/event/202309/webhooks",
     {"app_key": "68xu9ks5p4i8", "shop_cipher": "ROW_xkMbgAAAeVAQra0eZWebFQq5aIK", "timestamp": "1696909648"},
     b'{"event_type":"PACKAGE_UPDATE","address":"https://partner.tiktokshop.com"}',
     "701dd6deb2389fe4c469b89bd37fc56f96a6da6afeb4d01c9077a65169752fa7"),
    # the doc's body-bearing base string, reproduced exactly as printed (note the extra "t")
    ("e59af819cc", "/event/202309/webhooks",
     {"app_key": "68xu9ks5p4i8", "shop_cipher": "ROW_xkMbgAAAeVAQra0eZWebFQq5aIKt", "timestamp": "1696909648"},
     b'{"address":"https://partner.tiktokshop.com","event_type":"PACKAGE_UPDATE"}',
     "a75b9c8cd57140cab6dc95bf31c37bd6ffface74210768b6517c0ff81659b0ba"),
    # order search with a page token containing + and /
    ("e59af819cc", "/order/202309/orders/search",
     {"app_key": "29a39d", "timestamp": "1623812664", "shop_cipher": "GCP_XF90igAAAABh00qsWgtvOiGFNqyubMt3",
      "page_size": "100", "page_token": DOC_TOKEN}, b'{"order_status":"UNPAID"}',
     "6b55918cfea8c0a45c2e533b88a5d8c2c379f23ded442d71d9be1fa86d28f73e"),
])
def test_published_signing_vectors(secret, path, query, body, expected):
    assert sign(secret, path, query, body) == expected


def test_sign_and_access_token_params_are_not_signed():
    base = {"app_key": "29a39d", "timestamp": "1623812664"}
    assert sign("e59af819cc", "/authorization/202309/shops", base | {"sign": "x", "access_token": "y"}) == \
        sign("e59af819cc", "/authorization/202309/shops", base)


def test_the_doc_intermediate_base_string():
    assert string_to_sign("/authorization/202309/shops", {"timestamp": 1623812664, "app_key": "29a39d"}) == \
        "/authorization/202309/shopsapp_key29a39dtimestamp1623812664"


def test_multipart_bodies_are_not_signed_and_empty_filters_send_no_body():
    q = {"app_key": "a", "timestamp": "1"}
    assert sign("s", "/p", q, b"--boundary", "multipart/form-data; boundary=x") == sign("s", "/p", q)
    assert encode_body({}) is None
    assert encode_body({"b": 1, "a": "é"}) == '{"b":1,"a":"é"}'.encode()


OFFICIAL_WEBHOOK = (b'{"type":1,"tts_notification_id":"7380066284010030890","shop_id":"7495540735365777507",'
                    b'"timestamp":1718305585,"data":{"is_on_hold_order":true,"order_id":"576653688135258178",'
                    b'"order_status":"UNPAID","update_time":1718305585}}')


def test_official_webhook_vector_verifies():
    assert webhook_signature("abcdef", "123", OFFICIAL_WEBHOOK) == \
        "5dec0f11ec2f6783b8deee53c9ffbf8d024302f7c7e7fa55a35d17629031ac05"
    verify_webhook("abcdef", "123", "5dec0f11ec2f6783b8deee53c9ffbf8d024302f7c7e7fa55a35d17629031ac05", OFFICIAL_WEBHOOK)


def test_ecomphp_webhook_vector_verifies():
    body = (b'{"type":1,"shop_id":"7494726673780148744","timestamp":1664095733,"data":{"order_id":"576684019603311365",'
            b'"order_status":"AWAITING_SHIPMENT","update_time":1664095610}}')
    assert webhook_signature("fake_app_key", "fake_app_secret", body) == \
        "21109834de72ec53c9959716d8514ae388ce1f123e5ffdcafc46713fcdf62b27"


@pytest.mark.parametrize("header, body", [
    ("5dec0f11ec2f6783b8deee53c9ffbf8d024302f7c7e7fa55a35d17629031ac05", OFFICIAL_WEBHOOK.replace(b"UNPAID", b"ON_HOLD")),
    ("0" * 64, OFFICIAL_WEBHOOK),
    (None, OFFICIAL_WEBHOOK),
    ("", OFFICIAL_WEBHOOK),
])
def test_tampered_or_unsigned_webhooks_are_rejected(header, body):
    with pytest.raises(WebhookSignatureError):
        verify_webhook("abcdef", "123", header, body)


def test_a_notification_delivered_twice_is_processed_once(redis_client):
    from tiktok.webhooks import NotificationDeduplicator, parse_order_status_notification

    dedupe = NotificationDeduplicator(redis_client, namespace="test:webhooks:dedupe")
    redis_client.delete("test:webhooks:dedupe:7380066284010030890")
    note = parse_order_status_notification(OFFICIAL_WEBHOOK)
    assert (note.notification_id, note.order_id, note.order_status) == ("7380066284010030890", "576653688135258178",
                                                                        "UNPAID")
    assert dedupe.first_time(note.notification_id) is True
    assert dedupe.first_time(note.notification_id) is False
    assert 0 < redis_client.ttl("test:webhooks:dedupe:7380066284010030890") <= 2 * 24 * 3600
