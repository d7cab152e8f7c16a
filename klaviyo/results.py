"""``Results``: what the client's collection calls return, a list that reads its pages lazily.

The seed's users treat ``get_events(...)`` as a list (``len(events)``, ``events[:5]``);
a generator breaks both. A plain list would read every page before returning, which
for a busy profile is thousands of events nobody looks at. ``Results`` is a read-only
sequence that reads pages only as far as it is asked to, and keeps what it read:

    >>> events = client.get_events(profile_id=pid)   # doctest: +SKIP
    >>> events[:5]        # reads the first page only
    >>> len(events)       # reads the rest, once
    >>> for e in events:  # no request: everything is already here
    ...     print(e.metric_name)

Errors surface where the page is read (``KlaviyoAPIError`` from ``len()``, an index or
the loop), as they did with the generator.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

__all__ = ["Results"]


class Results(Sequence[T]):
    """A sequence over ``items`` (an iterator that fetches pages as it goes), read on demand."""

    def __init__(self, items: Iterable[T]):
        self._source: Iterator[T] | None = iter(items)
        self._read: list[T] = []

    def _fill(self, count: int | None = None) -> None:
        """Read until ``count`` items are here (None: to the end)."""
        while self._source is not None and (count is None or len(self._read) < count):
            try:
                self._read.append(next(self._source))
            except StopIteration:
                self._source = None

    def __iter__(self) -> Iterator[T]:
        index = 0
        while True:
            self._fill(index + 1)
            if index >= len(self._read):
                return
            yield self._read[index]
            index += 1

    def __len__(self) -> int:
        self._fill()
        return len(self._read)

    def __bool__(self) -> bool:
        self._fill(1)
        return bool(self._read)

    def __getitem__(self, index):
        if isinstance(index, slice):
            bounds = (index.start, index.stop)
            ahead = all(b is None or b >= 0 for b in bounds) and (index.step or 1) > 0 and index.stop is not None
            self._fill(index.stop if ahead else None)
            return self._read[index]
        self._fill(index + 1 if index >= 0 else None)
        return self._read[index]

    def __eq__(self, other) -> bool:
        if isinstance(other, (Results, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # a list-like value, compared by content

    def __repr__(self) -> str:
        more = ", more not read yet" if self._source is not None else ""
        return f"<Results: {len(self._read)} read{more}>"
