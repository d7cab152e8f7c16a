"""``python -m sandbox.klaviyo --port 8025``: serve the stand-in until Ctrl-C.

Several accounts: ``--account AbC123=pk_a,pk_a2 --account XyZ789=pk_b`` (the first is the default).
"""

from __future__ import annotations

import argparse
import sys

from .standin import KlaviyoStandIn


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.klaviyo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                        help="accepted private key of the one account (repeatable; default pk_test_ksync)")
    parser.add_argument("--account", action="append", dest="accounts", metavar="ID=KEY[,KEY...]",
                        help="an account and its private keys (repeatable; instead of --api-key)")
    parser.add_argument("--rate-scale", type=float, default=1.0, help="multiply every rate limit by this")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 500/503")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--job-stage-seconds", type=float, default=0.2, help="bulk import queued/processing time")
    args = parser.parse_args(argv)
    faults = {k: v for k, v in {"error_rate": args.error_rate, "latency_ms": args.latency_ms}.items() if v}
    if args.accounts and args.api_keys:
        parser.error("give --api-key (one account) or --account (several), not both")
    accounts = None
    if args.accounts:
        accounts = {}
        for spec in args.accounts:
            account_id, _, keys = spec.partition("=")
            if not account_id or not keys:
                parser.error(f"--account takes ID=KEY[,KEY...], not {spec!r}")
            accounts[account_id] = tuple(k for k in keys.split(",") if k)
    standin = KlaviyoStandIn(api_keys=tuple(args.api_keys) if args.api_keys else None, accounts=accounts,
                             port=args.port, host=args.host, rate_limit_scale=args.rate_scale,
                             faults=faults or None, job_stage_seconds=args.job_stage_seconds)
    root = f"http://{args.host}:{args.port}"
    print(f"Klaviyo stand-in: {root}/api  key: {standin.api_key}  admin: {root}/_sandbox/summary", flush=True)
    for account in standin.accounts()[1:]:
        print(f"  also account {account.id}  key: {account.api_key}", flush=True)
    print("Ctrl-C to stop.", file=sys.stderr, flush=True)
    standin.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
