"""Marketing consent and suppressions: the four bulk subscription/suppression jobs.

What we simulate (email and SMS marketing; WhatsApp and push are accepted but ignored):

* subscribe: consent ``SUBSCRIBED`` (timestamp = ``consented_at`` for a
  historical import, else now), clears ``UNSUBSCRIBE`` / ``SPAM_COMPLAINT`` /
  ``USER_SUPPRESSED`` suppressions, creates unknown profiles, joins the list
  if one is given. ``consented_at`` without ``historical_import: true`` is a 400.
* unsubscribe: with a list the profile belongs to, it leaves that list and
  gets a list suppression; otherwise consent becomes ``UNSUBSCRIBED`` globally
  (email also gets an ``UNSUBSCRIBE`` suppression).
* suppress / unsuppress: add / remove ``USER_SUPPRESSED`` (only that reason).

Double opt-in lists are treated like single opt-in (no confirmation step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import invalid
from .model import Consent, Profile
from .profiles import require_known, resolve
from .store import Store
from .times import parse_iso
from .validate import (ProfileRef, dig, email, member, obj, optional_text, phone_number, relationship_ids,
                       resource)

#: Suppressions a new subscription clears (the spec's enum spells spam "SPAM_COMPLAINT").
CLEARED_BY_SUBSCRIBE = {"UNSUBSCRIBE", "SPAM_COMPLAINT", "SPAM_REPORT", "USER_SUPPRESSED"}
MAX_SUBSCRIBE = 1000
MAX_UNSUBSCRIBE = 100
MAX_SUPPRESS = 100


def can_receive_email(profile: Profile) -> bool:
    return (profile.fields["email"] is not None and profile.email_marketing.status != "UNSUBSCRIBED"
            and not profile.suppressions)


def can_receive_sms(profile: Profile) -> bool:
    return profile.fields["phone_number"] is not None and profile.sms_marketing.status == "SUBSCRIBED"


@dataclass
class ConsentRow:
    ref: ProfileRef
    channels: dict = field(default_factory=dict)  # "email"/"sms" -> consented_at epoch or None


def _rows(attrs: dict, limit: int) -> list:
    rows = member(obj(member(attrs, "profiles", "/data/attributes"), "/data/attributes/profiles"), "data",
                  "/data/attributes/profiles")
    if not isinstance(rows, list) or not rows:
        raise invalid("At least one profile is required.", "/data/attributes/profiles/data")
    if len(rows) > limit:
        raise invalid(f"At most {limit} profiles may be sent per request.", "/data/attributes/profiles/data")
    return rows


def parse_subscriptions(body, job_type: str, wanted: str, now: float) -> tuple[list[ConsentRow], str | None, str | None]:
    """Rows of a subscribe (``wanted="SUBSCRIBED"``) or unsubscribe job, plus (list id, custom_source)."""
    data = resource(body, job_type)
    attrs = obj(member(data, "attributes", "/data"), "/data/attributes")
    historical = attrs.get("historical_import") is True
    limit = MAX_SUBSCRIBE if wanted == "SUBSCRIBED" else MAX_UNSUBSCRIBE
    rows = [_consent_row(row, f"/data/attributes/profiles/data/{i}", wanted, historical, now)
            for i, row in enumerate(_rows(attrs, limit))]
    list_id = next(iter(relationship_ids(data, "list", "list", many=False)), None)
    return rows, list_id, optional_text(attrs.get("custom_source"), "/data/attributes/custom_source")


def _consent_row(row, at: str, wanted: str, historical: bool, now: float) -> ConsentRow:
    a = obj(member(obj(row, at), "attributes", at), f"{at}/attributes")
    identifiers = {"email": email(a.get("email"), f"{at}/attributes/email"),
                   "phone_number": phone_number(a.get("phone_number"), f"{at}/attributes/phone_number")}
    ref = ProfileRef(optional_text(row.get("id"), f"{at}/id"), {k: v for k, v in identifiers.items() if v is not None},
                     pointer=at)
    if not ref.attributes and not ref.id:
        raise invalid("A profile needs an email or a phone_number.", f"{at}/attributes")
    subs = obj(member(a, "subscriptions", f"{at}/attributes"), f"{at}/attributes/subscriptions")
    parsed = ConsentRow(ref)
    for channel, needed in (("email", "email"), ("sms", "phone_number")):
        marketing = dig(subs, f"{at}/attributes/subscriptions", channel, "marketing")
        if marketing is None:
            continue
        mp = f"{at}/attributes/subscriptions/{channel}/marketing"
        if obj(marketing, mp).get("consent") != wanted:
            raise invalid(f"consent must be '{wanted}'.", f"{mp}/consent")
        if needed not in ref.attributes and not ref.id:
            raise invalid(f"{channel} consent needs the profile's {needed}.", f"{at}/attributes/{needed}")
        parsed.channels[channel] = _consented_at(marketing, historical, mp, now)
    return parsed


def _consented_at(marketing: dict, historical: bool, pointer: str, now: float) -> float | None:
    raw = marketing.get("consented_at")
    if raw is None:
        if historical:
            raise invalid("consented_at is required when historical_import is true.", f"{pointer}/consented_at")
        return None
    if not historical:
        raise invalid("consented_at may only be set when historical_import is true.", f"{pointer}/consented_at")
    try:
        when = parse_iso(raw)
    except (ValueError, TypeError):
        raise invalid(f"'{raw}' is not a valid ISO 8601 date-time.", f"{pointer}/consented_at") from None
    if when > now:
        raise invalid("consented_at must be in the past.", f"{pointer}/consented_at")
    return when


def subscribe(store: Store, rows: list[ConsentRow], klist, custom_source: str | None, now: float) -> None:
    require_known(store, [row.ref for row in rows])
    for row in rows:
        profile = resolve(store, row.ref, now)
        for channel, consented_at in row.channels.items():
            consent = Consent("SUBSCRIBED", consented_at or now, "API", custom_source, now)
            if channel == "email":
                profile.email_marketing = consent
                profile.suppressions = [s for s in profile.suppressions if s["reason"] not in CLEARED_BY_SUBSCRIBE]
            else:
                profile.sms_marketing = consent
        if klist is not None:
            store.join_list(klist, profile.id, now)
        profile.updated = now


def unsubscribe(store: Store, rows: list[ConsentRow], klist, now: float) -> None:
    require_known(store, [row.ref for row in rows])
    for row in rows:
        profile = resolve(store, row.ref, now)
        if klist is not None and profile.id in klist.members:
            del klist.members[profile.id]
            profile.list_suppressions.append({"list_id": klist.id, "reason": "UNSUBSCRIBE", "timestamp": now})
        else:
            for channel in row.channels:
                if channel == "email":
                    profile.email_marketing = Consent("UNSUBSCRIBED", now, "API", None, now)
                    if not any(s["reason"] == "UNSUBSCRIBE" for s in profile.suppressions):
                        profile.suppressions.append({"reason": "UNSUBSCRIBE", "timestamp": now})
                else:
                    profile.sms_marketing = Consent("UNSUBSCRIBED", now, "API", None, now)
        profile.updated = now


def parse_suppression_emails(body, job_type: str) -> tuple[list[str], str | None, str | None]:
    """(emails, list id, segment id) of a suppress/unsuppress job: profiles or one list/segment."""
    data = resource(body, job_type)
    attrs = obj(data.get("attributes") or {}, "/data/attributes")
    list_id = next(iter(relationship_ids(data, "list", "list", many=False)), None)
    segment_id = next(iter(relationship_ids(data, "segment", "segment", many=False)), None)
    if (attrs.get("profiles") is not None) + bool(list_id) + bool(segment_id) != 1:
        raise invalid("Provide either profiles or one list or one segment.", "/data/attributes/profiles")
    if attrs.get("profiles") is None:
        return [], list_id, segment_id
    emails = []
    for i, row in enumerate(_rows(attrs, MAX_SUPPRESS)):
        at = f"/data/attributes/profiles/data/{i}"
        a = obj(member(obj(row, at), "attributes", at), f"{at}/attributes")
        emails.append(email(member(a, "email", f"{at}/attributes"), f"{at}/attributes/email"))
    return emails, list_id, segment_id


def suppress(profiles: list[Profile], now: float) -> int:
    """Add ``USER_SUPPRESSED``; returns how many profiles changed."""
    changed = 0
    for profile in profiles:
        if not any(s["reason"] == "USER_SUPPRESSED" for s in profile.suppressions):
            profile.suppressions.append({"reason": "USER_SUPPRESSED", "timestamp": now})
            profile.updated = now
            changed += 1
    return changed


def unsuppress(profiles: list[Profile], now: float) -> int:
    """Remove ``USER_SUPPRESSED`` only; returns how many profiles changed."""
    changed = 0
    for profile in profiles:
        kept = [s for s in profile.suppressions if s["reason"] != "USER_SUPPRESSED"]
        if len(kept) != len(profile.suppressions):
            profile.suppressions = kept
            profile.updated = now
            changed += 1
    return changed
