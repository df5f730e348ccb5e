"""``mergesweep status``, failure entries and the guards, through real Hydra multiruns.

The points run on the transformers engine (``engine=hf``, seconds per point on the toy pair) with small
limits: what is tested is which points are expected, done, failed or missing, and why, not the scores.
One multirun has a healthy point and an overflowing one (``strength=1e30``); another runs on an instruct
checkpoint with one NaN weight. Both failures must leave a failure entry and no record.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from mergesweep.report.report import load_table
from mergesweep.store.records import RecordStore

from .console import REPO, mergesweep

pytestmark = pytest.mark.slow
SMALL = [
    "sweep.name=st",
    "tracking=none",
    "engine=hf",
    "suite.parts.icl.limit=12",
    "suite.parts.if.limit=4",
    "bootstrap=20",
]
NAN_TENSOR = "model.layers.0.self_attn.q_proj.weight"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("status")
    nan_inst = root / "nan_instruct"
    shutil.copytree(REPO / "data" / "toy_pair" / "instruct", nan_inst)
    state = load_file(nan_inst / "model.safetensors")
    state[NAN_TENSOR][0, 0] = float("inf")
    save_file(state, nan_inst / "model.safetensors", metadata={"format": "pt"})
    results = root / "results"
    results.mkdir()
    ok_and_overflow = mergesweep("-m", "strength=0,1e30", *SMALL, results=results)
    nan_point = mergesweep("-m", f"model.instruct={nan_inst}", "strength=0.5", *SMALL, results=results)
    return results / "st", ok_and_overflow, nan_point, nan_inst


def test_failed_points_leave_failure_entries_not_records(sweep):
    sweep_dir, ok_and_overflow, nan_point, nan_inst = sweep
    assert ok_and_overflow.returncode != 0 and nan_point.returncode != 0, "a failed point must fail its job"
    store = RecordStore(sweep_dir)
    recs, bad = store.scan()
    assert [r.lam for r in recs] == [0.0] and bad == [], ok_and_overflow.stderr[-3000:]
    fails = {f.details["lam"]: f for f in store.failures()}
    assert sorted(fails) == [0.5, 1e30]
    assert "NonFiniteError" in fails[1e30].reason and "lam=1e+30" in fails[1e30].reason
    assert f"checkpoint {nan_inst}, tensor '{NAN_TENSOR}' is not finite" in fails[0.5].reason
    assert fails[0.5].details["overrides"] == [f"model.instruct={nan_inst}", "strength=0.5", *SMALL]
    assert list(load_table(sweep_dir)["lam"]) == [0.0], "a failure entry is never read as a result"


def status(*dirs: Path) -> subprocess.CompletedProcess:
    return mergesweep("status", *map(str, dirs), results=Path("/nonexistent"))


def test_status_counts_expected_done_failed_missing(sweep, tmp_path):
    sweep_dir, _, _, nan_inst = sweep
    proc = status(sweep_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "expected 3, done 1, failed 2, missing 0" in lines[0], proc.stdout
    failed = [ln for ln in lines if ln.strip().startswith("FAILED")]
    assert len(failed) == 2 and any("strength=1e+30" in ln and "NonFiniteError" in ln for ln in failed)
    assert any(f"model.instruct={nan_inst}" in ln and NAN_TENSOR in ln for ln in failed)
    assert any(ln.strip().startswith("done") and "strength=0 " in ln + " " for ln in lines)

    copy = tmp_path / "st"
    shutil.copytree(sweep_dir, copy)  # same saved multiruns; drop the one record: that point is now missing
    for p in (copy / "records").glob("*.json"):
        p.unlink()
    lines = status(copy).stdout.splitlines()
    assert "expected 3, done 0, failed 2, missing 1" in lines[0]
    assert any(ln.strip().startswith("missing") and "strength=0" in ln for ln in lines)


def test_status_of_a_complete_sweep_is_zero_and_no_folder_is_one_line(sweep, tmp_path):
    sweep_dir, *_ = sweep
    store = RecordStore(sweep_dir)
    done = store.scan()[0][0]
    # a sweep folder whose saved multirun asked only for the done point
    only = tmp_path / "only"
    shutil.copytree(sweep_dir, only)
    for my in list(only.rglob("multirun.yaml")):
        text = my.read_text()
        if "strength=0,1e30" in text:
            my.write_text(text.replace("strength=0,1e30", "strength=0"))
        else:
            shutil.rmtree(my.parent)
    proc = status(only)
    assert proc.returncode == 0 and "expected 1, done 1, failed 0, missing 0" in proc.stdout, proc.stdout
    assert done.point_id in proc.stdout
    missing = status(tmp_path / "nope")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert json.loads(store.path(done.point_id).read_text())["schema"] == 3
