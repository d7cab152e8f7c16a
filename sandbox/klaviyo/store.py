"""The stand-in's in-memory account: records plus the indexes that keep lookups O(1).

One re-entrant lock guards everything; route handlers take it for the few
dictionary operations they need (``with store.lock:``), so the threaded server
never sees a half-applied change. The store enforces only structural rules
(unique identifiers, one metric per name, event dedupe); the API rules live in
profiles.py, events.py, consent.py and jobs.py.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict

from .ids import short_id, ulid
from .model import IDENTIFIERS, Event, KList, Metric, Profile, Segment


def normalise(field: str, value):
    """Index form of an identifier: emails compare case-insensitively."""
    return value.strip().lower() if field == "email" and isinstance(value, str) else value


def dedupe_key(event: Event) -> tuple:
    """Klaviyo's dedupe key: (profile, metric, unique_id), or the time truncated to the second."""
    marker = ("u", event.unique_id) if event.unique_id is not None else ("t", int(event.time))
    return event.profile_id, event.metric_id, marker


class Store:
    def __init__(self):
        self.lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self._seq = itertools.count(1)
            self.profiles: dict[str, Profile] = {}
            self.owners: dict[str, dict] = {name: {} for name in IDENTIFIERS}  # field -> value -> profile id
            self.metrics: dict[str, Metric] = {}
            self.metric_ids: dict[str, str] = {}                               # name -> metric id
            self.events: dict[str, Event] = {}
            self.events_by_profile: dict[str, list[str]] = defaultdict(list)
            self.events_by_metric: dict[str, list[str]] = defaultdict(list)
            self.event_keys: dict[tuple, str] = {}                              # dedupe key -> event id
            self.lists: dict[str, KList] = {}
            self.segments: dict[str, Segment] = {}
            self.jobs: dict[str, object] = {}                                   # import + suppression jobs
            self.pending_imports: list[str] = []                                # import jobs not yet applied

    def next_seq(self) -> int:
        return next(self._seq)

    # -- profiles -------------------------------------------------------------------------------

    def owner(self, field: str, value) -> str | None:
        """Id of the profile holding identifier ``field == value``, if any."""
        return self.owners[field].get(normalise(field, value)) if value is not None else None

    def first_owner(self, identifiers: dict) -> str | None:
        """The profile matching ``identifiers``, tried in Klaviyo's order: email, phone, external id."""
        for name in IDENTIFIERS:
            pid = self.owner(name, identifiers.get(name))
            if pid is not None:
                return pid
        return None

    def new_profile(self, now: float) -> Profile:
        profile = Profile(id=ulid(now), seq=self.next_seq(), created=now, updated=now)
        self.profiles[profile.id] = profile
        return profile

    def set_identifier(self, profile: Profile, field: str, value) -> None:
        """Set (or clear, with None) an identifier and keep the owner index in step."""
        old = profile.fields[field]
        if old is not None:
            self.owners[field].pop(normalise(field, old), None)
        profile.fields[field] = normalise(field, value)
        if value is not None:
            self.owners[field][normalise(field, value)] = profile.id

    def delete_profile(self, pid: str) -> None:
        """Remove a profile with its events and memberships (data-privacy deletion)."""
        profile = self.profiles.pop(pid, None)
        if profile is None:
            return
        for name in IDENTIFIERS:
            if profile.fields[name] is not None:
                self.owners[name].pop(normalise(name, profile.fields[name]), None)
        for eid in self.events_by_profile.pop(pid, []):
            event = self.events.pop(eid)
            self.event_keys.pop(dedupe_key(event), None)
            self.events_by_metric[event.metric_id].remove(eid)
        for klist in self.lists.values():
            klist.members.pop(pid, None)

    # -- metrics and events ---------------------------------------------------------------------

    def metric_named(self, name: str, now: float) -> Metric:
        """The metric called ``name``, created on first use (one id per name)."""
        mid = self.metric_ids.get(name)
        if mid is None:
            metric = Metric(id=ulid(now), name=name, created=now)
            self.metrics[metric.id] = metric
            self.metric_ids[name] = mid = metric.id
        return self.metrics[mid]

    def add_event(self, event: Event) -> bool:
        """Record ``event`` unless its dedupe key was seen; False means it was dropped."""
        key = dedupe_key(event)
        if key in self.event_keys:
            return False
        self.event_keys[key] = event.id
        self.events[event.id] = event
        self.events_by_profile[event.profile_id].append(event.id)
        self.events_by_metric[event.metric_id].append(event.id)
        profile = self.profiles[event.profile_id]
        if profile.last_event_date is None or event.time > profile.last_event_date:
            profile.last_event_date = event.time
        return True

    # -- lists and segments ---------------------------------------------------------------------

    def _short_id(self) -> str:
        while True:
            candidate = short_id()
            if candidate not in self.lists and candidate not in self.segments:
                return candidate

    def new_list(self, name: str, opt_in_process: str, now: float) -> KList:
        klist = KList(id=self._short_id(), seq=self.next_seq(), name=name, created=now, updated=now,
                      opt_in_process=opt_in_process)
        self.lists[klist.id] = klist
        return klist

    def new_segment(self, name: str, definition: dict, is_starred: bool, now: float) -> Segment:
        segment = Segment(id=self._short_id(), seq=self.next_seq(), name=name, definition=definition, created=now,
                          updated=now, is_starred=is_starred)
        self.segments[segment.id] = segment
        return segment

    def join_list(self, klist: KList, pid: str, now: float) -> None:
        """Add a member; joining again keeps the original ``joined_group_at``. Consent is untouched."""
        if pid not in klist.members:
            klist.members[pid] = now
            klist.updated = now
