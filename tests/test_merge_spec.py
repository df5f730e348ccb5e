"""The typed merge and suite settings (``merge/spec.py``, ``evals/spec.py``, issue 21): defaults written once (a
method's knobs in its signature, a suite's in ``SuiteSpec``/``PartSpec``), bad overrides stopped at composition or
in one line by the specs, and records and point ids exactly as before: ``test_root_spec.py`` holds every merge and
suite option's container to the snapshot taken before the types. Fast: Hydra compositions only."""

from __future__ import annotations

import dataclasses
import pickle
import re

import pytest
import yaml
from hydra.errors import ConfigCompositionException

from mergesweep.app.points import container
from mergesweep.checks.schema import ADDABLE, unknown_added
from mergesweep.errors import ConfigError, MergeConfigError, SuiteError
from mergesweep.evals.spec import PartSpec, SuiteSpec, suite_spec
from mergesweep.merge import METHODS, method_knobs
from mergesweep.merge.spec import SPECS, MergeSpec, knob_defaults, merge_spec
from mergesweep.paths import conf_dir, register_resolvers
from tests.composing import composed

register_resolvers()
QUOTED = re.compile(r"^\s*#   ([\w.]+): (\S+)", flags=re.M)


# --- merge -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_yaml_sets_nothing_and_quotes_its_defaults(method):
    text = (conf_dir() / "merge" / f"{method}.yaml").read_text()
    assert yaml.safe_load(text) == {"defaults": [f"{method}_schema", "_self_"]}
    spec = SPECS[method]()
    want = {"anchor": spec.anchor, "deltas": spec.deltas}
    for k, v in knob_defaults(METHODS[method]).items():
        want |= {f"knobs.{k}.{part}": x for part, x in v.items()} if isinstance(v, dict) else {f"knobs.{k}": v}
    if not knob_defaults(METHODS[method]):
        want["knobs"] = {}
    assert {k: yaml.safe_load(v) for k, v in QUOTED.findall(text)} == want


@pytest.mark.parametrize("method", sorted(METHODS))
def test_defaults_are_the_functions(method):
    spec = merge_spec(composed(f"merge={method}").merge)
    assert spec.name == method and spec.knobs == knob_defaults(METHODS[method])
    assert spec == merge_spec({"name": method}) == spec.validate()  # a plain config gets the same defaults
    assert set(spec.knobs) == set(method_knobs(METHODS[method]))


def test_a_knob_keeps_the_type_hydra_read():
    """Knobs are ``Any`` at composition: ``density=1`` stays the int 1 in records (a float type would change ids)."""
    knobs = container(composed("merge=ties", "merge.knobs.density=1"))["merge"]["knobs"]
    assert knobs == {"density": 1} and type(knobs["density"]) is int


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["merge=ties", "merge.knobs.densty=0.2"], "merge.knobs.densty"),
        (["merge=linear", "merge.knobs.density=0.2"], "merge.knobs.density"),  # ties', not linear's
        (["merge=per_module", "merge.knobs.scales.atn=0"], "merge.knobs.scales.atn"),
        (["merge.anker=base"], "merge.anker"),
    ],
)
def test_a_misspelt_knob_stops_composition(overrides, key):
    with pytest.raises(ConfigCompositionException, match=re.escape(key)) as e:
        composed(*overrides)
    assert key in str(e.value).splitlines()[0]


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (["merge=ties", "+merge.knobs.densty=0.2"], MergeConfigError, r"unknown knob\(s\) \['densty'\] .*ties"),
        (["merge.name=ties"], MergeConfigError, "merge.name=ties does not change the method: choose it"),
        (["merge.name=nope"], ConfigError, "unknown merge method 'nope'; known: adapter_transfer,"),
        (["merge.anchor=instruct"], MergeConfigError, "would add instruct's own task vector to itself"),
        (["merge.deltas=everything"], MergeConfigError, "merge.deltas must be one of"),
    ],
)
def test_validate_says_what_is_wrong_in_one_line(overrides, error, match):
    spec = merge_spec(composed(*overrides).merge)
    with pytest.raises(error, match=match) as e:
        spec.validate()
    assert "\n" not in str(e.value)


def test_plain_merge_settings():
    """A record's config or ``mergesweep-export``'s YAML: what it leaves out (or nulls) is the method's default."""
    assert merge_spec({"name": "residual", "anchor": None}).sources() == ("target", "instruct")
    assert merge_spec({"name": "ties", "knobs": {"density": 0.5}}).knobs == {"density": 0.5}
    with pytest.raises(MergeConfigError, match="merge.note is not a merge setting; its settings: name, anchor"):
        merge_spec({"name": "ties", "note": 1})
    assert isinstance(merge_spec({"name": "nope"}), MergeSpec)  # validate() names it


def test_addable_merge_keys_are_the_specs():
    knobs = {k for m in METHODS.values() for k in method_knobs(m)}
    assert {k for k in ADDABLE if k.startswith("merge.")} == {
        "merge.anchor",
        "merge.deltas",
        *(f"merge.knobs.{k}" for k in knobs),
        "merge.knobs.scales.*",
    }
    assert unknown_added(["+merge.knobs.density=0.5", "+merge.knobs.scales.attn=0"], []) == []
    assert unknown_added(["+merge.knobs.densty=0.5"], []) == ["merge.knobs.densty"]


def test_a_composed_config_pickles():
    """Launchers (submitit) pickle the job's config: the per-method schema classes are importable by name."""
    cfg = composed("merge=per_module")
    assert container(pickle.loads(pickle.dumps(cfg))) == container(cfg)


