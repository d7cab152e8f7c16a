"""Every Python example of the seed's README, run as a new user would: only the import paths changed.

``tests/seed/README.md`` is the seed's README, byte for byte. Each test takes one of its
```python blocks by heading, applies ``IMPORT_PATHS`` (nothing else), and runs it against
the Klaviyo and TikTok Shop stand-ins, as step 2 of the seed says: ``KLAVIYO_API_KEY``
and ``KLAVIYO_API_BASE_URL`` are set, here to the stand-in's. The stand-in accepts the
seed's literal ``'your_api_key_here'`` too.

Where an example uses a name an earlier example made or imported (``client``,
``sync_service``, ``KlaviyoProfile``) or a placeholder it never defines (``profile_data``,
``customer_emails``, ``profile_id``), the test gives it, and says so. The seed's placeholder ids ``PROFILE123`` and ``SEGMENT123``
are made to exist in the stand-in (``customer@example.com`` is PROFILE123), so the
examples that use them do what they say instead of answering 404.

The one example that cannot run is pinned as such: ``from config.config import
KLAVIYO_API_KEY`` has no counterpart; the README section "Coming from the seed's client"
says what to write instead.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import time
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED = Path(__file__).resolve().parent / "seed" / "README.md"
README = ROOT / "README.md"

#: The only change made to the seed's code: where the same names live in ksync.
IMPORT_PATHS = {
    "integrations.klaviyo.client": "klaviyo.client",
    "integrations.klaviyo.models": "klaviyo.models",
    "integrations.klaviyo.exceptions": "klaviyo.exceptions",
    "integrations.klaviyo.sync_service": "workers.service",
    "database.models": "db.models",
    "database.connection": "db.engine",
}
SEED_KEY = "your_api_key_here"


def seed_examples() -> dict[str, str]:
    """The README's ```python blocks by the heading above them (headings are unique in the seed)."""
    examples, heading, lines = {}, None, SEED.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if re.match(r"#{2,4} ", line):
            heading = re.sub(r"^#+\s*[^A-Za-z0-9]*", "", line).strip()
        if line.startswith("```"):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            if line[3:].strip() == "python":
                examples[heading] = "\n".join(lines[index + 1:end]) + "\n"
            index = end
        index += 1
    return examples


EXAMPLES = seed_examples()


def adapted(code: str) -> str:
    """``code`` with the seed's module paths replaced by ksync's, in import statements only."""
    def swap(match: re.Match) -> str:
        module = match.group(2)
        return match.group(1) + IMPORT_PATHS.get(module, module)

    return re.sub(r"^(\s*from\s+)([\w.]+)(?=\s+import\b)", swap, code, flags=re.M)


def earlier_imports() -> dict:
    """The names a reader has after following the README's examples in order: every adapted
    ``import`` statement of the seed that ksync can satisfy (examples later on use ``KlaviyoClient``,
    ``KlaviyoProfile``, ``KlaviyoRateLimitError`` without importing them again)."""
    names: dict = {}
    for code in EXAMPLES.values():
        for node in ast.parse(adapted(code)).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                try:
                    exec(compile(ast.Module([node], []), "seed imports", "exec"), names)
                except ModuleNotFoundError:
                    pass  # config.config: no counterpart, see the README
    return {k: v for k, v in names.items() if k != "__builtins__"}


def run(heading: str, **given) -> tuple[dict, str]:
    """Run the seed example under ``heading`` with the names it assumes (``given``); returns its
    namespace and what it printed."""
    namespace = {"__name__": given.pop("__name__", "seed_example"), **given}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(adapted(EXAMPLES[heading]), f"seed README: {heading}", "exec"), namespace)
    return namespace, out.getvalue()


# -- the world the examples run in ------------------------------------------------------------------


@pytest.fixture(scope="module")
def standins():
    from sandbox.klaviyo import KlaviyoStandIn
    from sandbox.tiktok import TikTokStandIn

    with KlaviyoStandIn(api_keys=("pk_test_ksync", SEED_KEY)) as k, \
            TikTokStandIn(orders=60, days=30, rate_limit_qps=0, malformed_ratio=0.0) as t:
        yield k, t


@pytest.fixture
def klaviyo(standins, monkeypatch):
    """The Klaviyo stand-in, empty but for the seed's PROFILE123 (customer@example.com) and SEGMENT123,
    with KLAVIYO_API_KEY and KLAVIYO_API_BASE_URL pointing at it (the seed's step 2)."""
    from settings import reset_settings_cache

    k, t = standins
    k.reset(reset_config=True)
    hold_profile_id(k, "PROFILE123", email="customer@example.com")
    monkeypatch.setenv("KLAVIYO_API_KEY", k.api_key)
    monkeypatch.setenv("KLAVIYO_API_BASE_URL", k.url)
    for name, value in t.client_settings().items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    yield k
    reset_settings_cache()


