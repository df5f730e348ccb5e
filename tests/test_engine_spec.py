"""The typed engine and storage settings (``engines/spec.py``, ``weights/spec.py``, issue 21): defaults written
once, bad overrides stopped at composition, values checked by ``validate()``, and records and point ids exactly as
before the schemas.

``fixtures/engine_containers.json`` was written by composing each case with the code before the typed specs
(commit 5262458): the composed ``engine`` and ``storage`` sections, key order included, the order of the config's
top-level keys (a record keeps it), and a few point ids.
Fast: Hydra compositions and the toy pair's headers, no engine.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from mergesweep.app.points import container, identify
from mergesweep.engines.spec import HFEngineSpec, VLLMEngineSpec, engine_spec
from mergesweep.errors import ConfigError
from mergesweep.paths import conf_dir, register_resolvers
from mergesweep.weights.spec import StorageSpec, storage_spec
from tests.composing import composed

SNAPSHOT = json.loads((Path(__file__).parent / "fixtures" / "engine_containers.json").read_text())
# The one intended change: presets that tune vLLM (kv_cache_gib, extra_args) used to leave those keys in an ``hf``
# engine's section when run with engine=hf; the hf engine never read them, and its schema has no such keys. They
# now come in through conf/engine/vllm_real_cpu.yaml, which engine=hf replaces whole.
VLLM_ONLY = ("kv_cache_gib", "extra_args")
VLLM_TUNED_PRESETS = ("real_cpu", "mini_residual", "mini_adapter_transfer")

register_resolvers()


def _expected(case: dict) -> dict:
    engine = dict(case["engine"])
    presets = [o.split("=", 1)[1] for o in case["overrides"] if o.startswith("+experiment=")]
    if engine["name"] == "hf" and set(presets) & set(VLLM_TUNED_PRESETS):
        engine = {k: v for k, v in engine.items() if k not in VLLM_ONLY}
    return {"engine": engine, "storage": case["storage"]}


# --- records and ids ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", SNAPSHOT["containers"], ids=lambda c: " ".join(c["overrides"]) or "default")
def test_composed_sections_are_what_they_were(case):
    data = container(composed(*case["overrides"]))
    got = {"engine": data["engine"], "storage": data["storage"]}
    assert json.dumps(got) == json.dumps(_expected(case))  # values, types and key order


def test_the_one_change_is_vllm_keys_gone_from_hf_under_vllm_presets():
    changed = [c["overrides"] for c in SNAPSHOT["containers"] if _expected(c)["engine"] != c["engine"]]
    assert changed == [[f"+experiment={p}", "engine=hf"] for p in sorted(VLLM_TUNED_PRESETS, key=_order)]
    assert "kv_cache_gib" in container(composed("+experiment=real_cpu"))["engine"]  # vLLM keeps its tuning


def _order(preset: str) -> int:
    names = [c["overrides"] for c in SNAPSHOT["containers"]]
    return names.index([f"+experiment={preset}", "engine=hf"])


@pytest.mark.parametrize("case", SNAPSHOT["root_keys"], ids=lambda c: " ".join(c["overrides"]) or "default")
def test_records_keep_the_order_of_the_config(case):
    assert list(container(composed(*case["overrides"]))) == case["keys"]  # storage last, as before its schema


@pytest.mark.parametrize("case", SNAPSHOT["point_ids"], ids=lambda c: " ".join(c["overrides"]) or "default")
def test_point_ids_are_what_they_were(case):
    assert identify(composed(*case["overrides"]))[0] == case["point_id"]


def test_a_key_that_exists_only_when_given():
    """``attn_implementation`` (hf) is None unless set: out of the record while None, either spelling sets it."""
    plain = composed("engine=hf")
    assert OmegaConf.to_container(plain.engine)["attn_implementation"] is None
    assert "attn_implementation" not in container(plain)["engine"]
    added, set_ = (
        composed("engine=hf", "+engine.attn_implementation=eager"),
        composed("engine=hf", "engine.attn_implementation=eager"),
    )
    assert container(added)["engine"] == container(set_)["engine"]
    assert container(added)["engine"]["attn_implementation"] == "eager"
    assert engine_spec(set_.engine).attn_implementation == "eager"


# --- one place for each default ---------------------------------------------------------------------------------------
def test_a_spec_built_in_code_has_the_sweeps_defaults():
    """A script's ``VLLMEngineSpec(...)`` gets what a sweep gets (e.g. every core, not vLLM's one thread)."""
    assert engine_spec(composed().engine) == VLLMEngineSpec(dtype="float32")
    assert engine_spec(composed("engine=hf").engine) == HFEngineSpec(dtype="float32")
    assert VLLMEngineSpec().cpu_threads == "auto"
    assert storage_spec(composed().storage) == StorageSpec()


@pytest.mark.parametrize("name, cls", [("vllm", VLLMEngineSpec), ("hf", HFEngineSpec)])
def test_yaml_sets_no_default_and_quotes_every_one(name, cls):
    text = (conf_dir() / "engine" / f"{name}.yaml").read_text()
    assert {k for k in yaml.safe_load(text) if k != "defaults"} == {"dtype"}  # ${model.dtype}: not a default
    assert yaml.safe_load(text)["defaults"] == [f"{name}_schema", "_self_"]
    quoted = dict(re.findall(r"^#   (\w+): (\S+)", text, flags=re.M))
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("name", "dtype")}
    assert set(quoted) == set(fields), "every setting is documented in the YAML, and only those"
    for key, f in fields.items():
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert yaml.safe_load(quoted[key]) == default, (
            f"{name}.yaml quotes {key}: {quoted[key]}, the spec says {default!r}"
        )


def test_config_yaml_quotes_the_storage_defaults():
    text = (conf_dir() / "config.yaml").read_text()
    assert "storage" not in yaml.safe_load(text)  # the values are StorageSpec's
    quoted = dict(re.findall(r"^#   storage\.(\w+): (\S+)", text, flags=re.M))  # run settings: test_root_spec.py
    assert {k: yaml.safe_load(v) for k, v in quoted.items()} == dataclasses.asdict(StorageSpec())


# --- stopped at composition -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, key",
    [
        (["engine.max_gen_tok=3"], "engine.max_gen_tok"),  # misspelt
        (["engine=hf", "engine.prefix_caching=false"], "engine.prefix_caching"),  # vLLM's, not hf's
        (["engine.prefix_caching=maybe"], "engine.prefix_caching"),
        (["engine.kv_cache_gib=0.25"], "engine.kv_cache_gib"),
        (["engine.cpu_threads=1.5"], "engine.cpu_threads"),
        (["engine.cpu_threads=true"], "engine.cpu_threads"),
        (["engine.max_gen_toks=12.5"], "engine.max_gen_toks"),
        (["engine.tensor_parallel_size=two"], "engine.tensor_parallel_size"),
        (["engine.gpu_memory_utilization=most"], "engine.gpu_memory_utilization"),
        (["engine=hf", "engine.batch_size=1.5"], "engine.batch_size"),
        (["+experiment=real_cpu", "engine.in_process=sometimes"], "engine.in_process"),
        (["storage.devise=cpu"], "storage.devise"),
        (["storage.dtype=[bfloat16]"], "storage.dtype"),
    ],
)
def test_a_misspelt_or_ill_typed_override_stops_composition(overrides, key):
    with pytest.raises(ConfigCompositionException, match=re.escape(key)) as e:
        composed(*overrides)
    first = str(e.value).splitlines()[0]
    assert key in first, first  # the first line names the override


@pytest.mark.parametrize(
    "overrides, key", [(["+engine.max_gen_tok=3"], "max_gen_tok"), (["+engine.batch_size=8"], "batch_size")]
)
def test_a_key_added_past_the_schema_is_refused_before_any_engine(overrides, key):
    """``+`` adds even to a typed node (Hydra's force-add); building the spec refuses it, in one line."""
    with pytest.raises(ConfigError, match=rf"engine.{key} is not a setting of the vllm engine; its settings: name,"):
        engine_spec(composed(*overrides).engine)
    with pytest.raises(ConfigError, match="storage.note is not a storage setting; its settings: device, dtype"):
        storage_spec(composed("+storage.note=fast").storage)


# --- validate(): what the types cannot say ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, match",
    [
        (["engine.name=tgi"], "unknown engine 'tgi'; known: vllm, hf"),
        (["engine.name=hf"], "engine.name=hf does not change the engine: choose it with engine=hf"),
        (["engine.scorer=fast"], "unknown engine.scorer 'fast'"),
        (["engine.cpu_weights=onednn"], "engine.cpu_weights must be packed or plain, got 'onednn'"),
        (["engine.cpu_threads=many"], "engine.cpu_threads must be auto, vllm or a whole number of threads >= 1"),
        (["engine.cpu_threads=0"], "engine.cpu_threads must be auto, vllm or a whole number"),
        (["engine.kv_cache_gib=0"], "engine.kv_cache_gib must be auto or a whole number of GiB >= 1, got 0"),
        (["engine.kv_cache_gib=lots"], "engine.kv_cache_gib must be auto or a whole number of GiB"),
        (["engine.max_model_len=lots"], "engine.max_model_len must be auto or a whole number of tokens >= 1"),
        (["engine.max_model_len=0"], "engine.max_model_len must be auto or a whole number"),
        (["engine.max_gen_toks=0"], "engine.max_gen_toks must be a whole number >= 1, got 0"),
        (["engine.model_impl=native"], "engine.model_impl must be auto, vllm or transformers, got 'native'"),
        (["engine.gpu_memory_utilization=1.5"], r"engine.gpu_memory_utilization must be in \(0, 1\]"),
        (["engine=hf", "engine.batch_size=0"], "engine.batch_size must be a whole number >= 1, got 0"),
        (["engine=hf", "engine.max_model_len=auto-ish"], "engine.max_model_len must be auto or a whole number"),
    ],
)
def test_validate_names_the_bad_setting(overrides, match):
    spec = engine_spec(composed(*overrides).engine)
    with pytest.raises(ConfigError, match=match):
        spec.validate()


