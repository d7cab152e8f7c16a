"""Read TikTok's pages on a thread while the task plans the ones already read.

A streaming read alternates between waiting (for TikTok's next page, for PostgreSQL to take a batch)
and working (parsing orders, planning them). One thread for each lets one wait while the other works:
psycopg2 and socket reads release the GIL. The consumer sees the same items in the same order, and
an error of the reading side is raised in the consumer, where the task's error handling is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Items handed over at a time (a TikTok page), and how many such chunks may wait: at most 1,000
#: orders read ahead, the size of one planning batch, so memory stays bounded by a batch or two.
CHUNK = 100
DEPTH = 10
_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(items: Iterable[T], chunk: int = CHUNK, depth: int = DEPTH) -> Iterator[T]:
    """Iterate ``items`` on a daemon thread, up to ``chunk * depth`` items ahead of the caller.
    Closing the returned generator (or leaving its loop early) stops the thread at its next item."""
    handover: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                handover.put(value, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            batch: list[T] = []
            for item in items:
                batch.append(item)
                if len(batch) >= chunk:
                    if not put(batch):
                        return
                    batch = []
            if batch and not put(batch):
                return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failed(error))

    reader = threading.Thread(target=produce, name="ksync-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            got = handover.get()
            if got is _DONE:
                return
            if isinstance(got, _Failed):
                raise got.error
            yield from got
    finally:
        stop.set()
