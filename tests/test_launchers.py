"""Sweeps go out through Hydra's own launchers (no scheduler of ours): SLURM config composes, local procs run."""
from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir

from mergesweep.paths import conf_dir

from .test_sweep import mergesweep


def test_slurm_launcher_config_composes():
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1


@pytest.mark.slow
def test_submitit_local_runs_each_point_in_its_own_process(tmp_path):
    """A real multirun through hydra-submitit-launcher's local executor, HF engine, tiny limits."""
    mergesweep(tmp_path, "hydra/launcher=local_procs", "strength=0,1", "engine=hf", "sweep.name=procs",
               "tracking=none", "suite.parts.icl.limit=6", "suite.parts.if.limit=3", "bootstrap=20")
    recs = [json.loads(p.read_text()) for p in (tmp_path / "procs" / "records").glob("*.json")]
    assert sorted(r["lam"] for r in recs) == [0.0, 1.0]
    assert all(r["engine"]["engine"] == "hf" and r["engine"]["reused"] is False for r in recs)
    assert (tmp_path / "procs" / "tradeoff.png").is_file()
