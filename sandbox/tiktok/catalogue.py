"""A fixed, realistic TikTok Shop catalogue: 60 products, about 150 SKUs.

Prices are USD list prices (converted per shop currency in ``money``); ids,
seller SKUs and image URLs are derived deterministically from one private
seed so every stand-in and every seed shares the same shelf.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

# (product name, USD price, variants). A variant is a name or (name, USD price).
PRODUCTS = [
    ("Heatless Curling Rod Headband", "12.99", ["Pink", "Black", "Champagne"]),
    ("Sunset Projection Lamp", "19.99", ["Rainbow", "Sunset Red", "Golden Hour"]),
    ("Insulated Tumbler 40oz with Handle", "29.99", ["Rose Quartz", "Black", "Sage", "Cream"]),
    ("Hydrating Lip Oil", "9.99", ["Cherry", "Clear", "Berry", "Mint"]),
    ("Vitamin C Brightening Serum", "18.50", ["30ml", ("60ml", "32.00")]),
    ("Snail Mucin Power Essence", "21.00", ["100ml", ("200ml", "34.00")]),
    ("High Waist Lifting Leggings", "24.99", ["Black / S", "Black / M", "Black / L", "Navy / M", "Navy / L"]),
    ("Oversized Fleece Hoodie", "34.99", ["Grey / M", "Grey / L", "Black / M", "Black / L", "Sage / M"]),
    ("Cloud Pillow Slides", "19.99", ["US 7", "US 8", "US 9", "US 10", "US 11"]),
    ("Magnetic Car Phone Mount", "15.99", ["Default"]),
    ("Wireless Earbuds Pro ANC", "39.99", ["White", "Black"]),
    ("Portable Mini Blender 380ml", "29.99", ["Pink", "Blue", "White"]),
    ("Electric Spin Scrubber", "45.99", ["Default"]),
    ("Cordless Handheld Car Vacuum", "32.99", ["Default"]),
    ("Mushroom Coffee Blend 30 Servings", "39.00", ["Original", "Mocha"]),
    ("Collagen Peptides Powder 20oz", "27.99", ["Unflavored", "Vanilla"]),
    ("Gummy Multivitamin", "16.99", ["60ct", ("120ct", "29.99")]),
    ("Scalp Massager Shampoo Brush", "7.99", ["Green", "Pink", "Grey"]),
    ("Press-On Nails Set 24pcs", "11.99", ["Almond Nude", "French Tip", "Chrome Pink", "Glazed Donut", "Black Cat Eye"]),
    ("Satin Pillowcase 2-Pack", "14.99", ["Champagne", "Silver", "Black"]),
    ("Weighted Blanket 15lb", "59.99", ["Grey", "Navy"]),
    ("Cat Window Hammock", "22.99", ["Default"]),
    ("Dog Lick Mat 2-Pack", "12.49", ["Blue", "Green"]),
    ("Facial Ice Roller", "10.99", ["Blue", "Pink"]),
    ("LED Light Therapy Face Mask", "89.00", ["Default"]),
    ("Everywhere Crossbody Belt Bag", "18.99", ["Black", "Tan", "Olive", "Lilac"]),
    ("14K Gold Plated Hoop Earrings", "13.99", ["Small", "Medium", "Large"]),
    ("Personalized Name Necklace", "24.00", ["Gold", "Silver", "Rose Gold"]),
    ("Matte Claw Clips 4-Pack", "8.99", ["Neutral", "Tortoise"]),
    ("Reusable Pet Hair Remover Roller", "11.99", ["Default"]),
    ("Digital Kitchen Food Scale", "14.99", ["Black", "White"]),
    ("Air Fryer Silicone Liners", "9.49", [("2-Pack", "9.49"), ("4-Pack", "15.99")]),
    ("Glass Meal Prep Containers 10pc", "34.99", ["Default"]),
    ("Handheld Electric Milk Frother", "12.99", ["Black", "White"]),
    ("MagSafe Clear Phone Case", "16.99", ["iPhone 15", "iPhone 15 Pro", "iPhone 16", "iPhone 16 Pro",
                                           "iPhone 16 Pro Max"]),
    ("3-in-1 Wireless Charging Station", "35.99", ["Black", "White"]),
    ("10in Ring Light with Tripod", "27.99", ["Default"]),
    ("Smart LED Strip Lights", "21.99", [("50ft", "21.99"), ("100ft", "34.99")]),
    ("Bluetooth Karaoke Microphone", "26.99", ["Rose Gold", "Black", "Silver"]),
    ("Mini Waffle Maker", "17.99", ["Aqua", "Red", "Black"]),
    ("Acupressure Mat and Pillow Set", "29.99", ["Blue", "Purple"]),
    ("Resistance Bands Set 5pc", "19.99", ["Light", "Heavy"]),
    ("Non-Slip Yoga Mat 6mm", "25.99", ["Lilac", "Sage", "Black"]),
    ("Cooling Towel 3-Pack", "13.99", ["Blue", "Grey", "Mixed"]),
    ("Self-Tanning Mousse", "15.99", ["Medium", "Dark", "Ultra Dark"]),
    ("Matte Makeup Setting Spray", "12.00", ["Default"]),
    ("Cream Blush Stick", "14.00", ["Peach", "Berry", "Mauve", "Coral", "Rose"]),
    ("Brow Lamination Kit", "19.99", ["Default"]),
    ("Teeth Whitening Strips 14 Days", "24.99", ["Default"]),
    ("Whipped Body Butter", "16.00", ["Vanilla", "Coconut", "Unscented"]),
    ("Bamboo Sheet Set", "49.99", [("Queen / White", "49.99"), ("Queen / Sage", "49.99"),
                                    ("King / White", "59.99"), ("King / Grey", "59.99")]),
    ("Shower Steamers 12-Pack", "14.99", ["Eucalyptus", "Lavender"]),
    ("Magnetic Building Tiles", "39.99", ["60pc", ("100pc", "59.99")]),
    ("Fidget Sensory Toy Set", "9.99", ["Default"]),
    ("360 Rotating Makeup Organizer", "23.99", ["Clear", "White"]),
    ("Heated Eyelash Curler", "15.99", ["Pink", "White"]),
    ("Adjustable Posture Corrector", "17.99", ["S/M", "L/XL"]),
    ("Jumbo Matte Hair Clips", "10.99", ["Espresso", "Cream", "Black"]),
    ("Waterproof Phone Pouch 2-Pack", "9.99", ["Black", "Clear"]),
    ("Bluetooth Sleep Headband", "19.99", ["Grey", "Black", "Blue"]),
]


@dataclass(frozen=True)
class Sku:
    """One sellable SKU with its product; ``price_usd`` is the list (original) price."""

    product_id: str
    product_name: str
    sku_id: str
    sku_name: str
    seller_sku: str
    sku_image: str
    price_usd: Decimal


def _code(name: str) -> str:
    letters = "".join(w[0] for w in name.replace("-", " ").split() if w[0].isalnum())
    return letters.upper()[:5]


@lru_cache(maxsize=16)
def catalogue(shelf: int = 0) -> tuple[Sku, ...]:
    """All SKUs, in catalogue order (popular products first).

    ``shelf`` 0 is the first shop's shelf; another shop (``shelf`` = its index) sells the same
    goods under its own product and SKU ids, as separate TikTok shops do.
    """
    rng = random.Random("ksync-tiktok-catalogue" + (f":{shelf}" if shelf else ""))
    skus = []
    for n, (name, price, variants) in enumerate(PRODUCTS):
        product_id = str(1729380000000000000 + shelf * 10**15 + n * 7919 * 10**6 + rng.randrange(10**6))
        for v, variant in enumerate(variants):
            vname, vprice = variant if isinstance(variant, tuple) else (variant, price)
            sku_id = str(1729480000000000000 + shelf * 10**15 + (n * 16 + v) * 10**9 + rng.randrange(10**9))
            image = f"https://p16-oec-va.ibyteimg.com/tos-maliva-i-o3syd03w52-us/{rng.getrandbits(128):032x}" \
                    "~tplv-o3syd03w52-origin-jpeg.jpeg"
            seller_sku = f"{_code(name)}-{_code(vname) or 'STD'}-{n:02d}{v}"
            skus.append(Sku(product_id, name, sku_id, vname, seller_sku, image, Decimal(vprice)))
    return tuple(skus)
