"""Sweeps go out through Hydra's own launchers (no scheduler of ours): SLURM config composes, local procs run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mergesweep.app.sweeper import block_points, group_blocks
from mergesweep.paths import conf_dir
from mergesweep.store.records import RecordStore

from .conftest import REPO, TOY
from .test_sweep import mergesweep


def test_slurm_launcher_settings_reach_the_sbatch_script(tmp_path, monkeypatch):
    """The real SlurmLauncher.launch turns conf/hydra/launcher/slurm.yaml (+ overrides) into submitit's sbatch
    script: what a cluster would be asked for is read off that script, not off our YAML. No cluster here: a
    stand-in ``srun`` on PATH lets submitit build its Slurm executor, and submission itself is intercepted."""
    import submitit
    from hydra.utils import instantiate

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", f"results_dir={tmp_path / 'res'}"]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    seen: list = []
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", lambda self, fn, *args: seen.append((self, args)) or [])
    assert launcher.launch([["strength=0"], ["strength=1"]], initial_job_idx=0) == []
    executor, args = seen[0]
    assert len(args[0]) == 2  # one array task per job
    script = executor._executor._make_submission_file_text("python -c 1", "uid")
    for line in (
        "--gpus-per-node=1",
        "--partition=gpu",
        "--time=240",
        "--mem=64GB",
        "--cpus-per-task=8",
        "--job-name=mergesweep",
    ):
        assert f"#SBATCH {line}" in script, (line, script)


@pytest.mark.slow
def test_submitit_local_runs_each_point_in_its_own_process(tmp_path):
    """A real multirun through hydra-submitit-launcher's local executor, HF engine, tiny limits."""
    mergesweep(
        tmp_path,
        "hydra/launcher=local_procs",
        "strength=0,1",
        "engine=hf",
        "sweep.name=procs",
        "tracking=none",
        "suite.parts.icl.limit=6",
        "suite.parts.if.limit=3",
        "bootstrap=20",
    )
    recs = [json.loads(p.read_text()) for p in (tmp_path / "procs" / "records").glob("*.json")]
    assert sorted(r["lam"] for r in recs) == [0.0, 1.0]
    assert all(r["engine"]["engine"] == "hf" and r["engine"]["reused"] is False for r in recs)
    assert (tmp_path / "procs" / "tradeoff.png").is_file()


# --- warm engines on launchers: blocks of points (mergesweep.app.sweeper) ------------------------------------------
TINY = ("engine=hf", "tracking=none", "suite.parts.icl.limit=6", "suite.parts.if.limit=3", "bootstrap=20")


def test_points_are_grouped_by_everything_but_strength():
    jobs = [[f"merge={m}", "seed=1", f"strength={s}"] for m in ("linear", "ties") for s in ("0", "0.5", "1")]
    jobs.append(["merge=slerp", "seed=1"])  # no strength override: a block of its own, launched as is
    blocks = group_blocks(jobs)
    assert [b.common for b in blocks] == [
        ["merge=linear", "seed=1"],
        ["merge=ties", "seed=1"],
        ["merge=slerp", "seed=1"],
    ]
    assert blocks[0].strengths == ["0", "0.5", "1"]
    assert blocks[1].job_overrides() == ["merge=ties", "seed=1", "strength=0", "++block_strengths=[0,0.5,1]"]
    assert blocks[2].job_overrides() == ["merge=slerp", "seed=1"]
    # the points of the blocks are exactly the points the basic sweeper expanded
    assert sorted(map(sorted, (p for b in blocks for p in b.point_overrides()))) == sorted(map(sorted, jobs))
    single = group_blocks([["+model.target=x", "strength=0.3"]])[0]
    assert single.job_overrides() == ["+model.target=x", "strength=0.3"]


def test_block_job_config_yields_one_config_per_strength():
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["strength=0", "++block_strengths=[0,0.25,1]"])
    points = list(block_points(cfg))
    assert [p.strength for p in points] == [0, 0.25, 1]
    assert all("block_strengths" not in p for p in points) and cfg.block_strengths == [0, 0.25, 1]


