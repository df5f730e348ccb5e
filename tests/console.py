"""``mergesweep ARGS`` in a subprocess, as a user runs it: shared by the tests that go through the console script.

Each such test module had its own copy of these lines. ``HYDRA_FULL_ERROR`` is the test's to choose, never the
developer's shell's: with it set, the one-line errors those tests read turn into tracebacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "mergesweep.app.cli"]


def cli_env(results: Path | None = None, full_errors: bool = False) -> dict[str, str]:
    """This process's environment for a ``mergesweep`` run: records under ``results`` (``MERGESWEEP_RESULTS``),
    unbuffered output, and tracebacks only with ``full_errors``."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONUNBUFFERED"] = "1"
    if results is not None:
        env["MERGESWEEP_RESULTS"] = str(results)
    if full_errors:
        env["HYDRA_FULL_ERROR"] = "1"
    return env


def mergesweep(
    *args: str, results: Path | None = None, full_errors: bool = False, timeout: int = 900
) -> subprocess.CompletedProcess:
    """``mergesweep ARGS`` from the checkout's root, its output captured as text."""
    env = cli_env(results, full_errors)
    return subprocess.run([*COMMAND, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
