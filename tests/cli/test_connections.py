"""``ksync connections``, run as a subprocess against the stand-ins (two TikTok sellers, three shops,
two Klaviyo accounts), a real database and Redis; no worker is needed for these commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest
import requests
from cryptography.fernet import Fernet

from sandbox.klaviyo import KlaviyoStandIn
from sandbox.redis import free_port
from sandbox.stack import ROOT
from sandbox.tiktok import ShopSpec, TikTokStandIn
from tests.cli.support import assert_one_line_error

GLOW_KEY, CORNER_KEY = "pk_glow_0123456789abcdef", "pk_corner_0123456789abcdef"
KEY1 = Fernet.generate_key().decode()


@dataclass
class World:
    tiktok: TikTokStandIn
    klaviyo: KlaviyoStandIn
    env: dict

    def shop(self, name: str):
        return next(s for s in self.tiktok.shops if s.name == name)

    def tokens(self, seller: str) -> dict:
        pair = self.tiktok.seller(seller).tokens.current
        return {"KSYNC_NEW_TIKTOK_ACCESS_TOKEN": pair.access_token, "KSYNC_NEW_TIKTOK_REFRESH_TOKEN": pair.refresh_token}

    def run(self, *args, input: str = "", **env) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli.main", "connections", *args], cwd=ROOT,
                              env=self.env | env, input=input, capture_output=True, text=True, timeout=120)

    def json(self, *args, **env):
        result = self.run(*args, "--json", **env)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def add(self, connection_id: str, shop: str, key: str = GLOW_KEY, seller: str | None = "glow", *flags):
        env = {"KSYNC_NEW_KLAVIYO_API_KEY": key} | (self.tokens(seller) if seller else {})
        result = self.run("add", connection_id, "--shop", self.shop(shop).cipher, *flags, **env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result


@pytest.fixture
def world(migrated_database, redis_url, monkeypatch):
    specs = [ShopSpec(name="Glow US", seller="glow"), ShopSpec(name="Glow UK", seller="glow", currency="GBP"),
             ShopSpec(name="Corner Shop", seller="corner")]
    accounts = {"AbC123": (GLOW_KEY,), "XyZ789": (CORNER_KEY,)}
    with TikTokStandIn(shops=specs, orders=15) as tiktok, KlaviyoStandIn(accounts=accounts) as klaviyo:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KLAVIYO_", "TIKTOK_", "KSYNC_"))}
        env |= {"DATABASE_URL": migrated_database, "REDIS_URL": redis_url, "KLAVIYO_API_BASE_URL": klaviyo.url,
                "TIKTOK_API_BASE_URL": tiktok.url, "TIKTOK_AUTH_BASE_URL": tiktok.auth_url,
                "TIKTOK_APP_KEY": tiktok.app_key, "TIKTOK_APP_SECRET": tiktok.app_secret, "KSYNC_SECRET_KEY": KEY1,
                "TIKTOK_SERVICE_ID": "svc-7", "TIKTOK_CONSENT_BASE_URL": tiktok.url}
        for name in ("KSYNC_SECRET_KEY", "TIKTOK_APP_KEY", "TIKTOK_APP_SECRET"):
            monkeypatch.setenv(name, env[name])  # this process reads the rows the commands write
        from settings import reset_settings_cache

        reset_settings_cache()
        yield World(tiktok, klaviyo, env)
        reset_settings_cache()


def consent_code(world: World, seller: str) -> str:
    """Print the consent link, then consent as ``seller`` on the stand-in's page."""
    printed = world.run("authorize")
    assert printed.returncode == 0, printed.stderr
    url = re.search(r"(http://\S+/open/authorize\?\S+)", printed.stdout).group(1)
    assert "service_id=svc-7" in url
    answer = requests.get(url, params={"seller": seller}, timeout=10).json()
    assert f"state={answer['state']}" in printed.stdout
    return answer["code"]


# add ---------------------------------------------------------------------------------------------


