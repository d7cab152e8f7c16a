"""A worker serves its queues in the order its -Q lists them, so a backfill only gets the processes
nothing else wants. Real Redis, kombu with ksync's transport options; no worker needed."""
from __future__ import annotations

import socket

from kombu import Connection, Exchange, Queue

import celeryconfig
from sandbox.stack import ALL_QUEUES


def test_a_free_worker_takes_every_waiting_incremental_message_before_a_backfill_one(redis_url):
    # Defect: kombu took a worker's queues in turn, so while one connection backfilled, every other
    # free process went to its queue and another connection's incremental sync was sent at half speed.
    queues = {name: Queue(f"order-test-{name}", Exchange(f"order-test-{name}", type="direct"),
                          routing_key=f"order-test-{name}") for name in ALL_QUEUES.split(",")}
    received: list[str] = []
    with Connection(redis_url, transport_options=celeryconfig.broker_transport_options) as connection:
        producer = connection.Producer()
        for name in ("backfill", "backfill", "sync", "sync", "events"):
            queue = queues[name]
            producer.publish({"queue": name}, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue])

        def take(body, message):
            received.append(body["queue"])
            message.ack()

        with connection.Consumer(list(queues.values()), callbacks=[take], prefetch_count=1):
            while len(received) < 5:
                try:
                    connection.drain_events(timeout=5)
                except socket.timeout:
                    break
    assert received == ["sync", "sync", "events", "backfill", "backfill"]