@pytest.fixture
def client(klaviyo):
    """What the seed's first example makes: ``client = KlaviyoClient(api_key='your_api_key_here')``."""
    from klaviyo.client import KlaviyoClient

    return KlaviyoClient(api_key=SEED_KEY)


@pytest.fixture
def synced(klaviyo, migrated_database, redis_url, monkeypatch):
    """Sync history in a fresh database, the fleet's Redis limiter, and the TikTok stand-in."""
    from settings import reset_settings_cache

    monkeypatch.setenv("REDIS_URL", redis_url)
    reset_settings_cache()
    return klaviyo


@pytest.fixture
def sync_service(synced):
    """What the seed's sync example makes: ``KlaviyoSyncService(api_key='your_api_key_here')``."""
    from workers.service import KlaviyoSyncService

    return KlaviyoSyncService(api_key=SEED_KEY)


def hold_profile_id(standin, profile_id: str, **identifiers) -> None:
    """Given: Klaviyo holds a profile under the seed's placeholder id."""
    store = standin.store
    with store.lock:
        profile = store.new_profile(time.time())
        store.profiles[profile_id] = store.profiles.pop(profile.id)
        profile.id = profile_id
        for name, value in identifiers.items():
            store.set_identifier(profile, name, value)


def hold_segment_id(standin, segment_id: str, name: str, definition: dict) -> None:
    """Given: Klaviyo holds a segment under the seed's placeholder id."""
    store = standin.store
    with store.lock:
        segment = store.new_segment(name, definition, False, time.time())
        store.segments[segment_id] = store.segments.pop(segment.id)
        segment.id = segment_id


def profiles_by_email(standin) -> dict:
    return {p["email"]: p for p in standin.state()["profiles"]}


def events_of(standin, profile_id: str) -> list[dict]:
    return [e for e in standin.state()["events"] if e["profile_id"] == profile_id]


# -- the adaptation itself --------------------------------------------------------------------------


def test_the_seed_is_quoted_whole_and_only_its_import_lines_are_adapted():
    assert len(EXAMPLES) == 22
    for heading, code in EXAMPLES.items():
        changed = [(a, b) for a, b in zip(code.splitlines(), adapted(code).splitlines()) if a != b]
        assert all(a.lstrip().startswith("from ") and b.lstrip().startswith("from ") for a, b in changed), heading
    used = {m for code in EXAMPLES.values() for m in re.findall(r"^\s*from\s+([\w.]+)\s+import", code, re.M)}
    assert set(IMPORT_PATHS) <= used


# -- Quick start ------------------------------------------------------------------------------------


def test_create_a_customer_profile(klaviyo):
    _, out = run("Create a Customer Profile")
    assert out == "Profile created: PROFILE123\n"
    stored = profiles_by_email(klaviyo)["customer@example.com"]
    assert (stored["first_name"], stored["phone_number"], stored["location"]["city"]) == \
        ("Jane", "+14155551234", "San Francisco")
    assert stored["properties"]["lifetime_value"] == 299.95


def test_track_an_event(klaviyo, client):
    _, out = run("Track an Event", client=client)
    assert out == "Event tracked: None\n"  # Klaviyo answers 202 with no body: there is no id to show
    (event,) = events_of(klaviyo, "PROFILE123")
    assert event["metric"] == "Placed Order" and event["properties"]["order_id"] == "ORD-12345"


def test_manage_email_lists(klaviyo, client):
    vip = client.get_or_create_list("VIP Customers")  # given: a list with one subscriber
    client.add_profile_to_list(vip.list_id, email="vip@example.com")
    _, out = run("Manage Email Lists", client=client)
    assert out == "VIP Customers: 1 subscribers\n"
    (members,) = [x["members"] for x in klaviyo.state()["lists"] if x["id"] == vip.list_id]
    assert set(members) == {client.search_profiles(email="vip@example.com")[0].profile_id}  # PROFILE123 added, removed


# -- API reference: profiles ------------------------------------------------------------------------


def test_create_or_update_profile(klaviyo, client):
    _, out = run("Create or Update Profile", client=client)
    assert out == "Profile ID: PROFILE123\nEmail: customer@example.com\n"
    stored = profiles_by_email(klaviyo)["customer@example.com"]
    assert (stored["external_id"], stored["organization"], stored["location"]["latitude"]) == \
        ("CUSTOMER-001", "ACME Corp", 37.7749)