def test_add_checks_both_apis_then_list_and_show_describe_the_connection_without_secrets(world):
    result = world.add("glow-us", "Glow US", GLOW_KEY, "glow", "--sync-interval", "300", "--customer-list", "Buyers",
                       "--rate-limit-share", "0.5", "--relay-email", "property")
    assert "added connection glow-us: Glow US" in result.stdout and "account AbC123" in result.stdout

    [listed] = world.json("list")
    assert listed["id"] == "glow-us" and listed["status"] == "active" and listed["klaviyo_account"] == "AbC123"
    assert listed["shop"] == {"cipher": world.shop("Glow US").cipher, "id": world.shop("Glow US").id,
                              "name": "Glow US", "region": world.shop("Glow US").region}
    assert listed["last_run"] is None and listed["watermark"] is None and listed["next_sync_at"]
    shown = world.json("show", "glow-us")
    assert shown["options"] == {"sync_interval_seconds": 300, "customer_list": "Buyers", "rate_limit_share": 0.5,
                                "relay_email": "property"}
    assert shown["authorization"]["access_token_expires_at"] is None  # pasted tokens: TikTok did not say
    table = world.run("list").stdout + world.run("show", "glow-us").stdout
    assert "glow-us" in table and "AbC123" in table
    secrets = [GLOW_KEY, *world.tokens("glow").values(), KEY1]
    assert not [s for s in secrets if s in table + json.dumps(shown) + result.stdout + result.stderr]


def test_another_shop_of_a_connected_seller_needs_only_its_klaviyo_key(world):
    world.add("glow-us", "Glow US")
    result = world.run("add", "glow-uk", "--shop", world.shop("Glow UK").cipher, KSYNC_NEW_KLAVIYO_API_KEY=GLOW_KEY)
    assert result.returncode == 0, result.stderr
    assert world.json("show", "glow-uk")["authorization"]["shared_with"] == ["glow-us"]


def test_add_asks_which_shop_when_the_seller_has_several_and_none_is_named(world):
    result = world.run("add", "glow", KSYNC_NEW_KLAVIYO_API_KEY=GLOW_KEY, **world.tokens("glow"))
    assert_one_line_error(result, "several shops; say which with --shop CIPHER", world.shop("Glow US").cipher,
                          world.shop("Glow UK").cipher)
    assert world.json("list") == []


def test_a_seller_with_one_shop_needs_no_shop_and_the_key_can_come_from_stdin(world):
    result = world.run("add", "corner", "--klaviyo-key-file", "-", input=CORNER_KEY + "\n", **world.tokens("corner"))
    assert result.returncode == 0, result.stderr
    assert "Corner Shop" in result.stdout and "account XyZ789" in result.stdout


@pytest.mark.parametrize("case, needles", [
    ("no secret key", ["KSYNC_SECRET_KEY is not set", "`ksync connections generate-key`"]),
    ("malformed secret key", ["not a Fernet key", "generate-key"]),
    ("key in no file", ["no Klaviyo private key: set KSYNC_NEW_KLAVIYO_API_KEY or give --klaviyo-key-file"]),
    ("revoked Klaviyo key", ["Klaviyo refused the key (401)"]),
    ("tokens of nobody", ["TikTok refused the seller's access token"]),
    ("shop of another seller", ["is not among the seller's authorized shops: Glow US"]),
    ("reserved id", ["reserved for the environment's connections"]),
    ("Klaviyo away", ["Klaviyo unreachable at http://127.0.0.1:"]),
])
def test_add_refuses_in_one_line_and_saves_nothing(world, case, needles):
    env = {"KSYNC_NEW_KLAVIYO_API_KEY": GLOW_KEY} | world.tokens("glow")
    args = ["add", "glow-us", "--shop", world.shop("Glow US").cipher]
    if case == "no secret key":
        env["KSYNC_SECRET_KEY"] = ""
    elif case == "malformed secret key":
        env["KSYNC_SECRET_KEY"] = "not-a-key"
    elif case == "key in no file":
        del env["KSYNC_NEW_KLAVIYO_API_KEY"]
    elif case == "revoked Klaviyo key":
        world.klaviyo.revoke_key(GLOW_KEY)
    elif case == "tokens of nobody":
        env["KSYNC_NEW_TIKTOK_ACCESS_TOKEN"] = "ROW_nobody_0123456789"
    elif case == "shop of another seller":
        args[-1] = world.shop("Corner Shop").cipher
    elif case == "reserved id":
        args[1] = "default-2"
    elif case == "Klaviyo away":
        env["KLAVIYO_API_BASE_URL"] = f"http://127.0.0.1:{free_port()}/api"
    result = world.run(*args, **env)
    line = assert_one_line_error(result, *needles)
    assert not [s for s in (GLOW_KEY, *world.tokens("glow").values()) if s in line]
    assert world.json("list") == []


