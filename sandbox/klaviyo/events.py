"""Recording events with Klaviyo's dedupe rules.

* ``POST /api/events``: the key is (profile, metric, unique_id), or the event
  time truncated to the second when there is no unique_id. The first event
  wins; a repeat still gets 202 and is dropped (we count it).
* ``POST /api/event-bulk-create-jobs``: the same across requests, but a
  unique_id repeated for one profile and metric *inside* a request fails the
  whole request and nothing is stored.

Callers hold ``store.lock``.
"""

from __future__ import annotations

from .errors import invalid
from .ids import ulid
from .model import Event
from .profiles import identity_key, require_known, resolve
from .store import Store
from .validate import EventInput


def reject_repeated_unique_ids(store: Store, inputs: list[EventInput]) -> None:
    """400 at the second event that repeats (profile, metric, unique_id) within one request."""
    seen, identities = set(), {}
    for item in inputs:
        if item.unique_id is None:
            continue
        identity = identities.get(id(item.profile))
        if identity is None:
            identity = identities[id(item.profile)] = identity_key(store, item.profile)
        key = (identity, item.metric_name, item.unique_id)
        if key in seen:
            raise invalid(f"Duplicate unique_id '{item.unique_id}' for the same profile and metric in one request; "
                          "no events were processed.", f"{item.pointer}/unique_id")
        seen.add(key)


def record(store: Store, inputs: list[EventInput], now: float) -> tuple[int, int]:
    """Store ``inputs`` (resolving or creating their profiles); returns (stored, dropped as duplicates).

    Every check that can fail happens before the first write, so a request is all or nothing.
    """
    require_known(store, {id(item.profile): item.profile for item in inputs}.values())
    stored = dropped = 0
    profiles: dict[int, str] = {}  # one resolution per ProfileRef object (bulk entries share one)
    for item in inputs:
        pid = profiles.get(id(item.profile))
        if pid is None:
            pid = profiles[id(item.profile)] = resolve(store, item.profile, now).id
        metric = store.metric_named(item.metric_name, now)
        event = Event(id=ulid(item.time), seq=store.next_seq(), profile_id=pid,
                      metric_id=metric.id, time=item.time, properties=item.properties, value=item.value,
                      value_currency=item.value_currency, unique_id=item.unique_id, backfill=item.backfill,
                      received=now)
        if store.add_event(event):
            stored += 1
        else:
            dropped += 1
    return stored, dropped
