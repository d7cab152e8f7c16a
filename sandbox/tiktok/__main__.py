"""``python -m sandbox.tiktok``: serve the stand-in until interrupted.

Prints the client settings as ``NAME=value`` lines on stdout (so a shell can
``eval`` or a test can parse them), everything else on stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .standin import TikTokStandIn


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sandbox.tiktok", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8026, help="0 picks a free port")
    p.add_argument("--orders", type=int, default=10000)
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--app-key", default="ksync-app")
    p.add_argument("--app-secret", default="ksync-secret")
    p.add_argument("--currency", default="USD")
    p.add_argument("--malformed-ratio", type=float, default=0.0)
    p.add_argument("--webhook-url", default=None)
    p.add_argument("--rate-limit-qps", type=float, default=50, help="per (app_key, path); 0 disables")
    p.add_argument("--token-ttl-seconds", type=int, default=7 * 86400)
    p.add_argument("--shops", type=int, default=1, help="shops, each with its own seller and --orders orders")
    p.add_argument("--shared-buyers", type=float, default=0.0, help="share of orders placed by buyers shops share")
    p.add_argument("--webhook-events", default="ORDER_STATUS_CHANGE",
                   help="comma-separated event types --webhook-url subscribes to")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    standin = TikTokStandIn(app_key=args.app_key, app_secret=args.app_secret, orders=args.orders, days=args.days,
                            seed=args.seed, port=args.port, currency=args.currency,
                            malformed_ratio=args.malformed_ratio, rate_limit_qps=args.rate_limit_qps,
                            token_ttl_seconds=args.token_ttl_seconds, webhook_url=args.webhook_url,
                            host=args.host, shops=args.shops if args.shops > 1 else None,
                            shared_buyers=args.shared_buyers,
                            webhook_events=[e.strip() for e in args.webhook_events.split(",") if e.strip()])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with standin:
        for name, value in standin.client_settings().items():
            print(f"{name}={value}")
        sys.stdout.flush()
        print(f"TikTok stand-in: {len(standin.shops)} shop(s) of {args.orders} orders over {args.days:g} days "
              f"(seed {args.seed}) generated in "
              f"{standin.generation_seconds:.2f}s; serving {standin.url}; controls at {standin.url}/_sandbox/",
              file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
