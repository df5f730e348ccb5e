"""The typed ``tracking`` settings (``report/spec.py``, issue 21): one class per option of the group, defaults written
once, bad overrides stopped at composition or by ``validate()``; records as before (``test_root_spec.py`` holds every
container, ``tracking=...`` options included, to the snapshot taken before the types). Fast: compositions only."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from hydra.errors import ConfigCompositionException

from mergesweep.errors import ConfigError
from mergesweep.paths import conf_dir, register_resolvers
from mergesweep.report.spec import NoTracking, WandbTracking, tracking_spec
from tests.composing import composed

register_resolvers()
SRC = Path(__file__).resolve().parents[1] / "src" / "mergesweep"


@pytest.mark.parametrize("option, cls", [("none", NoTracking), ("wandb_offline", WandbTracking)])
def test_yaml_sets_no_default_and_quotes_every_one(option, cls):
    text = (conf_dir() / "tracking" / f"{option}.yaml").read_text()
    assert set(yaml.safe_load(text)) == {"defaults"}
    quoted = {k: yaml.safe_load(v) for k, v in re.findall(r"^#   (\w+): (\S+)", text, flags=re.M)}
    assert quoted == dataclasses.asdict(cls())
    assert tracking_spec(composed(f"tracking={option}").tracking) == cls()


def test_overrides_reach_the_spec():
    spec = tracking_spec(composed("tracking.mode=online", "tracking.project=p", "tracking.entity=me").tracking)
    assert spec == WandbTracking(mode="online", project="p", entity="me")
    assert tracking_spec(composed("tracking.enabled=false").tracking).validate().enabled is False


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["tracking=none", "tracking.mode=online"], "tracking.mode"),  # not a setting of tracking=none
        (["tracking.projct=p"], "tracking.projct"),
        (["tracking.enabled=maybe"], "tracking.enabled"),
    ],
)
def test_a_misspelt_or_ill_typed_override_stops_composition(overrides, key):
    with pytest.raises(ConfigCompositionException, match=re.escape(key)):
        composed(*overrides)


@pytest.mark.parametrize(
    "data, match",
    [
        ({"mode": "sometimes"}, "tracking.mode must be offline, online, disabled or shared, got 'sometimes'"),
        ({"project": " "}, "tracking.project must be a W&B project name"),
        ({"enabled": True, "note": 1}, "tracking.note is not a tracking setting"),
    ],
)
def test_validate_names_the_bad_setting(data, match):
    with pytest.raises(ConfigError, match=match):
        tracking_spec(data).validate()


def test_plain_settings():
    """What tests and ``verify`` pass: ``{"enabled": False}`` is off; anything else is W&B with its defaults."""
    assert tracking_spec({"enabled": False}) == NoTracking()
    assert tracking_spec({"enabled": True, "project": "ms-test"}) == WandbTracking(project="ms-test")
    assert tracking_spec({}) == WandbTracking()


def test_the_preflight_validates_it(tmp_path):
    from mergesweep.app.points import preflight

    pre = preflight(composed(f"results_dir={tmp_path}", "tracking=none"))
    assert pre.tracking == NoTracking()
    with pytest.raises(ConfigError, match="tracking.mode must be"):
        preflight(composed(f"results_dir={tmp_path}", "tracking.mode=sometimes"))


def test_no_literal_defaults_for_tracking():
    pattern = re.compile(r"""\.get\(\s*["'](enabled|mode|project|entity)["']""")
    assert [p.name for p in SRC.rglob("*.py") if pattern.search(p.read_text())] == []