def test_get_profile(klaviyo, client):
    run("Create or Update Profile", client=client)  # given: the profile the previous example made
    namespace, out = run("Get Profile", client=client)
    assert out == "Found: Jane Doe\n"
    assert namespace["profile"].profile_id == "PROFILE123"
    assert [p.profile_id for p in namespace["profiles"]] == ["PROFILE123"]  # found by external id too


# -- API reference: events --------------------------------------------------------------------------


def test_track_customer_events(klaviyo, client):
    run("Track Customer Events", client=client)
    events = events_of(klaviyo, "PROFILE123")
    assert sorted(e["metric"] for e in events) == ["Placed Order", "Started Checkout", "Viewed Product"]
    placed = next(e for e in events if e["metric"] == "Placed Order")
    assert abs(datetime.fromisoformat(placed["time"]).timestamp() - time.time()) < 120  # utcnow() taken as UTC


def test_get_events(klaviyo, client):
    run("Track Customer Events", client=client)  # given: events of PROFILE123
    _, out = run("Get Events", client=client)
    lines = out.splitlines()
    assert len(lines) == 6
    assert {line.split(" at ")[0] for line in lines[::2]} == {"Placed Order", "Viewed Product", "Started Checkout"}
    assert all(re.search(r" at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00$", line) for line in lines[::2])
    assert "'order_id': 'ORD-12345'" in out


# -- API reference: lists and segments --------------------------------------------------------------


def test_working_with_lists(klaviyo, client):
    vip = client.get_or_create_list("VIP Customers")  # given: one list with one subscriber
    client.add_profile_to_list(vip.list_id, email="vip@example.com")
    _, out = run("Working with Lists", client=client)
    assert f"VIP Customers ({vip.list_id})\n  Subscribers: 1\n  Created: 20" in out
    lists = {x["name"]: x for x in klaviyo.state()["lists"]}
    assert set(lists) == {"VIP Customers", "Weekly Newsletter"}
    assert len(lists["Weekly Newsletter"]["members"]) == 3 and "PROFILE123" not in lists["VIP Customers"]["members"]


def test_working_with_segments(klaviyo, client):
    definition = {"condition_groups": [{"conditions": [{
        "type": "profile-property", "property": "properties['total_orders']",
        "filter": {"type": "numeric", "operator": "greater-than", "value": 1}}]}]}
    hold_segment_id(klaviyo, "SEGMENT123", "Repeat Customers", definition)  # given: the seed's segment
    run("Create a Customer Profile")  # given: customer@example.com with 5 orders
    _, out = run("Working with Segments", client=client)
    assert out == "Repeat Customers: 1 profiles\n  customer@example.com - Jane Doe\n"


# -- the sync service -------------------------------------------------------------------------------


def stat(out: str, label: str) -> str:
    return re.search(rf"{re.escape(label)}: (.+)", out).group(1)


def test_sync_customers_from_tiktok_shop(synced, standins):
    _, tiktok = standins
    namespace, out = run("Sync Customers from TikTok Shop")
    completed = [o for o in tiktok.orders() if o["status"] == "COMPLETED"]
    assert out.startswith("Sync complete!\n")
    assert int(stat(out, "Orders fetched")) == len(completed)
    assert int(stat(out, "Customers synced")) == int(stat(out, "New profiles created")) == \
        len({o["user_id"] for o in completed}) == len(namespace["profiles"]) > 0
    assert stat(out, "Errors") == "[]"


def test_sync_order_events(synced, sync_service):
    _, out = run("Sync Order Events", sync_service=sync_service)
    assert int(stat(out, "Events tracked")) > 0 and stat(out, "Failed") == "0"
    assert re.fullmatch(r"\$\d+\.\d\d", stat(out, "Total order value"))


def test_bulk_profile_sync(synced, sync_service):
    _, out = run("Bulk Profile Sync", sync_service=sync_service)
    assert out == "Bulk sync results:\n  Total profiles: 2\n  Created: 2\n  Updated: 0\n  Failed: 0\n"


def test_create_default_segments(synced, sync_service):
    namespace, out = run("Create Default Segments", sync_service=sync_service)
    assert list(namespace["segments"]) == ["all_customers", "new_subscribers", "vip_customers", "active_customers"]
    names = re.findall(r"^  (.+) \((\w+)\)$", out, re.M)
    assert [n for n, _ in names] == ["All Customers", "New Subscribers", "VIP Customers", "Active Customers"]
    assert {i for _, i in names} == {s["id"] for s in synced.state()["segments"]}


