"""The layers the design names hold: the clients are libraries, db/ sits beside workers/, and
workers/ never reaches into the stand-ins. Each import is checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sandbox.stack import ROOT

APP = ("logs", "settings", "workers", "db", "cli", "sandbox", "klaviyo", "tiktok")


def loaded_by(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(json.loads(out)) & set(APP)


@pytest.mark.parametrize("module, forbidden", [
    ("klaviyo", {"logs", "settings", "workers", "db", "cli", "sandbox", "tiktok"}),
    ("tiktok", {"logs", "settings", "workers", "db", "cli", "sandbox", "klaviyo"}),
    ("db.history", {"workers", "cli", "sandbox"}),
    ("db.ledger", {"workers", "cli", "sandbox"}),
    ("db.connections", {"workers", "cli", "sandbox"}),
    ("workers.tasks", {"sandbox", "cli"}),
    ("workers.web", {"sandbox", "cli"}),
    ("workers.service", {"sandbox", "cli"}),
])
def test_a_layer_imports_nothing_above_or_beside_it(module, forbidden):
    assert not loaded_by(module) & forbidden, loaded_by(module) & forbidden
