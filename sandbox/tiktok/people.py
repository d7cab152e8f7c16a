"""Buyers and where they live: names, relay emails, phones, addresses, masking.

TikTok hides who a buyer is. Emails are relay addresses, and for orders
shipped with platform logistics the recipient name, phone and street are
desensitised (``"J*** D***"``, ``"(+1)213-***-1234"``). Seller-shipped orders
may carry the real name, an E.164 phone and the full street, which is what a
sync must treat as personal data. Phone numbers come from ranges reserved
for fiction (US 555-01xx, UK Ofcom drama ranges) where such ranges exist.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FIRST = ["James", "Maria", "Aaliyah", "Jose", "Emily", "Tyler", "Olivia", "Jamal", "Sofia", "Ethan",
         "Hannah", "Marcus", "Chloe", "Diego", "Priya", "Brandon", "Mia", "Kevin", "Ashley", "Noah",
         "Jasmine", "Luis", "Madison", "Andre", "Grace", "Ryan", "Zoe", "Carlos", "Layla", "Austin",
         "Kayla", "Daniel", "Nia", "Hunter", "Vanessa", "Logan", "Destiny", "Omar", "Brooke", "Mason"]
LAST = ["Smith", "Johnson", "Garcia", "Williams", "Brown", "Martinez", "Davis", "Rodriguez", "Miller",
        "Wilson", "Lopez", "Anderson", "Thomas", "Jackson", "Nguyen", "Patel", "Kim", "Robinson", "Lewis",
        "Walker", "Hernandez", "Young", "King", "Wright", "Scott", "Torres", "Hill", "Green", "Adams",
        "Baker", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Phillips", "Evans", "Turner"]
STREETS = ["Coleman Ave", "Oak St", "Maple Ave", "Washington Blvd", "Park Pl", "Sunset Dr", "Lakeview Ct",
           "Cedar Ln", "Elm St", "Highland Ave", "Pine St", "Main St", "Ridge Rd", "Willow Way", "Broadway"]
BUYER_MESSAGES = ["Please ship asap, it's a gift!", "Can you add a gift note? Happy birthday Mom",
                  "Leave at the back door please", "Is the pink one in stock?", "Thank you!!"]


@dataclass(frozen=True)
class Place:
    city: str
    l1: str          # state / province / prefecture name
    l1_iso: str
    l2: str          # county / district
    postal: str
    abbrev: str      # short form used in full_address
    phone: str       # national number pattern, '#' = random digit
    tax: str         # US sales tax rate applied to sub_total ("0" where VAT is included)


@dataclass(frozen=True)
class Region:
    code: str
    country: str
    calling: str
    email_domain: str
    level_names: tuple[str, str, str, str]
    places: tuple[Place, ...]


def _us(city, state, abbrev, county, postal, area, tax):
    return Place(city, state, f"US-{abbrev}", county, postal, abbrev, f"{area}55501##", tax)


US = Region("US", "United States", "1", "scs.tiktokw.us", ("Country", "State", "County", "City"), (
    _us("San Jose", "California", "CA", "Santa Clara County", "95110", "408", "0.0925"),
    _us("Los Angeles", "California", "CA", "Los Angeles County", "90012", "213", "0.095"),
    _us("San Francisco", "California", "CA", "San Francisco County", "94103", "415", "0.08625"),
    _us("Houston", "Texas", "TX", "Harris County", "77002", "713", "0.0825"),
    _us("Dallas", "Texas", "TX", "Dallas County", "75201", "214", "0.0825"),
    _us("Austin", "Texas", "TX", "Travis County", "78701", "512", "0.0825"),
    _us("New York", "New York", "NY", "New York County", "10001", "212", "0.08875"),
    _us("Brooklyn", "New York", "NY", "Kings County", "11201", "718", "0.08875"),
    _us("Miami", "Florida", "FL", "Miami-Dade County", "33130", "305", "0.07"),
    _us("Orlando", "Florida", "FL", "Orange County", "32801", "407", "0.065"),
    _us("Chicago", "Illinois", "IL", "Cook County", "60601", "312", "0.1025"),
    _us("Atlanta", "Georgia", "GA", "Fulton County", "30303", "404", "0.089"),
    _us("Phoenix", "Arizona", "AZ", "Maricopa County", "85004", "602", "0.086"),
    _us("Seattle", "Washington", "WA", "King County", "98101", "206", "0.1035"),
    _us("Denver", "Colorado", "CO", "Denver County", "80202", "303", "0.0881"),
    _us("Charlotte", "North Carolina", "NC", "Mecklenburg County", "28202", "704", "0.0725"),
    _us("Columbus", "Ohio", "OH", "Franklin County", "43215", "614", "0.075"),
    _us("Philadelphia", "Pennsylvania", "PA", "Philadelphia County", "19103", "215", "0.08"),
    _us("Portland", "Oregon", "OR", "Multnomah County", "97204", "503", "0"),
    _us("Nashville", "Tennessee", "TN", "Davidson County", "37203", "615", "0.0925"),
    _us("Las Vegas", "Nevada", "NV", "Clark County", "89101", "702", "0.08375"),
    _us("Newark", "New Jersey", "NJ", "Essex County", "07102", "973", "0.06625"),
))

OTHER_REGIONS = {
    "GB": Region("GB", "United Kingdom", "44", "chat.seller.tiktok.com", ("Country", "Country", "County", "Post town"), (
        Place("London", "England", "GB-ENG", "Greater London", "SW1A 2AA", "London", "2079460###", "0"),
        Place("Manchester", "England", "GB-ENG", "Greater Manchester", "M1 1AE", "Manchester", "1614960###", "0"),
        Place("Birmingham", "England", "GB-ENG", "West Midlands", "B1 1BB", "Birmingham", "1214960###", "0"))),
    "DE": Region("DE", "Germany", "49", "chat.seller.tiktok.com", ("Country", "State", "District", "City"), (
        Place("Berlin", "Berlin", "DE-BE", "Mitte", "10115", "Berlin", "30########", "0"),
        Place("München", "Bayern", "DE-BY", "Oberbayern", "80331", "München", "89#########", "0"))),
    "JP": Region("JP", "Japan", "81", "chat.seller.tiktok.com", ("Country", "Prefecture", "City", "Ward"), (
        Place("Shibuya", "Tokyo", "JP-13", "Tokyo", "150-0002", "Tokyo", "90########", "0"),
        Place("Kita", "Osaka", "JP-27", "Osaka", "530-0001", "Osaka", "80########", "0"))),
    "KR": Region("KR", "South Korea", "82", "chat.seller.tiktok.com", ("Country", "Province", "City", "District"), (
        Place("Gangnam-gu", "Seoul", "KR-11", "Seoul", "06236", "Seoul", "10########", "0"),)),
    "ID": Region("ID", "Indonesia", "62", "chat.seller.tiktok.com", ("Country", "Province", "City", "District"), (
        Place("Menteng", "DKI Jakarta", "ID-JK", "Jakarta Pusat", "10310", "Jakarta", "812########", "0"),
        Place("Coblong", "Jawa Barat", "ID-JB", "Bandung", "40132", "Bandung", "813########", "0"))),
    "VN": Region("VN", "Vietnam", "84", "chat.seller.tiktok.com", ("Country", "Province", "District", "Ward"), (
        Place("Quận 1", "Hồ Chí Minh", "VN-SG", "Hồ Chí Minh", "700000", "TP.HCM", "91#######", "0"),
        Place("Hoàn Kiếm", "Hà Nội", "VN-HN", "Hà Nội", "100000", "Hà Nội", "98#######", "0"))),
}

CURRENCY_REGION = {"USD": "US", "GBP": "GB", "EUR": "DE", "JPY": "JP", "KRW": "KR", "IDR": "ID", "VND": "VN"}


def region_for(currency: str) -> Region:
    """The buyers' country for a shop currency (unknown currencies get US buyers)."""
    return OTHER_REGIONS.get(CURRENCY_REGION.get(currency.upper(), "US"), US)


