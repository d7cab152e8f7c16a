"""Our Klaviyo client against Klaviyo's own artefacts: the official spec (through Prism) and SDK.

Every call goes client -> Prism proxy (validates the request against the spec; 422 if
it does not conform) -> Klaviyo stand-in -> Prism (validates the response; 500
``#VIOLATIONS`` if it does not conform) -> client. The client retries nothing here,
so any violation surfaces as an exception.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from klaviyo_api import KlaviyoAPI

from klaviyo import KlaviyoClient, KlaviyoConflictError, KlaviyoEvent, KlaviyoNotFoundError, KlaviyoProfile
from klaviyo import NoRateLimit, ProfileLocation, RetryPolicy, operation_limits
from sandbox.klaviyo import KlaviyoStandIn
from tests.contract.prism import SPEC, prism_proxy


@pytest.fixture(scope="module")
def standin():
    with KlaviyoStandIn(rate_limit_scale=100, job_stage_seconds=0.05) as k:
        yield k


@pytest.fixture(scope="module")
def prism(standin, tmp_path_factory):
    with prism_proxy(standin.root_url, tmp_path_factory.mktemp("prism") / "prism.log") as url:
        yield url


@pytest.fixture
def through_prism(standin, prism):
    standin.reset(reset_config=True)
    return KlaviyoClient(standin.api_key, base_url=f"{prism}/api", rate_limiter=NoRateLimit(),
                         retry=RetryPolicy(max_429=0, max_5xx=0, max_network=0))


def event(email, unique_id, metric="Placed Order"):
    external = "tiktok:" + email.split("@")[0]
    return KlaviyoEvent(metric_name=metric, profile=KlaviyoProfile(email=email, external_id=external),
                        properties={"OrderId": unique_id, "Items": [{"SKU": "A", "Quantity": 2}]},
                        time=datetime.now(timezone.utc), value=Decimal("19.98"), value_currency="USD",
                        unique_id=unique_id)


def test_every_client_call_conforms_to_klaviyos_spec_both_ways(through_prism, standin):
    k = through_prism
    profile = KlaviyoProfile(email="c@example.com", external_id="tiktok:c", phone_number="+14155550123",
                             first_name="Cam", location=ProfileLocation(city="Austin", region="Texas", country="US",
                                                                        zip="73301"),
                             properties={"tiktok_order_count": 2, "tiktok_lifetime_value": 40.5})
    upserted = k.create_or_update_profile(profile)
    assert upserted.created and not k.create_or_update_profile(profile).created
    assert k.get_profile(upserted.profile_id).first_name == "Cam"
    for criteria in ({"email": "c@example.com"}, {"phone_number": "+14155550123"}, {"external_id": "tiktok:c"}):
        assert [p.profile_id for p in k.search_profiles(**criteria)] == [upserted.profile_id]
    created = k.create_profile(KlaviyoProfile(email="d@example.com"))
    with pytest.raises(KlaviyoConflictError):
        k.create_profile(KlaviyoProfile(email="d@example.com"))
    created.last_name = "Doe"
    assert k.update_profile(created).last_name == "Doe"
    with pytest.raises(KlaviyoNotFoundError):
        k.get_profile("01NOSUCHPROFILE0000000000A")

    assert k.track_event(event("c@example.com", "o-1")).status == 202
    assert k.bulk_create_events([event(f"b{i}@example.com", f"b-{i}") for i in range(30)]).status == 202
    assert [e.unique_id for e in k.get_events(profile_id=upserted.profile_id, page_size=10)] == ["o-1"]

    listed = k.get_or_create_list("TikTok Shop Customers")
    assert k.get_or_create_list("TikTok Shop Customers").list_id == listed.list_id
    assert [x.name for x in k.get_lists()] == ["TikTok Shop Customers"]
    k.add_profile_to_list(listed.list_id, email="c@example.com")
    k.add_profiles_to_list(listed.list_id, [created.profile_id])
    assert k.get_list(listed.list_id).name == "TikTok Shop Customers"
    assert k.get_list(listed.list_id, profile_count=True).profile_count == 2
    assert [x.profile_count for x in k.get_lists()] == [2]
    assert k.get_profile(upserted.profile_id).subscription_status == "never_subscribed"
    assert {p.profile_id for p in k.get_list_profiles(listed.list_id)} == {upserted.profile_id, created.profile_id}
    k.remove_profile_from_list(listed.list_id, created.profile_id)

    # Whole numbers are avoided here only because the spec types numeric filter values as
    # oneOf(integer, number), which Prism rejects for an integer (it matches both branches).
    definition = {"condition_groups": [{"conditions": [{"type": "profile-property",
                                                        "property": "properties['tiktok_order_count']",
                                                        "filter": {"type": "numeric", "operator": "greater-than",
                                                                   "value": 1.5}}]}]}
    segment = k.create_segment("Repeat buyers", definition)
    assert [s.segment_id for s in k.get_segments()] == [segment.segment_id]
    assert k.get_segment(segment.segment_id, profile_count=True).profile_count == 1
    assert [s.profile_count for s in k.get_segments()] == [1]
    assert [p.profile_id for p in k.get_segment_profiles(segment.segment_id)] == [upserted.profile_id]

    assert k.subscribe_profiles([KlaviyoProfile(email="optin@example.com")]).status == 202
    assert k.unsubscribe_profiles([KlaviyoProfile(email="optin@example.com")]).status == 202
    job = k.bulk_import_profiles([KlaviyoProfile(email=f"imp{i}@example.com") for i in range(5)],
                                 list_ids=[listed.list_id])
    assert k.wait_for_bulk_import(job.job_id, timeout=20, poll=0.2).status == "complete"
    assert list(k.get_bulk_import_errors(job.job_id)) == []
    assert k.request_profile_deletion(email="d@example.com").status == 202
    assert standin.summary()["events"] == 31


def test_the_official_sdk_reads_back_what_our_client_wrote(standin):
    standin.reset(reset_config=True)
    ours = KlaviyoClient(standin.api_key, base_url=standin.url, rate_limiter=NoRateLimit())
    written = ours.create_or_update_profile(KlaviyoProfile(email="sdk@example.com", external_id="tiktok:sdk",
                                                           first_name="Sid", properties={"source": "TikTok Shop"}))
    ours.track_event(event("sdk@example.com", "576461413038785752"))
    buyers = ours.get_or_create_list("Buyers")
    ours.add_profiles_to_list(buyers.list_id, [written.profile_id])

    sdk = KlaviyoAPI(standin.api_key, max_retries=2, max_delay=1, test_host=standin.root_url)
    (profile,) = sdk.Profiles.get_profiles(filter='equals(email,"sdk@example.com")').data
    assert (profile.id, profile.attributes.external_id, profile.attributes.first_name) == \
        (written.profile_id, "tiktok:sdk", "Sid")
    assert profile.attributes.properties["source"] == "TikTok Shop"
    (stored,) = sdk.Events.get_events(filter=f'equals(profile_id,"{written.profile_id}")').data
    assert stored.attributes.event_properties["$event_id"] == "576461413038785752"
    assert stored.attributes.event_properties["$value"] == 19.98
    assert stored.attributes.event_properties["Items"] == [{"SKU": "A", "Quantity": 2}]
    assert [x.attributes.name for x in sdk.Lists.get_lists().data] == ["Buyers"]
    assert [p.id for p in sdk.Lists.get_profiles_for_list(buyers.list_id).data] == [written.profile_id]


def test_the_checked_in_rate_limit_table_matches_the_spec():
    spec = json.loads(SPEC.read_text())
    table = operation_limits()
    checked = 0
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if not isinstance(op, dict) or "x-klaviyo-ratelimit" not in op:
                continue
            limits, ours = op["x-klaviyo-ratelimit"], table[op["operationId"]]
            assert (ours.method, ours.path) == (method.upper(), path)
            assert f"{ours.burst}/s" == limits["burst"] and f"{ours.steady}/m" == limits["steady"]
            assert (f"{ours.daily}/d" if ours.daily else None) == limits.get("daily")
            checked += 1
    assert checked >= 30
    assert (table["create_event"].burst, table["create_event"].steady) == (350, 3500)
    assert table["create_segment"].daily == 100


def test_every_catalog_and_account_call_conforms_to_klaviyos_spec_both_ways(through_prism, standin):
    from klaviyo import CatalogCategory, CatalogItem, CatalogVariant, KlaviyoValidationError

    k = through_prism
    (account,) = k.get_accounts()
    assert account.account_id == standin.account().id
    assert k.create_catalog_category(CatalogCategory("C1", name="Tops")).name == "Tops"
    assert k.update_catalog_category(CatalogCategory("C1", name="Shirts")).name == "Shirts"
    assert k.get_catalog_category("C1").name == "Shirts"
    item = CatalogItem("P1", title="Tee", description="Soft cotton.", url="https://shop.example.com/p/1",
                       price=Decimal("19.90"), image_full_url="https://img.example.com/1.jpg", images=["https://i/1"],
                       custom_metadata={"brand": "Acme", "tags": ["a", "b"]}, published=True, category_ids=["C1"])
    assert k.create_catalog_item(item).external_id == "P1"
    assert k.update_catalog_item(CatalogItem("P1", price=17.5, category_ids=["C1"])).price == 17.5
    assert k.get_catalog_item("P1").title == "Tee"
    variant = CatalogVariant("S1", item_external_id="P1", title="Tee / M", description="", sku="TEE-M", price=17.5,
                             inventory_quantity=0, inventory_policy=1, url="https://shop.example.com/p/1")
    assert k.create_catalog_variant(variant).sku == "TEE-M"
    assert k.update_catalog_variant(CatalogVariant("S1", inventory_quantity=3)).inventory_quantity == 3
    assert k.get_catalog_variant("S1").item_external_id == "P1"
    assert [i.external_id for i in k.get_catalog_items(external_ids=["P1"], category_external_id="C1",
                                                       title_contains="Te", published=True)] == ["P1"]
    assert [v.external_id for v in k.get_catalog_variants(item_external_id="P1", sku="TEE-M")] == ["S1"]
    assert [c.external_id for c in k.get_catalog_categories(item_external_id="P1", name_contains="Sh")] == ["C1"]

    items = [CatalogItem(f"B{n}", title=f"Bulk {n}", description="", url=f"https://s/{n}", price=n) for n in range(3)]
    created = k.wait_for_catalog_jobs(k.bulk_create_catalog_items(items + [item]), timeout=20, poll=0.1)
    assert created.already_present == (3,) and created.row_errors() == []
    variants = [CatalogVariant(f"V{n}", item_external_id=f"B{n}", title="V", description="", sku=f"V{n}", price=n,
                               inventory_quantity=n, url="u") for n in range(3)]
    variants.append(CatalogVariant("V9", item_external_id="NOPE", title="V", description="", sku="V9", price=1,
                                   inventory_quantity=1, url="u"))
    made = k.wait_for_catalog_jobs(k.bulk_create_catalog_variants(variants), timeout=20, poll=0.1)
    assert [e.index for e in made.row_errors()] == [3]
    for submission in (k.bulk_update_catalog_items([CatalogItem("B0", title="Renamed")]),
                       k.bulk_update_catalog_variants([CatalogVariant("V0", inventory_quantity=8)]),
                       k.bulk_delete_catalog_variants(["V1"]),
                       k.bulk_delete_catalog_items(["B2"]),
                       k.bulk_create_catalog_categories([CatalogCategory("C2", name="Sale")])):
        assert k.wait_for_catalog_jobs(submission, timeout=20, poll=0.1).row_errors() == []
    with pytest.raises(KlaviyoValidationError):
        k.bulk_create_catalog_items([CatalogItem("X", title="T", description="", url="u"),
                                     CatalogItem(" ", title="T", description="", url="u")])
    with pytest.raises(KlaviyoNotFoundError):
        k.get_catalog_item("NOPE")
    assert k.delete_catalog_variant("S1") and k.delete_catalog_item("P1") and k.delete_catalog_category("C2")
    assert not k.delete_catalog_item("P1")
    assert standin.summary()["catalog"]["restocks"] == 2  # S1 and V0 went from 0 to more
