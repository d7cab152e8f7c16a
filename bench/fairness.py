"""Fairness between connections: how much longer one connection's small incremental sync takes
while another connection's large backfill runs, than alone (``bench/pipeline.py --parts fairness``).

Two fresh stacks with the same seed, so the same orders, each with the same two connections
added as ``ksync connections add`` adds them (``LocalStack(connections=...)``), on two Klaviyo
accounts (so Klaviyo's limits of one do not slow the other: what is measured is the workers'
and queues' share), Klaviyo's real limits, ``--backfill-workers`` workers of ``-c
--concurrency`` on every queue:

1. ``alone``: the small connection syncs the last ``--fairness-window-days`` (a window under a
   day: the ``sync`` lane, as an incremental sync is), nothing else running;
2. ``contended``: the large connection starts a 31-day backfill (the ``backfill`` lane); once
   its first records have reached Klaviyo, the small connection's same sync is queued.

Latency = the run's ``finished_at`` minus the moment it was queued. ``ratio`` = contended /
alone (target <= 1.5). The backfill must still be running when the small sync finishes, or the
contended figure measured nothing: ``overlapped`` says whether it was.
"""

from __future__ import annotations

import logging
import time

from sandbox.connection_specs import ConnectionSpec
from sandbox.stack import ALL_QUEUES, LocalStack, worker

log = logging.getLogger("bench.fairness")

TARGET_RATIO = 1.5
#: Backfill workers' niceness in the split topology: the scheduler gives their processes less CPU
#: than the incremental workers' whenever both want it, and all of it when nothing else runs.
BACKFILL_NICE = 10
OTHER_QUEUES = ",".join(q for q in ALL_QUEUES.split(",") if q != "backfill")
#: Steps of the probe's send breakdown that the table shows (bench/pipeline_probe.py names them).
PROBE_STEPS = ("task", "celery", "claim", "already_sent", "limiter", "http", "client.other", "set_markers",
               "finish_if_done", "complete")
BIG, SMALL = "backfill-shop", "small-shop"
FINAL = ("succeeded", "partial", "failed", "skipped")


def specs(args) -> list[ConnectionSpec]:
    return [ConnectionSpec(BIG, "big", shop="Backfill Shop", orders=args.fairness_backfill_orders),
            ConnectionSpec(SMALL, "small", shop="Small Shop", orders=args.fairness_small_orders)]


def wait_final(run_id: str, timeout: float):
    from db import history
    from db.engine import session_scope

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            run = history.get_run(session, run_id)
            if run is not None and run.status in FINAL:
                return run
        time.sleep(0.05)
    raise RuntimeError(f"run {run_id} not finished after {timeout:.0f}s")


def run_status(run_id: str) -> str:
    from db import history
    from db.engine import session_scope

    with session_scope() as session:
        return history.get_run(session, run_id).status


def small_sync(args, stack: LocalStack) -> dict:
    """Queue the small connection's incremental sync and wait for it: its latency, counts, and where
    the time went (``phases_s``): queued until its task started, reading and planning until its first
    request reached its Klaviyo account, the sends until the last, then the roll-up."""
    from workers.api import enqueue_sync

    queued = time.time()
    run = wait_final(enqueue_sync(days_back=args.fairness_window_days, connection=SMALL), args.backfill_timeout)
    if run.status not in ("succeeded", "partial"):
        raise RuntimeError(f"the small sync {run.id} ended {run.status}: {run.error}")
    sent = sorted(r["t"] for r in stack.account("small").requests() if r["op"] != "get_accounts" and r["t"] >= queued)
    started, finished = run.started_at.timestamp(), run.finished_at.timestamp()
    phases = {"waiting": started - queued, "reading": (sent[0] if sent else finished) - started,
              "sending": (sent[-1] - sent[0]) if sent else 0.0, "finishing": finished - (sent[-1] if sent else finished)}
    return {"latency_s": finished - queued, "status": run.status, "lane": (run.options or {}).get("lane"),
            "orders_read": run.orders_read, "records": run.success_count,
            "phases_s": {k: round(v, 3) for k, v in phases.items()}}


