"""Money as TikTok sends it: decimal strings in major units of the shop currency.

Zero-decimal currencies (JPY, KRW, IDR, VND, ...) have no fractional part on
the wire (``"5000"``), so a client that assumes two decimals gets caught. The
catalogue is priced in USD and converted with fixed, round rates so that the
generated numbers stay deterministic and look like real shelf prices.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

#: Digits after the decimal point on the wire. Unknown currencies use 2.
EXPONENT = {"JPY": 0, "KRW": 0, "IDR": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 0, "TWD": 0,
            "KWD": 3, "BHD": 3, "OMR": 3}

#: Fixed USD → currency rates, and the step prices are rounded to (a whole number of minor units).
RATES = {"USD": ("1", "0.01"), "GBP": ("0.79", "0.01"), "EUR": ("0.92", "0.01"), "JPY": ("150", "10"),
         "KRW": ("1350", "100"), "IDR": ("16000", "100"), "VND": ("25000", "1000"), "MYR": ("4.7", "0.01"),
         "THB": ("36", "1"), "PHP": ("56", "1"), "SGD": ("1.35", "0.01"), "MXN": ("17", "0.01"),
         "BRL": ("5", "0.01")}


@lru_cache(maxsize=64)
def exponent(currency: str) -> int:
    return EXPONENT.get(currency.upper(), 2)


@lru_cache(maxsize=64)
def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-exponent(currency))


def q(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


@lru_cache(maxsize=65536)        # generated prices repeat a lot; formatting is the generator's hot spot
def fmt(amount: Decimal, currency: str) -> str:
    """The wire string: ``"12.99"``, ``"1950"``; never exponent notation, never ``"-0"``."""
    value = amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)
    if not value:
        value = abs(value)
    return f"{value:.{exponent(currency)}f}"


@lru_cache(maxsize=4096)
def shelf_price(usd: Decimal, currency: str) -> Decimal:
    """A USD catalogue price converted to ``currency`` and rounded to a plausible price step.

    Two-decimal currencies keep the ``.99`` / ``.50`` endings of the USD price.
    """
    rate, step = RATES.get(currency.upper(), ("1", "0.01"))
    raw = usd * Decimal(rate)
    step_d = Decimal(step)
    if step_d >= 1:
        value = (raw / step_d).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step_d
        return max(value, step_d)
    cents = usd - usd.to_integral_value(rounding="ROUND_FLOOR")
    return max(raw.to_integral_value(rounding="ROUND_FLOOR") + cents, quantum(currency))
