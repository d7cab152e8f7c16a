"""The Klaviyo account a private key belongs to (``GET /api/accounts``), as a value.

Klaviyo counts every private key of an account against the same rate limits,
so the account id, not the key, is what a shared limiter should be keyed by.
The response schema is ``AccountResponseObjectResource`` (2026-07-15); the
contact information is flattened onto ``KlaviyoAccount``.
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import EXCLUDE, Schema, fields, post_load


@dataclass(frozen=True)
class AccountAddress:
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None
    zip: str | None = None


@dataclass(frozen=True)
class KlaviyoAccount:
    """One Klaviyo account. ``public_api_key`` is the site id used by client-side calls (not a secret)."""

    account_id: str
    public_api_key: str | None = None
    test_account: bool | None = None
    organization_name: str | None = None
    default_sender_name: str | None = None
    default_sender_email: str | None = None
    website_url: str | None = None
    street_address: AccountAddress | None = None
    industry: str | None = None
    timezone: str | None = None
    preferred_currency: str | None = None
    locale: str | None = None

    def __repr__(self) -> str:
        return (f"KlaviyoAccount(account_id={self.account_id!r}, organization_name={self.organization_name!r}, "
                f"timezone={self.timezone!r}, preferred_currency={self.preferred_currency!r})")


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class _AddressSchema(_Lenient):
    address1 = fields.String(allow_none=True)
    address2 = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    zip = fields.String(allow_none=True)

    @post_load
    def _make(self, data, **kwargs) -> AccountAddress:
        return AccountAddress(**data)


class _ContactSchema(_Lenient):
    default_sender_name = fields.String(allow_none=True)
    default_sender_email = fields.String(allow_none=True)
    website_url = fields.String(allow_none=True)
    organization_name = fields.String(allow_none=True)
    street_address = fields.Nested(_AddressSchema, allow_none=True)


class _AccountAttributesSchema(_Lenient):
    test_account = fields.Boolean(allow_none=True)
    contact_information = fields.Nested(_ContactSchema, load_default=dict)
    industry = fields.String(allow_none=True)
    timezone = fields.String(allow_none=True)
    preferred_currency = fields.String(allow_none=True)
    public_api_key = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)


class AccountResourceSchema(_Lenient):
    """An ``account`` resource, read leniently (unknown fields ignored, everything but the id optional)."""

    id = fields.String(required=True)
    attributes = fields.Nested(_AccountAttributesSchema, load_default=dict)

    @post_load
    def _make(self, data, **kwargs) -> KlaviyoAccount:
        attributes = dict(data["attributes"])
        contact = attributes.pop("contact_information", None) or {}
        return KlaviyoAccount(account_id=data["id"], **attributes, **contact)


ACCOUNT_RESOURCE = AccountResourceSchema()
