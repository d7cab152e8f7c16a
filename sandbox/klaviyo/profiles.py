"""Klaviyo's profile identity rules: create, update, upsert, and resolve-for-event.

* Identifiers (email, phone_number, external_id) are unique across profiles;
  taking one that another profile holds is a 409 ``duplicate_profile`` whose
  ``meta.duplicate_profile_id`` names that profile.
* Matching never merges two people: a profile found by one identifier is only
  "the same person" when it holds no *different* value for another identifier
  given. Upserts answer 409 otherwise; events and consent rows go to (or create)
  a profile they do not contradict.
* An attribute that is omitted is left alone; ``null`` clears it. ``location``
  and ``properties`` merge key by key (``properties: null`` clears them all).
* ``meta.patch_properties`` appends to, removes from, or unsets properties.

Callers hold ``store.lock`` and pass attributes already checked by validate.py.
"""

from __future__ import annotations

from .errors import duplicate_profile, invalid, not_found
from .model import IDENTIFIERS, LOCATION_FIELDS, TEXT_FIELDS, Profile
from .store import Store, normalise
from .validate import ProfileRef


def identifiers_of(attributes: dict) -> dict:
    return {k: attributes[k] for k in IDENTIFIERS if attributes.get(k) is not None}


def conflict(store: Store, attributes: dict, pid: str | None) -> str | None:
    """Id of another profile that already holds one of the identifiers in ``attributes``."""
    for name, value in identifiers_of(attributes).items():
        owner = store.owner(name, value)
        if owner is not None and owner != pid:
            return owner
    return None


def contradicts(profile: Profile, attributes: dict) -> bool:
    """``profile`` already has a different email, phone number or external id than ``attributes`` gives."""
    return any(profile.fields[name] is not None and profile.fields[name] != normalise(name, value)
               for name, value in identifiers_of(attributes).items())


def apply(store: Store, profile: Profile, attributes: dict, now: float, meta: dict | None = None,
          fill_only: bool = False) -> None:
    """Write ``attributes`` onto ``profile``.

    With ``fill_only`` an identifier is only set where the profile has none and
    no other profile holds it (the silent, asynchronous path of events).
    """
    for key, value in attributes.items():
        if key in IDENTIFIERS:
            if fill_only and (value is None or profile.fields[key] is not None
                              or store.owner(key, value) not in (None, profile.id)):
                continue
            store.set_identifier(profile, key, value)
        elif key in TEXT_FIELDS:
            profile.fields[key] = value
        elif key == "location":
            if value is None:
                profile.location = dict.fromkeys(LOCATION_FIELDS)
            else:
                profile.location.update(value)
        elif key == "properties":
            if value is None:
                profile.properties = {}
            else:
                profile.properties.update(value)
    if meta:
        patch_properties(profile.properties, meta.get("patch_properties") or {})
    profile.updated = now


def patch_properties(properties: dict, patch: dict) -> None:
    """``append`` / ``unappend`` values to list properties, ``unset`` keys."""
    for key, value in (patch.get("append") or {}).items():
        current = properties.get(key)
        items = list(current) if isinstance(current, list) else ([] if current is None else [current])
        items.extend(value if isinstance(value, list) else [value])
        properties[key] = items
    for key, value in (patch.get("unappend") or {}).items():
        if isinstance(properties.get(key), list):
            drop = value if isinstance(value, list) else [value]
            properties[key] = [item for item in properties[key] if item not in drop]
    unset = patch.get("unset") or []
    for key in [unset] if isinstance(unset, str) else unset:
        properties.pop(key, None)


def create(store: Store, attributes: dict, now: float) -> Profile:
    """POST /api/profiles: a new profile, or 409 if any identifier is taken."""
    taken = store.first_owner(identifiers_of(attributes))
    if taken is not None:
        raise duplicate_profile(taken)
    profile = store.new_profile(now)
    apply(store, profile, attributes, now)
    return profile


def update(store: Store, pid: str, attributes: dict, meta: dict | None, now: float) -> Profile:
    """PATCH /api/profiles/{id}: 404 unknown, 409 identifier of another profile, 400 if none would remain."""
    profile = store.profiles.get(pid)
    if profile is None:
        raise not_found(f"A profile with id {pid} does not exist.")
    taken = conflict(store, attributes, pid)
    if taken is not None:
        raise duplicate_profile(taken)
    remaining = {**profile.identifiers(), **{k: v for k, v in attributes.items() if k in IDENTIFIERS}}
    if not any(v is not None for v in remaining.values()):
        raise invalid("A profile must have at least one of email, phone_number or external_id.", "/data/attributes")
    apply(store, profile, attributes, now, meta)
    return profile


def owners(store: Store, attributes: dict) -> list[str]:
    """Distinct profiles holding the given identifiers, in Klaviyo's order (email, phone, external id)."""
    found = []
    for name, value in identifiers_of(attributes).items():
        owner = store.owner(name, value)
        if owner is not None and owner not in found:
            found.append(owner)
    return found


def upsert(store: Store, pid: str | None, attributes: dict, meta: dict | None, now: float,
           pointer: str = "/data") -> tuple[Profile, bool]:
    """POST /api/profile-import: match by id, else email, phone, external id; returns (profile, created).

    409 (naming the first match) when the identifiers belong to two profiles, or
    when the one profile they find holds a different value for another of them.
    """
    if pid is not None:
        profile = store.profiles.get(pid)
        if profile is None:
            raise invalid(f"A profile with id {pid} does not exist.", f"{pointer}/id")
    else:
        matches = owners(store, attributes)
        if len(matches) > 1 or (matches and contradicts(store.profiles[matches[0]], attributes)):
            raise duplicate_profile(matches[0])
        profile = store.profiles[matches[0]] if matches else None
    if profile is not None:
        taken = conflict(store, attributes, profile.id)
        if taken is not None:
            raise duplicate_profile(taken)
        apply(store, profile, attributes, now, meta)
        return profile, False
    profile = store.new_profile(now)
    apply(store, profile, attributes, now, meta)
    return profile, True


def require_known(store: Store, refs) -> None:
    """400 for a reference that names an unknown id and no identifier (nothing to match or create)."""
    for ref in refs:
        if ref.id and ref.id not in store.profiles and not ref.identifiers():
            raise invalid(f"A profile with id {ref.id} does not exist.", f"{ref.pointer}/id")


def match(store: Store, ref: ProfileRef) -> Profile | None:
    """The existing profile ``ref`` denotes: its id, else the first owner of its identifiers it does not contradict."""
    if ref.id and ref.id in store.profiles:
        return store.profiles[ref.id]
    for pid in owners(store, ref.attributes):
        if not contradicts(store.profiles[pid], ref.attributes):
            return store.profiles[pid]
    return None


def resolve(store: Store, ref: ProfileRef, now: float) -> Profile:
    """The profile an event or consent row is about, created if nothing matches.

    Klaviyo accepts these asynchronously, so there is no 409 here: identifiers
    held by other profiles, or contradicting the matched one, are simply not
    copied. Check ``require_known`` first.
    """
    profile = match(store, ref) or store.new_profile(now)
    if ref.attributes or ref.meta:
        apply(store, profile, ref.attributes, now, ref.meta, fill_only=True)
    return profile


def identity_key(store: Store, ref: ProfileRef) -> tuple:
    """Who ``ref`` denotes without creating anything: an existing id, or its first identifier."""
    found = match(store, ref)
    if found is not None:
        return ("id", found.id)
    name, value = next(iter(ref.identifiers().items()), ("id", ref.id))
    return ("new", name, normalise(name, value))