def test_sync_history_tracking(synced, sync_service):
    sync_service.sync_customers_from_tiktok(order_status="COMPLETED", days_back=30)  # given: one profile sync
    sync_service.sync_order_events(order_status="COMPLETED", days_back=7)  # and an event sync, filtered out
    _, out = run("Sync History Tracking")
    assert out.count("profile_sync - tiktok_to_klaviyo\n") == 1 and "event_sync" not in out
    assert "  Status: succeeded\n" in out and int(stat(out, "Synced")) == int(stat(out, "Success")) > 0
    assert stat(out, "Failed") == "0" and float(stat(out, "Duration").rstrip("s")) >= 0


# -- advanced features ------------------------------------------------------------------------------


def test_rate_limiting(klaviyo, client):
    emails = [f"buyer{i}@example.com" for i in range(25)]
    for email in emails[:3]:
        client.create_or_update_profile(__import__("klaviyo").KlaviyoProfile(email=email))
    namespace, _ = run("Rate Limiting", client=client, customer_emails=emails)  # given: the seed's list
    assert namespace["profile"] == []  # the last address is unknown: an empty list, not an error
    assert len(klaviyo.requests(op="get_profiles")) == 25


def test_error_handling(klaviyo, client):
    from klaviyo import KlaviyoProfile

    profile_data = KlaviyoProfile(email="handled@example.com")  # given: the seed's placeholder
    _, out = run("Error Handling", client=client, profile_data=profile_data, **earlier_imports())
    assert out == "" and "handled@example.com" in profiles_by_email(klaviyo)
    klaviyo.revoke_key(SEED_KEY)  # given: the key was revoked
    try:
        _, out = run("Error Handling", client=client, profile_data=profile_data, **earlier_imports())
    finally:
        klaviyo.restore_key(SEED_KEY)
    assert out.startswith("Auth error: Klaviyo create_or_update_profile answered 401")


def test_automatic_retry_with_backoff(klaviyo, client):
    from klaviyo import KlaviyoProfile

    klaviyo.set_faults(force_429=1, retry_after=1, ops=["create_or_update_profile"])  # given: one 429
    _, out = run("Automatic Retry with Backoff", client=client, profile_data=KlaviyoProfile(email="r@example.com"),
                 **earlier_imports())
    assert out == "" and "r@example.com" in profiles_by_email(klaviyo)
    assert [r["status"] for r in klaviyo.requests(op="create_or_update_profile")] == [429, 201]


def test_custom_timeout_configuration(klaviyo):
    namespace, _ = run("Custom Timeout Configuration", **earlier_imports())
    assert namespace["client"].http.timeout == 60


# -- security best practices ------------------------------------------------------------------------


def test_store_api_keys_securely_has_no_config_module_and_the_readme_says_what_to_write(klaviyo):
    with pytest.raises(ModuleNotFoundError, match="'config'"):
        run("1. Store API Keys Securely", **earlier_imports())
    section = README.read_text().split("## Coming from the seed's client", 1)[1].split("\n## ", 1)[0]
    replacement = re.search(r"^ *(from settings import .*)\n *(KLAVIYO_API_KEY = .*)$", section, re.M)
    namespace = {}
    exec("\n".join(replacement.groups()), namespace)
    assert namespace["KLAVIYO_API_KEY"] == klaviyo.api_key


def test_respect_unsubscribe_requests(klaviyo, client):
    from klaviyo import KlaviyoProfile

    client.unsubscribe_profiles([KlaviyoProfile(email="customer@example.com")])  # given: PROFILE123 opted out
    namespace, _ = run("4. Respect Unsubscribe Requests", client=client, profile_id="PROFILE123")
    assert namespace["profile"].subscription_status == "unsubscribed"


def test_implement_consent_management(klaviyo):
    namespace, _ = run("5. Implement Consent Management", **earlier_imports())
    assert namespace["profile"].properties["consent_method"] == "double_opt_in"


# -- the complete example ---------------------------------------------------------------------------


def test_the_complete_example_runs_end_to_end(synced):
    _, out = run("Complete Example", __name__="__main__")
    assert "‚ùå" not in out, out  # the seed's (mis-encoded) failure mark
    for expected in ("Profile created: ", "Signup event tracked", "Added to newsletter list",
                     "Purchase tracked: ORD-12345", "Profile updated with purchase data", "Created 4 segments",
                     "Customer sync complete", "Event sync complete", "Customer Insights: Jane Doe",
                     "Subscription: never_subscribed", "Total Orders: 1", "Lifetime Value: $149.98"):
        assert expected in out, expected
    activity = int(re.search(r"Recent Activity \((\d+) events\)", out).group(1))
    assert activity == 2 and out.count("  Placed Order - 20") + out.count("  Signed Up - 20") == 2
