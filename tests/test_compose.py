"""The deployment files: docker-compose.yml, Dockerfile, .dockerignore and .env.example.

No Docker engine is needed: the compose file is checked against the Compose
Specification's JSON schema and against what ksync's own code expects
(queues, shutdown timeout, settings, the stand-ins' seeded credentials).
The compose tests need PyYAML and skip, saying so, when it is missing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

import celeryconfig
import settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_SCHEMA = ROOT / "tests" / "contract" / "compose-spec.json"

KSYNC_SERVICES = ("migrate", "worker", "beat", "flower", "metrics")
STAND_INS = ("klaviyo-standin", "tiktok-standin")
MONITORING = ("metrics", "prometheus", "grafana")
REQUIRED_SERVICES = ("redis", "postgres", *KSYNC_SERVICES, *STAND_INS, *MONITORING)
#: Variables that only the deployment adds (besides settings.ENV_NAMES), and which are secret.
DEPLOYMENT_SECRETS = ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
MONITORING_DIR = ROOT / "docs" / "monitoring"
SECRET_LOOKING = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|BASIC_AUTH")
#: A ${VAR...} that Compose substitutes ($${VAR} is an escaped, literal one).
INTERPOLATION = re.compile(r"(?<!\$)\$\{[^}]*\}")
SANDBOX_MARKER = "# --- Sandbox"


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; add PyYAML to requirements-dev.txt "
                                              "to check docker-compose.yml")
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_of(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def env_files_of(service: dict) -> list[str]:
    files = service.get("env_file") or []
    if isinstance(files, str):
        files = [files]
    return [f if isinstance(f, str) else f["path"] for f in files]


def depends_on(service: dict) -> dict:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


def command_of(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(part) for part in cmd]


def option(cmd: list[str], *names: str) -> str | None:
    """The value of ``--name value`` or ``--name=value`` in ``cmd``."""
    for i, part in enumerate(cmd):
        for name in names:
            if part == name and i + 1 < len(cmd):
                return cmd[i + 1]
            if part.startswith(name + "="):
                return part.split("=", 1)[1]
    return None


def seconds(duration: str) -> float:
    """Compose durations: ``15s``, ``1m30s``, ``500ms``."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def strings_in(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)
    elif isinstance(node, str):
        yield node


def env_example_lines() -> list[str]:
    return ENV_EXAMPLE.read_text().splitlines()


def documented(name: str) -> str | None:
    """The value on the first ``NAME=`` or ``# NAME=`` line of .env.example (the documented default)."""
    pattern = re.compile(rf"^(?:#\s*)?{re.escape(name)}=(.*)$")
    for line in env_example_lines():
        match = pattern.match(line.strip())
        if match:
            return match.group(1).strip()
    return None


