"""Installing ksync prints no deprecation warning (``make install`` runs the same build)."""

from __future__ import annotations

import subprocess
import sys

from sandbox.stack import ROOT


def test_building_the_package_raises_no_setuptools_deprecation(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
                            capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "deprecated" not in out.lower() and "SetuptoolsDeprecationWarning" not in out, \
        "\n".join(line for line in out.splitlines() if "deprecat" in line.lower())
    assert list(tmp_path.glob("ksync-*.whl"))
