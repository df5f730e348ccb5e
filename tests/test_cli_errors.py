"""Bad input fails before any heavy work, with an error that says what is wrong, and writes nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mergesweep.checkpoints import CheckpointError
from mergesweep.cli import ConfigError, preflight
from mergesweep.evals.suite import SuiteError
from mergesweep.paths import conf_dir

from .conftest import save_model, tiny_config


def cfg_with(*overrides: str):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("value", ["abc", "nan", "true", "'1,0'"])
def test_strength_must_be_a_number(value):
    with pytest.raises(ConfigError, match="strength must be"):
        preflight(cfg_with(f"strength={value}"))


def test_unknown_task_is_named():
    with pytest.raises(SuiteError, match="no_such_task"):
        preflight(cfg_with("suite.parts.icl.tasks=[toy_recall_colors,no_such_task]"))


def test_unknown_method_and_engine():
    with pytest.raises(ConfigError, match="unknown merge method 'nope'"):
        preflight(cfg_with("merge.name=nope"))
    with pytest.raises(ConfigError, match="unknown engine 'tgi'"):
        preflight(cfg_with("engine.name=tgi"))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        preflight(cfg_with(f"model.base={tmp_path / 'nowhere'}"))


def test_mismatched_architectures(tmp_path, pairs):
    base, _ = pairs["llama_untied"]
    _, inst = pairs["qwen2_tied"]
    with pytest.raises(CheckpointError, match="architectures differ"):
        preflight(cfg_with(f"model.base={base}", f"model.instruct={inst}"))


def test_mismatched_shapes_name_the_tensor(tmp_path):
    cfg = tiny_config("llama", tied=False)
    base = save_model(cfg, tmp_path / "base", seed=0)
    cfg.intermediate_size = 192
    inst = save_model(cfg, tmp_path / "inst", seed=1)
    with pytest.raises(CheckpointError, match=r"mlp\.(down|gate|up)_proj\.weight"):
        preflight(cfg_with(f"model.base={base}", f"model.instruct={inst}"))


def test_cli_prints_one_clear_line_and_writes_nothing(tmp_path):
    env = {**os.environ, "MERGESWEEP_RESULTS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "mergesweep.cli", "strength=oops", "tracking=none"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "mergesweep: error: strength must be a number" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(Path(tmp_path).rglob("records/*.json"))


def test_unknown_suite_lists_the_known_ones(tmp_path):
    env = {**os.environ, "MERGESWEEP_RESULTS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "mergesweep.cli", "suite=no_such_suite"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "Could not find 'suite/no_such_suite'" in proc.stderr and "toy" in proc.stderr


def test_misspelled_knob_and_missing_role_fail_before_the_engine():
    from mergesweep.merge import MergeConfigError

    with pytest.raises(MergeConfigError, match="unknown knob.*densty"):
        preflight(cfg_with("merge=ties", "+merge.knobs.densty=0.2"))
    with pytest.raises(MergeConfigError, match="needs model.target"):
        preflight(cfg_with("merge=residual"))
