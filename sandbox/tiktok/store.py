"""The stand-in's orders: lookup, lifecycle moves, and stable keyset-paged search.

Paging is over a snapshot. Every change bumps ``version`` and appends the
order's new index key (times, status, buyer) to its history, so a search can
be evaluated "as of" the version at which its first page was served. Each
order that matched then is served exactly once across the pages, with its
current content; an order updated meanwhile is neither skipped nor repeated,
and its ``update_time`` may lie past the requested range (TikTok documents
the same effect). A fresh search (no page token) sees the latest state.
"""

from __future__ import annotations

import bisect
import os
import random
import threading
from collections import OrderedDict
from dataclasses import astuple, dataclass
from typing import NamedTuple

from . import lifecycle, paging
from .orders import OrderRecord

SORT_FIELDS = ("create_time", "update_time")
SORT_ORDERS = ("ASC", "DESC")
_VIEW_CACHE = 16


class IndexKey(NamedTuple):
    create_time: int
    update_time: int
    status: str | None
    user_id: str | None
    shipping_type: str


@dataclass(frozen=True)
class Filters:
    """The Search body filters; time ranges are half-open ``[ge, lt)``, a missing bound is open."""

    order_status: str | None = None
    create_time_ge: int | None = None
    create_time_lt: int | None = None
    update_time_ge: int | None = None
    update_time_lt: int | None = None
    buyer_user_id: str | None = None
    shipping_type: str | None = None

    @classmethod
    def parse(cls, body: dict) -> "Filters":
        """Validate the JSON body; ``ValueError`` for a wrong type or an unknown status."""
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        values = {}
        for name in ("order_status", "buyer_user_id", "shipping_type"):
            if body.get(name) is not None:
                if not isinstance(body[name], str):
                    raise ValueError(f"{name} must be a string")
                values[name] = body[name]
        for name in ("create_time_ge", "create_time_lt", "update_time_ge", "update_time_lt"):
            if body.get(name) is not None:
                if isinstance(body[name], bool) or not isinstance(body[name], int):
                    raise ValueError(f"{name} must be an integer")
                values[name] = body[name]
        if values.get("order_status") not in (None, *lifecycle.STATUSES):
            raise ValueError("unknown order_status")
        return cls(**values)

    def match(self, k: IndexKey) -> bool:
        return ((self.order_status is None or k.status == self.order_status)
                and (self.buyer_user_id is None or k.user_id == self.buyer_user_id)
                and (self.shipping_type is None or k.shipping_type == self.shipping_type)
                and (self.create_time_ge is None or k.create_time >= self.create_time_ge)
                and (self.create_time_lt is None or k.create_time < self.create_time_lt)
                and (self.update_time_ge is None or k.update_time >= self.update_time_ge)
                and (self.update_time_lt is None or k.update_time < self.update_time_lt))


class PageTokenError(ValueError):
    """A page token that is not ours, was altered, or belongs to another search."""


def _key(record: OrderRecord) -> IndexKey:
    data = record.data
    status = data.get("status") if isinstance(data.get("status"), str) else None
    user_id = data.get("user_id") if isinstance(data.get("user_id"), str) else None
    return IndexKey(record.plan.create_time, record.history[-1].at, status, user_id, record.plan.shipping_type)


