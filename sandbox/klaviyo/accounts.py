"""Several Klaviyo accounts in one stand-in, each with its private keys, its data and its rate-limit windows.

Klaviyo counts every private key of an account against the same limits, and a
key only ever reads and writes its own account's data. So an ``Account`` owns
one ``Store`` (profiles, events, metrics, lists, segments, import jobs), one
``Catalog``, one set of ``Counters``, and the limiter keys its windows by the
account id, never by the key.

Accounts are given as a mapping, the first entry being the default account
(the one ``KlaviyoStandIn.api_key``, ``.state()``, ``.summary()``... address)::

    {"AbC123": ("pk_a", "pk_a_second"),
     "XyZ789": {"api_keys": ("pk_b",), "timezone": "Europe/Paris", "preferred_currency": "EUR",
                "contact_information": {"organization_name": "Shop B"}}}

Without one, a single account holds ``api_keys``; its id is derived from the
first key, so a restarted stand-in reports the same id for the same key.

An account's id doubles as its public API key, as Klaviyo's six-character site
ids do (the spec gives ``AbC123`` as the example of both).
"""

from __future__ import annotations

import copy
import hashlib
import string
from dataclasses import dataclass, field

from .catalog import Catalog
from .counters import Counters
from .store import Store

DEFAULT_KEY = "pk_test_ksync"
_ALPHABET = string.ascii_letters + string.digits

#: Attributes of ``GET /api/accounts`` for an account configured without any (spec: AccountResponseObjectResource).
DEFAULT_ATTRIBUTES = {
    "test_account": False,
    "contact_information": {
        "default_sender_name": "ksync Test Shop",
        "default_sender_email": "hello@shop.example.com",
        "website_url": "https://shop.example.com",
        "organization_name": "ksync Test Shop",
        "street_address": {"address1": "125 Summer Street", "address2": "5th Floor", "city": "Boston",
                           "region": "MA", "country": "US", "zip": "02110"},
    },
    "industry": "Retail",
    "timezone": "US/Eastern",
    "preferred_currency": "USD",
    "locale": "en-US",
}


def account_id_for(key: str) -> str:
    """A stable six-character account id derived from a private key."""
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    chars = []
    for _ in range(6):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


@dataclass
class Account:
    id: str
    api_keys: tuple
    attributes: dict
    store: Store = field(default_factory=Store)
    catalog: Catalog = field(default_factory=Catalog)
    counters: Counters = field(default_factory=Counters)

    def resource_attributes(self) -> dict:
        """``attributes`` of the account resource; the public API key is the account id."""
        return {**copy.deepcopy(self.attributes), "public_api_key": self.id}

    def resource(self, root: str) -> dict:
        """The ``account`` resource (spec: ``AccountResponseObjectResource``)."""
        return {"type": "account", "id": self.id, "attributes": self.resource_attributes(),
                "links": {"self": f"{root}/api/accounts/{self.id}/"}}

    def clear(self) -> None:
        """Forget the account's data and counters (its keys and attributes stay)."""
        with self.store.lock:
            self.store.clear()
            self.catalog.clear()
        self.counters.reset()


def _attributes(overrides: dict) -> dict:
    attributes = copy.deepcopy(DEFAULT_ATTRIBUTES)
    for name, value in overrides.items():
        if name == "contact_information":
            attributes[name].update(value)
        elif name in attributes:
            attributes[name] = value
        else:
            raise ValueError(f"unknown account attribute {name!r}")
    return attributes


def build_accounts(api_keys=None, accounts: dict | None = None) -> list[Account]:
    """The accounts a stand-in serves, the default first. ``api_keys`` and ``accounts`` exclude each other."""
    if accounts is not None and api_keys is not None:
        raise ValueError("give api_keys (one account) or accounts (several), not both")
    if accounts is None:
        keys = (api_keys,) if isinstance(api_keys, str) else tuple(api_keys or (DEFAULT_KEY,))
        accounts = {account_id_for(keys[0]): keys}
    built, seen = [], set()
    for account_id, spec in accounts.items():
        spec = dict(spec) if isinstance(spec, dict) else {"api_keys": spec}
        keys = spec.pop("api_keys", ())
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        if not keys:
            raise ValueError(f"account {account_id!r} has no private key")
        if seen & set(keys):
            raise ValueError(f"account {account_id!r} repeats a private key of another account")
        seen.update(keys)
        built.append(Account(id=str(account_id), api_keys=keys, attributes=_attributes(spec)))
    if not built:
        raise ValueError("a stand-in needs at least one account")
    return built


class Accounts:
    """The accounts of one stand-in, found by private key (per request) or by id or key (admin)."""

    def __init__(self, accounts: list[Account]):
        self.all = list(accounts)
        self.default = self.all[0]
        self.by_key = {key: account for account in self.all for key in account.api_keys}
        self.by_id = {account.id: account for account in self.all}

    def find(self, id_or_key: str | None = None) -> Account:
        """The account with this id or private key (default: the default account); KeyError if none."""
        if id_or_key is None:
            return self.default
        found = self.by_id.get(id_or_key) or self.by_key.get(id_or_key)
        if found is None:
            raise KeyError("no account with that id or private key")
        return found

    def __iter__(self):
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)
