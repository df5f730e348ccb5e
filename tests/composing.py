"""One composed config per override set, shared by the config-schema tests.

Composition is the slow part of those tests (Hydra reads every YAML in the defaults list), and each override set
gives the same config every time, so it is composed once per test process. The result is read only.
"""

from __future__ import annotations

from functools import cache

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from mergesweep.paths import conf_dir, register_resolvers

register_resolvers()


@cache
def composed(*overrides: str) -> DictConfig:
    """``config`` composed from ``conf/`` (the checkout's, or ``MERGESWEEP_CONF``) with these overrides."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def suite_settings(name: str) -> dict:
    """``suite=<name>`` as the app composes it (its YAML over the typed defaults), as a plain, editable dict; a
    setting left unset (``???``) is left out, as ``evals.spec.suite_spec`` reads it."""
    plain = OmegaConf.to_container(composed(f"suite={name}").suite, resolve=True)
    assert isinstance(plain, dict)
    for part in plain["parts"].values():
        for k in [k for k, v in part.items() if v == "???"]:
            del part[k]
    return plain
