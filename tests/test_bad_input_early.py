"""Issue 20: values that used to pass the pre-engine checks and then crash (after the engine started, or in a
TypeError) are one-line errors before any engine starts, or are accepted as what the user meant."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from mergesweep.app import runner
from mergesweep.app.points import preflight
from mergesweep.errors import ConfigError
from mergesweep.paths import conf_dir


def cfg_with(*overrides: str):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


# --- seeds and other seed-like integers --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, match",
    [
        ("seed=-1", "seed must be >= 0, got -1"),
        ("seed=4294967296", "seed must be <= 4294967295, got 4294967296"),
        ("bootstrap=1000000000", "bootstrap must be <= 100000"),
    ],
)
def test_seed_out_of_numpy_range_is_refused_before_the_engine(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        preflight(cfg_with(f"results_dir={tmp_path}", override))
    assert not list(tmp_path.iterdir())


def test_seed_bounds_are_allowed(tmp_path):
    for seed in (0, 2**32 - 1):
        assert preflight(cfg_with(f"results_dir={tmp_path}", f"seed={seed}")).lam == 1.0


# --- sweep names Hydra reads as numbers ---------------------------------------------------------------------------
class Reached(Exception):
    """Raised by a stand-in for the engine part of a point: the job got past every path it builds first."""


@pytest.mark.parametrize("name, folder", [("nan", "nan"), ("123", "123")])
def test_numeric_sweep_name_is_the_folder_name(tmp_path, monkeypatch, name, folder):
    cfg = cfg_with(f"results_dir={tmp_path}", f"sweep.name={name}", "tracking=none")
    assert not isinstance(cfg.sweep.name, str), "Hydra no longer parses it as a number: this test tests nothing"

    def evaluate(cfg, pre, pid, hashes, store, t0):
        assert store.root == tmp_path / folder
        raise Reached

    monkeypatch.setattr(runner, "_evaluate", evaluate)
    with pytest.raises(Reached):
        runner.run_point(cfg)


@pytest.mark.parametrize("name", ["nan", "123"])
def test_numeric_sweep_name_in_the_report_callback_and_failure_entries(tmp_path, name):
    from mergesweep.app.callbacks import SweepReport
    from mergesweep.app.sweeper import mark_point_failed

    cfg = cfg_with(f"results_dir={tmp_path}", f"sweep.name={name}", "tracking=none")
    SweepReport().on_multirun_end(cfg)  # no records yet: "no report", not a TypeError
    assert mark_point_failed(cfg, "test reason", []) == 1
    assert len(list((tmp_path / name / "failures").glob("*.json"))) == 1


# --- IFEval-format prompt files: kwargs of the wrong type -------------------------------------------------------
def _prompt_file(tmp_path, kwargs: dict):
    import json

    rows = [
        {
            "key": 1,
            "prompt": "Describe a lamp in under 9 words.",
            "instruction_id_list": ["length_constraints:number_words"],
            "kwargs": [{"relation": "less than", "num_words": 9}],
        },
        {
            "key": 7,
            "prompt": "Describe bread.",
            "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
            "kwargs": [{}, kwargs],
        },
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"relation": "less than", "num_words": "twenty"},
            "'num_words' of length_constraints:number_words must be an integer, got 'twenty'",
        ),
        ({"relation": "less than", "num_words": True}, "'num_words' .* must be an integer, got True"),
        ({"relation": 3, "num_words": 20}, "'relation' .* must be a string, got 3"),
        ({"relation": "less than", "num_word": 20}, "length_constraints:number_words takes no argument 'num_word'"),
    ],
)
def test_prompt_file_kwarg_of_the_wrong_type_names_file_row_and_key(tmp_path, kwargs, match):
    from mergesweep.errors import DataError

    path = _prompt_file(tmp_path, kwargs)
    with pytest.raises(DataError, match=r"mine.jsonl: row 2 \(key 7\): kwargs " + match):
        preflight(cfg_with(f"results_dir={tmp_path / 'res'}", f"+suite.parts.if.prompt_file={path}"))


# --- issue 19: IFEval's scorer runs before any engine, every checker ----------------------------------------------
def test_ifeval_scorer_without_punkt_tab_fails_in_preflight(tmp_path):
    """A data folder without nltk's punkt_tab (what the scorer of ``number_sentences`` needs): the pre-engine
    check says so in one line. Before, preflight passed and the toy prompts (none uses that checker) hid it."""
    import os
    import subprocess
    import sys

    from .conftest import REPO

    data = tmp_path / "data"
    data.mkdir()
    for entry in (REPO / "data").iterdir():
        if entry.name != "nltk":
            (data / entry.name).symlink_to(entry)
    code = (
        "from mergesweep.paths import apply_env; apply_env(True)\n"
        "from hydra import compose, initialize_config_dir\n"
        "from mergesweep.paths import conf_dir\n"
        "from mergesweep.app.points import preflight\n"
        "from mergesweep.errors import SuiteError\n"
        "with initialize_config_dir(config_dir=str(conf_dir()), version_base='1.3'):\n"
        f"    cfg = compose(config_name='config', overrides=['results_dir={tmp_path / 'res'}'])\n"
        "try:\n"
        "    preflight(cfg)\n"
        "except SuiteError as e:\n"
        "    raise SystemExit(f'SuiteError: {e}')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    env.update(MERGESWEEP_DATA=str(data), NLTK_DATA=str(tmp_path / "no_nltk_here"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    assert proc.returncode != 0 and last.startswith("SuiteError: IFEval's scorer cannot run here: nltk resource"), (
        proc.stderr[-2000:]
    )
    assert "punkt_tab" in last and "\n" not in last


def test_every_ifeval_checker_runs_on_the_probe_answer():
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    from mergesweep.evals import seeded

    seeded.check_scorer.cache_clear()
    seeded.check_scorer()  # no exception with the shipped data
    assert len(INSTRUCTION_DICT) >= 25


# --- NaN/Inf weights and absurd strengths: one line naming what is wrong, and a failure entry ---------------------
def _run(results, *args: str, module: str = "mergesweep.app.cli"):
    import os
    import subprocess
    import sys

    from .conftest import REPO

    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(MERGESWEEP_RESULTS=str(results), PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )


def _the_line(proc, prog: str = "mergesweep") -> str:
    """The last stderr line (tqdm's cleared bars end in a carriage return on the same line), asserted one-line."""
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.rstrip("\n").split("\n")[-1].split("\r")[-1]
    assert last.startswith(f"{prog}: error: "), proc.stderr[-3000:]
    return last


@pytest.fixture
def nan_instruct(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from .conftest import TOY

    inst = tmp_path / "nan_instruct"
    shutil.copytree(TOY / "instruct", inst)
    state = load_file(inst / "model.safetensors")
    state[NAN_TENSOR][0, 1] = float("nan")
    save_file(state, inst / "model.safetensors", metadata={"format": "pt"})
    return inst


NAN_TENSOR = "model.layers.0.mlp.up_proj.weight"


def test_strength_1e30_fails_its_point_in_one_line_before_the_engine(tmp_path):
    proc = _run(tmp_path, "strength=1e30", "tracking=none")
    line = _the_line(proc)
    assert "lam=1e+30" in line and "not finite" in line
    assert "vLLM" not in proc.stdout + proc.stderr, "an engine was started"
    (entry,) = (tmp_path / "default" / "failures").glob("*.json")
    assert "NonFiniteError" in entry.read_text()


def test_export_of_an_overflowing_strength_or_a_nan_checkpoint_is_one_line(tmp_path, nan_instruct):
    from .conftest import TOY

    base = str(TOY / "base")
    proc = _run(
        tmp_path,
        *("--base", base, "--instruct", str(TOY / "instruct"), "--lam", "1e30", "--out", str(tmp_path / "a")),
        module="mergesweep.tools.export",
    )
    assert "lam=1e+30" in _the_line(proc, "mergesweep-export")
    proc = _run(
        tmp_path,
        *("--base", base, "--instruct", str(nan_instruct), "--lam", "0.5", "--out", str(tmp_path / "b")),
        module="mergesweep.tools.export",
    )
    line = _the_line(proc, "mergesweep-export")
    assert f"checkpoint {nan_instruct}, tensor '{NAN_TENSOR}' is not finite" in line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_nan_checkpoint_in_a_multirun_is_one_line_per_point_with_failure_entries(tmp_path, nan_instruct):
    proc = _run(
        tmp_path / "res",
        "-m",
        "strength=0.5,1",
        f"model.instruct={nan_instruct}",
        "tracking=none",
        "engine=hf",
        "suite.parts.icl.limit=4",
        "suite.parts.if.limit=2",
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("mergesweep: error: ")]
    assert len(lines) == 2 and all(f"checkpoint {nan_instruct}, tensor '{NAN_TENSOR}'" in x for x in lines), lines
    assert len(list((tmp_path / "res" / "default" / "failures").glob("*.json"))) == 2


# --- issue 19: engine sizes that fit the model and the suite -------------------------------------------------------
@pytest.fixture(scope="module")
def long_context_pair(tmp_path_factory):
    """A tiny Llama pair with 4096 positions (IFEval's 1280 new tokens fit) and the toy tokenizer."""
    from .conftest import save_model, tiny_config

    cfg = tiny_config("llama", tied=False)
    cfg.max_position_embeddings = 4096
    root = tmp_path_factory.mktemp("long")
    return save_model(cfg, root / "base", seed=0), save_model(cfg, root / "inst", seed=1)


def _pair(pair) -> list[str]:
    return [f"model.base={pair[0]}", f"model.instruct={pair[1]}"]


def test_auto_max_model_len_fits_ifeval_prompts_and_generation(tmp_path, long_context_pair):
    """The old default (1024) left IFEval's 1280 new tokens no room for any prompt."""
    sizes = preflight(cfg_with(f"results_dir={tmp_path}", "suite=ifeval", *_pair(long_context_pair))).engine_sizes
    assert sizes["max_gen_toks"] == 1280 and sizes["longest_prompt"] > 50
    assert sizes["max_model_len"] == sizes["longest_prompt"] + 1280 <= 4096
    assert sizes["kv_cache_gib"] >= 1
    toy = preflight(cfg_with(f"results_dir={tmp_path}")).engine_sizes  # the toy sweep's engine is unchanged
    assert toy["max_model_len"] == 1024 and toy["kv_cache_gib"] == 1 and toy["max_gen_toks"] == 160


def test_max_model_len_set_too_small_for_the_suite_is_one_line(tmp_path, long_context_pair):
    with pytest.raises(ConfigError, match=r"engine.max_model_len=1024 is too small for suite 'ifeval' .*raise engine"):
        preflight(
            cfg_with(f"results_dir={tmp_path}", "suite=ifeval", "engine.max_model_len=1024", *_pair(long_context_pair))
        )
    with pytest.raises(ConfigError, match=r"max_gen_toks 1280 .* does not fit model .*max_position_embeddings 1024"):
        preflight(cfg_with(f"results_dir={tmp_path}", "suite=ifeval"))  # the toy model has 1024 positions
    with pytest.raises(ConfigError, match="engine.max_model_len must be auto or a whole number"):
        preflight(cfg_with(f"results_dir={tmp_path}", "engine.max_model_len=lots"))


def test_part_gen_kwargs_override_the_tasks_generation_length(tmp_path):
    sizes = preflight(
        cfg_with(f"results_dir={tmp_path}", "suite=ifeval", "+suite.parts.if.gen_kwargs.max_gen_toks=100")
    ).engine_sizes
    assert sizes["max_gen_toks"] == 100 and sizes["max_model_len"] == 1024


def test_kv_cache_set_too_small_for_one_sequence_is_one_line(tmp_path, long_context_pair):
    from mergesweep.checks import sizing
    from mergesweep.engines.spec import VLLMEngineSpec

    per_token = sizing.kv_bytes_per_token(long_context_pair[1], "float32")
    assert per_token == 2 * 2 * 1 * 32 * 4  # layers, kv heads, head_dim, fp32
    sized = sizing.size(
        VLLMEngineSpec(max_model_len=4096, dtype="float32"), {"name": "x", "parts": {}}, str(long_context_pair[1])
    )
    assert sized.kv_cache_gib == 1 and sized.max_model_len == 4096
    with pytest.raises(ConfigError, match=r"engine.kv_cache_gib=1 cannot hold one sequence .*at least 2"):
        sizing._kv_gib(
            VLLMEngineSpec(kv_cache_gib=1, dtype="float32"), str(long_context_pair[1]), 1024**3 // per_token + 1
        )
