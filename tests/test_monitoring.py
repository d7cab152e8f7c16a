"""The monitoring that ships in docs/monitoring/: a Grafana dashboard that loads, and queries and
alert rules that name only metrics the exporter really serves.

No Grafana or Prometheus runs here. The dashboard is checked against Grafana's dashboard
model (``tests/contract/grafana-dashboard.schema.json``: required fields, the 24-column
grid, panel, query, data source, variable and threshold shapes) and against the rules
Grafana applies when it lays a dashboard out (unique panel ids, panels inside the grid
and not overlapping, unique query ids per panel). Every metric name in a dashboard query,
a template variable or an alert expression must appear in what ``ksync metrics`` serves
for a sync history holding every kind of run, record and watermark.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "docs" / "monitoring"
DASHBOARD = json.loads((MONITORING / "grafana" / "ksync.json").read_text())
SCHEMA = json.loads((ROOT / "tests" / "contract" / "grafana-dashboard.schema.json").read_text())
METRIC = re.compile(r"\b(ksync_[a-z0-9_]+|up)\b(?!\s*\()")  # a name, not a function call
#: Prometheus's own series, always there for a scraped job.
BUILT_IN = {"up"}
ALERTS = ("KsyncRunFailed", "KsyncWatermarkStale", "KsyncRecordFailureRate")


@pytest.fixture(scope="module")
def served(tmp_path_factory, redis_url) -> set[str]:
    """Sample names ``ksync metrics`` serves for a history with runs of every outcome, open and
    settled records, a watermark, and Klaviyo traffic (grants, waits, a 429) in the limiter."""
    import redis
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from db import connections, history, ledger
    from db.engine import dispose_engines, session_scope
    from db.migrate import upgrade
    from tests.conftest import _fresh_database
    from workers.ratelimit import RedisRateLimiter
    from workers.ratelimit_metrics import LimiterCollector
    from workers.sync_metrics import SyncCollector

    with _fresh_database(tmp_path_factory.mktemp("monitoring")) as url:
        upgrade(url)
        now = datetime.now(timezone.utc)
        with session_scope(url) as session:
            for status, items in (("failed", [("event", "failed")]), ("succeeded", [("profile", "succeeded")]),
                                  ("running", [("event", "pending")])):
                run = history.create_run(session, shop="ROW_shop", sync_type="incremental", trigger="beat")
                history.insert_items(session, run.id, [{"kind": k, "key": f"{k}-{status}", "status": s}
                                                       for k, s in items])
                run.status, run.finished_at = status, None if status == "running" else now
            authorization = connections.upsert_authorization(session, app_key="ksync-app", open_id=None,
                                                             access_token=None, refresh_token=None)
            connections.add(session, connection_id="conn-1", authorization=authorization, shop_cipher="ROW_shop",
                            klaviyo_api_key="")  # no secret: nothing to encrypt
            ledger.set_watermark(session, "conn-1", now - timedelta(minutes=12))
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        limiter = RedisRateLimiter.for_klaviyo(client, "pk_monitoring_test")
        limiter.acquire("create_event")
        limiter.cool_down("create_event", 0.01)
        registry = CollectorRegistry()
        registry.register(SyncCollector(session_scope=lambda: session_scope(url), sync_interval_seconds=600))
        registry.register(LimiterCollector(limiter))
        text = generate_latest(registry).decode()
        dispose_engines()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def panels() -> list[dict]:
    found = []
    for panel in DASHBOARD["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries() -> list[str]:
    exprs = [t["expr"] for p in panels() for t in p.get("targets", [])]
    exprs += [v["query"] if isinstance(v["query"], str) else v["query"].get("query", "")
              for v in DASHBOARD["templating"]["list"] if v["type"] == "query"]
    return exprs


def metric_names(expr: str) -> set[str]:
    return set(METRIC.findall(re.sub(r"\{[^}]*\}", "", expr)))  # label matchers are not metric names


# -- the dashboard ---------------------------------------------------------------------------------


def test_the_dashboard_validates_against_grafanas_dashboard_model():
    import jsonschema

    jsonschema.Draft7Validator.check_schema(SCHEMA)
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(DASHBOARD), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_refuses_what_grafana_refuses():
    """The schema is not a rubber stamp: each broken copy of the dashboard fails it."""
    import copy

    import jsonschema

    def broken(change) -> list:
        dashboard = copy.deepcopy(DASHBOARD)
        change(dashboard)
        return list(jsonschema.Draft7Validator(SCHEMA).iter_errors(dashboard))

    assert broken(lambda d: d.pop("schemaVersion"))
    assert broken(lambda d: d["panels"][0]["gridPos"].update(w=25))
    assert broken(lambda d: d["panels"][0]["gridPos"].pop("h"))
    assert broken(lambda d: d["panels"][0].update(datasource="Prometheus"))  # a name, not a reference
    assert broken(lambda d: d["panels"][0]["targets"][0].pop("refId"))
    assert broken(lambda d: d["templating"]["list"][0].update(type="dropdown"))
    assert broken(lambda d: d.update(rows=[]))  # the pre-5.0 layout


def test_panels_have_unique_ids_and_fit_the_grid_without_overlapping():
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    cells = {}
    for panel in panels():
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_query_has_its_own_ref_id_and_the_dashboards_data_source():
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert "datasource" in variables and "connection" in variables
    for panel in panels():
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and refs, panel["title"]
        for ref in [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]:
            assert ref == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        used = set(re.findall(r"\$(\w+)", " ".join(t["expr"] for t in panel["targets"])))
        assert used - {"__range", "__rate_interval", "__interval"} <= variables, panel["title"]


def test_the_datasource_variable_defaults_to_the_provisioned_prometheus():
    import yaml

    (source,) = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
                               .read_text())["datasources"]
    variable = next(v for v in DASHBOARD["templating"]["list"] if v["name"] == "datasource")
    assert variable["query"] == source["type"] and variable["current"]["value"] == source["uid"]


def test_every_dashboard_query_names_metrics_the_exporter_serves(served):
    named = set().union(*map(metric_names, queries()))
    assert named and named <= served, named - served
    # what the issue asks to see: runs by status, records by kind and outcome, 429s, watermark age
    assert {"ksync_runs_total", "ksync_records_total", "ksync_ratelimit_cooldowns_total",
            "ksync_watermark_age_seconds"} <= named


# -- the alert rules -------------------------------------------------------------------------------


def rules() -> list[dict]:
    import yaml

    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    assert set(document) == {"groups"}
    found = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        found.extend(group["rules"])
    return found


def test_the_alert_rules_are_a_prometheus_rule_file():
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
        assert rule["expr"].count("(") == rule["expr"].count(")") and rule["expr"].strip()
        assert "for" not in rule or re.fullmatch(r"(\d+[smhd])+", rule["for"])
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]
    assert {r["alert"] for r in rules()} >= set(ALERTS)


def test_every_alert_names_metrics_the_exporter_serves(served):
    for rule in rules():
        named = metric_names(rule["expr"])
        assert named and named <= served | BUILT_IN, (rule["alert"], named - served)


def test_the_watermark_alert_is_a_number_of_sync_intervals_and_the_failure_rate_a_share():
    by_name = {r["alert"]: r["expr"] for r in rules()}
    assert re.search(r"ksync_watermark_age_seconds\s*>.*\(\s*3\s*\*\s*ksync_sync_interval_seconds\s*\)",
                     by_name["KsyncWatermarkStale"])
    assert re.search(r"\)\s*>\s*0\.05\s*$", by_name["KsyncRecordFailureRate"].strip())
    assert 'status="failed"' in by_name["KsyncRunFailed"]