def sandbox_block() -> dict:
    """``# NAME=value`` lines after the sandbox marker of .env.example."""
    lines = env_example_lines()
    start = next((i for i, line in enumerate(lines) if line.startswith(SANDBOX_MARKER)), None)
    assert start is not None, f".env.example has no block starting {SANDBOX_MARKER!r}"
    values = {}
    for line in lines[start + 1:]:
        match = re.match(r"^#\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


# -- the compose file as a whole -------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_specification(compose):
    jsonschema = pytest.importorskip("jsonschema")
    if not COMPOSE_SCHEMA.is_file():
        pytest.skip(f"no Compose schema at {COMPOSE_SCHEMA}")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_compose_file_has_no_obsolete_version_key(compose):
    assert "version" not in compose


def test_stack_has_every_required_service(services):
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks {missing}"


def test_every_ksync_service_reads_its_configuration_from_the_env_file(services):
    for name in KSYNC_SERVICES:
        assert ".env" in env_files_of(services[name]), f"{name} does not use env_file .env"


def test_service_internal_addresses_are_set_in_compose_not_left_to_the_user(services):
    for name in KSYNC_SERVICES:
        env = env_of(services[name])
        assert env.get("REDIS_URL") == "redis://redis:6379/0", name
        database = INTERPOLATION.sub("PASSWORD", env.get("DATABASE_URL") or "")
        assert re.fullmatch(r"postgresql(\+psycopg2)?://ksync:PASSWORD@postgres:5432/ksync", database), (name, database)


def test_healthchecks_exist_for_redis_postgres_and_flower(services):
    def check(name: str) -> str:
        test = (services[name].get("healthcheck") or {}).get("test")
        assert test and not (isinstance(test, list) and test[0] == "NONE"), f"{name} has no healthcheck"
        return " ".join(test) if isinstance(test, list) else test

    assert "redis-cli ping" in check("redis")
    assert "pg_isready" in check("postgres")
    assert "/healthcheck" in check("flower")


# -- redis and postgres ----------------------------------------------------------------------------


def test_redis_keeps_queues_across_restarts_and_never_evicts_keys(services):
    redis = services["redis"]
    assert str(redis["image"]).split(":")[-1].startswith("7")
    cmd = command_of(redis)
    assert option(cmd, "--appendonly") == "yes"
    assert option(cmd, "--maxmemory-policy") == "noeviction"
    assert any(str(v).endswith(":/data") for v in redis.get("volumes", [])), "Redis data is not on a volume"


def test_postgres_keeps_its_data_on_a_volume(services):
    postgres = services["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres.get("volumes", []))


# -- migrate, workers, beat, flower ----------------------------------------------------------------


def test_migrate_is_one_shot_after_postgres_is_healthy(services):
    migrate = services["migrate"]
    assert command_of(migrate) == ["ksync", "db", "upgrade"]
    assert str(migrate.get("restart")) == "no"
    assert depends_on(migrate).get("postgres", {}).get("condition") == "service_healthy"


def test_workers_wait_for_healthy_redis_and_a_finished_migration(services):
    deps = depends_on(services["worker"])
    assert deps.get("redis", {}).get("condition") == "service_healthy"
    assert deps.get("migrate", {}).get("condition") == "service_completed_successfully"


def test_worker_can_be_scaled(services):
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container_name stops --scale worker=N"
    assert "hostname" not in worker, "a fixed hostname gives every worker the same Celery node name"
    assert not worker.get("ports"), "host ports clash between scaled workers"


def test_worker_consumes_every_routed_queue_and_sends_events(services):
    cmd = command_of(services["worker"])
    assert cmd[:4] == ["celery", "-A", "workers.app", "worker"]
    assert "-E" in cmd or "--task-events" in cmd, "Flower needs worker events (-E)"
    routed = ({route["queue"] for route in celeryconfig.task_routes.values()} | {celeryconfig.task_default_queue}
              | set(celeryconfig.LANE_QUEUES))
    assert set((option(cmd, "-Q", "--queues") or "").split(",")) == routed


def test_worker_stops_gracefully_within_the_grace_period(services):
    worker = services["worker"]
    soft = celeryconfig.worker_soft_shutdown_timeout
    grace = seconds(worker.get("stop_grace_period", "10s"))
    assert soft < grace <= soft + 15, f"stop_grace_period {grace}s should be a little above the {soft}s soft shutdown"
    # Without the remap, docker stop's SIGTERM is a warm shutdown that ignores the soft timeout.
    assert env_of(worker).get("REMAP_SIGTERM") == "SIGQUIT" or worker.get("stop_signal") == "SIGQUIT"


def test_beat_runs_exactly_once_with_its_schedule_on_a_volume(services):
    beat = services["beat"]
    assert (beat.get("deploy") or {}).get("replicas") == 1
    assert int(beat.get("scale", 1)) == 1
    cmd = command_of(beat)
    assert cmd[:4] == ["celery", "-A", "workers.app", "beat"]
    schedule = option(cmd, "-s", "--schedule")
    assert schedule, "beat's schedule file is not set"
    targets = [str(v).split(":")[1] for v in beat.get("volumes", []) if ":" in str(v)]
    assert any(schedule.startswith(t.rstrip("/") + "/") for t in targets), f"{schedule} is not on a volume"
    for name, service in services.items():
        if name != "beat":
            assert " beat" not in " ".join(command_of(service)) and "-B" not in command_of(service), \
                f"{name} runs a second scheduler"


def test_flower_listens_on_all_interfaces_and_publishes_5555_with_basic_auth_from_env(services):
    flower = services["flower"]
    env = env_of(flower)
    assert env.get("FLOWER_ADDRESS") == "0.0.0.0"
    assert env.get("FLOWER_PORT", "5555") == "5555"
    assert any(str(p).endswith(":5555") or str(p) == "5555" for p in flower.get("ports", []))
    assert "FLOWER_BASIC_AUTH" not in env and "KSYNC_FLOWER_UNAUTHENTICATED" not in env, \
        "Flower's auth must come from .env"
    assert not any("basic-auth" in part or "basic_auth" in part for part in command_of(flower))


# -- sandbox ---------------------------------------------------------------------------------------


def test_stand_ins_run_only_in_the_sandbox_profile_and_listen_on_all_interfaces(services):
    for name in STAND_INS:
        assert services[name].get("profiles") == ["sandbox"], name
        assert option(command_of(services[name]), "--host") == "0.0.0.0", name
    for name, service in services.items():
        if name not in STAND_INS + MONITORING:
            assert "profiles" not in service, f"{name} would not start by default"
        if name not in STAND_INS:
            assert not set(depends_on(service)) & set(STAND_INS), f"{name} depends on a sandbox-only service"


# -- monitoring ------------------------------------------------------------------------------------


def mounts(service: dict) -> dict[str, str]:
    """``{container path: host path}`` of a service's bind mounts (``./host:/container[:ro]``)."""
    found = {}
    for volume in service.get("volumes", []):
        parts = str(volume).split(":")
        if parts[0].startswith("./"):
            found[parts[1]] = parts[0]
    return found


def test_monitoring_runs_only_in_its_profile_and_publishes_on_loopback(services):
    for name in MONITORING:
        assert services[name].get("profiles") == ["monitoring"], name
        assert all(str(p).startswith("127.0.0.1:") for p in services[name].get("ports", [])), name
    for name, service in services.items():
        if name not in MONITORING:
            assert not set(depends_on(service)) & set(MONITORING), f"{name} depends on a monitoring-only service"


def test_the_exporter_serves_where_prometheus_scrapes_it_and_prometheus_loads_the_alert_rules(services):
    yaml = pytest.importorskip("yaml")
    from cli.metrics import DEFAULT_PORT, parse_bind

    host, port = parse_bind(option(command_of(services["metrics"]), "--bind"))
    assert (host, port) == ("0.0.0.0", DEFAULT_PORT)
    files = mounts(services["prometheus"])
    config = yaml.safe_load((ROOT / files["/etc/prometheus/prometheus.yml"]).read_text())
    targets = {job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
               for job in config["scrape_configs"]}
    assert targets["ksync"] == [f"metrics:{port}"]
    assert targets["flower"] == [f"flower:{env_of(services['flower'])['FLOWER_PORT']}"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"] and (ROOT / files["/etc/prometheus/alerts.yml"]).is_file()


def test_grafana_is_provisioned_with_prometheus_and_the_ksync_dashboard(services):
    yaml = pytest.importorskip("yaml")
    grafana = services["grafana"]
    files = mounts(grafana)
    provisioning = ROOT / files["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "ksync.yml").read_text())["providers"]
    dashboard = [c for c, h in files.items() if h.endswith(".json")]
    assert dashboard and all(c.startswith(provider["options"]["path"] + "/") for c in dashboard)
    assert (ROOT / files[dashboard[0]]).is_file()
    env = env_of(grafana)
    assert INTERPOLATION.fullmatch(env["GF_SECURITY_ADMIN_PASSWORD"]) and "GRAFANA_ADMIN_PASSWORD" in \
        env["GF_SECURITY_ADMIN_PASSWORD"]
    assert "GF_SECURITY_ADMIN_PASSWORD" in " ".join(grafana["entrypoint"]), "Grafana must refuse an empty password"


def test_env_example_sandbox_values_are_what_the_stand_ins_accept(services):
    from sandbox.klaviyo.standin import KlaviyoStandIn
    from sandbox.tiktok.standin import TikTokStandIn

    block = sandbox_block()
    klaviyo_cmd = command_of(services["klaviyo-standin"])
    tiktok_cmd = command_of(services["tiktok-standin"])

    assert block["KLAVIYO_API_BASE_URL"] == f"http://klaviyo-standin:{option(klaviyo_cmd, '--port')}/api"
    assert option(klaviyo_cmd, "--api-key") is None, "the sandbox block assumes the stand-in's default key"
    assert block["KLAVIYO_API_KEY"] == KlaviyoStandIn().api_key

    tiktok_url = f"http://tiktok-standin:{option(tiktok_cmd, '--port')}"
    assert block["TIKTOK_API_BASE_URL"] == tiktok_url
    assert block["TIKTOK_AUTH_BASE_URL"] == tiktok_url
    standin = TikTokStandIn(orders=1, seed=int(option(tiktok_cmd, "--seed")),
                            app_key=option(tiktok_cmd, "--app-key") or "ksync-app")
    expected = {"TIKTOK_APP_KEY": standin.app_key, "TIKTOK_APP_SECRET": standin.app_secret,
                "TIKTOK_ACCESS_TOKEN": standin.access_token, "TIKTOK_REFRESH_TOKEN": standin.refresh_token,
                "TIKTOK_SHOP_CIPHER": standin.shop_cipher}
    assert {k: block.get(k) for k in expected} == expected


# -- secrets ---------------------------------------------------------------------------------------


def test_no_secret_values_are_written_in_the_compose_file(compose, services):
    secret_names = set(settings.SECRET_NAMES) | set(DEPLOYMENT_SECRETS)
    for name, service in services.items():
        for key, value in env_of(service).items():
            if key in secret_names or SECRET_LOOKING.search(key):
                assert value is None or not INTERPOLATION.sub("", value), \
                    f"{name}: {key} has a literal value; take it from .env"
    sandbox_secrets = {v for k, v in sandbox_block().items() if k in secret_names and v}
    for text in strings_in(compose):
        literal = INTERPOLATION.sub("", text)
        for url_password in re.findall(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:([^/\s@]*)@", literal):
            assert not url_password, f"a password is written in a URL: {text!r}"
        assert "basic-auth" not in literal and "basic_auth" not in literal, text
        assert not re.search(r"\bpk_[A-Za-z0-9]", literal), f"a Klaviyo key is written in: {text!r}"
        assert not any(secret in literal for secret in sandbox_secrets), f"a sandbox secret is written in: {text!r}"


def test_every_variable_compose_substitutes_is_documented_in_env_example(compose):
    used = {m.group(1) for text in strings_in(compose)
            for m in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text)}
    assert used, "expected ${...} substitutions (POSTGRES_PASSWORD)"
    undocumented = sorted(name for name in used if documented(name) is None)
    assert not undocumented, f".env.example does not document {undocumented}"


# -- .env.example ----------------------------------------------------------------------------------


def test_env_example_documents_every_setting():
    missing = [name for name in settings.ENV_NAMES.values() if documented(name) is None]
    assert not missing, f".env.example does not document {missing}"


def test_env_example_documents_flower_and_deployment_variables():
    for name in ("FLOWER_BASIC_AUTH", "KSYNC_FLOWER_UNAUTHENTICATED", *DEPLOYMENT_SECRETS):
        assert documented(name) is not None, name


def test_env_example_shows_each_settings_default():
    defaults = settings.Settings()
    secret = set(settings.SECRET_NAMES)
    for field_name, env_name in settings.ENV_NAMES.items():
        expected = "" if env_name in secret else str(getattr(defaults, field_name))
        assert documented(env_name) == expected, f"{env_name}: .env.example says {documented(env_name)!r}, " \
                                                 f"settings.py defaults to {expected!r}"


def test_env_example_has_a_comment_for_every_variable():
    lines = [line.strip() for line in env_example_lines()]
    for name in settings.ENV_NAMES.values():
        index = next(i for i, line in enumerate(lines) if re.match(rf"^(#\s*)?{name}=", line))
        above = lines[index - 1] if index else ""
        is_comment = above.startswith("#") and len(above.lstrip("# ")) > 3
        assert is_comment and not re.match(r"^#\s*[A-Z][A-Z0-9_]*=", above), f"{name} has no comment line above it"


def test_env_example_carries_no_secret_values():
    active = dotenv_values(ENV_EXAMPLE)
    for name in (*settings.SECRET_NAMES, *DEPLOYMENT_SECRETS):
        assert active.get(name, "") in ("", None), f"{name} has a value in .env.example"
    leaked = {k: v for k, v in active.items() if SECRET_LOOKING.search(k) and v}
    assert not leaked, leaked


def test_env_example_parses_as_a_valid_settings_file():
    settings.Settings.from_env(env={}, dotenv_path=ENV_EXAMPLE)


# -- image -----------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_image_is_built_on_python_3_11_slim():
    steps = dockerfile_instructions()
    args = dict(re.match(r"(\w+)=?(.*)", rest).groups() for kw, rest in steps if kw == "ARG" and "=" in rest)
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest.split()[0])
             for kw, rest in steps if kw == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases), bases


def test_image_runs_as_an_unprivileged_user():
    users = [rest for kw, rest in dockerfile_instructions() if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_image_installs_pinned_requirements_then_the_project_without_dependencies():
    runs = " ".join(rest for kw, rest in dockerfile_instructions() if kw == "RUN")
    requirements = runs.find("pip install -r")
    project = runs.find("pip install --no-deps")
    assert requirements != -1 and "requirements.txt" in runs[requirements:requirements + 60]
    assert project > requirements


def test_image_runs_the_worker_by_default():
    cmds = [rest for kw, rest in dockerfile_instructions() if kw == "CMD"]
    assert cmds, "no CMD"
    cmd = json.loads(cmds[-1])
    assert cmd[:4] == ["celery", "-A", "workers.app", "worker"]


def test_image_bakes_in_no_configuration_or_secrets():
    names = set(settings.ENV_NAMES.values()) | set(DEPLOYMENT_SECRETS)
    for kw, rest in dockerfile_instructions():
        if kw in ("ENV", "ARG"):
            assert not any(re.search(rf"\b{n}\b", rest) for n in names), f"{kw} {rest}"
            assert not SECRET_LOOKING.search(rest), f"{kw} {rest}"
        if kw in ("COPY", "ADD"):
            assert ".env" not in rest.split(), f"{kw} {rest}"


def test_dockerignore_keeps_env_files_and_local_state_out_of_the_build_context():
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    for needed in (".env", ".env.*", ".git", ".venv", ".ksync"):
        assert needed in patterns, f".dockerignore lacks {needed}"
    assert not any(p.startswith("!") and ".env" in p for p in patterns)