@dataclass(frozen=True)
class Buyer:
    """One TikTok buyer; the same person (id, relay email, address) on every order they place."""

    user_id: str
    email: str | None
    first: str
    last: str
    place: Place
    street: str
    unit: str
    national_phone: str


def make_buyer(rng: random.Random, region: Region, n: int, with_email: bool) -> Buyer:
    """Buyer number ``n`` of a pool; ``with_email=False`` gives an external-id-only buyer."""
    user_id = str(7494000000000000000 + n * 9_999_991 + rng.randrange(9_999_991))
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    email = "".join(rng.choices(alphabet, k=22)) + "@" + region.email_domain if with_email else None
    place = rng.choice(region.places)
    street = f"{rng.randrange(12, 9800)} {rng.choice(STREETS)}"
    unit = f"Apt {rng.randrange(1, 40)}{rng.choice('ABCD')}" if rng.random() < 0.3 else ""
    phone = "".join(str(rng.randrange(10)) if ch == "#" else ch for ch in place.phone)
    return Buyer(user_id, email, rng.choice(FIRST), rng.choice(LAST), place, street, unit, phone)


def e164(region: Region, national: str) -> str:
    return f"+{region.calling}{national}"


def mask_phone(region: Region, national: str) -> str:
    """``(+1)213-***-1234`` for US numbers, ``(+44)20****0123`` style elsewhere."""
    if region.code == "US":
        return f"(+1){national[:3]}-***-{national[-4:]}"
    return f"(+{region.calling}){national[:2]}****{national[-4:]}"


def mask_word(word: str) -> str:
    return word[:1] + "***"


def mask_street(street: str) -> str:
    """``1199 Coleman Ave`` → ``1*** C*** Ave``: the suffix stays, number and name do not."""
    words = street.split()
    return " ".join([mask_word(w) for w in words[:-1]] + words[-1:])


def recipient_address(region: Region, buyer: Buyer, masked: bool) -> dict:
    """The ``recipient_address`` object, desensitised unless the seller ships it."""
    p = buyer.place
    first, last = (mask_word(buyer.first), mask_word(buyer.last)) if masked else (buyer.first, buyer.last)
    line1 = mask_street(buyer.street) if masked else buyer.street
    line2 = ("***" if masked else buyer.unit) if buyer.unit else ""
    street = f"{line1} {line2}".strip()
    if region.code == "US":
        full = f"{street}, {p.city}, {p.abbrev} {p.postal}"
    else:
        full = f"{street}, {p.city}, {p.l1} {p.postal}"
    names = region.level_names
    return {
        "name": f"{first} {last}",
        "first_name": first,
        "last_name": last,
        "phone_number": mask_phone(region, buyer.national_phone) if masked else e164(region, buyer.national_phone),
        "full_address": full,
        "address_detail": street,
        "address_line1": line1,
        "address_line2": line2,
        "address_line3": "",
        "address_line4": "",
        "postal_code": p.postal,
        "region_code": region.code,
        "district_info": [
            {"address_level": "L0", "address_level_name": names[0], "address_name": region.country,
             "iso_code": region.code},
            {"address_level": "L1", "address_level_name": names[1], "address_name": p.l1, "iso_code": p.l1_iso},
            {"address_level": "L2", "address_level_name": names[2], "address_name": p.l2, "iso_code": ""},
            {"address_level": "L3", "address_level_name": names[3], "address_name": p.city, "iso_code": ""},
        ],
    }