# status ------------------------------------------------------------------------------------------


def test_pause_resume_and_remove_which_keeps_the_history(world):
    from db import history
    from db.engine import session_scope

    world.add("glow-us", "Glow US")
    with session_scope() as session:
        run = history.create_run(session, shop=world.shop("Glow US").cipher, sync_type="manual", trigger="cli")
        run.connection_id, run_id = "glow-us", run.id

    assert world.run("pause", "glow-us", "--reason", "holiday").returncode == 0
    [paused] = world.json("list")
    assert (paused["status"], paused["status_reason"], paused["next_sync_at"]) == ("paused", "holiday", None)
    assert paused["last_run"]["id"] == run_id
    assert world.run("resume", "glow-us").returncode == 0
    assert world.json("list")[0]["status"] == "active"

    assert_one_line_error(world.run("remove", "glow-us"), "needs confirmation", "--yes")
    assert_one_line_error(world.run("pause", "nope"), "no connection 'nope'; there are: glow-us")
    assert world.run("remove", "glow-us", "--yes").returncode == 0
    assert world.json("list") == []
    with session_scope() as session:
        assert history.get_run(session, run_id).connection_id == "glow-us"


# test --------------------------------------------------------------------------------------------


def test_test_says_ok_for_each_api_then_names_a_rejected_key_and_an_unknown_cipher(world):
    world.add("glow-us", "Glow US")
    ok = world.run("test", "glow-us")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"^klaviyo\s+OK\s+account AbC123", ok.stdout, re.M)
    assert re.search(rf"^tiktok\s+OK\s+Glow US \({world.shop('Glow US').cipher}\) authorized", ok.stdout, re.M)

    world.klaviyo.revoke_key(GLOW_KEY)
    refused = world.run("test")  # the only connection
    assert refused.returncode == 1
    assert re.search(r"^klaviyo\s+FAIL\s+Klaviyo refused the key \(401\): connection glow-us's key was revoked",
                     refused.stdout, re.M), refused.stdout
    assert re.search(r"^tiktok\s+OK", refused.stdout, re.M)

    away = world.run("test", "glow-us", TIKTOK_API_BASE_URL=f"http://127.0.0.1:{free_port()}")
    assert re.search(r"^tiktok\s+FAIL\s+TikTok unreachable at http://127\.0\.0\.1:\d+", away.stdout, re.M)


def test_an_expired_token_whose_refresh_fails_puts_the_sellers_connections_in_needs_reauth(world):
    world.add("glow-us", "Glow US")
    world.run("add", "glow-uk", "--shop", world.shop("Glow UK").cipher, KSYNC_NEW_KLAVIYO_API_KEY=GLOW_KEY)
    world.add("corner", "Corner Shop", CORNER_KEY, "corner")
    world.tiktok.revoke_refresh_token("glow")
    world.tiktok.expire_access_token("glow")

    result = world.run("test", "glow-uk")
    assert result.returncode == 1
    assert re.search(r"^tiktok\s+FAIL\s+the TikTok access token expired and the refresh failed \(.*36004004.*\): "
                     r"connection\(s\) glow-uk, glow-us now need the seller to authorize again: "
                     r"`ksync connections authorize glow-uk`", result.stdout, re.M), result.stdout
    statuses = {c["id"]: c["status"] for c in world.json("list")}
    assert statuses == {"corner": "active", "glow-uk": "needs_reauth", "glow-us": "needs_reauth"}
    assert_one_line_error(world.run("resume", "glow-us"), "needs the seller to authorize again")


# authorize ---------------------------------------------------------------------------------------