def test_storage_validate_names_the_bad_dtype():
    with pytest.raises(ConfigError, match="storage.dtype must be float32, bfloat16, float16 or float64, got 'int8'"):
        storage_spec(composed("storage.dtype=int8").storage).validate()
    assert storage_spec(composed("+experiment=real_cpu", "storage.dtype=bfloat16").storage).validate().device == "disk"


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["engine=hf"],
        ["+experiment=real_cpu"],
        ["engine.cpu_threads=vllm", "engine.kv_cache_gib=2", "engine.max_model_len=2048"],
        ["engine=hf", "engine.batch_size=auto:4", "engine.device=cpu", "+engine.attn_implementation=eager"],
    ],
)
def test_validate_passes_good_settings(overrides):
    spec = engine_spec(composed(*overrides).engine)
    assert spec.validate() is spec


def test_the_preflight_validates_before_any_checkpoint_is_read(tmp_path):
    from mergesweep.app.points import preflight

    missing = f"model.base={tmp_path / 'nowhere'}"  # a CheckpointError, were the settings not checked first
    with pytest.raises(ConfigError, match="engine.cpu_weights must be packed or plain"):
        preflight(composed(f"results_dir={tmp_path}", "engine.cpu_weights=onednn", missing))
    with pytest.raises(ConfigError, match="storage.dtype must be"):
        preflight(composed(f"results_dir={tmp_path}", "storage.dtype=int8", missing))
