"""Run a sync under a fault, then count what was lost and what was sent twice.

Every fault test goes the same way: start a stack (real workers, Redis, database,
both stand-ins) tuned for quick recovery, enqueue a sync, inject the fault at a
seeded random moment, keep the sweeper going (as beat would, every minute; here
every second so recovery fits a test), wait for the run to finish, then compare
Klaviyo's state with the ground truth from the TikTok stand-in:

- lost: an expected event missing from Klaviyo, or a buyer without a profile;
- duplicated: an event Klaviyo received more than once (its dedupe dropped the
  repeat: counted and reported as a re-send, never relied on silently) or stored twice;
- wrong: a profile whose order count or lifetime value differs from our ledger's;
- the run's counters must equal its items, and the watermark must never have
  passed unfinished work.

Results are appended to ``.ksync/faults/results.jsonl``; ``tests/faults/report.py``
turns them into ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from db import history
from db.engine import session_scope
from db.ledger import get_watermark

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("KSYNC_FAULT_RESULTS", ROOT / ".ksync" / "faults" / "results.jsonl"))

#: The fault runs use the production defaults for recovery (item lease 30 s renewed by a live task,
#: lost work re-sent after 60 s, the sweeper every 15 s, visibility timeout 3600 s), so "recovered
#: in" is what a deployment sees. Only the lag is dropped (orders change while the test runs).
FAST_RECOVERY = {
    "KSYNC_LAG_SECONDS": "0",
    "KSYNC_MAX_ATTEMPTS": "6",
}


def seeds() -> list[int]:
    """How many seeds each seeded fault runs: 1 in ``make test`` (CI), 10 in ``make faults``."""
    return list(range(1, int(os.environ.get("KSYNC_FAULT_SEEDS", "1")) + 1))


def full() -> bool:
    """``make faults`` runs every fault at full length; ``make test`` a shorter representative subset."""
    return os.environ.get("KSYNC_FAULT_FULL") == "1"


def full_only(test):
    """Run ``test`` only in ``make faults``: a slower variant of a fault ``make test`` already covers."""
    import pytest

    return pytest.mark.skipif(not full(), reason="slower variant: runs in `make faults` (KSYNC_FAULT_FULL=1)")(test)


@dataclass
class FaultResult:
    fault: str
    seed: int
    orders: int
    records: int
    expected_events: int
    lost_events: int
    lost_profiles: int
    duplicated: int
    stored_twice: int
    run_status: str
    recovered_in: float | None
    counters_agree: bool
    watermark_ok: bool
    notes: dict = field(default_factory=dict)
    wrong_profiles: int = 0

    @property
    def clean(self) -> bool:
        return (self.lost_events == 0 and self.lost_profiles == 0 and self.stored_twice == 0 and self.counters_agree
                and self.watermark_ok and self.wrong_profiles == 0)


def expected(stack) -> tuple[set[str], set[str]]:
    """Event keys (orders and completed refunds) and profile external ids the mapping rules imply
    for the stand-in's valid orders."""
    from tests.support import expected_from

    events, profiles = expected_from(stack)
    return set(events), set(profiles)


def sweep_once() -> None:
    from workers.tasks import sweep

    try:
        sweep.run()
    except Exception as exc:  # the database or Redis may be down on purpose
        print(f"sweep skipped: {type(exc).__name__}: {exc}")


@dataclass
class ProgressTrigger:
    """Inject at a seeded point of the run's own progress, so the fault always lands mid-run:
    while TikTok is being read, or once a seeded fraction of the records is final."""

    stage: str
    fraction: float

    @classmethod
    def seeded(cls, rng: random.Random) -> "ProgressTrigger":
        # At most 75 %: the last steps (a bulk chunk, the profile import job) settle a thousand
        # records or more at once, and a later fraction could be seen only as the run finishing.
        return cls(stage=rng.choice(["reading", "sending"]), fraction=round(rng.uniform(0.05, 0.75), 2))

    def due(self, run, counts) -> bool:
        if run is None or run.phase == "queued":
            return False
        if self.stage == "reading":
            return True  # the first time we see the run past queued: reading (or just dispatched)
        if run.phase != "dispatched" or not run.items_total:
            return False
        final = sum(n for (_, status), n in counts.items() if status in ("succeeded", "failed", "skipped"))
        return final >= self.fraction * run.items_total


def sweep_every(stack) -> float:
    """The sweeper's period in this stack (beat's, KSYNC_SWEEP_SECONDS): the harness sweeps as beat would."""
    from settings import Settings

    return float(stack.env.get("KSYNC_SWEEP_SECONDS") or Settings().sweep_interval_seconds)