def test_a_code_creates_a_connection_and_a_later_code_brings_the_sellers_connections_back(world):
    created = world.run("authorize", "glow-us", "--code", consent_code(world, "glow"), "--shop",
                        world.shop("Glow US").cipher, KSYNC_NEW_KLAVIYO_API_KEY=GLOW_KEY)
    assert created.returncode == 0, created.stderr
    assert "added connection glow-us" in created.stdout
    assert "without a connection yet: Glow UK" in created.stdout
    shown = world.json("show", "glow-us")
    assert shown["authorization"]["open_id"] == world.tiktok.seller("glow").open_id
    assert shown["authorization"]["refresh_token_expires_at"]  # a grant says until when
    assert world.run("add", "glow-uk", "--shop", world.shop("Glow UK").cipher,
                     KSYNC_NEW_KLAVIYO_API_KEY=GLOW_KEY).returncode == 0

    world.tiktok.revoke_refresh_token("glow")
    world.tiktok.expire_access_token("glow")
    world.run("test", "glow-us")
    assert {c["status"] for c in world.json("list")} == {"needs_reauth"}

    again = world.run("authorize", "--code", consent_code(world, "glow"))
    assert again.returncode == 0, again.stderr
    assert "re-authorized connection glow-uk (active again)" in again.stdout
    assert "re-authorized connection glow-us (active again)" in again.stdout
    assert {c["status"] for c in world.json("list")} == {"active"}
    assert world.run("test", "glow-uk").returncode == 0


def test_a_spent_code_is_one_line_and_a_new_id_needs_a_klaviyo_key_before_the_code_is_spent(world):
    code = consent_code(world, "corner")
    assert_one_line_error(world.run("authorize", "corner", "--code", code), "no Klaviyo private key")
    assert world.run("authorize", "corner", "--code", code, KSYNC_NEW_KLAVIYO_API_KEY=CORNER_KEY).returncode == 0
    assert_one_line_error(world.run("authorize", "--code", code), "TikTok refused the authorization code (36004004",
                          "a code works once, within 30 minutes")


def test_authorize_for_an_unknown_connection_id_without_a_code_says_so(world):
    assert_one_line_error(world.run("authorize", "nope"), "no connection 'nope'")


# keys --------------------------------------------------------------------------------------------


def test_rotate_key_re_encrypts_every_secret_once_and_a_removed_key_is_a_one_line_error(world):
    world.add("glow-us", "Glow US")
    key2 = world.run("generate-key").stdout.strip()
    Fernet(key2.encode())  # a real Fernet key

    first = world.run("rotate-key", KSYNC_SECRET_KEY=f"{key2},{KEY1}")
    assert first.returncode == 0 and "re-encrypted 3 secret(s)" in first.stdout and "0 already were" in first.stdout
    second = world.run("rotate-key", KSYNC_SECRET_KEY=f"{key2},{KEY1}")
    assert "re-encrypted 0 secret(s)" in second.stdout and "3 already were" in second.stdout
    assert world.run("test", "glow-us", KSYNC_SECRET_KEY=key2).returncode == 0  # the old key can go

    gone = world.run("test", "glow-us", KSYNC_SECRET_KEY=Fernet.generate_key().decode())
    assert_one_line_error(gone, "a stored secret cannot be decrypted")
    assert_one_line_error(world.run("rotate-key", KSYNC_SECRET_KEY=Fernet.generate_key().decode()),
                          "3 stored secret(s) cannot be decrypted", "connections.klaviyo_api_key:glow-us",
                          "nothing was changed")
    assert_one_line_error(world.run("rotate-key", KSYNC_SECRET_KEY=""), "KSYNC_SECRET_KEY is not set")


# commands that act on a shop ---------------------------------------------------------------------


def test_commands_that_act_on_a_shop_want_a_connection_among_several(world):
    world.add("glow-us", "Glow US")
    world.add("corner", "Corner Shop", CORNER_KEY, "corner")
    for command in (["sync", "--days-back", "1"], ["limits"]):
        result = subprocess.run([sys.executable, "-m", "cli.main", *command], cwd=ROOT, env=world.env, input="",
                                capture_output=True, text=True, timeout=60)
        assert_one_line_error(result, "several connections: say which with --connection ID; there are: corner, glow-us")
    assert_one_line_error(world.run("test"), "several connections: say which with `ksync connections test ID`; "
                                             "there are: corner, glow-us")


