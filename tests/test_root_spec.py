"""The typed top level of the config (``app/spec.py``, issue 21): ``RunSpec`` (strength, seed, ..., ``sweep``,
``extra``) and ``ConfigSchema``; records and point ids exactly as before; one function for the results folder.

``fixtures/config_containers.json`` was written by ``fixtures/snapshot_configs.py`` on the code before these
schemas (commit 2b39409): the whole record container of the default config, of every experiment with and without
``engine=hf``, of every option of every config group, and of override sets the tests use, plus toy point ids.
Fast: Hydra compositions and the toy pair's headers, no engine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from mergesweep.app.points import container
from mergesweep.app.spec import GROUPS, WHEN_SET, ConfigSchema, RunSpec, SweepSpec, run_spec
from mergesweep.errors import ConfigError
from mergesweep.paths import conf_dir, register_resolvers
from mergesweep.weights.spec import ModelSpec, StorageSpec
from tests.composing import composed
from tests.fixtures.snapshot_configs import case, cases

SNAPSHOT = json.loads((Path(__file__).parent / "fixtures" / "config_containers.json").read_text())["cases"]
SRC = Path(__file__).resolve().parents[1] / "src" / "mergesweep"

register_resolvers()


# --- records and ids -------------------------------------------------------------------------------------------------
def test_the_snapshot_covers_every_case():
    assert [c["overrides"] for c in SNAPSHOT] == cases()
    assert sum("point_id" in c for c in SNAPSHOT) >= 20 and not any("error" in c for c in SNAPSHOT)


def _expected(row: dict) -> dict:
    """The one intended change, by the model schema: a model key added with ``+`` to a family without it
    (``+model.tied=true`` on the toy pair) takes its place in ``ModelSpec``'s order instead of the end. Point ids do
    not change (they hash sorted keys)."""
    if "container" not in row or not any(o.startswith("+model.") for o in row["overrides"]):
        return row
    order = [f.name for f in dataclasses.fields(ModelSpec)]
    model = row["container"]["model"]
    return {**row, "container": {**row["container"], "model": {k: model[k] for k in sorted(model, key=order.index)}}}


@pytest.mark.parametrize("row", SNAPSHOT, ids=lambda c: " ".join(c["overrides"]) or "default")
def test_containers_and_point_ids_are_what_they_were(row):
    """Values, types, key order and point id, byte for byte."""
    assert json.dumps(case(row["overrides"])) == json.dumps(_expected(row))


def test_the_one_change_is_the_order_of_added_model_keys():
    changed = [r["overrides"] for r in SNAPSHOT if json.dumps(_expected(r)) != json.dumps(r)]
    assert changed == [["+model.tied=true", "model.dtype=bfloat16"]]


# --- the schema ------------------------------------------------------------------------------------------------------
def test_schema_is_the_groups_the_run_settings_storage_and_preset_keys_in_record_order():
    names = [f.name for f in dataclasses.fields(ConfigSchema)]
    assert names == [*GROUPS, *(f.name for f in dataclasses.fields(RunSpec)), "storage", *WHEN_SET]
    assert OmegaConf.get_type(composed()) is ConfigSchema
    assert list(container(composed())) == [*GROUPS, *(f.name for f in dataclasses.fields(RunSpec)), "storage"]


def test_defaults_are_the_specs_and_config_yaml_only_quotes_them():
    text = (conf_dir() / "config.yaml").read_text()
    assert set(yaml.safe_load(text)) == {"defaults", "hydra"}
    assert yaml.safe_load(text)["defaults"][0] == "config_schema"
    quoted = {k: yaml.safe_load(v) for k, v in re.findall(r"^#   ([\w.]+): (\S+)", text, flags=re.M)}
    want = {f.name: getattr(RunSpec(), f.name) for f in dataclasses.fields(RunSpec) if f.name != "sweep"}
    want |= {
        "sweep.name": SweepSpec().name,
        **{f"storage.{k}": v for k, v in dataclasses.asdict(StorageSpec()).items()},
    }
    assert quoted == want
    assert run_spec(composed()) == RunSpec(results_dir=str(composed().results_dir))


def test_preset_keys_are_out_of_the_record_until_set():
    assert not set(WHEN_SET) & set(container(composed()))
    assert container(composed("+experiment=partial_adaptation"))["judge_model"] is None  # an explicit null stays
    assert container(composed("+objective.kind=pareto"))["objective"] == {"kind": "pareto"}
    assert not composed().get("objective") and composed("+experiment=optuna_pareto").objective.kind == "pareto"


def test_block_points_are_the_per_point_configs():
    from mergesweep.app.sweeper import block_points

    points = list(block_points(composed("++block_strengths=[0,0.5]", "strength=0")))
    assert [container(p) for p in points] == [container(composed(f"strength={s}")) for s in (0, 0.5)]


# --- stopped at composition, or by validate() ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, key",
    [
        (["force=maybe"], "force"),
        (["offline=sometimes"], "offline"),
        (["sweep.nme=x"], "sweep.nme"),
        (["seeed=1"], "seeed"),
        (["extra=3"], "extra"),
        (["results_dir=[a,b]"], "results_dir"),
    ],
)
def test_a_misspelt_or_ill_typed_override_stops_composition(overrides, key):
    with pytest.raises(ConfigCompositionException, match=re.escape(key)) as e:
        composed(*overrides)
    assert key in str(e.value).splitlines()[0]


@pytest.mark.parametrize(
    "data, match",
    [
        ({"strength": "abc"}, "strength must be a number"),
        ({"strength": float("inf")}, "strength must be finite"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"bootstrap": 10**6}, "bootstrap must be <= 100000"),
        ({"sweep": {"name": "../x"}}, "sweep.name must be a plain folder name"),
        ({"sweep": {"name": "."}}, "sweep.name must be a plain folder name"),
    ],
)
def test_validate_names_the_bad_value(data, match):
    with pytest.raises(ConfigError, match=match):
        run_spec(data).validate()


def test_run_spec_of_a_plain_config():
    """A record's config (``verify``), or part of one: what it lacks is the spec's default."""
    spec = run_spec({})
    assert dataclasses.replace(spec, results_dir=RunSpec().results_dir) == RunSpec()
    assert spec.results_dir == os.environ.get("MERGESWEEP_RESULTS", "results")  # the interpolation, resolved
    assert run_spec({"offline": False, "sweep": {"name": 123, "note": "x"}}).sweep_dir().name == "123"
    with pytest.raises(ConfigError, match="offline"):
        run_spec({"offline": "maybe"})
    assert run_spec({"results_dir": "/r", "sweep": {"name": "s"}}).sweep_dir() == Path("/r/s")


# --- one place -------------------------------------------------------------------------------------------------------
def test_one_function_builds_the_results_folder():
    """``RunSpec.sweep_dir`` joins ``results_dir`` and ``sweep.name`` (and checks the name); everyone calls it."""
    joins = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if re.search(r"results_dir.*\) /", p.read_text())]
    assert joins == ["app/spec.py"], joins
    assert not [p for p in SRC.rglob("*.py") if re.search(r"sweep_dir\(c(on)?f", p.read_text())]


def test_no_literal_defaults_for_the_run_settings():
    keys = "offline|force|bootstrap|seed|strength|results_dir"
    pattern = re.compile(rf"""\.get\(\s*["']({keys})["']\s*,""")
    found = [f"{p.relative_to(SRC)}: {m.group(0)}" for p in SRC.rglob("*.py") for m in pattern.finditer(p.read_text())]
    assert found == []
