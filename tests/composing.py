"""One composed config per override set, shared by the config-schema tests.

Composition is the slow part of those tests (Hydra reads every YAML in the defaults list), and each override set
gives the same config every time, so it is composed once per test process. The result is read only.
"""

from __future__ import annotations

from functools import cache

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mergesweep.paths import conf_dir, register_resolvers

register_resolvers()


@cache
def composed(*overrides: str) -> DictConfig:
    """``config`` composed from ``conf/`` (the checkout's, or ``MERGESWEEP_CONF``) with these overrides."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))
