"""Time values as Klaviyo writes and reads them.

The store keeps epoch seconds (floats); the wire uses ISO-8601 with an explicit
UTC offset, ``2025-01-01T00:00:00+00:00``, as in the spec's examples.
"""

from __future__ import annotations

from datetime import datetime, timezone


def iso(epoch: float | None) -> str | None:
    """Epoch seconds to ``YYYY-MM-DDTHH:MM:SS+00:00`` (None stays None)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def parse_iso(text: str) -> float:
    """ISO-8601 date or date-time to epoch seconds; a naive value is taken as UTC.

    Raises ValueError for anything else.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("not a date-time string")
    value = datetime.fromisoformat(text.strip().replace(" ", "T", 1) if "T" not in text else text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()
