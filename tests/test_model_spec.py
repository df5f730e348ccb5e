"""The typed ``model`` settings (``weights/spec.py`` ``ModelSpec``, issue 21): every family's YAML typed by one
schema, defaults written once, bad overrides stopped at composition or by ``validate()``. Records and point ids as
before: ``test_root_spec.py`` holds every family's container to the snapshot taken before the types. Fast."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml
from hydra.errors import ConfigCompositionException

from mergesweep.checks.schema import ADDABLE
from mergesweep.errors import ConfigError
from mergesweep.paths import conf_dir, register_resolvers
from mergesweep.weights.spec import ModelSpec, model_spec
from tests.composing import composed

register_resolvers()
FAMILIES = sorted(p.stem for p in (conf_dir() / "model").glob("*.yaml"))
DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelSpec) if f.default is not dataclasses.MISSING}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_typed_and_sets_no_default(family):
    text = (conf_dir() / "model" / f"{family}.yaml").read_text()
    data = yaml.safe_load(text)
    parent = data["defaults"][0]
    assert parent == "model_schema" or parent in FAMILIES, "the schema, or a family that has it"
    set_defaults = {k: v for k, v in data.items() if k in DEFAULTS and v == DEFAULTS[k] and k not in ModelSpec.WHEN_SET}
    assert set_defaults == {}, "a default is the spec's; quote it in a comment instead"
    quoted = {k: yaml.safe_load(v) for k, v in re.findall(r"^#   (\w+): (\S+)", text, flags=re.M)}
    assert all(DEFAULTS[k] == v for k, v in quoted.items()), quoted
    spec = model_spec(composed(f"model={family}").model).validate()
    assert spec == model_spec(composed(f"model={family}").model)


def test_addable_model_keys_are_the_specs():
    assert [k for k in ADDABLE if k.startswith("model.")] == [f"model.{f.name}" for f in dataclasses.fields(ModelSpec)]


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["model.familly=x"], "model.familly"),
        (["model.allow_pickle=sometimes"], "model.allow_pickle"),
        (["model=gemma3_270m", "model.tied=maybe"], "model.tied"),
        (["model.base=[a,b]"], "model.base"),
    ],
)
def test_a_misspelt_or_ill_typed_override_stops_composition(overrides, key):
    with pytest.raises(ConfigCompositionException, match=re.escape(key)):
        composed(*overrides)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["model.dtype=fp8"], "model.dtype must be auto, float32, bfloat16, float16, float or half, got 'fp8'"),
        (["model.family=a/b"], "model.family must be a plain name"),
        (["model.family=a__b"], "model.family must be a plain name"),
        (["model.base=' '"], "model.base must be a folder or hub id"),
    ],
)
def test_validate_names_the_bad_setting(overrides, match):
    spec = model_spec(composed(*overrides).model)
    with pytest.raises(ConfigError, match=match):
        spec.validate()


def test_plain_settings():
    """A family's own YAML without the schema (``--config-dir``), or a record's config."""
    spec = model_spec({"family": "f", "base": "/b", "instruct": "/i"})
    assert spec == ModelSpec(family="f", base="/b", instruct="/i") and spec.allow_pickle is False
    with pytest.raises(ConfigError, match="model.note is not a model setting"):
        model_spec({"family": "f", "base": "/b", "instruct": "/i", "note": 1})
    with pytest.raises(ConfigError, match="model.instruct is not set"):
        model_spec({"family": "f", "base": "/b"})


def test_the_preflight_validates_before_any_checkpoint_is_read(tmp_path):
    from mergesweep.app.points import preflight

    with pytest.raises(ConfigError, match="model.dtype must be"):
        preflight(composed(f"results_dir={tmp_path}", "model.dtype=fp8", f"model.base={tmp_path / 'nowhere'}"))
    pre = preflight(composed(f"results_dir={tmp_path}"))
    assert pre.model.family == "toy" and pre.model.tied is None
