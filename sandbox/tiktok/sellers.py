"""Sellers: who authorized the app, which shops their token pair covers.

Each seller has its own ``TokenBook``; an access token belongs to exactly one
seller, and every shop-scoped request must name a cipher of one of that
seller's shops. A seller with shops in more than one region is cross-border
(``seller_type`` CROSS_BORDER on each of its shops).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

from .tokens import TokenBook


@dataclass
class Seller:
    key: str
    open_id: str
    name: str
    base_region: str
    tokens: TokenBook
    shops: list = field(default_factory=list)
    deauthorized: bool = False

    @classmethod
    def build(cls, key: str, index: int, first_shop, seed, app_key: str, ttl: int) -> "Seller":
        """The first seller keeps the single-shop stand-in's identity and first token pair."""
        if index == 0:
            return cls(key, first_shop.open_id, first_shop.name, first_shop.region, TokenBook(ttl, seed, app_key))
        rng = random.Random(f"{seed}:seller:{key}")
        open_id = "".join(rng.choices(string.ascii_letters + string.digits + "-_", k=43))
        return cls(key, open_id, f"{first_shop.name} Ltd", first_shop.region,
                   TokenBook(ttl, f"{seed}:{key}", app_key))

    def finish(self) -> None:
        """Mark every shop cross-border once the seller sells in more than one region."""
        if len({s.region for s in self.shops}) > 1:
            for shop in self.shops:
                shop.seller_type = "CROSS_BORDER"

    def summary(self) -> dict:
        return {"key": self.key, "open_id": self.open_id, "seller_name": self.name,
                "seller_base_region": self.base_region, "shop_ciphers": [s.cipher for s in self.shops],
                "deauthorized": self.deauthorized}
