"""Accounts: ``GET /api/accounts`` answers the one account the private key belongs to.

Limits 1/s and 15/m (the spec's ``x-klaviyo-ratelimit``), counted, as every
limit here, against the account rather than the key. Klaviyo returns exactly
one account in the array (the operation's description); another account's id
is a 404, as it would be to its own keys' eyes.
"""

from __future__ import annotations

from flask import request

from .. import resources
from ..errors import not_found
from ..paging import collection_links
from ..web import account, respond, root, self_link, sparse_fields


def get_accounts():
    data = resources.sparse(account().resource(root()), sparse_fields())
    return respond({"data": [data], "links": collection_links(request.base_url, request.args, None, None)})


def get_account(id):
    if id != account().id:
        raise not_found(f"An account with id {id} does not exist.")
    data = resources.sparse(account().resource(root()), sparse_fields())
    return respond({"data": data, "links": self_link()})


ROUTES = [
    ("GET", "/accounts", get_accounts),
    ("GET", "/accounts/<id>", get_account),
]
