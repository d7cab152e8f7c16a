"""Live segment membership from a stored ``SegmentDefinition``.

A profile is a member when every condition group holds, and a group holds when
any of its conditions does (Klaviyo: groups AND, conditions OR).

Evaluated:

* ``profile-property`` on custom properties (``properties['name']``) and the
  standard attributes (``email``, ``first_name``, ``location.city``/``city``,
  ``created``...), with the string, numeric, boolean, existence, list and date
  filters (static and relative dates; not calendar-month/anniversary).
* ``profile-marketing-consent`` for email and SMS (``can_receive_marketing`` plus
  ``subscription`` any/subscribed/unsubscribed/never_subscribed; sub-filters ignored).
* ``profile-group-membership`` for list ids (not segment ids; timeframe ignored).
* ``profile-metric``: count or sum of ``value`` of a metric's events in a
  timeframe, optionally narrowed by ``metric_filters`` on event properties.

Anything else (regions, predictive analytics, postal distance, custom objects,
permissions, funnels, push) is **not evaluated**: the condition is skipped, a
group with nothing left always holds, and ``unsupported()`` describes what was
skipped so the route can say so in ``meta``.
"""

from __future__ import annotations

import re

from .consent import can_receive_email, can_receive_sms
from .model import LOCATION_FIELDS, Profile, Segment
from .store import Store
from .times import parse_iso

UNITS = {"hour": 3600, "day": 86400, "week": 7 * 86400}
_CUSTOM = re.compile(r"""^properties\[(['"])(.*)\1\]$""")
_STRING_OPS = {"equals", "not-equals", "contains", "not-contains", "starts-with", "not-starts-with", "ends-with",
               "not-ends-with", "regex", "nregex", "in", "not-in"}
_NUMERIC_OPS = {"equals": lambda a, b: a == b, "not-equals": lambda a, b: a != b, "greater-than": lambda a, b: a > b,
                "greater-than-or-equal": lambda a, b: a >= b, "less-than": lambda a, b: a < b,
                "less-than-or-equal": lambda a, b: a <= b}
_DATE_OPS = {"after", "before", "between-static", "in-the-last", "at-least", "in-the-next", "between", "alltime"}


#: What a malformed stored condition can raise while being checked or evaluated.
_MALFORMED = (AttributeError, KeyError, TypeError, ValueError, re.error)


class _Unsupported(Exception):
    pass


def unsupported(definition: dict) -> list[str]:
    """Human-readable notes for every condition the stand-in will skip."""
    notes = []
    for g, group in enumerate(definition.get("condition_groups") or []):
        for c, condition in enumerate(group.get("conditions") or []):
            try:
                _check(condition)
            except _Unsupported as why:
                notes.append(f"condition_groups[{g}].conditions[{c}] ({condition.get('type')}): {why}")
            except _MALFORMED:
                notes.append(f"condition_groups[{g}].conditions[{c}]: malformed, not evaluated")
    return notes


def members(store: Store, segment: Segment, now: float) -> list[Profile]:
    """Profiles in the segment right now, in creation order. Caller holds ``store.lock``."""
    groups = []
    for group in segment.definition.get("condition_groups") or []:
        usable = [c for c in group.get("conditions") or [] if _supported(c)]
        if usable:
            groups.append(usable)
    return [p for p in store.profiles.values()
            if all(any(_safe_holds(store, p, c, now) for c in group) for group in groups)]


def _supported(condition) -> bool:
    try:
        _check(condition)
        return True
    except (_Unsupported, *_MALFORMED):
        return False


def _safe_holds(store: Store, profile: Profile, condition: dict, now: float) -> bool:
    """A condition whose values do not fit its filter (e.g. a regex that does not compile) never holds."""
    try:
        return _holds(store, profile, condition, now)
    except _MALFORMED:
        return False


def _check(condition: dict) -> None:
    kind = condition.get("type")
    if kind == "profile-property":
        _check_filter(condition.get("filter") or {})
    elif kind == "profile-marketing-consent":
        if (condition.get("consent") or {}).get("channel") not in ("email", "sms"):
            raise _Unsupported("only email and sms consent are evaluated")
    elif kind == "profile-group-membership":
        return
    elif kind == "profile-metric":
        _check_filter(condition.get("timeframe_filter") or {})
        for metric_filter in condition.get("metric_filters") or []:
            _check_filter(metric_filter.get("filter") or {})
    else:
        raise _Unsupported("condition type not simulated")


def _check_filter(flt: dict) -> None:
    kind, op = flt.get("type"), flt.get("operator")
    if kind == "date" and op not in _DATE_OPS:
        raise _Unsupported(f"date operator {op!r} not simulated")
    if kind == "string" and op not in _STRING_OPS:
        raise _Unsupported(f"string operator {op!r} not simulated")
    if kind not in ("string", "numeric", "boolean", "existence", "list", "date"):
        raise _Unsupported(f"filter type {kind!r} not simulated")