def start_split_workers(stack: LocalStack, args) -> None:
    """The README's split: backfills on workers of their own, started under ``nice -n 10``; every
    other queue on the rest. Half of ``--backfill-workers`` each (at least one), ``-c --concurrency``."""
    half = max(1, args.backfill_workers // 2)
    for i in range(half):
        stack.workers.append(worker(stack.env, f"backfill{i + 1}", stack.log_dir, args.concurrency, "backfill",
                                    nice=BACKFILL_NICE).start())
        stack.workers.append(worker(stack.env, f"w{i + 1}", stack.log_dir, args.concurrency, OTHER_QUEUES).start())
    for process in stack.workers:
        process.wait_ready()


def measure_once(args, contended: bool, database_url: str | None, activate, topology: str = "shared",
                 probe=None) -> dict:
    """One stack, one small sync (after the other connection's backfill has started, if
    ``contended``). ``probe``: (start workers, read breakdown) of ``bench/pipeline_probe.py``, whose
    workers (on every queue) then replace the plain ones: where the small sync's single sends spend
    their time."""
    from workers.api import enqueue_sync

    name = f"{topology} {'contended' if contended else 'alone'}"
    split = topology == "split"
    stack = LocalStack(orders=args.fairness_small_orders, workers=0 if split or probe else args.backfill_workers,
                       concurrency=args.concurrency, klaviyo_scale=1.0, database_url=database_url,
                       connections=specs(args), extra_env={"KSYNC_LAG_SECONDS": "0"})
    try:
        stack.start()
        if probe:
            probe[0](stack, args)
        elif split:
            start_split_workers(stack, args)
        activate(stack)
        backfill_id = None
        if contended:
            backfill_id = enqueue_sync(days_back=31, connection=BIG)
            big = stack.account("big")
            deadline = time.monotonic() + args.backfill_timeout
            while not any(r["status"] < 300 for r in big.requests() if r["op"] != "get_accounts"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the backfill sent nothing to Klaviyo")
                time.sleep(0.05)
        result = small_sync(args, stack)
        if probe:
            result["breakdown_ms"] = probe[1](stack)
        if contended:
            result["overlapped"] = run_status(backfill_id) == "running"
            backfill = wait_final(backfill_id, args.backfill_timeout)
            result["backfill"] = {"status": backfill.status, "orders_read": backfill.orders_read,
                                  "records": backfill.success_count, "seconds": backfill.duration_seconds}
    finally:
        stack.stop()
    log.info("fairness %s: small sync %.2fs", name, result["latency_s"])
    return result


def measure_fairness(args, bench_database, activate, probe=None) -> dict:
    """``alone`` and ``contended`` per round and topology, each on a fresh stack; ratios per round.
    The topologies alternate within a round, so the machine's load falls on both alike. With
    ``probe`` (``--fairness-probe``), one topology: every (probe) worker on every queue."""
    by_topology = {}
    topologies = ["shared"] if probe else args.fairness_topologies
    for _ in range(args.rounds):
        for topology in topologies:
            pair = {"topology": topology}
            for contended in (False, True):
                with bench_database(args.database_url) as database_url:
                    pair["contended" if contended else "alone"] = measure_once(args, contended, database_url,
                                                                              activate, topology, probe)
            pair["ratio"] = pair["contended"]["latency_s"] / pair["alone"]["latency_s"]
            by_topology.setdefault(topology, []).append(pair)
    result = {"topologies": {}, "target": TARGET_RATIO, "backfill_orders": args.fairness_backfill_orders,
              "small_orders": args.fairness_small_orders, "window_days": args.fairness_window_days}
    for topology, rounds in by_topology.items():
        ratios = sorted(r["ratio"] for r in rounds)
        result["topologies"][topology] = {"rounds": rounds, "ratio": ratios[len(ratios) // 2]}
    best = min(result["topologies"].values(), key=lambda t: t["ratio"])
    result["ratio"] = best["ratio"]
    return result


def fairness_table(m: dict) -> str:
    lines = [f"fairness: a small incremental sync ({m['small_orders']} orders in its shop, the last "
             f"{m['window_days']} days) alone and during another connection's backfill of {m['backfill_orders']} orders",
             f"  shared: every worker on every queue; split: backfill workers apart, under nice -n {BACKFILL_NICE}",
             f"{'topology':>8}  {'round':>5}  {'alone s':>8}  {'contended s':>11}  {'ratio':>6}  {'overlapped':>10}"
             f"  records  backfill"]
    for topology, t in m["topologies"].items():
        for i, r in enumerate(t["rounds"], 1):
            b = r["contended"]["backfill"]
            lines.append(f"{topology:>8}  {i:>5}  {r['alone']['latency_s']:>8.2f}  {r['contended']['latency_s']:>11.2f}  "
                         f"{r['ratio']:>6.2f}  {str(r['contended']['overlapped']):>10}  {r['alone']['records']:>7}  "
                         f"{b['records']} records, {b['seconds'] or 0:.1f} s, {b['status']}")
        verdict = "met" if t["ratio"] <= m["target"] else "NOT met"
        lines.append(f"{topology:>8}  median ratio {t['ratio']:.2f} (target <= {m['target']}: {verdict})")
        for i, r in enumerate(t["rounds"], 1):
            for phase in ("alone", "contended"):
                lines.append(f"{topology:>8}  {i:>5}  {phase:<9} s: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in r[phase]["phases_s"].items()))
            if "breakdown_ms" not in r["alone"]:
                continue
            for phase in ("alone", "contended"):
                steps = r[phase]["breakdown_ms"]
                lines.append(f"{topology:>8}  {i:>5}  {phase:<9} small sync's track_event, wall ms per task: "
                             + ", ".join(f"{k} {v['wall_ms']:.1f}" for k, v in steps.items()
                                         if k in PROBE_STEPS))
    return "\n".join(lines)
