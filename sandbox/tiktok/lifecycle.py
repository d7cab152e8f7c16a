"""Order statuses and the timeline each order follows through them.

An order's life is planned up front as a list of steps (status, unix time):
UNPAID → ON_HOLD (paid; 1 h buyer-remorse window) → AWAITING_SHIPMENT →
(PARTIALLY_SHIPPING, for two-package orders) → AWAITING_COLLECTION →
IN_TRANSIT → DELIVERED → COMPLETED, or a CANCELLED step that ends it early,
before payment (no ``paid_time``) or after. Steps planned at or before
"now" are history; later steps wait for ``advance()``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

UNPAID, ON_HOLD, AWAITING_SHIPMENT = "UNPAID", "ON_HOLD", "AWAITING_SHIPMENT"
PARTIALLY_SHIPPING, AWAITING_COLLECTION, IN_TRANSIT = "PARTIALLY_SHIPPING", "AWAITING_COLLECTION", "IN_TRANSIT"
DELIVERED, COMPLETED, CANCELLED = "DELIVERED", "COMPLETED", "CANCELLED"

#: The forward path, in order. CANCELLED can interrupt it before shipping.
CHAIN = (UNPAID, ON_HOLD, AWAITING_SHIPMENT, PARTIALLY_SHIPPING, AWAITING_COLLECTION, IN_TRANSIT, DELIVERED,
         COMPLETED)
STATUSES = CHAIN + (CANCELLED,)
TERMINAL = frozenset({COMPLETED, CANCELLED})
SHIPPED = frozenset({PARTIALLY_SHIPPING, AWAITING_COLLECTION, IN_TRANSIT, DELIVERED, COMPLETED})

HOLD_SECONDS = 3600            #: the ON_HOLD buyer-remorse window
UNPAID_TIMEOUT = 24 * 3600     #: unpaid orders are cancelled by the system after this
HOUR, DAY = 3600, 86400

BUYER_REASONS = ["No longer needed", "Ordered by mistake", "Found a better price elsewhere",
                 "Need to change shipping address", "Need to change payment method"]
SELLER_REASONS = ["Out of stock", "Pricing error", "Unable to deliver to buyer address"]


@dataclass(frozen=True)
class Step:
    status: str
    at: int


@dataclass(frozen=True)
class Cancel:
    """Who cancelled and why; ``by_buyer_request`` marks a post-payment request the seller approved."""

    initiator: str
    reason: str
    by_buyer_request: bool = False


def _next_delay(rng: random.Random, status: str) -> int:
    """Seconds an order spends in ``status`` before the next forward step."""
    if status == UNPAID:
        return rng.randint(15, 600) if rng.random() < 0.9 else rng.randint(600, 6 * HOUR)
    if status == ON_HOLD:
        return HOLD_SECONDS
    if status == AWAITING_SHIPMENT:
        return rng.randint(3 * HOUR, int(2.5 * DAY))
    if status == PARTIALLY_SHIPPING:             # the second package waits for stock
        return rng.randint(12 * HOUR, 3 * DAY)
    if status == AWAITING_COLLECTION:
        return rng.randint(2 * HOUR, 30 * HOUR)
    if status == IN_TRANSIT:
        return rng.randint(int(1.5 * DAY), 6 * DAY)
    if status == DELIVERED:
        return rng.randint(7 * DAY, 10 * DAY)
    raise ValueError(f"no step after {status}")


def plan_forward(rng: random.Random, status: str, start: int, two_packages: bool) -> list[Step]:
    """The happy path after ``status`` (exclusive), starting the clock at ``start``."""
    steps, t = [], start
    if status in TERMINAL:
        return steps
    i = CHAIN.index(status)
    while CHAIN[i] != COMPLETED:
        t += _next_delay(rng, CHAIN[i])
        i += 1
        if CHAIN[i] == PARTIALLY_SHIPPING and not two_packages:
            i += 1
        steps.append(Step(CHAIN[i], t))
    return steps


def plan(rng: random.Random, create_time: int, two_packages: bool) -> tuple[list[Step], Cancel | None]:
    """A full timeline from creation, with roughly 10 % cancellations (about half before payment)."""
    path = [Step(UNPAID, create_time)] + plan_forward(rng, UNPAID, create_time, two_packages)
    r = rng.random()
    if r < 0.05:  # never paid
        if rng.random() < 0.45:
            return [path[0], Step(CANCELLED, create_time + rng.randint(120, 6 * HOUR))], \
                Cancel("BUYER", rng.choice(BUYER_REASONS))
        return [path[0], Step(CANCELLED, create_time + UNPAID_TIMEOUT)], Cancel("SYSTEM", "Payment overdue")
    if r < 0.075:  # buyer changes their mind during the remorse window
        paid = path[1].at
        return path[:2] + [Step(CANCELLED, paid + rng.randint(60, HOLD_SECONDS - 60))], \
            Cancel("BUYER", rng.choice(BUYER_REASONS))
    if r < 0.095:  # cancelled while awaiting shipment
        at = path[2].at + rng.randint(2 * HOUR, int(2 * DAY))
        roll = rng.random()
        if roll < 0.55:
            cancel = Cancel("SELLER", rng.choice(SELLER_REASONS))
        elif roll < 0.85:
            cancel = Cancel("BUYER", rng.choice(BUYER_REASONS), by_buyer_request=True)
        else:
            cancel = Cancel("SYSTEM", "Package not shipped within the fulfilment time limit")
        return path[:3] + [Step(CANCELLED, at)], cancel
    return path, None


def paid_at(history: list[Step]) -> int | None:
    """When the order left UNPAID for a paid status (a cancellation is not a payment)."""
    return next((s.at for s in history if s.status not in (UNPAID, CANCELLED)), None)


def first_at(history: list[Step], *statuses: str) -> int | None:
    return next((s.at for s in history if s.status in statuses), None)
