"""Two sweeps into one folder compute each point once (issue 20 item 9): a per-point lock, a deferred point comes
back at the end, and a stale lock left by a dead process is taken over.

Real ``mergesweep -m`` processes on the toy pair with the transformers engine (seconds per point).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
JOB = ["engine=hf", "tracking=none", "suite.parts.icl.limit=6", "suite.parts.if.limit=2", "bootstrap=0"]
STRENGTHS = ("0", "0.5", "1")
WRITTEN = re.compile(r"(\S+__lam\S+): icl=\S+ if=\S+ -> ")


def start(results: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "MERGESWEEP_RESULTS": str(results), "PYTHONUNBUFFERED": "1"}
    args = ["-m", f"strength={','.join(STRENGTHS)}", "sweep.name=c", f"hydra.sweep.dir={results}/c/hydra/{name}", *JOB]
    return subprocess.Popen(
        [sys.executable, "-m", "mergesweep.app.cli", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_processes_compute_each_point_once(tmp_path):
    procs = [start(tmp_path, "a")]
    time.sleep(1.0)
    procs.append(start(tmp_path, "b"))
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
    computed = [m for out in outs for m in WRITTEN.findall(out)]
    records = sorted(p.stem for p in (tmp_path / "c" / "records").glob("*.json"))
    assert len(records) == len(STRENGTHS)
    assert sorted(computed) == records, f"each point computed exactly once: {computed}"
    assert any("coming back to it later" in out for out in outs), "the two sweeps never met at a point"
    assert not list((tmp_path / "c" / "locks").glob("*.lock")), "locks are removed when released"


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    from mergesweep.tools.status import _identify

    pid = _identify(["strength=0", *JOB], None, "config")
    stale = tmp_path / "c" / "locks" / f"{pid}.lock"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"pid": 999999, "host": "gone", "since": "2026-01-01T00:00:00"}))
    env = {**os.environ, "MERGESWEEP_RESULTS": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mergesweep.app.cli", "-m", "strength=0", "sweep.name=c", *JOB],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "c" / "records" / f"{pid}.json").is_file() and not stale.exists()


def test_a_held_lock_defers_the_point_and_a_waiting_process_skips_it_once_recorded(tmp_path):
    """In one process: a point whose lock another holder has is deferred, not computed; ``wait`` blocks."""
    from mergesweep.app import pointlock

    held = pointlock.acquire(tmp_path, "p")
    assert held is not None and pointlock.acquire(tmp_path, "p") is None  # a second open file description
    assert "process" in pointlock.holder(tmp_path, "p")
    held.release()
    again = pointlock.acquire(tmp_path, "p")
    assert again is not None
    again.release()
