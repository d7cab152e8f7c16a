"""A claim lives as long as its task: a heartbeat renews the leases of the items a live task holds.

Claims carry a short lease (``KSYNC_ITEM_LEASE_SECONDS``, 30 s by default) so that work held
by a dead worker is free again, and re-sent by the sweeper, within about a minute of its death.
A live task that takes longer than its lease must not lose its claim (another task would send
the same records again), so one thread per worker process renews, every third of the lease,
the leases of the items its tasks have held for longer than that. Nearly every task finishes
well inside a third of the lease and never costs a renewal.

A worker that dies (or is frozen) stops renewing with it; that is the point.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Iterator, Sequence

log = logging.getLogger(__name__)


class _Heartbeat:
    def __init__(self, lease_seconds: float):
        self.lease_seconds = lease_seconds
        self.interval = max(1.0, lease_seconds / 3)
        self._held: dict[str, tuple[tuple[int, ...], float]] = {}  # owner -> (item ids, last renewed)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ksync-lease-heartbeat", daemon=True)
        self._thread.start()

    def hold(self, owner: str, ids: Sequence[int]) -> None:
        with self._lock:
            self._held[owner] = (tuple(ids), time.monotonic())

    def drop(self, owner: str) -> None:
        with self._lock:
            self._held.pop(owner, None)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval / 2)
            now = time.monotonic()
            with self._lock:
                due = [(owner, ids) for owner, (ids, renewed) in self._held.items() if now - renewed >= self.interval]
            for owner, ids in due:
                try:
                    renew(ids, owner, self.lease_seconds)
                except Exception as exc:  # the database may be briefly away; the next beat tries again
                    log.warning("could not renew the leases of %d item(s): %s", len(ids), type(exc).__name__)
                    continue
                with self._lock:
                    if owner in self._held:
                        self._held[owner] = (ids, now)


def renew(ids: Sequence[int], owner: str, lease_seconds: float) -> int:
    from db import history
    from db.engine import session_scope

    with session_scope() as session:
        return history.renew_leases(session, ids, owner, lease_seconds)


_beats: dict[tuple[int, float], _Heartbeat] = {}


def _heartbeat(lease_seconds: float) -> _Heartbeat:
    """This process's heartbeat thread, started on first use (after a prefork fork, in the child)."""
    key = (os.getpid(), lease_seconds)
    beat = _beats.get(key)
    if beat is None:
        beat = _beats[key] = _Heartbeat(lease_seconds)
    return beat


@contextlib.contextmanager
def held(owner: str, ids: Sequence[int], lease_seconds: float) -> Iterator[None]:
    """While the block runs, the claims of ``owner`` on ``ids`` are renewed before they lapse."""
    beat = _heartbeat(lease_seconds)
    beat.hold(owner, ids)
    try:
        yield
    finally:
        beat.drop(owner)
