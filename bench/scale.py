"""Backfill at scale (``bench/pipeline.py --parts scale``): does a backfill keep pace with Klaviyo's
bulk ceiling, and does a worker's memory stay flat as the window grows?

For each size in ``--scale-orders`` (default 10,000 then 100,000), one fresh stack backfills that
many orders through the bulk endpoints at Klaviyo's real limits (the backfill measurement of
``pipeline.py``), while a thread samples the resident memory (RSS) of every process of the
stack's workers every ``SAMPLE_SECONDS``. Reported per size: bulk events/s from the first to the
last bulk request against the steady bulk ceiling (1,000 events x 150 requests/min = 2,500/s;
target >= 0.9 of it), and the largest RSS of one worker process (the reading task runs in one
pool child; it held the whole window before reads streamed page by page). ``rss_ratio`` = the
largest size's peak over the smallest's (target <= 1.5: memory bounded by a page, not the window).
"""

from __future__ import annotations

import threading

import psutil

SAMPLE_SECONDS = 0.25
BULK_CEILING_EVENTS_PER_S = 1000 * 150 / 60
TARGET_CEILING_SHARE = 0.9
TARGET_RSS_RATIO = 1.5


class PeakRSS:
    """The largest RSS seen of any one process of ``stack.workers`` (main processes and pool
    children), sampled on a thread until ``stop()``."""

    def __init__(self):
        self.peak_bytes = 0
        self._stack = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def watch(self, stack) -> None:
        self._stack = stack
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            for worker in list(self._stack.workers):
                if worker.process is None:
                    continue
                for pid in [worker.process.pid, *worker.pool_children()]:
                    try:
                        self.peak_bytes = max(self.peak_bytes, psutil.Process(pid).memory_info().rss)
                    except psutil.NoSuchProcess:
                        pass

    def stop(self) -> int:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(5)
        return self.peak_bytes


def measure_scale(args, backfill_once) -> dict:
    """``backfill_once(args, name, watch=...)`` per size, smallest first."""
    sizes = []
    for orders in sorted(args.scale_orders):
        rss = PeakRSS()
        # --backfill-timeout is for part 2's few thousand orders; allow 30 ms an order here.
        run_args = type(args)(**{**vars(args), "orders": orders,
                                 "backfill_timeout": max(args.backfill_timeout, orders * 0.03)})
        try:
            result = backfill_once(run_args, f"scale-{orders}", watch=rss.watch)
        finally:
            peak = rss.stop()
        sizes.append({"orders": orders, "events_sent": result["events_sent"], "status": result["run"]["status"],
                      "bulk_events_per_s": result["bulk_events_per_s"], "e2e_events_per_s": result["e2e_events_per_s"],
                      "ceiling_share": result["bulk_events_per_s"] / BULK_CEILING_EVENTS_PER_S,
                      "e2e_s": result["e2e_s"], "http_429": result["http_429"],
                      "peak_worker_rss_mb": round(peak / 2**20, 1),
                      "cpu_s_per_1000_events": {g: round(1000 * v / max(result["events_sent"], 1), 2)
                                                for g, v in result["cpu_s"].items()},
                      "foreign_share": result["foreign_share"]})
    rss_ratio = sizes[-1]["peak_worker_rss_mb"] / sizes[0]["peak_worker_rss_mb"] if len(sizes) > 1 else None
    return {"sizes": sizes, "rss_ratio": rss_ratio, "target_rss_ratio": TARGET_RSS_RATIO,
            "bulk_ceiling_events_per_s": BULK_CEILING_EVENTS_PER_S, "target_ceiling_share": TARGET_CEILING_SHARE}


def scale_table(m: dict) -> str:
    rows = [f"Backfill at scale (bulk ceiling {m['bulk_ceiling_events_per_s']:.0f} events/s; targets: >= "
            f"{m['target_ceiling_share']} of it, peak RSS ratio <= {m['target_rss_ratio']})",
            f"  {'orders':>8} {'events':>8} {'status':>9} {'bulk ev/s':>10} {'share':>6} {'e2e ev/s':>9} {'e2e s':>7}"
            f" {'429s':>5} {'peak RSS MB':>12}"]
    for s in m["sizes"]:
        rows.append(f"  {s['orders']:>8} {s['events_sent']:>8} {s['status']:>9} {s['bulk_events_per_s']:>10.0f}"
                    f" {s['ceiling_share']:>6.2f} {s['e2e_events_per_s']:>9.0f} {s['e2e_s']:>7.1f} {s['http_429']:>5}"
                    f" {s['peak_worker_rss_mb']:>12.1f}")
    if m["rss_ratio"] is not None:
        rows.append(f"  peak RSS, largest over smallest: {m['rss_ratio']:.2f}x")
    rows.append("  CPU s per 1,000 events (whole run): workers / PostgreSQL / stand-ins / redis; others' share of the cores")
    for s in m["sizes"]:
        c = s["cpu_s_per_1000_events"]
        rows.append(f"  {s['orders']:>8}  {c['worker']:.2f} / {c['postgres']:.2f} / {c['bench']:.2f} / {c['redis']:.2f};"
                    f" others {100 * (s['foreign_share'] or 0):.0f}%")
    return "\n".join(rows)
