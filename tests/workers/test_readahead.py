"""``read_ahead``: TikTok's pages read on a thread while the task plans (pure unit tests)."""
from __future__ import annotations

import threading
import time

import pytest

from tiktok import TikTokAPIError
from workers.readahead import read_ahead


def test_every_item_arrives_once_and_in_order():
    assert list(read_ahead(iter(range(1234)), chunk=100, depth=2)) == list(range(1234))
    assert list(read_ahead(iter([]))) == []


def test_an_error_of_the_reading_side_is_raised_in_the_caller_after_the_items_before_it():
    def pages():
        yield from range(250)
        raise TikTokAPIError("Too many requests", code=36009004, status=429)

    seen = []
    with pytest.raises(TikTokAPIError) as raised:
        for item in read_ahead(pages(), chunk=100):
            seen.append(item)
    assert seen == list(range(200))  # the half-read third chunk is not handed over
    assert raised.value.code == 36009004  # the same exception, for the task's error handling


def test_leaving_the_loop_early_stops_the_reading_thread():
    read = []

    def endless():
        n = 0
        while True:
            read.append(n)
            yield n
            n += 1

    items = read_ahead(endless(), chunk=10, depth=2)
    assert next(items) == 0
    items.close()
    time.sleep(0.5)
    stopped_at = len(read)
    time.sleep(0.5)
    assert len(read) == stopped_at <= 10 * (2 + 2)  # what was queued, the chunk being filled, no more
    assert not any(t.name == "ksync-read-ahead" and t.is_alive() for t in threading.enumerate())
