"""Regenerate klaviyo/ratelimits.json from Klaviyo's official OpenAPI spec.

Every operation in the spec declares ``x-klaviyo-ratelimit`` as strings such as
``{"burst": "350/s", "steady": "3500/m", "daily": "100/d"}``. We check in the
parsed table so the client and the stand-in read one source of truth, and a
test pins it against the spec.

Usage: python scripts/gen_klaviyo_ratelimits.py ../shared/reference/klaviyo/stable.json
"""

import json
import sys
from pathlib import Path

UNITS = {"s": 1, "m": 60, "d": 86400}
EXPECTED_UNIT = {"burst": "s", "steady": "m", "daily": "d"}


def parse_limit(kind: str, text: str) -> int:
    count, unit = text.split("/")
    if unit != EXPECTED_UNIT[kind]:
        raise ValueError(f"{kind} limit {text!r} is not per {EXPECTED_UNIT[kind]}")
    return int(count)


def build_table(spec: dict) -> dict:
    table = {}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if not isinstance(op, dict) or "x-klaviyo-ratelimit" not in op:
                continue
            limits = op["x-klaviyo-ratelimit"]
            table[op["operationId"]] = {
                "method": method.upper(),
                "path": path,
                "burst": parse_limit("burst", limits["burst"]),
                "steady": parse_limit("steady", limits["steady"]),
                "daily": parse_limit("daily", limits["daily"]) if "daily" in limits else None,
            }
    return dict(sorted(table.items()))


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[1]).read_text())
    out = Path(__file__).resolve().parent.parent / "klaviyo" / "ratelimits.json"
    table = build_table(spec)
    payload = {"revision": spec["info"]["version"], "operations": table}
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {len(table)} operations to {out}")


if __name__ == "__main__":
    main(sys.argv)
