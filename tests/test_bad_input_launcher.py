"""Under a launcher of separate processes (submitit's local executor) a bad job fails alone, leaves a failure
entry, and the other jobs still run (issue 10); the sweep ends with one line per failed job."""

from __future__ import annotations

import json

import pytest

from .test_bad_input_sweep import error_lines, run

pytestmark = pytest.mark.slow


def test_bad_job_fails_alone_with_a_failure_entry(tmp_path):
    proc = run(
        tmp_path,
        "-m",
        "hydra/launcher=local_procs",
        "strength=0,abc",
        "engine=hf",
        "tracking=none",
        "suite.parts.icl.limit=6",
        "suite.parts.if.limit=3",
        "bootstrap=20",
        timeout=600,
    )
    lines = error_lines(proc)  # at the end, after the report of the job that ran
    assert len(lines) == 1 and "job #1 (strength=abc" in lines[0] and "failure entry" in lines[0], proc.stderr[-3000:]
    assert "strength must be a number (e.g. strength=0.5), got 'abc'" in lines[0]
    assert (tmp_path / "default" / "report.md").is_file()
    sweep = tmp_path / "default"
    recs = [json.loads(p.read_text()) for p in (sweep / "records").glob("*.json")]
    assert [r["lam"] for r in recs] == [0.0] and recs[0]["complete"] is True  # the good job ran
    fails = [json.loads(p.read_text()) for p in (sweep / "failures").glob("*.json")]
    assert len(fails) == 1 and "strength must be a number" in fails[0]["reason"]
    assert "strength=abc" in fails[0]["details"]["overrides"]
