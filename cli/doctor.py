"""``ksync doctor``: every check ``checks.py`` knows, one line each, OK or what to do.

Checks that need something an earlier one found broken (the workers and the beat need
Redis; the database's migrations need the database) are reported as skipped, with
the reason, rather than as a second error about the same cause. Exit status 0 when
every line is OK, 1 otherwise.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from . import checks


def diagnose() -> list[checks.Check]:
    config = checks.settings()
    if not config.ok and " must " in config.detail:  # a malformed value: no other setting can be read
        return [config]
    results = [config, checks.database(), checks.redis()]
    redis_ok = results[-1].ok
    if redis_ok:
        results += [checks.workers(), checks.beat(checks.redis_client())]
    else:
        results += [checks.Check(name, False, "skipped: Redis must answer first") for name in ("workers", "beat")]
    results += [checks.klaviyo()]
    results += [checks.tiktok(checks.redis_client()) if redis_ok else checks.Check("tiktok", False, "skipped: the token pair is kept "
                                                                              "in Redis, which must answer first")]
    return results


def run_doctor(console: Console) -> int:
    results = diagnose()
    width = max(len(c.name) for c in results)
    for check in results:
        mark = "[green]OK  [/]" if check.ok else "[red]FAIL[/]"
        console.print(f"{check.name:<{width}}  {mark}  {escape(check.detail)}", soft_wrap=True, highlight=False)
    return 0 if all(c.ok for c in results) else 1