def failed_run(connection_id: str, shop: str, key: str) -> str:
    from db import history
    from db.engine import session_scope

    with session_scope() as session:
        run = history.create_run(session, shop=shop, sync_type="manual", trigger="cli")
        run.connection_id, run.status, run.phase = connection_id, "partial", "finished"
        history.insert_items(session, run.id, [{"kind": "event", "key": key, "status": "failed"}])
        return run.id


def test_failures_filter_by_connection_and_retry_failed_follows_the_runs_connection(world):
    from db import history
    from db.engine import session_scope

    world.add("glow-us", "Glow US")
    world.add("corner", "Corner Shop", CORNER_KEY, "corner")
    glow_run = failed_run("glow-us", world.shop("Glow US").cipher, "Placed Order|glow-1")
    failed_run("corner", world.shop("Corner Shop").cipher, "Placed Order|corner-1")

    def ksync(*args):
        return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=world.env, input="",
                              capture_output=True, text=True, timeout=60)

    listed = json.loads(ksync("failures", "--connection", "corner", "--json").stdout)
    assert listed["total"] == 1 and [f["key"] for f in listed["failures"]] == ["Placed Order|corner-1"]
    assert listed["failures"][0]["connection"] == "corner"
    assert json.loads(ksync("failures", "--json").stdout)["total"] == 2
    assert "connection glow-us" in ksync("show", glow_run).stdout

    replay = ksync("retry-failed", glow_run[:8])  # no --connection, though there are two: the run's own
    assert replay.returncode == 0, replay.stderr
    new_id = re.search(r"queued run (\S+)", replay.stdout).group(1)
    with session_scope() as session:
        assert history.get_run(session, new_id).connection_id == "glow-us"

    assert world.run("remove", "glow-us", "--yes").returncode == 0
    assert_one_line_error(ksync("retry-failed", glow_run), f"run {glow_run} cannot be replayed: its connection is gone")


def test_the_environments_connection_stays_in_the_table_once_its_variables_are_unset(world):
    described = world.env | world.tiktok.client_settings(shop=world.shop("Corner Shop").cipher) | {
        "KLAVIYO_API_KEY": CORNER_KEY}
    [default] = world.json("list", **described)
    assert (default["id"], default["source"], default["shop"]["cipher"]) == ("default", "env",
                                                                              world.shop("Corner Shop").cipher)
    assert_one_line_error(world.run("remove", "default", "--yes", **described), "comes from the environment")

    # The variables gone (TIKTOK_APP_KEY and TIKTOK_APP_SECRET stay: the app's credentials), it still works.
    assert [c["id"] for c in world.json("list")] == ["default"]
    checked = world.run("test", "default")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert world.run("remove", "default", "--yes").returncode == 0
    assert world.json("list") == []


def in_terminal(world: World, args: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``ksync connections ARGS`` on a pseudo-terminal, answering each prompt (a line ending
    in ": ") in turn; returns the exit status and everything the terminal showed."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling tty, as in a shell
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "cli.main", "connections", *args], world.env)
    shown, answered_at, pending = b"", 0, list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child exited and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        if pending and shown[answered_at:].rstrip(b" ").endswith(b":"):
            os.write(fd, pending.pop(0).encode() + b"\n")
            answered_at = len(shown)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), re.sub(r"\x1b\[[0-9;]*m", "", shown.decode(errors="replace"))


def test_on_a_terminal_add_asks_for_each_secret_without_echoing_it_and_for_the_shop(world):
    pair = world.tiktok.seller("glow").tokens.current
    status, shown = in_terminal(world, ["add", "glow"], [GLOW_KEY, pair.access_token, pair.refresh_token, "2"])
    assert status == 0, shown
    for prompt in ("Klaviyo private key:", "TikTok access token:", "TikTok refresh token:", "which shop"):
        assert prompt in shown, shown
    assert "1. Glow US" in shown and "2. Glow UK" in shown
    assert "added connection glow: Glow UK" in " ".join(shown.split())
    assert GLOW_KEY not in shown and pair.access_token not in shown and pair.refresh_token not in shown