class OrderStore:
    """All orders of one shop; thread-safe."""

    def __init__(self, records: list[OrderRecord], clock: int):
        self.lock = threading.RLock()
        self.records = {r.plan.id: r for r in records}
        self.clock = clock                      #: the lifecycle's virtual "now" (moved by advance)
        self.version = 0
        self.epoch = os.urandom(4).hex()        #: tokens from before a reset are refused
        self._mac_key = os.urandom(16)
        self._keys = {oid: [(0, _key(r))] for oid, r in self.records.items()}
        self._views: OrderedDict = OrderedDict()

    # -- lifecycle ---------------------------------------------------------------------------------------
    def _apply(self, record: OrderRecord, status: str, real_now: int) -> lifecycle.Step:
        step = lifecycle.Step(status, real_now)
        record.history.append(step)
        record.rerender()
        self.version += 1
        self._keys[record.plan.id].append((self.version, _key(record)))
        return step

    def advance(self, seconds: float, real_now: int) -> list[tuple[OrderRecord, lifecycle.Step]]:
        """Move the virtual clock on; each due step happens now (``update_time`` = real time)."""
        with self.lock:
            self.clock += int(seconds)
            moved = []
            for record in self.records.values():
                while record.pending and record.pending[0].at <= self.clock:
                    planned = record.pending.pop(0)
                    moved.append((record, self._apply(record, planned.status, real_now)))
            return moved

    def step(self, order_id: str, real_now: int) -> tuple[OrderRecord, lifecycle.Step] | None:
        """Apply the order's next planned step now, whatever its planned time; None if it has none."""
        with self.lock:
            record = self.records[order_id]
            if not record.pending:
                return None
            planned = record.pending.pop(0)
            return record, self._apply(record, planned.status, real_now)

    def movable(self) -> list[str]:
        """Ids of the orders that still have planned steps, oldest first."""
        with self.lock:
            return [oid for oid, r in self.records.items() if r.pending]

    def set_status(self, order_id: str, status: str, real_now: int, cancel_reason: str | None = None,
                   initiator: str = "SELLER") -> tuple[OrderRecord, lifecycle.Step]:
        """An explicit transition. Later steps are re-planned from here (none after a terminal status)."""
        if status not in lifecycle.STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self.lock:
            record = self.records[order_id]
            if status == lifecycle.CANCELLED:
                record.cancel = lifecycle.Cancel(initiator, cancel_reason or "Cancelled by seller")
            two = len(record.plan.package_ids) > 1
            rng = random.Random(f"{order_id}:{status}:{len(record.history)}")
            record.pending = [] if record.malformation else lifecycle.plan_forward(rng, status, self.clock, two)
            return record, self._apply(record, status, real_now)

    # -- reads -------------------------------------------------------------------------------------------
    def get(self, order_ids) -> list[dict]:
        with self.lock:
            return [self.records[i].data for i in order_ids if i in self.records]

    def all(self) -> list[dict]:
        with self.lock:
            return [r.data for r in self.records.values()]

    def _view(self, snapshot: int, filters: Filters, sort_field: str) -> list[tuple[int, str]]:
        cache_key = (snapshot, filters, sort_field)
        view = self._views.get(cache_key)
        if view is not None:
            self._views.move_to_end(cache_key)
            return view
        field = 0 if sort_field == "create_time" else 1
        view = []
        for oid, keys in self._keys.items():
            key = keys[-1][1]
            if keys[-1][0] > snapshot:
                key = next((k for v, k in reversed(keys) if v <= snapshot), None)
            if key is not None and filters.match(key):
                view.append((key[field], oid))
        view.sort()
        self._views[cache_key] = view
        if len(self._views) > _VIEW_CACHE:
            self._views.popitem(last=False)
        return view

    def search(self, filters: Filters, sort_field: str, sort_order: str, page_size: int,
               page_token: str | None) -> tuple[list[dict], str, int]:
        """One page: (orders, next_page_token or "" on the last page, total_count)."""
        fp = paging.fingerprint(astuple(filters), sort_field, sort_order, self.epoch)
        with self.lock:
            if page_token:
                try:
                    pos = paging.decode(page_token, self._mac_key)
                except ValueError as exc:
                    raise PageTokenError(str(exc)) from exc
                if pos.fingerprint != fp or pos.snapshot > self.version:
                    raise PageTokenError("page_token belongs to another search")
                snapshot, after = pos.snapshot, (pos.value, pos.order_id)
            else:
                snapshot, after = self.version, None
            view = self._view(snapshot, filters, sort_field)
            if sort_order == "ASC":
                start = 0 if after is None else bisect.bisect_right(view, after)
                page, more = view[start:start + page_size], start + page_size < len(view)
            else:
                end = len(view) if after is None else bisect.bisect_left(view, after)
                page, more = view[max(0, end - page_size):end][::-1], end - page_size > 0
            orders = [self.records[oid].data for _, oid in page]
            token = ""
            if more and page:
                token = paging.encode(paging.Position(snapshot, page[-1][0], page[-1][1], fp), self._mac_key)
            return orders, token, len(view)