def test_ray_launcher_config_composes():
    """hydra-ray-launcher pulls ray[default] (hundreds of MB): not installed here; its config composes regardless."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=["hydra/launcher=ray", "hydra/sweeper=blocks"], return_hydra_config=True
        )
    assert cfg.hydra.launcher._target_ == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert set(cfg.hydra.launcher.ray) == {"init", "remote"} and cfg.hydra.launcher.ray.remote.num_gpus == 1
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.mergesweep_blocks.BlockSweeper"
    try:  # where the plugin is installed, the file must also fit its schema
        from hydra_plugins.hydra_ray_launcher._config import RayLauncherConf
    except ImportError:
        return
    OmegaConf.merge(OmegaConf.structured(RayLauncherConf), cfg.hydra.launcher)


def _by_id(sweep_dir: Path) -> dict[str, dict]:
    return {r["point_id"]: r for r in (json.loads(p.read_text()) for p in (sweep_dir / "records").glob("*.json"))}


@pytest.mark.slow
def test_blocks_on_submitit_local_start_one_engine_per_block_and_match_basic(tmp_path):
    """2 blocks (methods) x 2 strengths as 2 parallel submitit jobs, vs the basic sweeper and launcher."""
    sweep = ("merge=linear,task_arithmetic", "strength=0,1", *TINY)
    mergesweep(tmp_path, *sweep, "sweep.name=basic")
    mergesweep(tmp_path, "hydra/sweeper=blocks", "hydra/launcher=local_procs", *sweep, "sweep.name=blocks")
    basic, blocks = _by_id(tmp_path / "basic"), _by_id(tmp_path / "blocks")
    assert len(blocks) == 4 and set(blocks) == set(basic)
    for pid, rec in blocks.items():
        for key in ("summary", "ci", "metrics", "lam", "method", "knobs"):
            assert rec[key] == basic[pid][key], (pid, key)
    for method in ("linear", "task_arithmetic"):  # one engine start per block, then reuse within the block
        started = sorted((r["lam"], r["engine"]["reused"]) for r in blocks.values() if r["method"] == method)
        assert started == [(0.0, False), (1.0, True)]
    logs = list((tmp_path / "blocks" / "hydra").glob("multirun-*/.submitit/*/*_log.out"))
    assert len(logs) == 2, "one submitit job per block"
    assert (tmp_path / "blocks" / "tradeoff.png").is_file()


@pytest.mark.slow
def test_a_failed_block_marks_its_points_and_the_others_go_on(tmp_path):
    """Block 2's instruct has a NaN weight: its points fail (failure entries), block 1 completes."""
    import shutil

    from safetensors.torch import load_file, save_file

    bad = tmp_path / "nan_instruct"
    shutil.copytree(TOY / "instruct", bad)
    tensors = load_file(bad / "model.safetensors")
    name = next(k for k in tensors if k.endswith("mlp.down_proj.weight"))
    tensors[name][0, 0] = float("nan")
    save_file(tensors, bad / "model.safetensors", metadata={"format": "pt"})
    env = {**os.environ, "MERGESWEEP_RESULTS": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mergesweep.app.cli",
            "-m",
            "hydra/sweeper=blocks",
            f"model.instruct={TOY / 'instruct'},{bad}",
            "strength=0,1",
            *TINY,
            "sweep.name=fail",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode != 0
    assert "1 of 2 blocks failed" in proc.stderr + proc.stdout
    store = RecordStore(tmp_path / "fail")
    done = [r["lam"] for r in store]
    failures = store.failures()
    assert sorted(done) == [0.0, 1.0] and len(failures) == 2
    assert all(f.point_id not in {r["point_id"] for r in store} for f in failures)
    assert list((tmp_path / "fail" / "hydra").glob("multirun-*/multirun.yaml")), "mergesweep status reads it"
