"""Identifiers shaped like Klaviyo's.

Profiles, events, metrics and jobs get 26-character ULIDs (Crockford base32,
48-bit millisecond time then 80 random bits), e.g. ``01J9Z8Q6T4M2XW3B5C7D9E1F0G``.
Lists and segments get 6-character alphanumeric ids, e.g. ``Y6nRLr``.
Clients must treat both as opaque strings; the shapes only make logs and
fixtures look like the real thing.
"""

from __future__ import annotations

import hashlib
import os
import random
import string
import time
import uuid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SHORT_ALPHABET = string.ascii_letters + string.digits
#: Two base32 characters for every 10-bit value: a ULID is 13 lookups (bulk requests make a thousand at a time).
_PAIRS = [a + b for a in CROCKFORD for b in CROCKFORD]


def ulid(now: float | None = None) -> str:
    """A new 26-character ULID for ``now`` (epoch seconds, default the current time)."""
    millis = int((time.time() if now is None else now) * 1000) & 0xFFFF_FFFF_FFFF
    n = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join([_PAIRS[(n >> shift) & 0x3FF] for shift in range(120, -1, -10)])


def short_id() -> str:
    """A new 6-character list/segment id; callers retry on the (rare) collision."""
    return "".join(random.choices(SHORT_ALPHABET, k=6))


def request_uuid() -> str:
    """A random UUID, as used for error ids."""
    return str(uuid.uuid4())


def event_uuid(event_id: str) -> str:
    """An event's ``uuid`` attribute: stable for the event, derived from its id when rendered."""
    return str(uuid.UUID(bytes=hashlib.md5(event_id.encode()).digest(), version=4))