# --- suite -----------------------------------------------------------------------------------------------------------
SUITES = sorted(p.stem for p in (conf_dir() / "suite").glob("*.yaml"))
PART_DEFAULTS = {
    f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    for f in dataclasses.fields(PartSpec)
}


@pytest.mark.parametrize("suite", SUITES)
def test_each_suite_is_typed_and_quotes_the_defaults_it_keeps(suite):
    text = (conf_dir() / "suite" / f"{suite}.yaml").read_text()
    data = yaml.safe_load(text)
    parents = data["defaults"][:-1]
    assert parents == ["suite_schema"] or set(parents) <= set(SUITES), "the schema, or suites that have it"
    assert data.get("include_defaults", True) is True, "false is the default; quote it instead"
    for part in (data.get("parts") or {}).values():
        same = {k for k, v in part.items() if k not in PartSpec.WHEN_SET and v == PART_DEFAULTS[k]}
        assert not same, f"{same}: a default is the spec's; quote it in a comment instead"
    for key, value in QUOTED.findall(text):
        default = SuiteSpec.include_defaults if key == "include_defaults" else PART_DEFAULTS[key]
        assert yaml.safe_load(value) == default, (key, value)
    assert suite_spec(composed(f"suite={suite}").suite).validate().name == suite


def test_a_spec_built_in_code_is_the_composed_one():
    toy = SuiteSpec(
        name="toy",
        parts={
            "icl": PartSpec(tasks=["toy_recall_colors", "toy_recall_animals", "toy_recall_numbers"], metric="acc"),
            "if": PartSpec(tasks=["toy_ifeval"], metric="prompt_level_strict_acc", chat_template=True),
        },
    )
    toy.parts["icl"].num_fewshot = None  # MISSING in the class: unset and null both read as None
    toy.parts["if"].num_fewshot = None
    assert suite_spec(composed().suite) == toy
    assert suite_spec(dataclasses.asdict(toy)) == toy


def test_keys_out_of_records_until_given():
    """``num_fewshot`` (explicit null kept), ``groups``, ``gen_kwargs``, ``judge``, ``prompt_file``, ``task_dirs``."""
    suite = container(composed())["suite"]
    assert "num_fewshot" in suite["parts"]["icl"] and "num_fewshot" not in suite["parts"]["if"]
    assert list(suite) == ["name", "include_defaults", "parts"]
    assert list(suite["parts"]["if"]) == ["tasks", "metric", "chat_template", "limit"]
    added = container(composed("+suite.parts.if.gen_kwargs.max_gen_toks=9", "+suite.task_dirs=[/x]"))["suite"]
    assert added["parts"]["if"]["gen_kwargs"] == {"max_gen_toks": 9} and added["task_dirs"] == ["/x"]


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["suite.parts.icl.limt=5"], "suite.parts.icl.limt"),
        (["suite.parts.icl.chat_template=maybe"], "suite.parts.icl.chat_template"),
        (["suite.include_default=true"], "suite.include_default"),
        (["suite.nam=x"], "suite.nam"),
    ],
)
def test_a_misspelt_or_ill_typed_suite_key_stops_composition(overrides, key):
    with pytest.raises(ConfigCompositionException, match=re.escape(key)) as e:
        composed(*overrides)
    assert key in str(e.value).splitlines()[0]


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (["suite.parts.icl.limit=0"], ConfigError, r"suite.parts.icl.limit must be null, a count >= 1 or a fraction"),
        (["suite.parts.if.limit=abc"], ConfigError, r"suite.parts.if.limit must be .*'abc'"),
        (["suite.parts.icl.num_fewshot=-1"], ConfigError, "suite.parts.icl.num_fewshot must be >= 0"),
        (["suite.parts.if.metric=''"], SuiteError, "suite 'toy', part 'if': no headline `metric`"),
    ],
)
def test_suite_validate_says_what_is_wrong_in_one_line(overrides, error, match):
    spec = suite_spec(composed(*overrides).suite)
    with pytest.raises(error, match=match) as e:
        spec.validate()
    assert "\n" not in str(e.value)


def test_parts_come_from_suite_yamls():
    """A part is a ``PartSpec``: an override cannot add a whole new one (a suite YAML can), and only ICL and IF
    parts exist."""
    with pytest.raises(ConfigCompositionException, match=re.escape("+suite.parts.icl.tasks=[x]")):
        composed("suite=ifeval", "+suite.parts.icl.tasks=[x]")
    with pytest.raises(SuiteError, match="suite 's': unknown part 'qa'"):
        suite_spec({"name": "s", "parts": {"qa": {"tasks": ["x"], "metric": "acc"}}}).validate()


def test_a_part_key_added_past_the_schema_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="suite.parts.icl.limt is not a setting of suite.parts.icl; its settings"):
        suite_spec(composed("+suite.parts.icl.limt=5").suite)
    with pytest.raises(ConfigError, match="suite.parts.icl.tasks is not set"):
        suite_spec({"name": "s", "parts": {"icl": {"metric": "acc"}}})


def test_addable_suite_keys_are_the_specs():
    suite = {k for k in ADDABLE if k.startswith("suite.")}
    assert {f"suite.parts.*.{f.name}" for f in dataclasses.fields(PartSpec)} <= suite
    assert {"suite.task_dirs", "suite.include_defaults", "suite.parts.*.gen_kwargs.*", "suite.parts.*.judge.*"} <= suite
    assert unknown_added(["+suite.parts.icl.limt=5"], []) == ["suite.parts.icl.limt"]