def run_under_fault(stack, fault_name: str, inject, seed: int, *, at: tuple[float, float] | str | None = (0.5, 8.0),
                    timeout: float = 300, after_inject=None, enqueue=None) -> FaultResult:
    """Enqueue a full sync, call ``inject()`` at a seeded moment, wait for the run, verify.

    ``at=(lo, hi)`` injects at a seeded time after enqueueing (for outages that span the run);
    ``at=None`` injects at a seeded point of the run's progress (for crashes, which must
    land while there is work in flight); ``at="reading"`` while TikTok is being read.
    A fault that never landed fails the test.
    """
    from workers.api import enqueue_sync

    rng = random.Random(f"{fault_name}:{seed}")
    trigger = ProgressTrigger.seeded(rng) if at is None else ProgressTrigger("reading", 0) if at == "reading" else None
    inject_at = rng.uniform(*at) if trigger is None else None
    run_id = (enqueue or (lambda: enqueue_sync(days_back=31)))()
    started = time.monotonic()
    injected_at = None
    watermark_ok = True
    last_sweep = 0.0
    notes: dict = {"inject_at_s": round(inject_at, 2)} if trigger is None else \
        {"inject_when": f"{trigger.stage}" + (f" {trigger.fraction:.0%} done" if trigger.stage == "sending" else "")}
    while True:
        now = time.monotonic()
        run = counts = None
        try:
            with session_scope() as session:
                # The watermark first, then the run: a watermark seen here was committed before the
                # run is read, so a run still open afterwards is a real violation, not a race between
                # the two reads (PostgreSQL's READ COMMITTED sees each statement's own snapshot).
                watermark = get_watermark(session, "default")
                run = history.get_run(session, run_id)
                counts = history.item_counts(session, run_id) if trigger and run is not None else {}
                if run is not None and run.status in ("running", "queued") and watermark is not None:
                    watermark_ok = False  # moved while this run's records were unfinished
        except Exception:  # database deliberately unavailable
            pass
        finished = run is not None and run.status in ("succeeded", "partial", "failed")
        if injected_at is None and not finished and \
                ((trigger is None and now - started >= inject_at) or (trigger is not None and trigger.due(run, counts))):
            notes["inject"] = inject() or ""
            injected_at = time.monotonic()
            notes["inject_after_s"] = round(injected_at - started, 2)
            if after_inject:
                after_inject()
            continue
        if finished:
            break
        if injected_at is not None and now - last_sweep >= sweep_every(stack):  # before the fault: nothing to sweep
            sweep_once()
            last_sweep = now
        if now - started > timeout:
            raise AssertionError(f"{fault_name} seed {seed}: run {run_id} not finished after {timeout}s")
        # Poll briskly until the fault lands: a bulk chunk or import job settles a thousand
        # records at once, and the trigger must see the run between two such steps.
        time.sleep(0.2 if injected_at is not None else 0.05)
    if injected_at is None:
        raise AssertionError(f"{fault_name} seed {seed}: the run finished before the fault was injected ({notes})")
    return verify(stack, run_id, fault_name, seed, recovered_in=time.monotonic() - injected_at,
                  watermark_ok=watermark_ok, notes=notes)


def verify(stack, run_id: str, fault_name: str, seed: int, recovered_in=None, watermark_ok=True,
           notes=None) -> FaultResult:
    events, profiles = expected(stack)
    state = stack.klaviyo.state()
    landed: dict[str, int] = {}
    for event in state["events"]:
        key = f"{event['metric']}|{event['unique_id']}"
        landed[key] = landed.get(key, 0) + 1
    stored_profiles = {p["external_id"] for p in state["profiles"]}
    summary = stack.klaviyo.summary()
    with session_scope() as session:
        run = history.get_run(session, run_id)
        counts = history.item_counts(session, run_id)
        watermark = get_watermark(session, "default")
        wrong = wrong_profiles(session, run.account or "", state["profiles"])
    succeeded = sum(n for (_, s), n in counts.items() if s == "succeeded")
    failed = sum(n for (_, s), n in counts.items() if s == "failed")
    counters_agree = (run.success_count, run.failed_count) == (succeeded, failed) and \
        run.success_count + run.failed_count == sum(counts.values())
    if run.window_end and run.status in ("succeeded", "partial") and watermark is not None and watermark > run.window_end:
        watermark_ok = False
    result = FaultResult(
        fault=fault_name, seed=seed, orders=len(stack.tiktok.orders()), records=sum(counts.values()),
        expected_events=len(events), lost_events=len(events - set(landed)), lost_profiles=len(profiles - stored_profiles),
        duplicated=summary["duplicates_dropped"]["total"], stored_twice=sum(1 for n in landed.values() if n > 1),
        run_status=run.status, recovered_in=round(recovered_in, 1) if recovered_in is not None else None,
        counters_agree=counters_agree, watermark_ok=watermark_ok, wrong_profiles=len(wrong),
        notes=(notes or {}) | {"http_429": summary["http_429"]["total"], "faults_injected": summary["faults_injected"]["total"],
                               "database": "PostgreSQL" if stack.database_url.startswith("postgres") else "SQLite"})
    record(result)
    print(json.dumps(asdict(result)))
    return result


def wrong_profiles(session, account: str, profiles: list[dict]) -> list[str]:
    """External ids of Klaviyo profiles whose totals differ from what our orders ledger says."""
    from decimal import Decimal

    from db import ledger
    from workers.mapping import EXTERNAL_ID_PREFIX, buyer_stats

    ours = {p["external_id"]: p for p in profiles if (p.get("external_id") or "").startswith(EXTERNAL_ID_PREFIX)}
    entries = ledger.ledger_entries(session, account, [k.removeprefix(EXTERNAL_ID_PREFIX) for k in ours])
    wrong = []
    for key, profile in ours.items():
        stats = buyer_stats(entries.get(key.removeprefix(EXTERNAL_ID_PREFIX), []))
        properties = profile.get("properties") or {}
        if properties.get("tiktok_order_count") != stats.order_count or \
                Decimal(str(properties.get("tiktok_lifetime_value"))) != stats.lifetime_value:
            wrong.append(key)
    return wrong


def record(result: FaultResult) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(asdict(result) | {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
