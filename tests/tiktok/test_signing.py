"""Request and webhook signing against TikTok's published vectors."""

import pytest

from tiktok.signing import encode_body, sign, string_to_sign, webhook_signature
from tiktok.webhooks import WebhookSignatureError, verify_webhook

from tests.tiktok_vectors import OFFICIAL_WEBHOOK, OFFICIAL_WEBHOOK_SIGNATURE, REQUEST_VECTORS, WEBHOOK_VECTORS


@pytest.mark.parametrize("secret, path, query, body, expected", REQUEST_VECTORS)
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


@pytest.mark.parametrize("app_key, secret, body, expected", WEBHOOK_VECTORS)
def test_published_webhook_vectors_verify(app_key, secret, body, expected):
    assert webhook_signature(app_key, secret, body) == expected
    verify_webhook(app_key, secret, expected, body)


@pytest.mark.parametrize("header, body", [
    (OFFICIAL_WEBHOOK_SIGNATURE, OFFICIAL_WEBHOOK.replace(b"UNPAID", b"ON_HOLD")),
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


def test_any_notification_is_read_with_its_subject_and_ids_as_text():
    from tiktok import parse_notification

    ret = parse_notification(b'{"type":12,"tts_notification_id":"9","shop_id":7495,"timestamp":1700000000,'
                             b'"data":{"order_id":"576","return_id":4035,"return_status":"RETURN_OR_REFUND_REQUEST_COMPLETE"}}')
    assert (ret.type_name, ret.subject, ret.order_id, ret.shop_id) == ("RETURN_STATUS_CHANGE", "4035", "576", "7495")
    assert ret.age(1700000060) == 60 and ret.dedupe_key() == "9"
    gone = parse_notification(b'{"type":6,"shop_id":"1","timestamp":1,"data":{"message":"bye"}}')
    assert gone.subject is None and gone.notification_id is None and gone.dedupe_key().startswith("h:")
    assert parse_notification(b'{"type":99,"data":{}}').type_name is None        # unknown topic: read, not refused
    with pytest.raises(ValueError):
        parse_notification(b'{"data":{}}')
