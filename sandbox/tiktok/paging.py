"""Opaque ``next_page_token`` values: a keyset position plus a filter fingerprint.

A token is standard base64 (with ``+``, ``/`` and ``=``) of a small binary
record. It always starts with the bytes that encode as ``+/tt``, so every
real token exercises a client's percent-encoding: sent raw, ``+`` becomes a
space on the server and the signature and the token both break.

The record holds the store version at which paging began (``snapshot``), the
sort value and id of the last order served, a fingerprint of the filters and
sort, and a MAC so that a hand-made or truncated token is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass

MAGIC = base64.b64decode("+/tt")       #: 3 bytes → the first four token characters are always "+/tt"
_HEAD = struct.Struct(">BQqB")           # format version, snapshot, sort value, id length
_FORMAT = 1
_MAC_BYTES = 6


@dataclass(frozen=True)
class Position:
    snapshot: int
    value: int
    order_id: str
    fingerprint: bytes


def fingerprint(*parts) -> bytes:
    """8 bytes identifying a search: filters, sort field and order, store epoch."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).digest()[:8]


def encode(position: Position, key: bytes) -> str:
    oid = position.order_id.encode("utf-8")
    body = MAGIC + _HEAD.pack(_FORMAT, position.snapshot, position.value, len(oid)) + oid + position.fingerprint
    mac = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.b64encode(body + mac).decode("ascii")


def decode(token: str, key: bytes) -> Position:
    """The position in ``token``; ``ValueError`` if it is not one of ours, intact."""
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("page_token is not base64") from exc
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(raw) < len(MAGIC) + _HEAD.size + 8 + _MAC_BYTES or not body.startswith(MAGIC):
        raise ValueError("page_token is not a page token")
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]):
        raise ValueError("page_token was altered")
    fmt, snapshot, value, id_len = _HEAD.unpack_from(body, len(MAGIC))
    start = len(MAGIC) + _HEAD.size
    if fmt != _FORMAT or len(body) != start + id_len + 8:
        raise ValueError("page_token has the wrong layout")
    return Position(snapshot, value, body[start:start + id_len].decode("utf-8"), body[start + id_len:])