def _holds(store: Store, profile: Profile, condition: dict, now: float) -> bool:
    kind = condition["type"]
    if kind == "profile-property":
        return filter_holds(condition["filter"], profile_value(profile, condition.get("property", "")), now)
    if kind == "profile-marketing-consent":
        return _consent_holds(profile, condition["consent"])
    if kind == "profile-group-membership":
        inside = any(profile.id in store.lists[g].members for g in condition.get("group_ids") or [] if g in store.lists)
        return inside == bool(condition.get("is_member"))
    return _metric_holds(store, profile, condition, now)


def profile_value(profile: Profile, name: str):
    """The value a ``profile-property`` condition reads: custom property or standard attribute."""
    custom = _CUSTOM.match(name)
    if custom:
        return profile.properties.get(custom.group(2))
    name = name.lstrip("$").removeprefix("location.")
    if name in profile.fields:
        return profile.fields[name]
    if name in LOCATION_FIELDS:
        return profile.location.get(name)
    if name in ("created", "updated", "last_event_date"):
        return getattr(profile, name)
    return profile.properties.get(name)


def _consent_holds(profile: Profile, consent: dict) -> bool:
    channel = consent.get("channel")
    marketing = profile.email_marketing if channel == "email" else profile.sms_marketing
    can = can_receive_email(profile) if channel == "email" else can_receive_sms(profile)
    if can != bool(consent.get("can_receive_marketing")):
        return False
    wanted = (consent.get("consent_status") or {}).get("subscription", "any")
    return wanted == "any" or marketing.status == wanted.upper()


def _metric_holds(store: Store, profile: Profile, condition: dict, now: float) -> bool:
    total = 0.0
    for eid in store.events_by_profile.get(profile.id, []):
        event = store.events[eid]
        if event.metric_id != condition.get("metric_id"):
            continue
        if not filter_holds(condition.get("timeframe_filter") or {"type": "date", "operator": "alltime"}, event.time, now):
            continue
        if not all(filter_holds(f.get("filter") or {"type": "existence", "operator": "is-set"},
                                event.properties.get(f.get("property")), now)
                   for f in condition.get("metric_filters") or []):
            continue
        total += (event.value or 0) if condition.get("measurement") == "sum" else 1
    measure = condition.get("measurement_filter") or {}
    return _NUMERIC_OPS.get(measure.get("operator"), lambda a, b: False)(total, measure.get("value"))


def filter_holds(flt: dict, actual, now: float) -> bool:
    """One spec filter (``StringOperatorStringFilter``, ``NumericOperatorNumericFilter``, ...) on a value."""
    kind, op, want = flt.get("type"), flt.get("operator"), flt.get("value")
    if kind == "existence":
        is_set = actual not in (None, "", [])
        return is_set if op == "is-set" else not is_set
    if kind == "date":
        return _date_holds(flt, actual, now)
    if kind == "list":
        return _list_holds(op, want, actual)
    negated = op.startswith("not-") or op == "nregex"
    if actual is None:
        return negated
    if kind == "numeric":
        number = _number(actual)
        return number is not None and _NUMERIC_OPS[op](number, want)
    if kind == "boolean":
        return (str(actual).lower() == "true" if isinstance(actual, str) else actual) == want
    text = str(actual)
    checks = {"equals": lambda: text == want, "contains": lambda: str(want) in text,
              "starts-with": lambda: text.startswith(str(want)), "ends-with": lambda: text.endswith(str(want)),
              "regex": lambda: re.search(str(want), text) is not None, "in": lambda: text in (want or [])}
    base = {"not-equals": "equals", "not-contains": "contains", "not-starts-with": "starts-with",
            "not-ends-with": "ends-with", "nregex": "regex", "not-in": "in"}.get(op, op)
    return checks[base]() != negated


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _list_holds(op: str, want, actual) -> bool:
    items = actual if isinstance(actual, list) else ([] if actual is None else [actual])
    wanted = want if isinstance(want, list) else [want]
    if op.startswith("length-"):
        return _NUMERIC_OPS[op.removeprefix("length-")](len(items), want)
    result = {"contains": lambda: want in items, "contains-all": lambda: all(w in items for w in wanted),
              "contains-any": lambda: any(w in items for w in wanted),
              "contains-substring": lambda: any(str(want) in str(i) for i in items)}
    base = op.removeprefix("not-")
    return result[base]() != op.startswith("not-") if base in result else False


def _date_holds(flt: dict, actual, now: float) -> bool:
    op = flt.get("operator")
    if op == "alltime":
        return True
    if actual is None:
        return False
    try:
        when = float(actual) if isinstance(actual, (int, float)) else parse_iso(actual)
        if op == "after":
            return when > parse_iso(flt["date"])
        if op == "before":
            return when < parse_iso(flt["date"])
        if op == "between-static":
            return parse_iso(flt["start"]) <= when <= parse_iso(flt["end"])
        unit = UNITS[flt["unit"]]
        if op == "in-the-last":
            return now - flt["quantity"] * unit <= when <= now
        if op == "at-least":
            return when <= now - flt["quantity"] * unit
        if op == "in-the-next":
            return now <= when <= now + flt["quantity"] * unit
        if op == "between":
            return now - flt["end"] * unit <= when <= now - flt["start"] * unit
    except (KeyError, TypeError, ValueError):
        return False
    return False
