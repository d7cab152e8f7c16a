"""Running the ``ksync`` console script as a subprocess, and reading its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

from sandbox.stack import ROOT


def ksync(*args, env=None, timeout=300, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=cwd, env=env or os.environ.copy(),
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, *needles, status: int = 1) -> str:
    """``result`` exited ``status`` with exactly one line on stderr, no traceback, containing ``needles``."""
    assert result.returncode == status, (result.returncode, result.stdout + result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
