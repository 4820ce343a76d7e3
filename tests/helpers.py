"""Helpers shared by the tests: repository paths and running the CLI in a subprocess.

Usage:
    from helpers import REPO, SHARED_CIFAR, run_cli
    result = run_cli("prune", "--run-dir", str(tmp_path))
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10"
# A configuration small enough for a test: a few seconds per level on 2 cores.
TINY = ("--set", "model.width=0.125", "--set", "prune.epochs=2", "--set", "prune.levels=3",
        "--set", "prune.rate=0.5", "--set", "prune.batch_size=256")


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "entropi_tiny.cli", *args]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), capture_output=True, text=True, cwd=REPO,
                          env=cli_env(), timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    """Exit 2, one 'error:' line on stderr naming the problem, no traceback."""
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert needle.lower() in lines[0].lower(), lines[0]
