"""Masked buyer contact details for reprs and log lines: a value object can be printed safely.

``logs.py`` (the app's log redaction) uses these too, so one rule masks everywhere.
"""

from __future__ import annotations

import re


def mask_email(email: str | None) -> str | None:
    """``jane.doe@example.com`` -> ``j***@example.com``."""
    if not email or "@" not in email:
        return email
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str | None) -> str | None:
    """``+14155550123`` -> ``+1******0123``: country prefix and last four digits stay."""
    if not phone:
        return phone
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 6:
        return "***"
    prefix = "+" if phone.strip().startswith("+") else ""
    return f"{prefix}{digits[:1]}{'*' * (len(digits) - 5)}{digits[-4:]}"
